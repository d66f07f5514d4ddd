"""Training adapters of the sibling tasks for ``engine.train`` (``python -m engine train odir|glioma|bone``).

Each adapter is an :class:`engine.train.tasks.SimpleTask` made of the functions below; ``engine.train.loop.fit``
does the training. The task modules expose them as ``TRAIN_TASK`` (``engine.tasks.odir.TRAIN_TASK`` ...),
imported lazily so that inference never pays for MONAI's dataset machinery.

- ``odir``: ODIR-5K layout (:func:`engine.train.datasets.odir.read_odir`), grouped by patient; cached MONAI 2D
  pipeline with augmentation in training folds; class-weighted BCE (``pos_weight`` from the training fold);
  per-label AUC / F1, macro AUC (the monitor) and the ODIR score.
- ``glioma``: BraTS-style NIfTI folders (:func:`engine.train.datasets.brats.read_brats`); a case is a sample
  (folds never split a patient), expanded to its informative axial slices; focal loss with per-class alpha from
  the training fold; slice-level and patient-level (mean probability) metrics.
- ``bone``: class-per-folder radiographs ``ROOT/healthy/``, ``ROOT/osteoporosis/``
  (:func:`engine.train.datasets.classfolders.read_classfolders`); rolling-ball + downscale preprocessing cached,
  augmentation per training fold; class-weighted cross-entropy; run ``--folds 5`` for stratified 5-fold CV.

A cohort folder written by :mod:`engine.tasks.phantoms` carries a ``PHANTOM.txt`` marker; the model card then
says the model was trained on synthetic phantoms.

Config keys (``[model]`` / ``[data]`` tables of the TOML config; defaults in ``engine/tasks/configs/``):
odir ``model.backbone``, ``model.dropout``, ``model.biomarkers`` (needs ``biomarkers.csv`` beside the labels),
``data.input_size``; glioma ``model.width``, ``model.dropout``,
``model.gamma``, ``data.sequences`` (default: those every case has among FLAIR, T1ce, T2), ``data.size``,
``data.slices_per_case``, ``data.min_brain_fraction``; bone ``model.width_mult``, ``model.depth_mult``,
``model.dropout``, ``data.variant`` (full / crop), ``data.size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from engine.tasks.phantoms import PHANTOM_MARKER
from engine.train.datasets.common import LayoutError
from engine.train.tasks import Cohort, SimpleTask

CONFIG_DIR = Path(__file__).with_name("configs")


def _phantom_note(root: Path) -> Optional[str]:
    marker = Path(root) / PHANTOM_MARKER
    if marker.is_file():
        return marker.read_text(encoding="utf-8").strip().splitlines()[0]
    return None


def _describe(root: Path, what: str, n: int, counts: Mapping[str, int]) -> str:
    parts = ", ".join(f"{k} {v}" for k, v in counts.items())
    phantom = _phantom_note(root)
    where = f"synthetic phantoms ({phantom})" if phantom else f"{root}"
    return f"{what}: {n} samples ({parts}) from {where}"


def _load(checkpoint: Path, device: Any, task: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from engine.tasks import _builder
    from engine.tasks._common import load_task_model

    model = load_task_model(checkpoint, task, _builder(task), str(device))
    return model.module, model.spec, model.card


def _card(task: str, config: Any, cohort: Cohort, classes: Sequence[str], intended: str, limits: list[str]) -> dict[str, Any]:
    phantom = _phantom_note(cohort.root)
    card = {
        "name": task,
        "task": task,
        "classes": list(classes),
        "training_data": cohort.description,
        "synthetic_training_data": bool(phantom),
        "intended_use": intended,
        "limitations": list(limits),
    }
    if phantom:
        card["limitations"].insert(
            0, "trained on synthetic phantoms only: it has learnt the drawing rules of engine.tasks.phantoms, not "
            "disease; its outputs on real images carry no clinical meaning",
        )
    return card


# ============================================================================================== ODIR


def _odir_read(data: Path, config: Any) -> Cohort:
    from engine.train.datasets.odir import LABELS, read_odir, stratification_label

    items = read_odir(data)
    for item in items:
        item["labels"] = np.asarray(item["labels"], np.float32)
    if config.model.get("biomarkers"):
        _attach_biomarkers(Path(data), items)
    counts = {k: int(sum(it["labels"][j] for it in items)) for j, k in enumerate(LABELS)}
    return Cohort(
        root=Path(data), items=items, classes=list(LABELS),
        labels=[stratification_label([int(v) for v in it["labels"]]) for it in items],
        groups=[str(it["patient"]) for it in items],
        description=_describe(Path(data), "ODIR-layout fundus photos", len(items), counts),
    )


ODIR_BIOMARKER_TABLE = "biomarkers.csv"


def _attach_biomarkers(root: Path, items: Sequence[dict[str, Any]]) -> None:
    """Give every item ``biomarkers`` (7,) float32 from ``root/biomarkers.csv`` (``filename`` + the columns of
    :data:`engine.tasks.odir.BIOMARKERS`, measured per photo); a photo without a complete row gets the
    "not measured" vector (all zeros), as at inference."""
    import csv

    from engine.tasks import odir

    table = root / ODIR_BIOMARKER_TABLE
    if not table.is_file():
        raise LayoutError(
            table, "model.biomarkers = true needs per-photo disc/cup biomarkers in this table (columns filename, "
            + ", ".join(odir.BIOMARKERS) + "); the ODIR release holds none: measure them or train without",
        )
    with open(table, newline="", encoding="utf-8") as fh:
        rows = {Path(r.get("filename") or "").name: r for r in csv.DictReader(fh)}
    for item in items:
        item["biomarkers"] = odir.biomarker_vector(rows.get(Path(item["image"]).name))


def _odir_forward(model: Any, batch: Mapping[str, Any]) -> torch.Tensor:
    return model(batch["image"], batch.get("biomarkers"))


def _odir_spec(config: Any) -> dict[str, Any]:
    from engine.tasks import odir

    size = config.data.get("input_size", 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    return odir.make_spec(config.model.get("backbone", "resnet18"), size=size, biomarkers=bool(config.model.get("biomarkers")),
                          dropout=float(config.model.get("dropout", 0.2)))


def _odir_build(config: Any, cohort: Cohort) -> tuple[Any, dict[str, Any]]:
    from engine.tasks import odir

    spec = _odir_spec(config)
    return odir.build_model(spec), spec


def _odir_dataset(items: Sequence[Mapping[str, Any]], spec: Mapping[str, Any], train: bool, options: Mapping[str, Any]) -> Any:
    from engine.train.datasets.transforms import image_dataset

    fundus = spec["inputs"]["fundus"]
    return image_dataset(
        items, keep_keys=("image", "labels", "id", "biomarkers"), size=fundus["size"], train=train, options=options,
        mean=fundus["mean"], std=fundus["std"],
    )


def _odir_datasets(cohort: Cohort, train_idx: Sequence[int], val_idx: Sequence[int], config: Any) -> tuple[Any, Any]:
    spec = _odir_spec(config)
    train = _odir_dataset([cohort.items[i] for i in train_idx], spec, True, config.data)
    val = _odir_dataset([cohort.items[i] for i in val_idx], spec, False, config.data) if val_idx else None
    return train, val


def _odir_loss(config: Any, cohort: Cohort, train_idx: Sequence[int]) -> Any:
    from engine.tasks import odir

    targets = np.stack([cohort.items[i]["labels"] for i in train_idx])
    weight = torch.from_numpy(odir.pos_weights(targets))

    def loss(outputs: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        return odir.weighted_bce(outputs, batch["labels"], weight.to(outputs.device))

    return loss


def odir_metrics(probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """The framework's multi-label metrics (per-label AUC, macro AUC, micro / macro F1, ODIR score) plus F1
    per label at 0.5 (``f1_<letter>``; NaN for a label without positives)."""
    from sklearn.metrics import f1_score

    from engine.tasks import odir
    from engine.train.metrics import multilabel_metrics

    out = multilabel_metrics(probs, targets, odir.LABELS)
    y = np.asarray(targets) > 0.5
    for j, letter in enumerate(odir.LABELS):
        out[f"f1_{letter.lower()}"] = float(f1_score(y[:, j], probs[:, j] >= 0.5, zero_division=0)) if y[:, j].any() else float("nan")
    return out


def _odir_metrics(config: Any, cohort: Cohort) -> Any:
    def metrics(outputs: torch.Tensor, batch: Mapping[str, Any]) -> dict[str, float]:
        return odir_metrics(torch.sigmoid(outputs.float()).numpy(), batch["labels"].numpy())

    return metrics


def _odir_card(config: Any, cohort: Cohort) -> dict[str, Any]:
    from engine.tasks import odir

    card = _card(
        "odir", config, cohort, odir.LABELS,
        "research: per-label probabilities of the 8 ODIR-5K labels for one fundus photo, with Grad-CAM per label",
        ["per-eye training with per-patient ODIR labels (the release labels patients, not eyes)",
         "thresholds are 0.5 per label (not tuned)"],
    )
    card["label_names"] = list(odir.LABEL_NAMES)
    return card


def _odir_eval_dataset(cohort: Cohort, indices: Sequence[int], spec: Mapping[str, Any]) -> Any:
    return _odir_dataset([cohort.items[i] for i in indices], spec, False, {})


# ============================================================================================== glioma


def _glioma_read(data: Path, config: Any) -> Cohort:
    from engine.tasks import glioma
    from engine.train.datasets.brats import read_brats

    items = read_brats(data)
    ungraded = [it["id"] for it in items if it["label"] < 0]
    if ungraded:
        raise LayoutError(
            data, f"{len(ungraded)} case(s) without an HGG/LGG grade ({', '.join(ungraded[:3])}...): put cases under "
            "HGG/ and LGG/ folders or list them in name_mapping.csv (Grade column)",
        )
    sequences = glioma_sequences(items, config)
    for it in items:
        it["sequences"] = list(sequences)
    counts = {g: sum(1 for it in items if it["grade"] == g) for g in glioma.CLASSES}
    what = f"BraTS-style MRI cases ({' + '.join(glioma.SEQUENCE_NAMES[s] for s in sequences)})"
    return Cohort(
        root=Path(data), items=items, classes=list(glioma.CLASSES), labels=[int(it["label"]) for it in items],
        groups=[str(it["id"]) for it in items], description=_describe(Path(data), what, len(items), counts),
    )


def glioma_sequences(items: Sequence[Mapping[str, Any]], config: Any) -> tuple[str, ...]:
    """The variant's sequences: ``data.sequences`` if set (every case must have them), else the standard
    sequences (FLAIR, T1ce, T2) that every case has."""
    from engine.tasks import glioma

    wanted = config.data.get("sequences")
    if wanted:
        sequences = glioma.canonical_sequences(wanted)
        for it in items:
            missing = [s for s in sequences if not it.get(s)]
            if missing:
                raise LayoutError(it["id"], f"no {', '.join(missing)} file (data.sequences asks for it)")
        return sequences
    common = [s for s in ("flair", "t1ce", "t2") if all(it.get(s) for it in items)]
    if not common:
        raise LayoutError("glioma", "no MRI sequence (FLAIR, T1ce, T2) is present in every case")
    return tuple(common)


def _glioma_spec(config: Any, cohort: Cohort) -> dict[str, Any]:
    from engine.tasks import glioma

    size = config.data.get("size", list(glioma.DEFAULT_SIZE))
    size = (size, size) if isinstance(size, int) else tuple(size)
    return glioma.make_spec(
        cohort.items[0]["sequences"], width=int(config.model.get("width", 64)), size=size,
        dropout=float(config.model.get("dropout", 0.5)), aggregation=str(config.data.get("aggregation", "mean")),
        min_brain_fraction=float(config.data.get("min_brain_fraction", 0.05)),
    )


def _glioma_build(config: Any, cohort: Cohort) -> tuple[Any, dict[str, Any]]:
    from engine.tasks import glioma

    spec = _glioma_spec(config, cohort)
    return glioma.build_model(spec), spec


class SliceDataset(torch.utils.data.Dataset):
    """Axial slices of whole cases: items ``{"image": (C, h, w) float32, "label": int, "id": case id}``.

    The slices are prepared once (z-scored, informative only, resized) and held as float16. Training sets
    augment each slice: left-right flip, per-channel intensity scale/shift, a translation of up to 8 %.
    """

    def __init__(self, cases: Sequence[Mapping[str, Any]], spec: Mapping[str, Any], *, train: bool,
                 slices_per_case: int = 0, seed: int = 0) -> None:
        from engine.io.nifti import read_volume
        from engine.tasks import glioma

        inputs = spec["inputs"]
        self.train = train
        self.rng = np.random.default_rng(seed)
        chunks, labels, ids = [], [], []
        for case in cases:
            mri = {s: read_volume(case[s])[0] for s in inputs["sequences"]}
            stack = glioma.prepare_slices(mri, inputs["sequences"], inputs["size"], inputs["min_brain_fraction"])
            slices = stack.slices
            if slices_per_case and len(slices) > slices_per_case:
                slices = slices[np.linspace(0, len(slices) - 1, slices_per_case).round().astype(int)]
            chunks.append(slices.astype(np.float16))
            labels += [int(case["label"])] * len(slices)
            ids += [str(case["id"])] * len(slices)
        self.slices = np.concatenate(chunks) if chunks else np.zeros((0, len(inputs["sequences"]), 1, 1), np.float16)
        self.labels = labels
        self.ids = ids

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        x = self.slices[i].astype(np.float32)
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 1 << 31, (1,)).item()))
            if rng.random() < 0.5:
                x = x[:, :, ::-1]
            c = x.shape[0]
            x = x * rng.uniform(0.9, 1.1, (c, 1, 1)).astype(np.float32) + rng.uniform(-0.1, 0.1, (c, 1, 1)).astype(np.float32)
            h, w = x.shape[1:]
            dy, dx = (rng.uniform(-0.08, 0.08, 2) * (h, w)).round().astype(int)
            x = np.roll(x, (int(dy), int(dx)), axis=(1, 2))
        return {"image": torch.from_numpy(np.ascontiguousarray(x)), "label": self.labels[i], "id": self.ids[i]}


def _glioma_datasets(cohort: Cohort, train_idx: Sequence[int], val_idx: Sequence[int], config: Any) -> tuple[Any, Any]:
    spec = _glioma_spec(config, cohort)
    per_case = int(config.data.get("slices_per_case", 24))
    train = SliceDataset([cohort.items[i] for i in train_idx], spec, train=True, slices_per_case=per_case, seed=config.seed)
    val = SliceDataset([cohort.items[i] for i in val_idx], spec, train=False, slices_per_case=per_case) if val_idx else None
    return train, val


def _glioma_loss(config: Any, cohort: Cohort, train_idx: Sequence[int]) -> Any:
    from engine.tasks import glioma

    counts = np.bincount([cohort.labels[i] for i in train_idx], minlength=2).astype(np.float64)
    alpha = (counts.sum() / np.maximum(counts, 1.0)) / 2.0  # inverse frequency, 1 for balanced classes
    gamma = float(config.model.get("gamma", 2.0))

    def loss(outputs: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        return glioma.focal_loss(outputs, batch["label"], gamma=gamma, alpha=alpha.tolist())

    return loss


def patient_metrics(probs: np.ndarray, labels: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
    """Patient-level accuracy and AUC from slice probabilities (N, 2): each patient's mean HGG probability."""
    from sklearn.metrics import roc_auc_score

    cases = sorted(set(ids))
    ids_arr = np.asarray(ids)
    p = np.array([probs[ids_arr == c, 0].mean() for c in cases])
    y = np.array([labels[ids_arr == c][0] == 0 for c in cases])  # True = HGG
    out = {"patient_accuracy": float(((p >= 0.5) == y).mean()), "n_patients": float(len(cases))}
    out["patient_auc_hgg"] = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return out


def _glioma_metrics(config: Any, cohort: Cohort) -> Any:
    from engine.tasks import glioma
    from engine.train.metrics import classification_metrics

    def metrics(outputs: torch.Tensor, batch: Mapping[str, Any]) -> dict[str, float]:
        probs = torch.softmax(outputs.float(), dim=1).numpy()
        labels = batch["label"].numpy()
        out = {f"slice_{k}": v for k, v in classification_metrics(probs, labels, glioma.CLASSES).items()}
        out.update(patient_metrics(probs, labels, batch["id"]))
        return out

    return metrics


def _glioma_card(config: Any, cohort: Cohort) -> dict[str, Any]:
    from engine.tasks import glioma

    seqs = " + ".join(glioma.SEQUENCE_NAMES[s] for s in cohort.items[0]["sequences"])
    return _card(
        "glioma", config, cohort, glioma.CLASSES,
        f"research: HGG vs LGG probability for a brain MRI with {seqs}, attention maps per axial slice",
        [f"runs only on exams holding {seqs}", "patient grade = mean slice probability over slices holding brain"],
    )


def _glioma_eval_dataset(cohort: Cohort, indices: Sequence[int], spec: Mapping[str, Any]) -> Any:
    return SliceDataset([cohort.items[i] for i in indices], spec, train=False)


# ============================================================================================== bone


class _Preprocess:
    """MONAI-cacheable transform: ``item["image"]`` path -> (1, h, w) uint8 after the bone preprocessing."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.inputs = dict(spec["inputs"])

    def __call__(self, item: Mapping[str, Any]) -> dict[str, Any]:
        import cv2

        from engine.io.images import read_image
        from engine.tasks import bone

        image = read_image(item["image"], grey=True)
        prepared = bone.preprocess(image, self.inputs["variant"], self.inputs["size"], int(self.inputs["downscale"]))
        h, w = self.inputs["size"]
        small = cv2.resize(prepared.image, (w, h), interpolation=cv2.INTER_AREA)
        return {**item, "image": small[None]}


def _bone_read(data: Path, config: Any) -> Cohort:
    from engine.tasks import bone
    from engine.train.datasets.classfolders import read_classfolders

    items, classes = read_classfolders(data, classes=list(bone.CLASSES))
    counts = {c: sum(1 for it in items if it["label"] == k) for k, c in enumerate(classes)}
    return Cohort(
        root=Path(data), items=items, classes=classes, labels=[int(it["label"]) for it in items],
        groups=[str(it["patient"]) for it in items],
        description=_describe(Path(data), "panoramic radiographs", len(items), counts),
    )


def _bone_spec(config: Any) -> dict[str, Any]:
    from engine.tasks import bone

    variant = str(config.data.get("variant", "full"))
    size = config.data.get("size")
    size = (size, size) if isinstance(size, int) else size
    return bone.make_spec(
        variant, size=size, width_mult=float(config.model.get("width_mult", 1.0)),
        depth_mult=float(config.model.get("depth_mult", 1.0)), dropout=float(config.model.get("dropout", 0.2)),
    )


def _bone_build(config: Any, cohort: Cohort) -> tuple[Any, dict[str, Any]]:
    from engine.tasks import bone

    spec = _bone_spec(config)
    return bone.build_model(spec), spec


def _bone_dataset(items: Sequence[Mapping[str, Any]], spec: Mapping[str, Any], train: bool, options: Mapping[str, Any]) -> Any:
    from monai.data import CacheDataset
    from monai.transforms import Compose

    from engine.train.datasets.transforms import SelectKeys, Standardise, ToFloat, augmentation_2d

    inputs = spec["inputs"]
    steps: list[Any] = [_Preprocess(spec), ToFloat(["image"])]
    if train:
        steps += augmentation_2d(["image"], {"flip": 0.5, "rotate_deg": 5.0, "zoom": 0.05, **dict(options)})
    steps += [Standardise(["image"], inputs["mean"], inputs["std"]), SelectKeys(["image", "label", "id"])]
    return CacheDataset([dict(it) for it in items], transform=Compose(steps), cache_rate=1.0, progress=False, copy_cache=True)


def _bone_datasets(cohort: Cohort, train_idx: Sequence[int], val_idx: Sequence[int], config: Any) -> tuple[Any, Any]:
    spec = _bone_spec(config)
    train = _bone_dataset([cohort.items[i] for i in train_idx], spec, True, config.data)
    val = _bone_dataset([cohort.items[i] for i in val_idx], spec, False, {}) if val_idx else None
    return train, val


def _bone_loss(config: Any, cohort: Cohort, train_idx: Sequence[int]) -> Any:
    counts = np.bincount([cohort.labels[i] for i in train_idx], minlength=2).astype(np.float32)
    weight = torch.from_numpy(counts.sum() / np.maximum(counts, 1.0) / 2.0)

    def loss(outputs: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(outputs, batch["label"], weight=weight.to(outputs.device, outputs.dtype))

    return loss


def _bone_metrics(config: Any, cohort: Cohort) -> Any:
    from engine.tasks import bone
    from engine.train.metrics import ClassificationMetrics

    return ClassificationMetrics(bone.CLASSES)


def _bone_card(config: Any, cohort: Cohort) -> dict[str, Any]:
    from engine.tasks import bone

    return _card(
        "bone", config, cohort, bone.CLASSES,
        "research: healthy vs osteoporosis from one panoramic dental radiograph, with a Grad-CAM heat map",
        ["no public radiographs with bone-density labels were available to train or test it"],
    )


def _bone_eval_dataset(cohort: Cohort, indices: Sequence[int], spec: Mapping[str, Any]) -> Any:
    return _bone_dataset([cohort.items[i] for i in indices], spec, False, {})


# ============================================================================================== adapters

ODIR_TASK = SimpleTask(
    name="odir", description="ODIR-5K multi-label fundus disease (N D G C A H M O)", kind="multilabel",
    monitor="auc_macro", mode="max", read_cohort_fn=_odir_read, build_model_fn=_odir_build,
    datasets_fn=_odir_datasets, loss_fn_factory=_odir_loss, metrics_fn_factory=_odir_metrics, card_fn=_odir_card,
    load_model_fn=lambda path, device: _load(path, device, "odir"), eval_dataset_fn=_odir_eval_dataset,
    config_file=CONFIG_DIR / "odir.toml", forward=_odir_forward,
)
GLIOMA_TASK = SimpleTask(
    name="glioma", description="glioma grade HGG vs LGG from BraTS-style MRI (attention-gated VGG16)",
    kind="classification", monitor="val_loss", mode="min", read_cohort_fn=_glioma_read, build_model_fn=_glioma_build,
    datasets_fn=_glioma_datasets, loss_fn_factory=_glioma_loss, metrics_fn_factory=_glioma_metrics,
    card_fn=_glioma_card, load_model_fn=lambda path, device: _load(path, device, "glioma"),
    eval_dataset_fn=_glioma_eval_dataset, config_file=CONFIG_DIR / "glioma.toml",
)
BONE_TASK = SimpleTask(
    name="bone", description="bone health (healthy vs osteoporosis) from panoramic dental radiographs",
    kind="classification", monitor="val_loss", mode="min", read_cohort_fn=_bone_read, build_model_fn=_bone_build,
    datasets_fn=_bone_datasets, loss_fn_factory=_bone_loss, metrics_fn_factory=_bone_metrics, card_fn=_bone_card,
    load_model_fn=lambda path, device: _load(path, device, "bone"), eval_dataset_fn=_bone_eval_dataset,
    config_file=CONFIG_DIR / "bone.toml",
)
