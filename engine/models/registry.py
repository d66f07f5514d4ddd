"""Which graders exist, how to build one from its checkpoint spec, and which ones fit an exam.

A grader checkpoint's ``spec`` (see :mod:`engine.models.checkpoint`)::

    {"task": "grader", "architecture": "multilevel",
     "kwargs": {"levels": {"fundus": "small2d", "oct": "small3d"}, "fusion": "concat", "width": 128,
                "hidden": 64, "dropout": 0.2, "num_classes": 3, "extra_features": []},
     "inputs": {"fundus": {"size": [224, 224], "mean": [...], "std": [...], "crop_scale": 2.5}, "oct": {...}},
     "classes": ["non", "early", "mid_advanced"],
     "cam_target_layers": {"fundus": "branches.fundus.trunk", "oct": "branches.oct.trunk"}}

Architectures are looked up in the explicit :data:`ARCHITECTURES` dict (no string-based dynamic imports, so
PyInstaller sees every module).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from engine.models.checkpoint import CheckpointError, load_checkpoint
from engine.models.preprocess import LEVEL_MODALITY, LEVELS, InputSpec, default_input_spec

TASK = "grader"
CLASSES = ("non", "early", "mid_advanced")
"""The GAMMA grades, in the order of the submission columns."""


def _build_multilevel(kwargs: Mapping[str, Any]) -> Any:
    from engine.models.multilevel import MultiLevelGrader

    return MultiLevelGrader(**dict(kwargs))


ARCHITECTURES: dict[str, Callable[[Mapping[str, Any]], Any]] = {"multilevel": _build_multilevel}
"""Architecture name in a spec -> builder taking the spec's ``kwargs``."""


def grader_spec(
    levels: Mapping[str, str],
    fusion: str = "concat",
    *,
    inputs: Optional[Mapping[str, InputSpec]] = None,
    width: int = 128,
    hidden: int = 64,
    dropout: float = 0.2,
    classes: Sequence[str] = CLASSES,
    extra_features: Sequence[str] = (),
) -> dict[str, Any]:
    """The spec of a multilevel grader (JSON-able); inputs default to :func:`default_input_spec` per level."""
    ordered = {lv: levels[lv] for lv in LEVELS if lv in levels}
    if len(ordered) != len(levels):
        raise ValueError(f"unknown level in {list(levels)}; expected a subset of {LEVELS}")
    inputs = dict(inputs or {})
    return {
        "task": TASK,
        "architecture": "multilevel",
        "kwargs": {
            "levels": ordered, "fusion": fusion, "width": int(width), "hidden": int(hidden),
            "dropout": float(dropout), "num_classes": len(classes), "extra_features": list(extra_features),
        },
        "inputs": {lv: (inputs.get(lv) or default_input_spec(lv)).to_dict() for lv in ordered},
        "classes": list(classes),
        "cam_target_layers": {lv: f"branches.{lv}.trunk" for lv in ordered},
    }


def build_model(spec: Mapping[str, Any]) -> Any:
    """A fresh (random-weight) ``torch.nn.Module`` for ``spec``.

    Raises:
        CheckpointError: unknown architecture or arguments that do not build.
    """
    arch = spec.get("architecture")
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    try:
        return ARCHITECTURES[arch](spec.get("kwargs", {}))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"cannot build {arch!r} from its spec: {err}") from None


@dataclass
class Grader:
    """A ready-to-run grader: the network in eval mode, its spec, card and identity.

    Attributes:
        name: card name (or file stem); unique within a run.
        module: the ``MultiLevelGrader`` in eval mode on ``device``.
        levels: its levels in fixed order, e.g. ``("fundus", "disc")``.
        inputs: ``{level: InputSpec}``.
        classes: class names in logit order.
        sha256: hex SHA-256 of the weights file ("" for an in-memory grader).
    """

    name: str
    module: Any
    spec: dict[str, Any]
    card: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    path: Optional[Path] = None
    device: str = "cpu"

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(self.module.level_names)

    @property
    def inputs(self) -> dict[str, InputSpec]:
        return {lv: InputSpec.from_dict(self.spec["inputs"][lv]) for lv in self.levels}

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.spec.get("classes", CLASSES))

    @property
    def extra_features(self) -> tuple[str, ...]:
        return tuple(self.spec.get("kwargs", {}).get("extra_features", ()))

    @property
    def required_modalities(self) -> tuple[str, ...]:
        """Exam modalities this grader needs (``fundus`` for fundus/disc levels, ``oct`` for the OCT level)."""
        return tuple(dict.fromkeys(LEVEL_MODALITY[lv] for lv in self.levels))

    def cam_target_layer(self, level: str) -> str:
        layers = self.spec.get("cam_target_layers") or {}
        if isinstance(layers, list):  # list form: one per level, in level order
            layers = dict(zip(self.levels, layers))
        return str(layers.get(level, f"branches.{level}.trunk"))


def grader_from_module(
    module: Any, spec: Mapping[str, Any], name: str, card: Optional[Mapping[str, Any]] = None, device: str = "cpu"
) -> Grader:
    """Wrap an in-memory network (tests, training) as a :class:`Grader` (puts it in eval mode on ``device``)."""
    module = module.to(device).eval()
    return Grader(name=name, module=module, spec=dict(spec), card=dict(card or {"name": name}), device=device)


_CACHE: dict[tuple[str, int, int, str], Grader] = {}
_CACHE_LOCK = threading.Lock()


def load_grader(path: Path, device: str = "cpu", *, name: Optional[str] = None) -> Grader:
    """Load a grader checkpoint safely (hash checked, ``weights_only``), cached per file state and device.

    Raises:
        CheckpointError: missing/tampered file, wrong task, or weights that do not fit the spec.
    """
    import torch

    path = Path(path).resolve()
    try:
        st = path.stat()
    except OSError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    key = (str(path), st.st_mtime_ns, st.st_size, device)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit if name is None or name == hit.name else Grader(**{**hit.__dict__, "name": name})
    ckpt = load_checkpoint(path, expected_task=TASK)
    module = build_model(ckpt.spec)
    try:
        module.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else "mismatch"
        raise CheckpointError(f"{path}: weights do not fit the architecture in the card ({first})") from None
    module = module.to(torch.device(device)).eval()
    grader = Grader(
        name=name or ckpt.name, module=module, spec=ckpt.spec, card=ckpt.card, sha256=ckpt.sha256, path=path,
        device=device,
    )
    with _CACHE_LOCK:
        _CACHE[key] = grader
    return grader


def default_grader_paths(models_dir: Optional[Path] = None) -> list[Path]:
    """Grader checkpoints shipped in ``resources/models`` (cards whose spec task is ``grader``), sorted."""
    from engine.models.checkpoint import read_card
    from engine.resources import models_dir as _models_dir

    root = Path(models_dir) if models_dir is not None else _models_dir()
    found = []
    for weights in sorted(root.glob("*.pt")) if root.is_dir() else []:
        try:
            card = read_card(weights)
        except CheckpointError:
            continue
        if card.get("spec", {}).get("task") == TASK:
            found.append(weights)
    return found


def default_ensemble_file(models_dir: Optional[Path] = None) -> Optional[Path]:
    """``resources/models/default.ensemble.json`` (or ``.toml``) when shipped."""
    from engine.resources import models_dir as _models_dir

    root = Path(models_dir) if models_dir is not None else _models_dir()
    for name in ("default.ensemble.json", "default.ensemble.toml"):
        if (root / name).is_file():
            return root / name
    return None


def select_for_exam(graders: Iterable[Grader], modalities: Sequence[str]) -> tuple[list[Grader], dict[str, str]]:
    """Split graders into those whose required modalities are all in ``modalities`` and the rest.

    Returns:
        (runnable graders in the given order, ``{name: reason}`` for the skipped ones).
    """
    chosen: list[Grader] = []
    skipped: dict[str, str] = {}
    present = set(modalities)
    for g in graders:
        missing = [m for m in g.required_modalities if m not in present]
        if missing:
            skipped[g.name] = f"needs {', '.join(missing)} (not in this exam)"
        else:
            chosen.append(g)
    return chosen, skipped
