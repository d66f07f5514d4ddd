"""Obviously synthetic images with known labels for the sibling tasks: tests, smoke training, demos.

Nothing here is a patient and nothing here resembles the real appearance closely enough to support a clinical
claim: a model trained on these phantoms learns the drawing rules written below, and its model card says so.

- :func:`phantom_brain_mri`: ``{"flair", "t1ce", "t2", "t1": (D, H, W) float32}``; "HGG" draws an enhancing
  ring with a necrotic core and wide oedema, "LGG" a non-enhancing FLAIR-bright mass with little oedema.
- :func:`phantom_panoramic`: ``(H, W)`` uint8 panoramic-like radiograph on an uneven background;
  "osteoporosis" draws a thinner mandibular cortex and sparser trabeculae than "healthy".
- :func:`phantom_odir_fundus`: an ``engine.synthetic`` fundus with drawn signs of the ODIR labels
  (glaucoma = large cup, diabetes = microaneurysms + exudates, cataract = haze, AMD = macular drusen,
  hypertension = flame haemorrhages + cotton-wool spots, myopia = peripapillary atrophy + tessellation,
  other = pigmented scars), and the 8-label vector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from engine.synthetic import synthetic_fundus

ODIR_LETTERS = ("N", "D", "G", "C", "A", "H", "M", "O")


# ----------------------------------------------------------------------------------------------- brain MRI


def _ellipsoid(shape: tuple[int, int, int], center: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (
        ((zz - center[0]) / radii[0]) ** 2 + ((yy - center[1]) / radii[1]) ** 2 + ((xx - center[2]) / radii[2]) ** 2
    ).astype(np.float32)


def phantom_brain_mri(
    grade: str = "HGG",
    shape: tuple[int, int, int] = (48, 96, 96),
    sequences: Sequence[str] = ("flair", "t1ce", "t2"),
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A head phantom with one tumour, ``{sequence: (D, H, W) float32}``, air = 0.

    Args:
        grade: "HGG" (ring enhancement on T1ce, necrotic core, wide oedema) or "LGG" (no enhancement,
            homogeneous FLAIR/T2-bright mass, thin oedema rim).
        shape: (D, H, W), D axial slices.
        sequences: which of flair, t1ce, t2, t1 to return.
    """
    if grade not in ("HGG", "LGG"):
        raise ValueError(f"grade must be 'HGG' or 'LGG', got {grade!r}")
    rng = np.random.default_rng(seed)
    d, h, w = shape
    c = np.array([d / 2, h / 2, w / 2])
    head = _ellipsoid(shape, c, (0.42 * d, 0.42 * h, 0.36 * w)) <= 1.0
    ventricles = _ellipsoid(shape, c + [0, -0.04 * h, 0], (0.12 * d, 0.1 * h, 0.05 * w)) <= 1.0
    side = rng.choice([-1, 1])
    t_center = c + np.array([rng.uniform(-0.08, 0.08) * d, rng.uniform(-0.1, 0.1) * h, side * rng.uniform(0.12, 0.18) * w])
    r = rng.uniform(0.09, 0.13) * min(h, w)
    tumour_r = _ellipsoid(shape, t_center, (r * d / h * 1.5, r, r * rng.uniform(0.8, 1.2)))
    tumour = (tumour_r <= 1.0) & head
    edema = (tumour_r <= (2.0 if grade == "HGG" else 1.3)) & head & ~tumour
    core = tumour_r <= 0.55
    ring = tumour & ~core
    # tissue intensities: (brain, csf, edema, tumour/ring, core) per sequence
    table = {
        "flair": (0.45, 0.1, 0.9, 0.85, 0.6),
        "t1ce": (0.5, 0.15, 0.42, 0.95 if grade == "HGG" else 0.36, 0.2 if grade == "HGG" else 0.36),
        "t2": (0.4, 0.9, 0.85, 0.8, 0.9),
        "t1": (0.55, 0.15, 0.4, 0.35, 0.25),
    }
    bias = 1.0 + 0.15 * np.sin(np.linspace(0, np.pi, w, dtype=np.float32))[None, None, :]
    out: dict[str, np.ndarray] = {}
    for seq in sequences:
        brain_v, csf_v, edema_v, tumour_v, core_v = table[seq]
        v = np.where(head, brain_v, 0.0).astype(np.float32)
        v[ventricles & head] = csf_v
        v[edema] = edema_v
        v[ring if grade == "HGG" else tumour] = tumour_v
        if grade == "HGG":
            v[core & head] = core_v
        v = cv2.GaussianBlur(v.reshape(d * h, w), (0, 0), 0.8).reshape(d, h, w)
        v = (v + rng.normal(0, 0.03, v.shape).astype(np.float32)) * bias
        v[~head] = 0.0
        out[seq] = (np.clip(v, 0, None) * 1000.0).astype(np.float32)
    return out


# ----------------------------------------------------------------------------------------------- radiograph


def phantom_panoramic(
    label: str = "healthy", shape: tuple[int, int] = (480, 960), seed: int = 0
) -> np.ndarray:
    """A panoramic-radiograph-like ``(H, W)`` uint8 image on a strong uneven background.

    ``"healthy"`` draws a thick bright mandibular cortex and dense trabeculae; ``"osteoporosis"`` a thin,
    porous cortex and sparse trabeculae (the signs radiologists read on panoramics).
    """
    if label not in ("healthy", "osteoporosis"):
        raise ValueError(f"label must be 'healthy' or 'osteoporosis', got {label!r}")
    rng = np.random.default_rng(seed)
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    # a smile-shaped mandible band between two parabolas
    x = (cols - w / 2) / (w / 2)
    top = h * (0.45 + 0.25 * x**2) + rng.uniform(-0.03, 0.03) * h
    bottom = top + h * 0.32
    bone = (rows > top) & (rows < bottom)
    osteo = label == "osteoporosis"
    cortex_px = h * (rng.uniform(0.012, 0.02) if osteo else rng.uniform(0.035, 0.05))
    cortex = bone & (rows > bottom - cortex_px)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), max(1.0, h / 240))
    trabeculae = bone & ~cortex & (noise > (0.25 if osteo else -0.15) * float(noise.std()))
    image = 40.0 + 50.0 * (cols / w) + 30.0 * (rows / h)  # uneven exposure: what the rolling ball removes
    image += bone * 40.0 + trabeculae * 45.0 + cortex * (90.0 if not osteo else 60.0)
    if osteo:
        image -= cortex * (rng.random((h, w)) < 0.3) * 40.0  # porous cortex
    # teeth: bright vertical blocks above the mandible
    n_teeth = 14
    for k in range(n_teeth):
        cx = int((k + 0.5) * w / n_teeth)
        t = float(top[0, min(cx, w - 1)])
        cv2.rectangle(image, (cx - w // 40, int(t - 0.22 * h)), (cx + w // 40, int(t + 0.05 * h)), 200.0, -1)
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.0) + rng.normal(0, 4.0, (h, w))
    return np.clip(image, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- ODIR fundus


def _spots(image: np.ndarray, rng: np.random.Generator, n: int, center: tuple[float, float], spread: float,
           radius: tuple[int, int], colour: Sequence[float]) -> None:
    h, w = image.shape[:2]
    for _ in range(n):
        r = float(np.clip(rng.normal(center[0], spread), 0, h - 1))
        c = float(np.clip(rng.normal(center[1], spread), 0, w - 1))
        cv2.circle(image, (int(c), int(r)), int(rng.integers(radius[0], radius[1] + 1)), tuple(float(v) for v in colour), -1)


def mask_biomarkers(disc: np.ndarray, cup: np.ndarray) -> dict[str, float]:
    """The ODIR model's disc/cup inputs measured on exact (H, W) bool masks: vertical / horizontal / area
    cup-to-disc ratios, rim (1 - vcdr), cup eccentricity, centroid shift (centroid distance / disc radius)."""
    def extent(mask: np.ndarray, axis: int) -> int:
        idx = np.flatnonzero(mask.any(axis=axis))
        return int(idx[-1] - idx[0] + 1) if idx.size else 0

    rows, cols = np.nonzero(cup)
    cov = np.cov(np.stack([rows, cols]).astype(np.float64)) if rows.size > 2 else np.eye(2)
    small, large = np.sort(np.linalg.eigvalsh(cov))
    d_rows, d_cols = np.nonzero(disc)
    shift = np.hypot(rows.mean() - d_rows.mean(), cols.mean() - d_cols.mean()) if rows.size else 0.0
    vcdr = extent(cup, 1) / max(1, extent(disc, 1))
    return {
        "vcdr": vcdr, "hcdr": extent(cup, 0) / max(1, extent(disc, 0)), "acdr": float(cup.sum()) / max(1, disc.sum()),
        "rim": 1.0 - vcdr, "eccentricity": float(np.sqrt(max(0.0, 1.0 - small / large))) if large > 0 else 0.0,
        "centroid_shift": float(shift) / max(1.0, extent(disc, 1) / 2.0),
    }


def phantom_odir_fundus(
    labels: Optional[Sequence[str]] = None, shape: tuple[int, int] = (256, 256), seed: int = 0,
    biomarkers: Optional[dict[str, float]] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A drawn fundus with signs of ``labels`` (letters of D G C A H M O; none = normal).

    Returns:
        image (H, W, 3) uint8 RGB; target (8,) float32 over N D G C A H M O (N = 1 iff no other label).
        With ``labels=None`` each disease is drawn independently with probability 0.15. A ``biomarkers`` dict
        given is filled with :func:`mask_biomarkers` of the drawn disc and cup.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = [k for k in ODIR_LETTERS[1:] if rng.random() < 0.15]
    labels = [str(k).upper() for k in labels]
    bad = [k for k in labels if k not in ODIR_LETTERS[1:]]
    if bad:
        raise ValueError(f"unknown ODIR label(s) {bad}; diseases are {ODIR_LETTERS[1:]}")
    cdr = rng.uniform(0.72, 0.85) if "G" in labels else rng.uniform(0.25, 0.5)
    eye = "OD" if rng.random() < 0.5 else "OS"
    fundus = synthetic_fundus(shape, cdr=float(cdr), eye=eye, seed=int(rng.integers(1 << 30)))
    if biomarkers is not None:
        biomarkers.update(mask_biomarkers(fundus.disc_mask, fundus.cup_mask))
    image = fundus.image.astype(np.float32)
    h, w = shape
    macula = (h / 2 + rng.uniform(-0.03, 0.03) * h, w / 2 + rng.uniform(-0.03, 0.03) * w)
    dr, dc = fundus.disc_center
    s = min(h, w) / 256.0
    if "M" in labels:  # tessellation + peripapillary atrophy crescent
        stripes = 12.0 * np.sin(np.mgrid[0:h, 0:w][1] / (3.0 * s) + np.mgrid[0:h, 0:w][0] / (7.0 * s))
        image += stripes[..., None] * np.array([1.0, 0.5, 0.3])
        side = 1 if eye == "OS" else -1
        cv2.ellipse(image, (int(dc + side * 0.5 * fundus.disc_radius_px), int(dr)),
                    (int(1.5 * fundus.disc_radius_px), int(1.4 * fundus.disc_radius_px)), 0, 0, 360,
                    (235.0, 215.0, 190.0), -1)
        image[fundus.disc_mask] = fundus.image[fundus.disc_mask]  # the atrophy surrounds the disc
    if "D" in labels:
        _spots(image, rng, int(rng.integers(12, 25)), macula, 0.18 * h, (max(1, int(s)), max(1, int(2 * s))), (90, 10, 10))
        _spots(image, rng, int(rng.integers(6, 14)), macula, 0.12 * h, (max(1, int(s)), max(2, int(3 * s))), (245, 225, 90))
    if "A" in labels:
        _spots(image, rng, int(rng.integers(15, 30)), macula, 0.05 * h, (max(1, int(2 * s)), max(2, int(4 * s))), (230, 205, 120))
    if "H" in labels:
        for _ in range(int(rng.integers(3, 7))):
            r0, c0 = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
            cv2.ellipse(image, (int(c0), int(r0)), (int(8 * s), int(2 * s)), float(rng.uniform(0, 180)), 0, 360,
                        (120.0, 15.0, 10.0), -1)
        _spots(image, rng, int(rng.integers(2, 5)), (dr, dc), 0.15 * h, (max(2, int(4 * s)), max(3, int(6 * s))), (240, 240, 230))
    if "O" in labels:
        _spots(image, rng, int(rng.integers(4, 9)), (h / 2, w / 2), 0.25 * h, (max(2, int(4 * s)), max(3, int(7 * s))), (30, 25, 20))
    if "C" in labels:  # lens opacity: blur and haze over everything
        image = cv2.GaussianBlur(image, (0, 0), 3.0 * s)
        image = 0.55 * image + 0.45 * np.array([200.0, 190.0, 170.0])
    fov = np.hypot(*(np.mgrid[0:h, 0:w] - np.array([h / 2, w / 2])[:, None, None])) > 0.48 * min(h, w)
    image[fov] = 0
    target = np.zeros(len(ODIR_LETTERS), np.float32)
    for k in labels:
        target[ODIR_LETTERS.index(k)] = 1.0
    target[0] = 1.0 if not labels else 0.0
    return np.clip(image, 0, 255).astype(np.uint8), target


# ----------------------------------------------------------------------------------------------- cohorts on disk

PHANTOM_MARKER = "PHANTOM.txt"


def _mark(root: Path, what: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / PHANTOM_MARKER).write_text(
        f"{what}, drawn by engine.tasks.phantoms (not patients)\n", encoding="utf-8"
    )


def write_nifti(path: Path, volume: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> Path:
    """Write a ``(D, H, W)`` volume so that :func:`engine.io.nifti.read_volume` returns it unchanged."""
    import nibabel

    data = np.ascontiguousarray(np.asarray(volume, np.float32)[:, ::-1, ::-1].transpose(2, 1, 0))
    affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    nibabel.save(nibabel.Nifti1Image(data, affine), str(path))
    return Path(path)


def write_brats_cohort(
    root: Path, n_hgg: int, n_lgg: int, *, shape: tuple[int, int, int] = (48, 96, 96),
    sequences: Sequence[str] = ("flair", "t1ce"), seed: int = 0,
) -> Path:
    """A BraTS 2018/2019-style cohort of phantoms: ``root/HGG/<case>/<case>_<seq>.nii.gz`` and ``root/LGG/...``."""
    root = Path(root)
    k = 0
    for grade, n in (("HGG", n_hgg), ("LGG", n_lgg)):
        for _ in range(n):
            case = f"PHANTOM_{grade}_{k:03d}"
            folder = root / grade / case
            folder.mkdir(parents=True, exist_ok=True)
            for seq, volume in phantom_brain_mri(grade, shape, sequences, seed=seed + k).items():
                write_nifti(folder / f"{case}_{seq}.nii.gz", volume)
            k += 1
    _mark(root, f"{n_hgg} HGG + {n_lgg} LGG brain MRI phantoms {shape} ({', '.join(sequences)}), seed {seed}")
    return root


def write_panoramic_cohort(
    root: Path, n_per_class: int, *, shape: tuple[int, int] = (480, 960), seed: int = 0
) -> Path:
    """A class-per-folder cohort of radiograph phantoms: ``root/healthy/*.png``, ``root/osteoporosis/*.png``."""
    root = Path(root)
    for c, label in enumerate(("healthy", "osteoporosis")):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(n_per_class):
            image = phantom_panoramic(label, shape, seed=seed + 2 * k + c)
            cv2.imwrite(str(folder / f"{label}_{k:04d}.png"), image)
    _mark(root, f"{2 * n_per_class} panoramic radiograph phantoms {shape}, seed {seed}")
    return root


def write_odir_cohort(
    root: Path, n: int, *, shape: tuple[int, int] = (256, 256), seed: int = 0, biomarkers: bool = False
) -> Path:
    """An ODIR-layout cohort of fundus phantoms (Kaggle ``full_df.csv`` style): ``root/full_df.csv`` with
    ``ID, filename, N..O`` and ``root/preprocessed_images/<id>_<eye>.jpg`` (two eyes per "patient", drawn
    independently); with ``biomarkers`` also ``root/biomarkers.csv`` (``filename`` + the disc/cup values of
    :func:`mask_biomarkers`, for training the ODIR model with them)."""
    root = Path(root)
    images = root / "preprocessed_images"
    images.mkdir(parents=True, exist_ok=True)
    lines = ["ID,filename," + ",".join(ODIR_LETTERS)]
    bio_lines = ["filename,vcdr,hcdr,acdr,rim,eccentricity,centroid_shift"]
    for k in range(n):
        patient, eye = k // 2, ("left", "right")[k % 2]
        values: dict[str, float] = {}
        image, target = phantom_odir_fundus(None, shape, seed=seed + k, biomarkers=values)
        name = f"{patient}_{eye}.jpg"
        cv2.imwrite(str(images / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        lines.append(f"{patient},{name}," + ",".join(str(int(v)) for v in target))
        bio_lines.append(name + "," + ",".join(f"{values[c]:.4f}" for c in bio_lines[0].split(",")[1:]))
    (root / "full_df.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if biomarkers:
        (root / "biomarkers.csv").write_text("\n".join(bio_lines) + "\n", encoding="utf-8")
    _mark(root, f"{n} ODIR-labelled fundus phantoms {shape}, seed {seed}")
    return root
