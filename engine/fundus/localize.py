"""Training-free optic disc localisation on any colour fundus photo.

The disc is the brightest disc-sized blob inside the camera's field of view (FOV) *and* the place where the
large vessels converge. Both priors are computed on a small copy of the photo scaled so that the FOV is
:data:`WORK_FOV_PX` pixels across, which makes the method independent of the photo's megapixels, aspect ratio
and black border:

1. FOV: the non-black part of the photo (largest component; the whole frame when there is no border).
   Its diameter sets the expected disc size (the disc is 0.13-0.26 of the FOV diameter on 30-50° cameras).
2. Brightness: a difference of Gaussians at disc scale on the illumination-flattened intensity.
3. Vessels: morphological black-hat of the green channel (dark, thin structures), its density in a
   disc-sized window, and the density of *vertical* vessel segments (the main arcades leave the disc upward
   and downward).
4. Score = sum of the three z-scores; the top peaks after non-maximum suppression are the candidates.

``confidence`` in [0, 1] combines how far the best peak stands out from the rest of the FOV and how far it
beats the runner-up. Downstream, the segmenter re-scores the candidates (see :mod:`engine.fundus.analysis`).
Coordinates are ``(row, col)`` in pixels of the *original* photo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

WORK_FOV_PX = 320
"""FOV diameter (px) of the working copy."""
DISC_FOV_RATIO = 0.18
"""Typical disc diameter / FOV diameter (measured 0.13-0.26 on the shared samples: REFUGE, Drishti, ORIGA,
PAPILA, G1020, odoc100)."""
BORDERLESS_FOV = 0.98
"""A photo whose field of view (``DiscLocation.fov_fraction``) covers at least this share of the frame shows no
black border: a crop, e.g. centred on the disc. 1.0 on all 35 SMDG optic-nerve-head crops, at most 0.966 on the
202 full photos of the shared samples (Drishti-GS1's field of view is cut at the top and bottom)."""


@dataclass
class Candidate:
    """A possible disc centre: ``center`` (row, col) px in the photo, ``score`` (sum of z-scores)."""

    center: tuple[float, float]
    score: float


@dataclass
class DiscLocation:
    """Result of :func:`locate_disc`.

    Attributes:
        center: (row, col) px of the best candidate in the photo.
        radius_px: expected disc radius in photo px (from the FOV size; the segmenter measures the real one).
        confidence: 0..1; below about 0.3 the location should not be trusted on its own.
        candidates: best first (includes the best).
        fov_center, fov_radius_px: the FOV circle in photo px ((row, col), px).
        scale: working-copy px per photo px.
        fov_fraction: share of the frame inside the FOV (1.0: no black border, e.g. a crop around the disc).
        monochrome: the photo carries no colour (:func:`is_monochrome`: a grey or red-free photo).
        sharpness: how much in focus the photo is (:func:`sharpness`; under :data:`OUT_OF_FOCUS`: out of focus).
    """

    center: tuple[float, float]
    radius_px: float
    confidence: float
    candidates: list[Candidate] = field(default_factory=list)
    fov_center: tuple[float, float] = (0.0, 0.0)
    fov_radius_px: float = 0.0
    scale: float = 1.0
    fov_fraction: float = 1.0
    monochrome: bool = False
    sharpness: float = float("nan")


GREY_CHROMA = 0.05
"""Below this mean (max - min channel) / brightness inside the FOV a photo is grey (0 for grey; the 238 colour photos
of the shared samples: 0.20 and up)."""
ONE_CHANNEL = 0.1
"""Below this ratio of the second-brightest channel's mean to the brightest one's a photo is one colour, e.g. a
red-free photo stored in green (the 238 colour photos: 0.26 and up)."""


def is_monochrome(rgb: np.ndarray, fov: np.ndarray) -> bool:
    """Whether an (H, W, 3) uint8 photo carries no colour inside its (H, W) bool field of view: grey, or all in one
    channel (red-free photos). The graders were trained on colour photos only; the disc/cup analysis uses a model's
    networks for such photos when it has them (:func:`engine.fundus.segmenter.attach_grey`)."""
    pixels = rgb[fov].astype(np.float32)
    if not len(pixels):
        return False
    brightness = float(pixels.max(axis=1).mean())
    chroma = float((pixels.max(axis=1) - pixels.min(axis=1)).mean()) / max(brightness, 1e-6)
    means = np.sort(pixels.mean(axis=0))
    return chroma < GREY_CHROMA or float(means[1]) < ONE_CHANNEL * max(float(means[2]), 1e-6)


LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R BT.601 weights of R, G, B: the grey a camera without colour records."""
GREY_KINDS = ("luma", "green")


def without_colour(rgb: np.ndarray, kind: str = "luma") -> np.ndarray:
    """An (H, W, 3) RGB photo (uint8, or float in [0, 1]) as one without colour: ``"luma"`` (a grey camera) or
    ``"green"`` (the green channel: a red-free photo), repeated over the three channels; same shape and dtype.

    Raises:
        ValueError: ``kind`` not in :data:`GREY_KINDS`.
    """
    if kind not in GREY_KINDS:
        raise ValueError(f"kind must be one of {', '.join(GREY_KINDS)}, not {kind!r}")
    if kind == "green":
        grey = rgb[..., 1]
    elif rgb.dtype == np.uint8:
        grey = np.clip(rgb.astype(np.float32) @ LUMA + 0.5, 0, 255).astype(np.uint8)
    else:
        grey = (rgb @ LUMA).astype(rgb.dtype)
    return np.repeat(grey[..., None], 3, axis=2)


def fov_mask(rgb_small: np.ndarray) -> np.ndarray:
    """(H, W) bool field of view of a small (H, W, 3) uint8 photo: non-black, largest component, holes filled."""
    import cv2

    red = rgb_small[..., 0].astype(np.float32)
    lum = rgb_small.max(axis=2).astype(np.float32)
    hi = float(np.percentile(lum, 99)) if lum.size else 0.0
    thr = max(8.0, 0.06 * hi)
    mask = ((lum > thr) | (red > thr)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return np.ones(mask.shape, bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == biggest).astype(np.uint8)
    # fill holes (dark lesions or the disc's own vessels must not punch holes in the FOV)
    flood = mask.copy()
    h, w = mask.shape
    ff = np.zeros((h + 2, w + 2), np.uint8)
    cv2.floodFill(flood, ff, (0, 0), 1) if mask[0, 0] == 0 else None
    holes = (flood == 0)
    mask = mask.astype(bool) | holes
    if mask.mean() < 0.15:  # a very dark photo: the threshold ate the retina; use the frame
        return np.ones(mask.shape, bool)
    return mask


def _fov_circle(mask: np.ndarray) -> tuple[tuple[float, float], float]:
    """Centre (row, col) and radius of the FOV: half the larger extent (a circle clipped top/bottom keeps its
    full width)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height = rows[-1] - rows[0] + 1
    width = cols[-1] - cols[0] + 1
    return ((rows[0] + rows[-1]) / 2.0, (cols[0] + cols[-1]) / 2.0), max(height, width) / 2.0


def gaussian_blur(img: np.ndarray, sigma_x: float, sigma_y: Optional[float] = None) -> np.ndarray:
    """Gaussian blur of a (h, w) float32 map; wide kernels (sigma > 6 px) run on a copy shrunk so that sigma is
    about 3 px and are enlarged back (the result is smooth, so this changes it by well under 1 %, ~10x faster)."""
    import cv2

    sigma_y = sigma_x if sigma_y is None else sigma_y
    k = min(sigma_x, sigma_y) / 3.0
    if k <= 2.0:
        return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma_x, sigmaY=sigma_y)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(2, round(w / k)), max(2, round(h / k))), interpolation=cv2.INTER_AREA)
    fy, fx = small.shape[0] / h, small.shape[1] / w
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma_x * fx, sigmaY=sigma_y * fy, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _zscore(values: np.ndarray, mask: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Standardise ``values`` over ``mask``; a map flatter than ``floor`` (all maps here are ratios of order 1)
    stays near 0 instead of blowing rounding noise up to large z-scores."""
    inside = values[mask]
    mu, sd = float(inside.mean()), max(float(inside.std()), floor)
    return (values - mu) / sd


def score_maps(rgb_work: np.ndarray, mask: np.ndarray, disc_r: float) -> dict[str, np.ndarray]:
    """The prior maps on the working copy: ``bright``, ``vessel``, ``vertical`` z-scores and ``score``.

    Args:
        rgb_work: (h, w, 3) uint8 working copy.
        mask: (h, w) bool FOV.
        disc_r: expected disc radius in working px.
    """
    import cv2

    rgb = rgb_work.astype(np.float32)
    inner = cv2.erode(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))).astype(bool)
    maskf = inner.astype(np.float32)

    def masked_blur(img: np.ndarray, sigma: float) -> np.ndarray:
        num = gaussian_blur(img * maskf, sigma)
        den = gaussian_blur(maskf, sigma)
        return num / np.maximum(den, 1e-6)

    def extend(img: np.ndarray) -> np.ndarray:
        """Continue the FOV's content smoothly outside it, so no filter sees the black border as an edge."""
        out = img.copy()
        near = masked_blur(img, 0.5 * disc_r)
        far = masked_blur(img, 3.0 * disc_r)
        den = gaussian_blur(maskf, 0.5 * disc_r)
        fill = np.where(den > 0.02, near, far)
        out[~inner] = fill[~inner]
        return out

    grey = extend(0.2 * rgb[..., 0] + 0.6 * rgb[..., 1] + 0.2 * rgb[..., 2])
    green = extend(rgb[..., 1])

    # illumination flattening: divide by a very wide masked blur
    background = masked_blur(grey, 3.0 * disc_r) + 1.0
    flat = grey / background
    # bright blobs at the expected disc size and at 1.6x it (large discs, peripapillary atrophy); each scale's
    # response is standardised before taking the maximum
    bright = None
    for f in (1.0, 1.6):
        dog = gaussian_blur(flat, 0.5 * f * disc_r) - masked_blur(flat, 2.0 * f * disc_r)
        dog = _zscore(dog, inner)
        bright = dog if bright is None else np.maximum(bright, dog)

    # vessels: dark thin structures in the flat-fielded green channel
    k = max(3, int(round(disc_r * 0.5)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    g = cv2.GaussianBlur(green, (0, 0), 0.7) / (masked_blur(green, disc_r) + 1.0)
    vessels = cv2.morphologyEx(g, cv2.MORPH_BLACKHAT, kernel)
    # vertical vessel segments: horizontal gradient of the vessel map dominates the vertical one
    gx = np.abs(cv2.Sobel(vessels, cv2.CV_32F, 1, 0, ksize=3))
    gy = np.abs(cv2.Sobel(vessels, cv2.CV_32F, 0, 1, ksize=3))
    vert = np.clip(gx - gy, 0, None)
    # neither the FOV rim nor the photo's frame is a vessel: ignore a band of half a disc radius
    band = max(3, int(round(0.5 * disc_r)) | 1)
    core = cv2.erode(inner.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (band, band)),
                     borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    vessels[~core] = 0
    vert[~core] = 0
    vessel_density = gaussian_blur(vessels, 0.8 * disc_r)
    vertical = gaussian_blur(vert, disc_r * 0.6, disc_r * 1.6)

    zb = _zscore(bright, inner)
    zv = _zscore(vessel_density, inner)
    zt = _zscore(vertical, inner)
    score = zb + 0.7 * zv + 0.7 * zt
    score[~inner] = score[inner].min() if inner.any() else 0.0
    return {"bright": zb, "vessel": zv, "vertical": zt, "score": score}


def _peaks(score: np.ndarray, mask: np.ndarray, radius: float, k: int) -> list[tuple[int, int, float]]:
    """Top ``k`` local maxima at least ``radius`` px apart: (row, col, value)."""
    s = score.copy()
    s[~mask] = -np.inf
    out = []
    rows, cols = np.ogrid[0 : s.shape[0], 0 : s.shape[1]]
    for _ in range(k):
        idx = int(np.argmax(s))
        r, c = divmod(idx, s.shape[1])
        v = float(s[r, c])
        if not np.isfinite(v):
            break
        out.append((r, c, v))
        s[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = -np.inf
    return out


OUT_OF_FOCUS = 0.3
"""Below this :func:`sharpness` a photo with a field of view is out of focus. The 202 full sample photos measure
0.36 and up; blurred by a Gaussian of sigma 0.8 % of their field of view's diameter, 195 of them fall below it (at
most 0.37), and that blur moved the shipped model's vertical CDR by more than 0.05 on 5 of 40 photos without the
analysis's confidence dropping (``benchmarks/disc_blur.py``); at 0.4 % (vertical CDR within 0.048) 71 of 202 fall
below."""


def sharpness(work: np.ndarray, center: tuple[float, float], radius: float) -> float:
    """How much in focus a photo is: the standard deviation of the green channel's Laplacian over that of the
    channel itself, inside 85 % of the field of view (unitless; higher is sharper).

    Args:
        work: (h, w, 3) uint8 RGB working copy, its field of view about :data:`WORK_FOV_PX` across (smaller photos
            at their own size), so that the measure does not depend on the photo's resolution.
        center, radius: the field of view's circle in ``work`` px.
    """
    import cv2

    green = work[..., 1].astype(np.float32)
    rows, cols = np.ogrid[: green.shape[0], : green.shape[1]]
    inside = (rows - center[0]) ** 2 + (cols - center[1]) ** 2 < (0.85 * radius) ** 2
    spread = float(green[inside].std()) if inside.any() else 0.0
    if spread <= 0:
        return 0.0
    return float(cv2.Laplacian(green, cv2.CV_32F, ksize=3)[inside].std() / spread)


def out_of_focus(location: DiscLocation) -> bool:
    """The photo is out of focus (:data:`OUT_OF_FOCUS`). Not said of a crop without a black border
    (:data:`BORDERLESS_FOV`), e.g. one centred on the disc, whose magnified vessels measure soft at any focus (14
    of the 35 sample optic-nerve-head crops would fall below)."""
    return location.fov_fraction < BORDERLESS_FOV and location.sharpness < OUT_OF_FOCUS


def locate_disc(image: np.ndarray, n_candidates: int = 4) -> DiscLocation:
    """Find the optic disc in a (H, W, 3) uint8 RGB photo (any size, aspect ratio, border, eye).

    Returns a :class:`DiscLocation` in photo pixels. Never raises for an image without a disc: a low
    ``confidence`` says so.
    """
    import cv2

    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got {image.shape}")
    h, w = image.shape[:2]
    # a first small copy to find the FOV
    s0 = 512.0 / max(h, w)
    small = cv2.resize(image, (max(1, round(w * s0)), max(1, round(h * s0))), interpolation=cv2.INTER_AREA)
    m0 = fov_mask(small)
    (fr0, fc0), frad0 = _fov_circle(m0)
    # the working copy: FOV WORK_FOV_PX across
    scale = s0 * (WORK_FOV_PX / 2.0) / max(frad0, 1.0)
    scale = min(scale, 1.0)
    work = cv2.resize(image, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(m0.astype(np.uint8), (work.shape[1], work.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    (fr, fc), frad = _fov_circle(mask)
    disc_r = max(3.0, DISC_FOV_RATIO * frad)
    maps = score_maps(work, mask, disc_r)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    # candidates are bright blobs; they are ranked by brightness plus the vessel priors near them (vessels
    # converge on the disc but run on beside it, so their maps are max-pooled over one disc radius)
    blobs = _peaks(maps["bright"], inner, 1.5 * disc_r, 3 * n_candidates)
    rows, cols = np.ogrid[0 : mask.shape[0], 0 : mask.shape[1]]

    def near(name: str, r: int, c: int) -> float:
        """Max of a prior map within one disc radius of (r, c)."""
        disc = (rows - r) ** 2 + (cols - c) ** 2 <= disc_r**2
        return float(maps[name][disc].max())

    ranked = sorted(((r, c, b + 0.7 * near("vessel", r, c) + 0.7 * near("vertical", r, c)) for r, c, b in blobs),
                    key=lambda t: -t[2])
    peaks = ranked[:n_candidates]
    if not peaks:
        centre = (h / 2.0, w / 2.0)
        return DiscLocation(centre, disc_r / scale, 0.0, [], (fr / scale, fc / scale), frad / scale, scale,
                            float(m0.mean()), is_monochrome(small, m0), sharpness(work, (fr, fc), frad))
    cands = [Candidate(((r + 0.5) / scale - 0.5, (c + 0.5) / scale - 0.5), v) for r, c, v in peaks]
    best = peaks[0][2]
    second = peaks[1][2] if len(peaks) > 1 else best - 3.0
    # confidence: the best peak's height (z units) and its margin over the runner-up, each squashed to 0..1
    height = 1.0 / (1.0 + np.exp(-(best - 4.0) / 1.0))
    margin = 1.0 / (1.0 + np.exp(-((best - second) - 1.0) / 0.5))
    confidence = float(np.clip(0.5 * height + 0.5 * margin, 0.0, 1.0))
    return DiscLocation(
        center=cands[0].center,
        radius_px=disc_r / scale,
        confidence=confidence,
        candidates=cands,
        fov_center=((fr + 0.5) / scale - 0.5, (fc + 0.5) / scale - 0.5),
        fov_radius_px=frad / scale,
        scale=scale,
        fov_fraction=float(m0.mean()),
        monochrome=is_monochrome(small, m0),
        sharpness=sharpness(work, (fr, fc), frad),
    )
