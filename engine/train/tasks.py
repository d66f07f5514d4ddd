"""The registry of trainable tasks: ``python -m engine train TASK`` looks ``TASK`` up here.

A task is a small adapter object that its domain package provides (the disc/cup code owns ``disc-cup``, the OCT
code owns ``layers``, the grader code owns ``grader`` ...). The training commands (train / tune / evaluate) only
talk to this interface; ``engine.train.loop.fit`` does the training itself.

Where each task comes from (explicit imports only, so a frozen build sees them; no string-based imports):

==============  =====================================  ==========================================
task            module                                 attribute
==============  =====================================  ==========================================
``disc-cup``    ``engine.fundus.train_task``           ``TRAIN_TASK``
``layers``      ``engine.oct.train_task``              ``TRAIN_TASK``
``grader``      ``engine.models.train_task``           ``TRAIN_TASK``
``odir``        ``engine.tasks.odir``                  ``TRAIN_TASK``
``glioma``      ``engine.tasks.glioma``                ``TRAIN_TASK``
``bone``        ``engine.tasks.bone``                  ``TRAIN_TASK``
``classfolders``  built in (engine.train.builtin)      class-per-folder image sets
==============  =====================================  ==========================================

A task whose module (or attribute) is not there yet gives :class:`TaskUnavailable` naming what is missing.

The adapter interface (:class:`TrainTask`; a dataclass instance or any object with these members):

- ``name``, ``description``; ``kind``: ``"classification"`` (outputs ``(B, K)`` logits, batch ``"label"``
  ``(B,)`` int), ``"multilabel"`` (``(B, L)`` logits, batch ``"labels"`` ``(B, L)`` 0/1) or
  ``"segmentation"`` (``(B, C, *spatial)`` logits, batch ``"mask"`` ``(B, *spatial)`` class indices);
  ``monitor`` and ``mode`` for :func:`fit`; ``config_file``: the shipped default config (or None).
- ``read_cohort(data: Path, config) -> Cohort``: find every sample under ``data`` (published layout), raising
  a layout error that names the missing file and what was expected.
- ``build_model(config, cohort) -> (nn.Module, spec)``: random weights; ``spec`` as in engine.models.checkpoint.
- ``datasets(cohort, train_idx, val_idx, config) -> (train_ds, val_ds)``: augmentation in ``train_ds`` only.
- ``loss_fn(config, cohort, train_idx) -> loss_fn`` (a factory, so class weights come from the training fold).
- ``metrics_fn(config, cohort) -> metrics_fn`` (per epoch, see fit); ``forward`` (or None for the default).
- ``card(config, cohort) -> dict``: name, task, classes, data description, intended use, limitations.
- ``load_model(checkpoint: Path, device) -> (nn.Module, spec, card)`` and
  ``eval_dataset(cohort, indices, spec) -> Dataset`` (no augmentation, sized from ``spec``) for ``evaluate``.
- optional ``read_eval_cohort(data, config) -> Cohort`` for ``evaluate`` (e.g. a GAMMA test folder without the
  label table: ``labels`` of -1 make ``evaluate`` write the submission CSV); default ``read_cohort``.

:class:`SimpleTask` below is a ready-made dataclass implementation that a domain package fills with its
functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence, runtime_checkable

CONFIG_DIR = Path(__file__).with_name("configs")

TASK_NAMES = ("disc-cup", "layers", "grader", "odir", "glioma", "bone", "classfolders")

TASK_SUMMARIES = {
    "disc-cup": "optic disc / cup segmentation of fundus photos (REFUGE, ORIGA, Drishti-GS, RIM-ONE, GAMMA masks)",
    "layers": "retinal layer segmentation of OCT B-scans (layer masks or VGG/makesense polygon JSON)",
    "grader": "glaucoma grade non/early/mid_advanced from fundus, disc crop and OCT (GAMMA; 1/2/3 levels)",
    "odir": "ODIR-5K multi-label ocular disease recognition (N D G C A H M O)",
    "glioma": "glioma grade HGG/LGG from BraTS-style NIfTI folders",
    "bone": "bone health (healthy vs osteoporosis) from panoramic dental radiographs",
    "classfolders": "any class-per-folder image set (built in; ROOT/<class>/<image>)",
}
"""One line per task for ``--help`` (kept here so the CLI lists them without importing torch)."""


class TaskUnavailable(LookupError):
    """The named task is unknown or its module has not landed yet. ``str()`` says which and why."""


@dataclass
class Cohort:
    """Every sample of a dataset folder, with what splitting needs. Items are plain dicts (paths, ids, labels).

    Attributes:
        root: the folder read.
        items: one dict per sample (at least ``"id"``); what ``datasets``/``eval_dataset`` consume.
        classes: class (or label / segmentation class) names in output order.
        labels: a class index per item for stratification (multi-label: one representative index; None when
            a sample has no label, e.g. a test folder).
        groups: patient id per item (samples of one patient never straddle folds); None = each item alone.
        sources: dataset / site per item, for leave-one-source-out evaluation; None when unknown.
        description: one line for the model card ("GAMMA training set, 100 exams, fundus + OCT").
        train_only: per item, True for a sample that only ever trains (a pseudo-labelled photo): it joins every
            training side and is never validated on; None = none.
    """

    root: Path
    items: list[dict[str, Any]]
    classes: list[str]
    labels: Optional[list[int]] = None
    groups: Optional[list[str]] = None
    sources: Optional[list[str]] = None
    description: str = ""
    train_only: Optional[list[bool]] = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [str(item.get("id", i)) for i, item in enumerate(self.items)]

    @property
    def has_labels(self) -> bool:
        return self.labels is not None and all(lab is not None and lab >= 0 for lab in self.labels)


@runtime_checkable
class TrainTask(Protocol):
    """What ``train`` / ``tune`` / ``evaluate`` need from a task (see the module docstring)."""

    name: str
    description: str
    kind: str
    monitor: str
    mode: str
    config_file: Optional[Path]
    forward: Optional[Callable[..., Any]]

    def read_cohort(self, data: Path, config: Any) -> Cohort: ...

    def build_model(self, config: Any, cohort: Cohort) -> tuple[Any, dict[str, Any]]: ...

    def datasets(self, cohort: Cohort, train_idx: Sequence[int], val_idx: Sequence[int], config: Any) -> tuple[Any, Any]: ...

    def loss_fn(self, config: Any, cohort: Cohort, train_idx: Sequence[int]) -> Callable[..., Any]: ...

    def metrics_fn(self, config: Any, cohort: Cohort) -> Callable[..., Any]: ...

    def card(self, config: Any, cohort: Cohort) -> dict[str, Any]: ...

    def load_model(self, checkpoint: Path, device: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]: ...

    def eval_dataset(self, cohort: Cohort, indices: Sequence[int], spec: Mapping[str, Any]) -> Any: ...


@dataclass
class SimpleTask:
    """A :class:`TrainTask` made of plain functions (each one the member of the same name, minus ``self``).

    ``read_cohort``, ``build_model``, ``datasets``, ``loss_fn``, ``metrics_fn``, ``card``, ``load_model`` and
    ``eval_dataset`` are required; ``forward`` and ``read_eval_cohort_fn`` are optional.
    """

    name: str
    description: str
    kind: str
    monitor: str
    mode: str
    read_cohort_fn: Callable[[Path, Any], Cohort]
    build_model_fn: Callable[[Any, Cohort], tuple[Any, dict[str, Any]]]
    datasets_fn: Callable[[Cohort, Sequence[int], Sequence[int], Any], tuple[Any, Any]]
    loss_fn_factory: Callable[[Any, Cohort, Sequence[int]], Callable[..., Any]]
    metrics_fn_factory: Callable[[Any, Cohort], Callable[..., Any]]
    card_fn: Callable[[Any, Cohort], dict[str, Any]]
    load_model_fn: Callable[[Path, Any], tuple[Any, dict[str, Any], dict[str, Any]]]
    eval_dataset_fn: Callable[[Cohort, Sequence[int], Mapping[str, Any]], Any]
    config_file: Optional[Path] = None
    forward: Optional[Callable[..., Any]] = None
    read_eval_cohort_fn: Optional[Callable[[Path, Any], Cohort]] = None

    def read_cohort(self, data: Path, config: Any) -> Cohort:
        return self.read_cohort_fn(Path(data), config)

    def build_model(self, config: Any, cohort: Cohort) -> tuple[Any, dict[str, Any]]:
        return self.build_model_fn(config, cohort)

    def datasets(self, cohort: Cohort, train_idx: Sequence[int], val_idx: Sequence[int], config: Any) -> tuple[Any, Any]:
        return self.datasets_fn(cohort, train_idx, val_idx, config)

    def loss_fn(self, config: Any, cohort: Cohort, train_idx: Sequence[int]) -> Callable[..., Any]:
        return self.loss_fn_factory(config, cohort, train_idx)

    def metrics_fn(self, config: Any, cohort: Cohort) -> Callable[..., Any]:
        return self.metrics_fn_factory(config, cohort)

    def card(self, config: Any, cohort: Cohort) -> dict[str, Any]:
        return self.card_fn(config, cohort)

    def load_model(self, checkpoint: Path, device: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        return self.load_model_fn(Path(checkpoint), device)

    def eval_dataset(self, cohort: Cohort, indices: Sequence[int], spec: Mapping[str, Any]) -> Any:
        return self.eval_dataset_fn(cohort, indices, spec)

    def read_eval_cohort(self, data: Path, config: Any) -> Cohort:
        return (self.read_eval_cohort_fn or self.read_cohort_fn)(Path(data), config)


# ---------------------------------------------------------------------------------------------- registry
def _unavailable(name: str, module: str, err: BaseException) -> TaskUnavailable:
    leaf = module.rsplit(".", 1)[-1]
    missing = ((isinstance(err, ModuleNotFoundError) and bool(err.name) and module.startswith(str(err.name)))
               or f"cannot import name {leaf!r}" in str(err)
               or (isinstance(err, AttributeError) and "TRAIN_TASK" in str(err)))
    why = (f"its module {module} (attribute TRAIN_TASK) is not in this build yet" if missing
           else f"importing {module} failed ({type(err).__name__}: {err})")
    return TaskUnavailable(f"task {name!r} is not available: {why}; available now: "
                           f"{', '.join(available_tasks()) or 'none'}")


def _load_disc_cup() -> Any:
    from engine.fundus import train_task  # provided by the disc/cup code

    return train_task.TRAIN_TASK


def _load_layers() -> Any:
    from engine.oct import train_task  # provided by the OCT layer code

    return train_task.TRAIN_TASK


def _load_grader() -> Any:
    from engine.models import train_task  # provided by the grader code

    return train_task.TRAIN_TASK


def _load_odir() -> Any:
    from engine.tasks import odir

    return odir.TRAIN_TASK


def _load_glioma() -> Any:
    from engine.tasks import glioma

    return glioma.TRAIN_TASK


def _load_bone() -> Any:
    from engine.tasks import bone

    return bone.TRAIN_TASK


def _load_classfolders() -> Any:
    from engine.train import builtin

    return builtin.CLASSFOLDERS_TASK


_LOADERS: dict[str, tuple[str, Callable[[], Any]]] = {
    "disc-cup": ("engine.fundus.train_task", _load_disc_cup),
    "layers": ("engine.oct.train_task", _load_layers),
    "grader": ("engine.models.train_task", _load_grader),
    "odir": ("engine.tasks.odir", _load_odir),
    "glioma": ("engine.tasks.glioma", _load_glioma),
    "bone": ("engine.tasks.bone", _load_bone),
    "classfolders": ("engine.train.builtin", _load_classfolders),
}

_EXTRA: dict[str, Any] = {}


def register_task(task: Any) -> None:
    """Add (or replace) a task object at run time: tests and notebooks; the CLI uses the table above."""
    _EXTRA[task.name] = task


def get_task(name: str) -> Any:
    """The task adapter called ``name``.

    Raises:
        TaskUnavailable: unknown name, or the task's module / ``TRAIN_TASK`` is not there (yet).
    """
    if name in _EXTRA:
        return _EXTRA[name]
    if name not in _LOADERS:
        raise TaskUnavailable(f"unknown task {name!r}; known tasks: {', '.join(sorted(set(_LOADERS) | set(_EXTRA)))}")
    module, loader = _LOADERS[name]
    try:
        task = loader()
    except (ImportError, AttributeError) as err:
        raise _unavailable(name, module, err) from None
    missing = [m for m in ("read_cohort", "build_model", "datasets", "loss_fn", "metrics_fn", "card") if not hasattr(task, m)]
    if missing:
        raise TaskUnavailable(f"task {name!r} from {module} lacks {', '.join(missing)} (see engine/train/tasks.py)")
    return task


def available_tasks() -> list[str]:
    """Names whose adapters import right now (imports each module: not for hot paths)."""
    names = []
    for name, (_module, loader) in _LOADERS.items():
        try:
            loader()
        except (ImportError, AttributeError):
            continue
        names.append(name)
    return sorted(set(names) | set(_EXTRA))


def default_config_file(task: Any) -> Optional[Path]:
    """The shipped config of ``task``: its ``config_file`` if set, else ``configs/<name>.toml`` when present."""
    path = getattr(task, "config_file", None)
    if path is not None:
        return Path(path)
    candidate = CONFIG_DIR / f"{task.name}.toml"
    return candidate if candidate.is_file() else None
