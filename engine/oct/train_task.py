"""The ``layers`` training task (``python -m engine train layers --data DIR``): the 9-class B-scan network.

What ``--data DIR`` may hold (searched recursively; a sample's *source* is its first folder below ``DIR``):

- **masks**: B-scan images with a label image of the same stem in a folder named ``masks``, ``layer_masks``,
  ``labels`` or ``layers`` (a sibling of the image folder, or below ``DIR``). Labels in our convention (0..8,
  :mod:`engine.oct.labels`) or the Cirrus sample convention (0, 30 .. 240; detected from the values).
- **polygons**: VGG Image Annotator / makesense.ai VGG JSON files; each names its images (looked up beside
  the JSON file and in a sibling ``images`` folder); polygons are filled by :func:`engine.oct.labels.polygons_to_mask`.
- **pseudo-labels**: with ``data.pseudo_labels = "graph"``, B-scans with neither get the graph-search labels
  (:mod:`engine.oct.graph_boundaries`), e.g. to train on unlabelled volumes. The card says so.

Other folders whose name contains ``mask`` (e.g. ``fluid_masks``) are ignored. Each B-scan is kept in memory
at ``data.keep_height`` px deep at most; training samples are random crops (rows and columns, so layer
thickness in px varies as between devices), left-right flips and MONAI intensity transforms, resized to the
network size of :func:`engine.oct.layers.make_spec`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import cv2
import numpy as np

from engine.oct import LAYER_NAMES, N_CLASSES
from engine.oct.labels import (
    AnnotationError, boundaries_from_labels, cirrus_mask_to_labels, is_cirrus_mask, monotone, polygons_to_mask,
    read_polygon_annotations,
)
from engine.oct.layers import CLASSES, TASK, boundaries_from_probabilities, build_network, make_spec, prepare_bscans

CONFIG_FILE = Path(__file__).resolve().parents[1] / "train" / "configs" / "layers.toml"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MASK_FOLDERS = ("masks", "layer_masks", "labels", "layers")


# ---------------------------------------------------------------------------------------------- discovery
def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def find_samples(root: Path, pseudo_labels: Optional[str] = None) -> list[dict[str, Any]]:
    """Every labelled (or, with ``pseudo_labels="graph"``, unlabelled) B-scan under ``root``.

    Returns:
        dicts ``{"id", "image": Path, "kind": "mask"|"polygons"|"graph", "mask": Path|None,
        "polygons": list|None, "source": str}`` in a stable order.

    Raises:
        AnnotationError: an unreadable polygon file.
    """
    root = Path(root)
    folders = sorted({Path(d) for d, _, _ in os.walk(root, followlinks=True)})
    masks: dict[tuple[Path, str], Path] = {}
    polygons: dict[Path, tuple[str, list]] = {}
    for folder in folders:
        name = folder.name.lower()
        if name in MASK_FOLDERS:
            for m in _images_in(folder):
                masks[(folder.parent, m.stem)] = m
            continue
        for js in sorted(folder.glob("*.json")):
            for filename, polys in read_polygon_annotations(js).items():
                for candidate in (folder / filename, folder / "images" / filename, folder.parent / "images" / filename):
                    if candidate.is_file():
                        polygons[candidate.resolve()] = (str(js), polys)
                        break
    samples = []
    for folder in folders:
        name = folder.name.lower()
        if name in MASK_FOLDERS or "mask" in name or any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue
        for img in _images_in(folder):
            rel = img.relative_to(root)
            source = rel.parts[0] if len(rel.parts) > 1 else root.name
            item = {"id": str(rel.with_suffix("")).replace("/", "_"), "image": img, "mask": None, "polygons": None,
                    "source": source}
            mask = masks.get((folder.parent, img.stem)) or masks.get((folder, img.stem))
            if mask is not None:
                item["kind"], item["mask"] = "mask", mask
            elif img.resolve() in polygons:
                item["kind"], item["polygons"] = "polygons", polygons[img.resolve()][1]
            elif pseudo_labels == "graph":
                item["kind"] = "graph"
            else:
                continue
            samples.append(item)
    return samples


def load_sample(item: Mapping[str, Any], axial_um: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) uint8 B-scan and (H, W) uint8 labels 0..8 (monotone down columns) of one sample.

    Raises:
        ValueError: unreadable image, a mask of another size, or mask values of no known convention.
    """
    from engine.oct.graph_boundaries import find_boundaries
    from engine.oct.labels import labels_from_boundaries

    image = cv2.imread(str(item["image"]), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{item['image']}: not a readable image")
    if item["kind"] == "mask":
        raw = cv2.imread(str(item["mask"]), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(f"{item['mask']}: not a readable mask")
        raw = raw[..., 0] if raw.ndim == 3 else raw
        if raw.shape != image.shape:
            raise ValueError(f"{item['mask']}: mask {raw.shape} and image {image.shape} differ in size")
        if is_cirrus_mask(raw):
            labels = cirrus_mask_to_labels(raw)
        elif raw.max() < N_CLASSES:
            labels = raw.astype(np.uint8)
        else:
            raise ValueError(f"{item['mask']}: values {np.unique(raw)[:6].tolist()} are neither 0..8 nor Cirrus")
    elif item["kind"] == "polygons":
        labels = polygons_to_mask(item["polygons"], image.shape)
    else:
        labels = labels_from_boundaries(find_boundaries(image, axial_um=axial_um, workers=1), image.shape[0])
    return image, monotone(labels)


# ---------------------------------------------------------------------------------------------- datasets
@dataclass
class Kept:
    """One sample in memory: image and labels (H, W) uint8, and the retina's row range (top, bottom)."""

    sample_id: str
    image: np.ndarray
    labels: np.ndarray
    rows: tuple[int, int]


def keep(item: Mapping[str, Any], keep_height: int = 512) -> Kept:
    """Load a sample (white export padding set to background) and shrink it to at most ``keep_height`` px deep
    (labels by nearest neighbour)."""
    from engine.oct.graph_boundaries import remove_padding

    image, labels = load_sample(item)
    image = remove_padding(image.astype(np.float32)[None])[0].astype(np.uint8)  # as prepare_bscans does
    h, w = image.shape
    if h > keep_height:
        size = (w, keep_height)
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    inside = np.flatnonzero(((labels >= 1) & (labels <= 7)).any(axis=1))
    rows = (int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, image.shape[0])
    return Kept(str(item["id"]), image, labels, rows)


def _resize_pair(image: np.ndarray, labels: np.ndarray, size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = int(size[0]), int(size[1])
    return (cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA),
            cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST))


class LayerTrainSet:
    """Random crops of kept B-scans (``samples_per_scan`` per scan and epoch).

    A crop keeps every retina row, spans 55-100 % of the width and adds 0-60 % of the retina's height of
    margin above and below, so the retina fills between ~40 % and all of the network's height.
    Items: ``{"image": (1, h, w) float32 tensor, "mask": (h, w) int64 tensor, "id": str}``.
    """

    def __init__(self, kept: Sequence[Kept], size: Sequence[int], samples_per_scan: int = 2) -> None:
        from monai.transforms import Compose, RandAdjustContrast, RandGaussianNoise, RandGaussianSmooth

        self.kept, self.size, self.samples_per_scan = list(kept), tuple(int(s) for s in size), int(samples_per_scan)
        self.transforms = Compose([
            RandAdjustContrast(prob=0.5, gamma=(0.6, 1.6)),
            RandGaussianSmooth(prob=0.3, sigma_x=(0.3, 1.2), sigma_y=(0.3, 1.2)),
            RandGaussianNoise(prob=0.4, std=0.05),
        ])

    def __len__(self) -> int:
        return len(self.kept) * self.samples_per_scan

    def sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(h, w) float32 image in [0, 1] and (h, w) uint8 labels of a random crop."""
        k = self.kept[index % len(self.kept)]
        h, w = k.image.shape
        top, bottom = k.rows
        span = bottom - top
        r0 = max(0, top - int(rng.uniform(0.0, 0.6) * span))
        r1 = min(h, bottom + int(rng.uniform(0.0, 0.6) * span))
        cw = max(8, int(w * rng.uniform(0.55, 1.0)))
        c0 = int(rng.integers(0, w - cw + 1))
        img, lab = _resize_pair(k.image[r0:r1, c0 : c0 + cw], k.labels[r0:r1, c0 : c0 + cw], self.size)
        if rng.random() < 0.5:
            img, lab = img[:, ::-1], lab[:, ::-1]
        from monai.data import get_track_meta, set_track_meta

        self.transforms.set_random_state(seed=int(rng.integers(2**31)))
        tracking = get_track_meta()
        set_track_meta(False)
        try:
            x = np.asarray(self.transforms(img[None].astype(np.float32) / 255.0), np.float32)[0]
        finally:
            set_track_meta(tracking)
        return np.clip(x, 0, 1), np.ascontiguousarray(lab)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        rng = np.random.default_rng(int(np.random.randint(0, 2**31 - 1)))  # fit() seeds numpy every epoch
        img, lab = self.sample(index, rng)
        x = prepare_bscans(img[None] * 255.0, self.size)[0]
        return {"image": torch.from_numpy(x), "mask": torch.from_numpy(lab.astype(np.int64)),
                "id": self.kept[index % len(self.kept)].sample_id}


class LayerEvalSet:
    """Whole kept B-scans resized to the network size (no augmentation); items as :class:`LayerTrainSet`."""

    def __init__(self, kept: Sequence[Kept], size: Sequence[int]) -> None:
        self.kept, self.size = list(kept), tuple(int(s) for s in size)

    def __len__(self) -> int:
        return len(self.kept)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        k = self.kept[index]
        img, lab = _resize_pair(k.image, k.labels, self.size)
        return {"image": torch.from_numpy(prepare_bscans(img[None], self.size)[0]),
                "mask": torch.from_numpy(lab.astype(np.int64)), "id": k.sample_id}


# ---------------------------------------------------------------------------------------------- loss, metrics
def make_loss() -> Any:
    """MONAI Dice + cross-entropy over the 9 classes: ``(logits (B, 9, h, w), batch) -> scalar``."""
    from monai.losses import DiceCELoss

    dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)

    def loss_fn(outputs: Any, batch: Mapping[str, Any]) -> Any:
        return dice_ce(outputs.float(), batch["mask"][:, None])

    return loss_fn


def boundary_error(pred: np.ndarray, truth: np.ndarray, upto: int = 8) -> np.ndarray:
    """Mean absolute boundary error (px) per boundary over columns where both are finite: (..., 9, W) -> (upto,)."""
    p = np.asarray(pred, np.float64)[..., :upto, :]
    t = np.asarray(truth, np.float64)[..., :upto, :]
    diff = np.abs(p - t)
    axes = tuple(i for i in range(diff.ndim) if i != diff.ndim - 2)
    ok = np.isfinite(diff)
    return np.where(ok, diff, 0).sum(axis=axes) / np.maximum(ok.sum(axis=axes), 1)


def layer_metrics(outputs: Any, batch: Mapping[str, Any]) -> dict[str, float]:
    """Mean Dice of the 8 layers (argmax maps) and mean boundary error (px at network size) over the batch."""
    import torch

    probs = torch.softmax(outputs.float(), dim=1).cpu().numpy()
    true = batch["mask"].cpu().numpy()
    pred = probs.argmax(axis=1)
    dice = []
    for c in range(1, N_CLASSES):
        p, t = pred == c, true == c
        denom = p.sum() + t.sum()
        if denom:
            dice.append(2.0 * (p & t).sum() / denom)
    pb = np.stack([boundaries_from_probabilities(p) for p in probs])
    tb = boundaries_from_labels(true.astype(np.uint8))
    err = boundary_error(pb, tb)
    out = {"dice_layers": float(np.mean(dice)) if dice else float("nan"), "boundary_mae_px": float(np.mean(err))}
    out.update({f"mae_{name}": float(e) for name, e in zip(("ILM", *[n + "_bottom" for n in LAYER_NAMES[:7]]), err)})
    return out


# ---------------------------------------------------------------------------------------------- task adapter
def read_cohort(data: Path, config: Any) -> Any:
    from engine.train.datasets.common import LayoutError
    from engine.train.tasks import Cohort

    cfg = dict(getattr(config, "data", {}) or {})
    pseudo = cfg.get("pseudo_labels") or None
    try:
        samples = find_samples(Path(data), pseudo)
    except AnnotationError as err:
        raise LayoutError(data, str(err)) from None
    if not samples:
        raise LayoutError(data, "no labelled B-scan: expected images with a same-stem label image in a masks/ "
                                "folder, VGG/makesense polygon JSON, or data.pseudo_labels = \"graph\"")
    counts: dict[str, int] = {}
    for s in samples:
        counts[f"{s['source']} ({s['kind']})"] = counts.get(f"{s['source']} ({s['kind']})", 0) + 1
    description = f"{len(samples)} B-scans from {Path(data).name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    if pseudo:
        description += "; '(graph)' = labels from the training-free graph search (pseudo-labels), not experts"
    # Runs of 11 consecutive B-scans of a folder form a group (one patient of the DME sample; neighbouring
    # B-scans of a volume never straddle the split).
    runs: dict[Path, int] = {}
    groups = []
    for s in samples:
        folder = Path(s["image"]).parent
        groups.append(f"{folder}#{runs.get(folder, 0) // 11}")
        runs[folder] = runs.get(folder, 0) + 1
    return Cohort(root=Path(data), items=samples, classes=list(CLASSES), labels=[0] * len(samples),
                  groups=groups, sources=[s["source"] for s in samples], description=description)


def _spec(config: Any) -> dict[str, Any]:
    model = dict(getattr(config, "model", {}) or {})
    data = dict(getattr(config, "data", {}) or {})
    kw = {"size": data.get("input_size", (320, 256)), "dropout": float(model.get("dropout", 0.0))}
    if "features" in model:
        kw["features"] = model["features"]
    return make_spec(**kw)


def build_model(config: Any, cohort: Any) -> tuple[Any, dict[str, Any]]:
    spec = _spec(config)
    return build_network(spec), spec


_KEPT: dict[tuple[str, int], Kept] = {}


def _kept(cohort: Any, indices: Sequence[int], keep_height: int) -> list[Kept]:
    out = []
    for i in indices:
        item = cohort.items[i]
        key = (f"{item['image']}|{item['kind']}", keep_height)
        if key not in _KEPT:
            _KEPT[key] = keep(item, keep_height)
        out.append(_KEPT[key])
    return out


def datasets(cohort: Any, train_idx: Sequence[int], val_idx: Sequence[int], config: Any) -> tuple[Any, Any]:
    data = dict(getattr(config, "data", {}) or {})
    size = _spec(config)["inputs"]["size"]
    keep_height = int(data.get("keep_height", 512))
    train = LayerTrainSet(_kept(cohort, train_idx, keep_height), size, int(data.get("samples_per_scan", 2)))
    val = LayerEvalSet(_kept(cohort, val_idx, keep_height), size) if len(val_idx) else None
    return train, val


def loss_fn(config: Any, cohort: Any, train_idx: Sequence[int]) -> Any:
    return make_loss()


def metrics_fn(config: Any, cohort: Any) -> Any:
    return layer_metrics


def card(config: Any, cohort: Any) -> dict[str, Any]:
    return {
        "name": "oct_layers",
        "task": TASK,
        "classes": list(CLASSES),
        "data": cohort.description,
        "intended_use": "Research use only. Segments a B-scan into the eight retinal layers (NFL, GCL+IPL, INL, "
                        "OPL, ONL, EZ, RPE, choroid) for RNFL and layer thickness.",
        "limitations": "Small training set; labels may be graph-search pseudo-labels (see data). Not validated "
                       "clinically; other devices, pathology and the optic disc may fail.",
        "preprocessing": "B-scan resized to the network size, per-image z-score; boundaries from the cumulative "
                         "class probabilities, forced into anatomical order",
    }


def load_model(checkpoint: Path, device: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from engine.oct.layers import load_layer_network

    net = load_layer_network(checkpoint, device=str(device))
    return net.module, net.spec, net.card


def eval_dataset(cohort: Any, indices: Sequence[int], spec: Mapping[str, Any]) -> Any:
    return LayerEvalSet(_kept(cohort, indices, 512), spec["inputs"]["size"])


def _build_task() -> Any:
    from engine.train.tasks import SimpleTask

    return SimpleTask(
        name=TASK, description="retinal layer segmentation of OCT B-scans (MONAI BasicUNet, 9 classes)",
        kind="segmentation", monitor="val_loss", mode="min", read_cohort_fn=read_cohort, build_model_fn=build_model,
        datasets_fn=datasets, loss_fn_factory=loss_fn, metrics_fn_factory=metrics_fn, card_fn=card,
        load_model_fn=load_model, eval_dataset_fn=eval_dataset,
        config_file=CONFIG_FILE if CONFIG_FILE.is_file() else None,
    )


TRAIN_TASK = _build_task()

