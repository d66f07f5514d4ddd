"""The ``grader`` training task: 1/2/3-level GAMMA graders trained with ``engine.train`` (one loop for all).

    python -m engine train grader --data GAMMA_FOLDER --out runs/fundus --config engine/train/configs/grader.toml

``--data`` is any GAMMA layout :func:`engine.train.datasets.gamma.read_gamma` reads: the challenge's training
folder (fundus + OCT), or the fundus-only ``images/<ID>.jpg`` + ``glaucoma_grading_training_GT.csv``.

Config tables (see ``engine/train/configs/grader.toml``):

- ``[model]``: ``levels`` (``{level = backbone}``, e.g. ``{fundus = "small2d", disc = "small2d"}``), ``fusion``
  (``concat`` / ``add``), ``width``, ``hidden``, ``dropout``, ``label_smoothing``, ``init`` (``{level =
  "one_level.pt"}``: start a branch from a trained checkpoint), ``freeze`` (levels kept fixed), ``name``,
  ``extra_features`` (biomarker names appended to the fused features, e.g. ``["vcdr"]``: measured by the same
  disc/cup analysis the pipeline runs, ``engine.fundus.analyse_disc``, once per photo).
- ``[data]``: ``fundus_size``, ``disc_size``, ``crop_scale`` (disc crop side / disc diameter), ``oct_size``
  (``[d, h, w]``), ``augment``, ``rotate_deg``, ``zoom``, ``shift``, ``flip``, ``intensity``,
  ``class_weights`` (``"balanced"`` or ``"none"``).

The epoch kept is the one with the lowest *training* loss (``monitor = "train_loss"``): the validation fold is
never used to pick weights, so the held-out figures written into each card are not tuned on it.

Inputs are made exactly as at grading time (:mod:`engine.models.preprocess`: the same resize, the same disc
localiser and crop, the same OCT resampling); decoded inputs are cached once as uint8 at network size and
augmented on the fly (train folds only) with OpenCV affine warps, flips and intensity jitter.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from engine.train.tasks import Cohort, SimpleTask

CLASSES = ("non", "early", "mid_advanced")
SYNTHETIC_MARKER = "SYNTHETIC.txt"
"""Written by :func:`write_synthetic_cohort`; its presence makes model cards say the data was synthetic."""
DEFAULT_LEVELS = {"fundus": "small2d"}


# ------------------------------------------------------------------------------------------------ config


def _levels(config: Any) -> dict[str, str]:
    levels = dict(config.model.get("levels") or DEFAULT_LEVELS)
    return {str(k): str(v) for k, v in levels.items()}


def input_specs(config: Any, levels: Sequence[str]) -> dict[str, Any]:
    """``{level: InputSpec}`` from the config's ``[data]`` table."""
    from engine.models.preprocess import DEFAULT_2D_MEAN, DEFAULT_2D_STD, DEFAULT_3D_MEAN, DEFAULT_3D_STD, InputSpec

    data = config.data
    out: dict[str, Any] = {}
    for lv in levels:
        if lv == "fundus":
            s = int(data.get("fundus_size", 256))
            out[lv] = InputSpec((s, s), DEFAULT_2D_MEAN, DEFAULT_2D_STD)
        elif lv == "disc":
            s = int(data.get("disc_size", 192))
            out[lv] = InputSpec((s, s), DEFAULT_2D_MEAN, DEFAULT_2D_STD, float(data.get("crop_scale", 2.5)))
        else:
            out[lv] = InputSpec(tuple(int(v) for v in data.get("oct_size", (64, 128, 128))), DEFAULT_3D_MEAN,
                                DEFAULT_3D_STD)
    return out


# ------------------------------------------------------------------------------------------------ cohort


def read_cohort(data: Path, config: Any) -> Cohort:
    from engine.train.datasets.gamma import read_gamma

    levels = _levels(config)
    items = read_gamma(data, require_labels=True, require_oct="oct" in levels)
    counts = np.bincount([it["label"] for it in items], minlength=3)
    kinds = "fundus + OCT" if any(it["oct"] for it in items) else "fundus only"
    synthetic = (Path(data) / SYNTHETIC_MARKER).is_file()
    return Cohort(
        root=Path(data), items=items, classes=list(CLASSES), labels=[int(it["label"]) for it in items],
        description=("SYNTHETIC exams from engine.synthetic (no real patient data), " if synthetic else "")
        + f"GAMMA layout at {Path(data).name}: {len(items)} graded exams ({kinds}); "
        f"non/early/mid_advanced = {'/'.join(str(int(c)) for c in counts)}",
    )


def read_eval_cohort(data: Path, config: Any) -> Cohort:
    """For ``evaluate``: a graded GAMMA folder, or a test folder without the table (labels -1: submission CSV)."""
    from engine.train.datasets.gamma import find_gt, read_gamma

    if find_gt(Path(data)) is not None:
        return read_cohort(data, config)
    items = read_gamma(data, require_oct="oct" in _levels(config))
    return Cohort(root=Path(data), items=items, classes=list(CLASSES), labels=[-1] * len(items),
                  description=f"GAMMA test folder at {Path(data).name}: {len(items)} ungraded exams")


def build_model(config: Any, cohort: Cohort) -> tuple[Any, dict[str, Any]]:
    """The grader for ``[model]`` (random weights; branches from ``init`` checkpoints, ``freeze`` applied)."""
    from engine.models.checkpoint import load_checkpoint
    from engine.models.registry import build_model as build_from_spec
    from engine.models.registry import grader_spec

    m = config.model
    levels = _levels(config)
    spec = grader_spec(
        levels, str(m.get("fusion", "concat")), inputs=input_specs(config, list(levels)),
        width=int(m.get("width", 128)), hidden=int(m.get("hidden", 64)), dropout=float(m.get("dropout", 0.3)),
        classes=CLASSES, extra_features=[str(f) for f in m.get("extra_features", ())],
    )
    model = build_from_spec(spec)
    for level, path in dict(m.get("init") or {}).items():
        source = load_checkpoint(Path(path), expected_task="grader")
        source_level = level if level in source.spec["kwargs"]["levels"] else next(iter(source.spec["kwargs"]["levels"]))
        model.load_branch(level, source.state_dict, source_level=source_level)
    if m.get("freeze"):
        model.freeze(list(m["freeze"]))
    return model, spec


# ----------------------------------------------------------------------------------------------- dataset


_BIOMARKERS: dict[str, dict[str, float]] = {}
"""Photo path -> biomarkers of its disc/cup analysis (the analysis is slow; folds share it)."""


def photo_biomarkers(path: str, rgb: np.ndarray) -> dict[str, float]:
    """``{name: value}`` exactly as :func:`engine.pipeline.grade` gets them for a grader's extra features."""
    if path not in _BIOMARKERS:
        from engine.fundus.analysis import analyse_disc
        from engine.pipeline import biomarkers_of

        _BIOMARKERS[path] = biomarkers_of(analyse_disc(rgb))
    return _BIOMARKERS[path]


class GraderDataset:
    """Items -> ``{"fundus": (3, h, w), "disc": (3, h, w), "oct": (1, d, h, w) float32, "extra": (E,), "label", "id"}``.

    Each item is decoded and brought to network size once (uint8 cache, made on first use), then augmented
    per access when ``train``. ``extra``: the named biomarkers of the photo (0.5 where the analysis found none).
    """

    def __init__(self, items: Sequence[Mapping[str, Any]], specs: Mapping[str, Any], train: bool,
                 options: Optional[Mapping[str, Any]] = None, seed: int = 0, extra: Sequence[str] = ()) -> None:
        self.items = [dict(it) for it in items]
        self.extra = tuple(extra)
        self.specs = dict(specs)
        self.train = train
        self.options = dict(options or {})
        self._cache: dict[int, dict[str, np.ndarray]] = {}
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def _decoded(self, index: int) -> dict[str, np.ndarray]:
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        import cv2

        from engine.models.preprocess import crop_box_around, cut_box, locate_disc, resample_volume

        item = self.items[index]
        out: dict[str, np.ndarray] = {}
        fundus = None
        if "fundus" in self.specs or "disc" in self.specs or self.extra:
            data = np.fromfile(item["fundus"], np.uint8)
            bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"{item['fundus']}: not a readable image")
            fundus = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if "fundus" in self.specs:
            h, w = self.specs["fundus"].size
            out["fundus"] = cv2.resize(fundus, (w, h), interpolation=cv2.INTER_AREA)
        if "disc" in self.specs:
            spec = self.specs["disc"]
            center, diameter, _ = locate_disc(fundus)
            crop = cut_box(fundus, crop_box_around(fundus.shape[:2], center, diameter, spec.crop_scale))
            h, w = spec.size
            interp = cv2.INTER_AREA if crop.shape[0] > h else cv2.INTER_LINEAR
            out["disc"] = cv2.resize(crop, (w, h), interpolation=interp)
        if "oct" in self.specs:
            scans = [cv2.imdecode(np.fromfile(p, np.uint8), cv2.IMREAD_GRAYSCALE) for p in item["oct"]]
            volume = np.stack(scans)
            out["oct"] = np.clip(resample_volume(volume, self.specs["oct"].size) + 0.5, 0, 255).astype(np.uint8)
        if self.extra:
            found = photo_biomarkers(str(item["fundus"]), fundus)
            out["extra"] = np.array([found.get(f, 0.5) for f in self.extra], np.float32)
        self._cache[index] = out
        return out

    def _augment_2d(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import cv2

        o = self.options
        h, w = image.shape[:2]
        if rng.random() < float(o.get("flip", 0.5)):
            image = image[:, ::-1]
        angle = rng.uniform(-1, 1) * float(o.get("rotate_deg", 15.0))
        scale = 1.0 + rng.uniform(-1, 1) * float(o.get("zoom", 0.1))
        shift = float(o.get("shift", 0.05))
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += rng.uniform(-shift, shift, 2) * (w, h)
        image = cv2.warpAffine(np.ascontiguousarray(image), m, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT)
        return self._intensity(image.astype(np.float32), rng)

    def _intensity(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k = float(self.options.get("intensity", 0.15))
        if k <= 0:
            return x
        x = x * (1 + rng.uniform(-k, k)) + rng.uniform(-k, k) * 40.0  # contrast, brightness
        if x.ndim == 3 and x.shape[-1] == 3:
            x = x * (1 + rng.uniform(-k / 2, k / 2, 3)).astype(np.float32)  # colour balance
        gamma = math.exp(rng.uniform(-k, k))
        return (np.clip(x, 0, 255) / 255.0) ** gamma * 255.0

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        decoded = self._decoded(index)
        rng = np.random.default_rng(self._rng.integers(1 << 62)) if self.train else None
        augment = self.train and self.options.get("augment", True)
        out: dict[str, Any] = {"label": torch.tensor(int(self.items[index].get("label", -1))),
                               "id": str(self.items[index].get("id", index))}
        if self.extra:
            out["extra"] = torch.from_numpy(decoded["extra"].copy())
        for lv, spec in self.specs.items():
            x = decoded[lv]
            if lv == "oct":
                x = x.astype(np.float32)
                if augment:
                    if rng.random() < 0.5:
                        x = x[:, :, ::-1]
                    x = self._intensity(x, rng)
                t = torch.from_numpy(np.ascontiguousarray(x))[None].div_(255.0)
            else:
                x = self._augment_2d(x, rng) if augment else x.astype(np.float32)
                t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).div(255.0)
            mean = torch.tensor(spec.mean, dtype=torch.float32).view(-1, *([1] * (t.ndim - 1)))
            std = torch.tensor(spec.std, dtype=torch.float32).view(-1, *([1] * (t.ndim - 1)))
            out[lv] = ((t - mean) / std).contiguous()
        return out


def datasets(cohort: Cohort, train_idx: Sequence[int], val_idx: Sequence[int], config: Any) -> tuple[Any, Any]:
    specs = input_specs(config, list(_levels(config)))
    extra = [str(f) for f in config.model.get("extra_features", ())]
    train = GraderDataset([cohort.items[i] for i in train_idx], specs, True, config.data, seed=config.seed, extra=extra)
    val = GraderDataset([cohort.items[i] for i in val_idx], specs, False, config.data, extra=extra)
    return train, val


def eval_dataset(cohort: Cohort, indices: Sequence[int], spec: Mapping[str, Any]) -> Any:
    from engine.models.preprocess import InputSpec

    specs = {lv: InputSpec.from_dict(d) for lv, d in spec["inputs"].items()}
    return GraderDataset([cohort.items[i] for i in indices], specs, False,
                         extra=spec["kwargs"].get("extra_features", ()))


# ------------------------------------------------------------------------------------------ loss, metrics


def loss_fn(config: Any, cohort: Cohort, train_idx: Sequence[int]) -> Any:
    import torch
    from torch import nn

    weight = None
    if config.data.get("class_weights", "balanced") == "balanced":
        counts = np.bincount([cohort.labels[i] for i in train_idx], minlength=len(CLASSES)).astype(np.float64)
        w = np.where(counts > 0, counts.sum() / (len(CLASSES) * np.maximum(counts, 1)), 1.0)
        weight = torch.tensor(w / w.mean(), dtype=torch.float32)
    smoothing = float(config.model.get("label_smoothing", 0.1))

    def loss(outputs: Any, batch: Mapping[str, Any]) -> Any:
        w = weight.to(outputs.device) if weight is not None else None
        return nn.functional.cross_entropy(outputs.float(), batch["label"].long(), weight=w, label_smoothing=smoothing)

    return loss


def metrics_fn(config: Any, cohort: Cohort) -> Any:
    from engine.train.metrics import ClassificationMetrics

    return ClassificationMetrics(CLASSES)


def forward(model: Any, batch: Mapping[str, Any]) -> Any:
    """The grader takes the whole batch dict (it reads its level keys and ``extra``)."""
    return model(batch)


def card(config: Any, cohort: Cohort) -> dict[str, Any]:
    levels = _levels(config)
    name = config.model.get("name") or "grader-" + "-".join(f"{lv}_{bb}" for lv, bb in levels.items())
    return {
        "name": str(name),
        "task": "grader",
        "description": f"{len(levels)}-level glaucoma grader ({', '.join(levels)}; "
        f"{config.model.get('fusion', 'concat')} fusion); classes non / early / mid_advanced (GAMMA)",
        "classes": list(CLASSES),
        "data": cohort.description,
        "samples": len(cohort),
        "weights_init": "random (no ImageNet weights: none can be downloaded here)"
        + (f"; branches from {dict(config.model.get('init'))}" if config.model.get("init") else ""),
        "epoch_selection": "lowest training loss (the held-out fold is never used to pick weights)",
        "intended_use": "research only; not a medical device",
    }


def load_model(checkpoint: Path, device: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from engine.models.registry import load_grader

    g = load_grader(Path(checkpoint), str(device))
    return g.module, g.spec, g.card


TRAIN_TASK = SimpleTask(
    name="grader",
    description="glaucoma grade (non / early / mid_advanced) from fundus, disc crop and/or OCT (GAMMA layout)",
    kind="classification",
    monitor="train_loss",
    mode="min",
    read_cohort_fn=read_cohort,
    build_model_fn=build_model,
    datasets_fn=datasets,
    loss_fn_factory=loss_fn,
    metrics_fn_factory=metrics_fn,
    card_fn=card,
    load_model_fn=load_model,
    eval_dataset_fn=eval_dataset,
    forward=forward,
    read_eval_cohort_fn=read_eval_cohort,
)


# ------------------------------------------------------------------------------------- synthetic cohorts


def write_synthetic_cohort(root: Path, n: int = 60, n_bscans: int = 32, bscan_shape: tuple[int, int] = (248, 256),
                           fundus_shape: tuple[int, int] = (512, 512), seed: int = 0) -> Path:
    """A GAMMA-layout training folder of obviously synthetic exams (balanced grades) for OCT/3-level models.

    Writes ``root/multi-modality_images/SYNTHxxxx/...`` and ``root/glaucoma_grading_training_GT.csv``.
    """
    from engine.models.checkpoint import atomic_write_bytes
    from engine.synthetic import synthetic_exam, write_gamma_exam

    root = Path(root)
    lines = ["data,non,early,mid_advanced"]
    for k in range(n):
        grade = k % 3
        exam = synthetic_exam(grade, n_bscans=n_bscans, fundus_shape=fundus_shape, bscan_shape=bscan_shape,
                              seed=seed * 100_000 + k, exam_id=f"SYNTH{k:04d}", eye="OD" if k % 2 else "OS")
        write_gamma_exam(root / "multi-modality_images", exam)
        onehot = ["0", "0", "0"]
        onehot[grade] = "1"
        lines.append(f"SYNTH{k:04d}," + ",".join(onehot))
    atomic_write_bytes(root / "glaucoma_grading_training_GT.csv", ("\n".join(lines) + "\n").encode())
    atomic_write_bytes(root / SYNTHETIC_MARKER, (f"{n} synthetic exams from engine.synthetic (seed {seed}); "
                                                 "grade k % 3; no real patient data\n").encode())
    return root
