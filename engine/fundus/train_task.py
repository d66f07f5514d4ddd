"""The ``disc-cup`` training task for :mod:`engine.train` (``python -m engine train disc-cup --data DIR``).

Data: any layout :func:`engine.fundus.datasets.discover` reads (the shared samples, GAMMA, REFUGE, Drishti-GS,
ORIGA, RIM-ONE). Each photo is decoded once and kept at a reduced scale where its disc is
:data:`PREPARED_DISC_PX` px across (with soft disc/cup masks), so every training sample is one cheap affine
warp of that copy.

Training samples (random every time, :class:`DiscCupTrainSet`) imitate both passes of the analysis:

- *fine* (the rest): a crop of 1.8-2.7 disc diameters around the disc (``data.fine_scale``), centre jittered by up
  to 8 % of the side (``data.fine_jitter``);
- *coarse* (``data.p_coarse``, shipped 30 %): 2.0-4.0 diameters, jitter up to 25 % (the first pass around a localiser candidate);
- *negative* (``data.p_negative``, shipped 10 %): a crop of the same scales away from the disc (target: all background), so the network
  learns to say "no disc here", which the analysis uses to reject wrong candidates.

Each crop is rotated (±20°), mirrored left-right (OD <-> OS), slightly stretched, then passed through MONAI
intensity transforms (gamma, bias field = camera vignetting, blur of sigma ``data.blur_sigma`` px, noise) and
per-channel colour gains; a share ``data.p_grey`` loses its colour (a grey camera or a red-free photo).

Loss: MONAI ``DiceLoss`` on the nested (disc, cup) probabilities, batch-wise (``model.dice = "nested"``, shipped),
or on the three one-hot classes per crop (``"classes"``, MONAI ``DiceCELoss``'s Dice), + cross-entropy on the
three classes.
Validation: fine crops at the model's ``crop_scale`` around the true disc; metrics disc / cup Dice and the
vertical-CDR error on those crops (the photo-level held-out evaluation is :mod:`engine.fundus.evaluate`).

Groups for held-out folds (``Cohort.sources``): the dataset's source, with the small sources of the shared
samples (REFUGE, ORIGA, PAPILA, G1020: 10 photos, four cameras) pooled into one held-out group "mixed".
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from engine.fundus.datasets import DatasetLayoutError, DiscCupCase, describe_cases, discover, load_case
from engine.fundus.segmenter import CLASSES, TASK, build_network, default_spec, normalise_crops

PREPARED_DISC_PX = 128
"""Disc diameter (px) of the prepared copies."""
SMALL_SOURCES = ("refuge", "origa", "papila", "g1020")
CONFIG_FILE = Path(__file__).resolve().parents[1] / "train" / "configs" / "disc_cup.toml"


# ---------------------------------------------------------------------------------------------- preparation
@dataclass
class Prepared:
    """One photo at reduced scale. image (h, w, 3) uint8; disc, cup (h, w) uint8 soft masks (255 = inside);
    center (row, col) and diameter of the disc in px of this copy; fov (h, w) bool."""

    case_id: str
    source: str
    image: np.ndarray
    disc: np.ndarray
    cup: np.ndarray
    center: tuple[float, float]
    diameter: float
    fov: np.ndarray


def prepare(case: DiscCupCase, disc_px: int = PREPARED_DISC_PX) -> Prepared:
    """Decode ``case`` and shrink it so that the disc is ``disc_px`` px across (never enlarged)."""
    import cv2

    from engine.fundus.localize import fov_mask

    image, disc, cup = load_case(case)
    rows = np.flatnonzero(disc.any(axis=1))
    cols = np.flatnonzero(disc.any(axis=0))
    if rows.size == 0:
        raise ValueError(f"{case.case_id}: empty disc mask")
    diameter = float(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))
    scale = min(1.0, disc_px / diameter)
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    d = cv2.resize(disc.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA)
    c = cv2.resize(cup.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA)
    center = (((rows[0] + rows[-1] + 1) / 2.0) * size[1] / h, ((cols[0] + cols[-1] + 1) / 2.0) * size[0] / w)
    fov = fov_mask(small)
    return Prepared(case.case_id, case.source, small, d, c, center, diameter * scale, fov)


_PREPARED: dict[str, Prepared] = {}


def _cache_key(case: DiscCupCase) -> str:
    parts = [case.case_id, case.convention, str(PREPARED_DISC_PX)]
    for p in (case.image, *case.masks):
        st = Path(p).stat()
        parts += [str(p), str(st.st_size), str(int(st.st_mtime))]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:20]


def prepared(case: DiscCupCase, cache_dir: Optional[Path] = None) -> Prepared:
    """:func:`prepare` with an in-memory cache and, when ``cache_dir`` is given, an on-disk one (.npz)."""
    key = _cache_key(case)
    hit = _PREPARED.get(key)
    if hit is not None:
        return hit
    path = Path(cache_dir) / f"{key}.npz" if cache_dir else None
    if path is not None and path.is_file():
        z = np.load(path)
        p = Prepared(case.case_id, case.source, z["image"], z["disc"], z["cup"], tuple(z["center"]),
                     float(z["diameter"]), z["fov"])
    else:
        p = prepare(case)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, image=p.image, disc=p.disc, cup=p.cup, center=np.array(p.center),
                     diameter=np.array(p.diameter), fov=p.fov)
            tmp.replace(path)
    _PREPARED[key] = p
    return p


# ---------------------------------------------------------------------------------------------- sampling
def _affine(center: tuple[float, float], side: float, size: int, angle_deg: float = 0.0, flip: bool = False,
            stretch: float = 1.0) -> np.ndarray:
    """2x3 matrix: prepared-image (x=col, y=row) -> crop px, for a square of ``side`` px about ``center``
    rotated by ``angle_deg``, optionally mirrored, with vertical/horizontal stretch ``stretch``."""
    s = size / side
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    sx, sy = s * math.sqrt(stretch), s / math.sqrt(stretch)
    m = np.array([[ca * sx, -sa * sx], [sa * sy, ca * sy]])
    if flip:
        m[0] *= -1
    c_in = np.array([center[1], center[0]])  # continuous coordinates (pixel k spans [k, k+1))
    t = m @ (0.5 - c_in) + size / 2.0 - 0.5
    return np.hstack([m, t[:, None]])


def render(p: Prepared, center: tuple[float, float], side: float, size: int, angle: float = 0.0,
           flip: bool = False, stretch: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Crop (size, size, 3) uint8 and label map (size, size) uint8 (0 background, 1 rim, 2 cup)."""
    import cv2

    m = _affine(center, side, size, angle, flip, stretch)
    img = cv2.warpAffine(p.image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    d = cv2.warpAffine(p.disc, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    c = cv2.warpAffine(p.cup, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    label = (d >= 128).astype(np.uint8) + ((c >= 128) & (d >= 128)).astype(np.uint8)
    return img, label


def intensity_transforms(blur_sigma: Sequence[float] = (0.3, 1.6)) -> Any:
    """MONAI intensity augmentation on a (3, S, S) float image in [0, 1]; ``blur_sigma``: the Gaussian blur's
    [low, high] sigma in px of the crop (an out-of-focus photo)."""
    from monai.transforms import (Compose, RandAdjustContrast, RandBiasField, RandGaussianNoise,
                                  RandGaussianSmooth)

    return Compose([
        RandAdjustContrast(prob=0.5, gamma=(0.6, 1.6)),
        RandBiasField(prob=0.5, degree=3, coeff_range=(0.0, 0.35)),
        RandGaussianSmooth(prob=0.3, sigma_x=tuple(blur_sigma), sigma_y=tuple(blur_sigma)),
        RandGaussianNoise(prob=0.3, std=0.03),
    ])


def augment_colour(img: np.ndarray, rng: np.random.Generator, transforms: Any, p_grey: float = 0.0) -> np.ndarray:
    """Colour / exposure / camera augmentation of a (S, S, 3) uint8 crop; black (outside) stays black.

    ``p_grey``: share of crops turned into a photo without colour, half luma (a grey camera), half the green channel
    (red-free), repeated over the three channels; those get a global brightness gain only, and their channels stay
    equal through the intensity transforms (which draw noise and vignetting per channel).
    """
    valid = img.max(axis=2) > 4
    x = img.astype(np.float32) / 255.0
    no_colour = p_grey > 0 and rng.random() < p_grey
    if no_colour:
        from engine.fundus.localize import without_colour

        x = np.clip(without_colour(x, "luma" if rng.random() < 0.5 else "green") * rng.uniform(0.6, 1.4), 0.0, 1.0)
    else:
        # white balance and exposure: per-channel gains, global brightness
        gains = rng.uniform(0.75, 1.25, 3) * rng.uniform(0.6, 1.4)
        x = x * gains[None, None, :]
        # saturation: blend with grey
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * rng.uniform(0.6, 1.3)
        x = np.clip(x, 0.0, 1.0)
    chw = np.ascontiguousarray(x.transpose(2, 0, 1))
    transforms.set_random_state(seed=int(rng.integers(2**31)))
    from monai.data import get_track_meta, set_track_meta

    tracking = get_track_meta()
    set_track_meta(False)  # plain tensors: MetaTensor bookkeeping costs more than these transforms
    try:
        chw = np.asarray(transforms(chw), dtype=np.float32)
    finally:
        set_track_meta(tracking)
    if no_colour:
        chw = np.repeat(chw.mean(axis=0, keepdims=True), 3, axis=0)
    out = np.clip(chw.transpose(1, 2, 0), 0.0, 1.0) * 255.0
    out[~valid] = 0
    return out.astype(np.uint8)


class DiscCupTrainSet:
    """Random augmented crops (map-style, ``samples_per_case`` items per photo and epoch).

    Items: ``{"image": (3, S, S) float32 tensor, "mask": (S, S) int64 tensor, "id": str}``.
    """

    def __init__(self, cases: Sequence[Prepared], size: int, samples_per_case: int = 8,
                 p_coarse: float = 0.35, p_negative: float = 0.15, fine_scale: Sequence[float] = (1.8, 2.7),
                 fine_jitter: float = 0.08, blur_sigma: Sequence[float] = (0.3, 1.6), p_grey: float = 0.0) -> None:
        self.cases = list(cases)
        self.size = int(size)
        self.samples_per_case = int(samples_per_case)
        self.p_coarse, self.p_negative = p_coarse, p_negative
        self.fine_scale, self.fine_jitter = (float(fine_scale[0]), float(fine_scale[1])), float(fine_jitter)
        self._transforms = intensity_transforms(blur_sigma)
        self.p_grey = float(p_grey)

    def __len__(self) -> int:
        return len(self.cases) * self.samples_per_case

    def sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        p = self.cases[index % len(self.cases)]
        u = rng.random()
        d = p.diameter
        if u < self.p_negative:
            side = d * rng.uniform(2.0, 4.0)
            center = _negative_center(p, side, rng)
        elif u < self.p_negative + self.p_coarse:
            side = d * rng.uniform(2.0, 4.0)
            center = (p.center[0] + rng.uniform(-0.25, 0.25) * side, p.center[1] + rng.uniform(-0.25, 0.25) * side)
        else:
            side, j = d * rng.uniform(*self.fine_scale), self.fine_jitter
            center = (p.center[0] + rng.uniform(-j, j) * side, p.center[1] + rng.uniform(-j, j) * side)
        img, label = render(p, center, side, self.size, angle=rng.uniform(-20, 20), flip=bool(rng.random() < 0.5),
                            stretch=float(np.exp(rng.uniform(-0.1, 0.1))))
        img = augment_colour(img, rng, self._transforms, self.p_grey)
        return img, label

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        rng = np.random.default_rng(int(np.random.randint(0, 2**31 - 1)))  # fit() seeds numpy every epoch
        img, label = self.sample(index, rng)
        return {"image": torch.from_numpy(normalise_crops(img)[0]), "mask": torch.from_numpy(label.astype(np.int64)),
                "id": self.cases[index % len(self.cases)].case_id}


def _negative_center(p: Prepared, side: float, rng: np.random.Generator) -> tuple[float, float]:
    """A random point in the FOV at least 0.5 x side + 0.7 x disc diameter from the disc centre."""
    rows, cols = np.nonzero(p.fov)
    if rows.size == 0:
        return (p.center[0] + side, p.center[1])
    for _ in range(20):
        k = int(rng.integers(rows.size))
        r, c = float(rows[k]), float(cols[k])
        if math.hypot(r - p.center[0], c - p.center[1]) > 0.5 * side + 0.7 * p.diameter:
            return (r, c)
    return (p.center[0], p.center[1] + 0.5 * side + 0.7 * p.diameter)


class DiscCupEvalSet:
    """Fixed crops of ``crop_scale`` disc diameters around the true disc (no augmentation)."""

    def __init__(self, cases: Sequence[Prepared], size: int, crop_scale: float) -> None:
        self.cases = list(cases)
        self.size, self.crop_scale = int(size), float(crop_scale)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        p = self.cases[index]
        img, label = render(p, p.center, p.diameter * self.crop_scale, self.size)
        return {"image": torch.from_numpy(normalise_crops(img)[0]), "mask": torch.from_numpy(label.astype(np.int64)),
                "id": p.case_id}


# ---------------------------------------------------------------------------------------------- loss, metrics
def nested_probs(logits: Any) -> Any:
    """(B, 3, S, S) logits -> (B, 2, S, S) probabilities of (disc = rim + cup, cup)."""
    import torch

    p = torch.softmax(logits.float(), dim=1)
    return torch.stack([p[:, 1] + p[:, 2], p[:, 2]], dim=1)


def nested_targets(mask: Any) -> Any:
    """(B, S, S) class indices -> (B, 2, S, S) float targets of (disc, cup)."""
    import torch

    return torch.stack([(mask >= 1), (mask >= 2)], dim=1).float()


DICE_KINDS = ("nested", "classes")


def make_loss(dice_weight: float = 1.0, ce_weight: float = 1.0, kind: str = "nested") -> Any:
    """MONAI Dice + cross-entropy on the 3 classes. ``kind`` "nested": Dice on the (disc, cup) probabilities,
    batch-wise (crops without a disc are fine); "classes": Dice on the one-hot (background, rim, cup) per crop, as
    MONAI ``DiceCELoss(to_onehot_y=True, softmax=True)`` has it.

    Raises:
        ValueError: an unknown ``kind``.
    """
    import torch
    from monai.losses import DiceLoss

    if kind not in DICE_KINDS:
        raise ValueError(f"model.dice must be one of {', '.join(DICE_KINDS)}, not {kind!r}")
    if kind == "nested":
        dice = DiceLoss(include_background=True, batch=True, smooth_nr=1e-4, smooth_dr=1e-4)
    else:
        dice = DiceLoss(include_background=True, to_onehot_y=True, softmax=True)
    ce = torch.nn.CrossEntropyLoss()

    def loss_fn(outputs: Any, batch: Mapping[str, Any]) -> Any:
        mask = batch["mask"]
        if kind == "nested":
            overlap = dice(nested_probs(outputs), nested_targets(mask))
        else:
            overlap = dice(outputs.float(), mask[:, None])
        return dice_weight * overlap + ce_weight * ce(outputs.float(), mask)

    return loss_fn


def _vertical_extent(m: np.ndarray) -> int:
    rows = np.flatnonzero(m.any(axis=1))
    return int(rows[-1] - rows[0] + 1) if rows.size else 0


def crop_metrics(outputs: Any, batch: Mapping[str, Any]) -> dict[str, float]:
    """Disc / cup Dice and vertical-CDR absolute error of argmax maps, averaged over crops."""
    pred = outputs.argmax(dim=1).cpu().numpy()
    true = batch["mask"].cpu().numpy()
    dd, dc, err = [], [], []
    for p, t in zip(pred, true):
        pd_, td = p >= 1, t >= 1
        pc, tc = p >= 2, t >= 2
        if td.any():
            dd.append(2.0 * (pd_ & td).sum() / (pd_.sum() + td.sum()))
            dc.append(2.0 * (pc & tc).sum() / max(1, pc.sum() + tc.sum()) if (tc.any() or pc.any()) else 1.0)
            hd_p, hd_t = _vertical_extent(pd_), _vertical_extent(td)
            if hd_p and hd_t:
                err.append(abs(_vertical_extent(pc) / hd_p - _vertical_extent(tc) / hd_t))
            else:
                err.append(1.0)
    out = {
        "dice_disc": float(np.mean(dd)) if dd else float("nan"),
        "dice_cup": float(np.mean(dc)) if dc else float("nan"),
        "vcdr_mae": float(np.mean(err)) if err else float("nan"),
    }
    out["score"] = (out["dice_disc"] + out["dice_cup"]) / 2.0 - out["vcdr_mae"]
    return out


# ---------------------------------------------------------------------------------------------- task adapter
def _cases_of(cohort: Any, indices: Sequence[int]) -> list[DiscCupCase]:
    return [cohort.items[i]["case"] for i in indices]


def read_cohort(data: Path, config: Any) -> Any:
    """Every photo with disc/cup masks under ``data`` (any layout :func:`discover` knows); ``data.sources`` (a
    list of source names) keeps only those sources. ``data.include`` (photo ids, ``DiscCupCase.case_id``) adds
    photos of other sources (e.g. a few photos of a site whose experts draw cups differently) and ``data.pseudo``
    (a folder written by :mod:`engine.fundus.pseudo_label`) adds its photos as the source ``pseudo``; both only
    ever train (``Cohort.train_only``): validation and source folds are the kept sources' photos."""
    from engine.fundus.pseudo_label import read_pseudo_labels
    from engine.train.datasets.common import LayoutError
    from engine.train.tasks import Cohort

    options = getattr(config, "data", {}) or {}
    try:
        cases = discover(Path(data), layout=options.get("layout", "auto"))
    except DatasetLayoutError as err:
        raise LayoutError(data, str(err).split(": ", 1)[-1]) from None
    wanted, include = options.get("sources"), set(options.get("include") or [])
    unknown = sorted(include - {c.case_id for c in cases})
    if unknown:
        raise LayoutError(data, f"no photo {unknown[0]!r} ({len(unknown)} of data.include not found)")
    if wanted:
        sources = set(wanted)
        kept = [c for c in cases if c.source in sources]
        if not kept:
            raise LayoutError(data, f"no photo from the sources {', '.join(wanted)} (data.sources)")
        cases = kept + [c for c in cases if c.case_id in include and c.source not in sources]
        labelled = len(kept)
    else:
        labelled = len(cases)
    if options.get("pseudo"):
        try:
            cases += read_pseudo_labels(Path(options["pseudo"]))[0]
        except DatasetLayoutError as err:
            raise LayoutError(options["pseudo"], str(err).split(": ", 1)[-1]) from None
    items = [{"id": c.case_id, "case": c, "source": c.source, "eye": c.eye} for c in cases]
    groups = [("mixed" if c.source in SMALL_SOURCES else c.source) for c in cases]
    description = describe_cases(cases, Path(data).name)
    return Cohort(root=Path(data), items=items, classes=list(CLASSES), labels=[0] * len(cases),
                  groups=[c.case_id for c in cases], sources=groups, description=description,
                  train_only=[i >= labelled for i in range(len(cases))])


def _spec_from_config(config: Any) -> dict[str, Any]:
    model = dict(getattr(config, "model", {}) or {})
    data = dict(getattr(config, "data", {}) or {})
    return default_spec(
        size=int(data.get("input_size", 128)),
        channels=tuple(model.get("channels", (16, 32, 64, 128))),
        num_res_units=int(model.get("num_res_units", 1)),
        dropout=float(model.get("dropout", 0.0)),
        crop_scale=float(data.get("crop_scale", 2.0)),
    )


def build_model(config: Any, cohort: Any) -> tuple[Any, dict[str, Any]]:
    spec = _spec_from_config(config)
    return build_network(spec), spec


def _prepared_list(cohort: Any, indices: Sequence[int], config: Any) -> list[Prepared]:
    data = dict(getattr(config, "data", {}) or {})
    cache = data.get("cache_dir")
    return [prepared(c, Path(cache) if cache else None) for c in _cases_of(cohort, indices)]


def _low_high(value: Any) -> tuple[float, float]:
    """A setting's ``[low, high]`` as two floats; (nan, nan) when it is not two numbers (so every check fails)."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        return float("nan"), float("nan")
    return low, high


def _fine_crops(data: Mapping[str, Any]) -> tuple[tuple[float, float], float]:
    """``data.fine_scale`` ([low, high] disc diameters) and ``data.fine_jitter`` (share of the side), checked.

    Raises:
        engine.train.config.ConfigError: not two diameters 0 < low <= high, or a jitter outside [0, 0.5).
    """
    from engine.train.config import ConfigError

    scale, jitter = data.get("fine_scale", (1.8, 2.7)), data.get("fine_jitter", 0.08)
    low, high = _low_high(scale)
    try:
        shift = float(jitter)
    except (TypeError, ValueError):
        shift = float("nan")
    if not (0 < low <= high and 0 <= shift < 0.5):
        raise ConfigError(f"data.fine_scale must be [low, high] disc diameters (0 < low <= high) and "
                          f"data.fine_jitter a share of the side in [0, 0.5); got {scale!r} and {jitter!r}")
    return (low, high), shift


def _blur_sigma(data: Mapping[str, Any]) -> tuple[float, float]:
    """``data.blur_sigma`` ([low, high] px of the crop), checked.

    Raises:
        engine.train.config.ConfigError: not two sigmas 0 < low <= high.
    """
    from engine.train.config import ConfigError

    sigma = data.get("blur_sigma", (0.3, 1.6))
    low, high = _low_high(sigma)
    if not 0 < low <= high:
        raise ConfigError(f"data.blur_sigma must be [low, high] px of the crop (0 < low <= high); got {sigma!r}")
    return low, high


def _p_grey(data: Mapping[str, Any]) -> float:
    """``data.p_grey`` (share of crops without colour), checked.

    Raises:
        engine.train.config.ConfigError: not a share in [0, 1].
    """
    from engine.train.config import ConfigError

    value = data.get("p_grey", 0.0)
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = float("nan")
    if not 0 <= share <= 1:
        raise ConfigError(f"data.p_grey must be a share of the crops in [0, 1]; got {value!r}")
    return share


def datasets(cohort: Any, train_idx: Sequence[int], val_idx: Sequence[int], config: Any) -> tuple[Any, Any]:
    data = dict(getattr(config, "data", {}) or {})
    spec = _spec_from_config(config)
    size, crop_scale = spec["inputs"]["size"], spec["inputs"]["crop_scale"]
    fine_scale, fine_jitter = _fine_crops(data)
    train = DiscCupTrainSet(_prepared_list(cohort, train_idx, config), size,
                            samples_per_case=int(data.get("samples_per_case", 8)),
                            p_coarse=float(data.get("p_coarse", 0.35)), p_negative=float(data.get("p_negative", 0.15)),
                            fine_scale=fine_scale, fine_jitter=fine_jitter, blur_sigma=_blur_sigma(data),
                            p_grey=_p_grey(data))
    val = DiscCupEvalSet(_prepared_list(cohort, val_idx, config), size, crop_scale) if len(val_idx) else None
    return train, val


def loss_fn(config: Any, cohort: Any, train_idx: Sequence[int]) -> Any:
    model = dict(getattr(config, "model", {}) or {})
    from engine.train.config import ConfigError

    try:
        return make_loss(float(model.get("dice_weight", 1.0)), float(model.get("ce_weight", 1.0)),
                         str(model.get("dice", "nested")))
    except ValueError as err:
        raise ConfigError(str(err)) from None


def metrics_fn(config: Any, cohort: Any) -> Any:
    return crop_metrics


def card(config: Any, cohort: Any) -> dict[str, Any]:
    from engine.fundus.pseudo_label import read_pseudo_labels

    pseudo = (getattr(config, "data", {}) or {}).get("pseudo")
    return {
        "name": "disc_cup",
        "task": TASK,
        "classes": list(CLASSES),
        "data": cohort.description,
        "intended_use": "Research use only. Segments the optic disc and cup on a square crop around the disc of a "
                        "colour fundus photo (found by engine.fundus.localize) to measure cup-to-disc ratios.",
        "limitations": "Trained on a few public photos from a handful of cameras; not validated clinically. "
                       "Discs with large peripapillary atrophy, tilted discs and unusual cameras may fail. "
                       "Where experts put the cup's edge differs between sources, so the held-out vertical-CDR bias "
                       "below is that convention as much as error: a site with its own expert-outlined photos can "
                       "fit a cup calibration (engine.fundus.site_calibration; viewer: Analysis → Site calibration "
                       "of the cup…).",
        "preprocessing": "square crop of crop_scale disc diameters, resized to input size; "
                         "per-crop per-channel z-score over non-black pixels",
        **({"pseudo_labels": read_pseudo_labels(Path(pseudo))[1]} if pseudo else {}),
    }


def load_model(checkpoint: Path, device: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from engine.fundus.segmenter import load_segmenter

    seg = load_segmenter(checkpoint, device=str(device))
    return seg.module, seg.spec, seg.card


def eval_dataset(cohort: Any, indices: Sequence[int], spec: Mapping[str, Any]) -> Any:
    return DiscCupEvalSet([prepared(c) for c in _cases_of(cohort, indices)], int(spec["inputs"]["size"]),
                          float(spec["inputs"].get("crop_scale", 2.0)))


def _build_task() -> Any:
    from engine.train.tasks import SimpleTask

    return SimpleTask(
        name=TASK,
        description="optic disc and cup segmentation on disc-region crops of fundus photos (MONAI UNet)",
        kind="segmentation",
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
        config_file=CONFIG_FILE if CONFIG_FILE.is_file() else None,
    )


TRAIN_TASK = _build_task()
