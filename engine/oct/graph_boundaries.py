"""Training-free retinal boundary finder: shortest paths on vertical intensity gradients.

The graph model is the one of Chiu et al. 2010 (Opt. Express 18:19413), "Automatic segmentation of seven
retinal layers in SDOCT images congruent with expert manual segmentation", also used by OCTExplorer-style
tools: every pixel is a node, a path crosses the B-scan from the left to the right edge moving one column at a
time, and node weights are low where the vertical gradient has the polarity of the wanted boundary
(dark-to-bright or bright-to-dark going down). The minimum-weight path is found here by dynamic programming over
columns with a maximum vertical jump per column (the same graph, solved column by column, which is exact for
this left-to-right graph and much faster than Dijkstra), vectorised over all B-scans of a chunk at once.

Order of search (each boundary searched only inside a band limited by the boundaries already found, so the
anatomical order ILM <= NFL/GCL <= ... <= choroid/sclera holds in every column by construction):

1. On a coarse copy of the B-scan: the two strongest dark-to-bright paths at a large scale are the ILM
   (vitreous -> NFL) and the top of the photoreceptor complex (ONL -> EZ); both refined at full resolution.
2. Outer retina, in a frame flattened to the photoreceptor boundary: Bruch's membrane (RPE/choroid,
   bright-to-dark), then EZ/RPE (dark-to-bright between them), then choroid/sclera (bright-to-dark, large scale).
3. Inner retina, in a frame flattened to the ILM: OPL/ONL (bright-to-dark above the thick dark ONL), then
   INL/OPL, IPL/INL and NFL/GCL, each just above the previous one.

Coordinates: B-scans ``(H, W)`` with H axial (row 0 = vitreous side); boundaries ``(9, W)`` float32 rows in px,
the row of the first pixel of the lower layer (see :mod:`engine.oct`). No step loops over pixels in Python:
the only Python loops are over columns (each step a NumPy operation on all B-scans of a chunk) and over chunks.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import cv2
import numpy as np

from engine.oct import BOUNDARY_NAMES
from engine.progress import CancelToken, ProgressCallback, check, report

REFERENCE_AXIAL_UM = 3.87
"""Axial µm per px of a Spectralis B-scan (496 px deep); settings below are tuned at this scale."""
_INVALID = np.float32(1e6)


def shortest_paths(
    cost: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_jump: int = 2, jump_penalty: float = 0.0
) -> np.ndarray:
    """Minimum-cost left-to-right path through each of ``n`` cost images, one row per column.

    Args:
        cost: (n, H, W) float32 node weights (lower = more boundary-like), n images at once.
        lo, hi: (n, W) int inclusive search band per column; ``hi < lo`` is treated as ``hi = lo``.
            The path may move at most ``max_jump`` rows between neighbouring columns *relative to lo*
            (the band is flattened to ``lo`` first, so a band that follows a found boundary lets the new
            path follow it too).
        max_jump: largest row change between neighbouring columns (px, relative to ``lo``).
        jump_penalty: added cost per px of row change (smoothness).

    Returns:
        (n, W) int32 rows, ``lo <= row <= max(lo, hi)`` in every column.
    """
    n, h, w = cost.shape
    lo = np.clip(lo, 0, h - 1).astype(np.int32)
    hi = np.clip(np.maximum(hi, lo), 0, h - 1).astype(np.int32)
    hb = int((hi - lo).max()) + 1
    offsets = np.arange(hb, dtype=np.int32)[None, :, None]
    rows = lo[:, None, :] + offsets  # (n, hb, W)
    band = np.take_along_axis(cost, np.minimum(rows, h - 1), axis=1)
    band[rows > hi[:, None, :]] = _INVALID
    band = np.ascontiguousarray(band.transpose(2, 0, 1))  # (W, n, hb): each column one contiguous block
    acc = np.empty_like(band)
    acc[0] = band[0]
    best = np.empty((n, hb), np.float32)
    moved = np.empty((n, hb), np.float32)
    jumps = range(1, min(max_jump, hb - 1) + 1)
    for c in range(1, w):
        prev = acc[c - 1]
        np.copyto(best, prev)
        for s in jumps:
            pen = np.float32(jump_penalty * s)
            np.add(prev[:, :-s], pen, out=moved[:, s:])  # arrive from s rows above
            np.minimum(best[:, s:], moved[:, s:], out=best[:, s:])
            np.add(prev[:, s:], pen, out=moved[:, :-s])  # arrive from s rows below
            np.minimum(best[:, :-s], moved[:, :-s], out=best[:, :-s])
        np.add(band[c], best, out=acc[c])
    # Backtrack: re-derive each step's argmin from the stored accumulated costs (no pointer array needed).
    path = np.empty((n, w), np.int32)
    k = np.argmin(acc[w - 1], axis=1).astype(np.int32)
    path[:, w - 1] = k
    d = min(max_jump, hb - 1)
    shifts = np.arange(-d, d + 1, dtype=np.int32)
    penalties = (np.abs(shifts) * jump_penalty).astype(np.float32)
    scan = np.arange(n)[:, None]
    for c in range(w - 1, 0, -1):
        cand = np.clip(k[:, None] + shifts, 0, hb - 1)
        k = cand[scan[:, 0], np.argmin(acc[c - 1][scan, cand] + penalties, axis=1)]
        path[:, c - 1] = k
    return path + lo


def box_edge(image: np.ndarray, k: int, k_below: Optional[int] = None) -> np.ndarray:
    """Vertical edge strength: mean of the ``k`` rows above row r minus mean of the ``k_below`` rows from r down.

    Args:
        image: (n, H, W) float32.
        k: window height above, px (>= 1); ``k = k_below = 1`` is the forward difference ``I[r-1] - I[r]``.
        k_below: window height below, px; default ``k``. An asymmetric pair asks for a thin bright layer over a
            thick dark one (or the reverse), which tells e.g. the RPE/choroid edge from the EZ's lower edge.

    Returns:
        (n, H, W) float32; positive where it is bright above and dark below (a bright-to-dark boundary at row r,
        r being the first row of the darker layer), negative for dark-to-bright. Row 0 is 0.
    """
    n, h, w = image.shape
    ka = min(max(1, int(k)), h)
    kb = min(ka if k_below is None else max(1, int(k_below)), h)
    edge = np.empty((n, h, w), np.float32)
    below = np.empty((h, w), np.float32)
    for i in range(n):
        # cv2.blur anchored at the window's first row: out[r] = mean(image[r : r + k]) (edges replicated).
        src = image[i]
        cv2.blur(src, (1, kb), dst=below, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        above = below if ka == kb else cv2.blur(src, (1, ka), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        np.subtract(above[: h - ka], below[ka:], out=edge[i, ka:])  # mean(r-ka .. r-1) - mean(r .. r+kb-1)
        np.subtract(above[:1], below[:ka], out=edge[i, :ka])
    edge[:, 0] = 0
    return edge


def edge_cost(edge: np.ndarray, polarity: int) -> np.ndarray:
    """Node weights in [0, 1] from :func:`box_edge`: ``polarity`` +1 dark-to-bright going down, -1 bright-to-dark.

    ``edge`` is consumed (overwritten) when ``polarity`` is -1.

    Normalised per image by its 99.5th percentile edge strength (sampled on a grid), like Chiu's gradient
    normalisation, so contrast differences between B-scans do not change the result.
    """
    strength = edge if polarity < 0 else np.negative(edge)
    np.maximum(strength, 0, out=strength)
    sample = strength[:, ::3, ::3].reshape(strength.shape[0], -1)
    norm = np.percentile(sample, 99.5, axis=1).astype(np.float32)[:, None, None] + np.float32(1e-6)
    strength /= norm
    np.minimum(strength, 1, out=strength)
    return np.subtract(np.float32(1), strength, out=strength)


def _strength(cost: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Mean edge strength (1 - cost) along each path: (n, H, W), (n, W) -> (n,)."""
    return 1.0 - np.take_along_axis(cost, path[:, None, :], axis=1)[:, 0].mean(axis=1)


def _box_mean(image: np.ndarray, k: int) -> np.ndarray:
    """Mean over a centred vertical window of ``2k + 1`` rows, (n, H, W) float32 (edges replicated)."""
    out = np.empty_like(image)
    for i in range(image.shape[0]):
        cv2.blur(image[i], (1, 2 * k + 1), dst=out[i], borderType=cv2.BORDER_REPLICATE)
    return out


def _gather(image: np.ndarray, reference: np.ndarray, start: int, height: int) -> np.ndarray:
    """Flatten: ``out[i, j, c] = image[i, reference[i, c] + start + j, c]`` (rows clamped), (n, height, W)."""
    rows = reference[:, None, :] + (start + np.arange(height, dtype=np.int32))[None, :, None]
    return np.take_along_axis(image, np.clip(rows, 0, image.shape[1] - 1), axis=1)


def remove_padding(scans: np.ndarray) -> np.ndarray:
    """(n, H, W) float32 with saturated-white padding (warped exports) replaced by background, in place.

    Runs of values >= 250 that touch the top or bottom edge of a column are padding, not tissue. They get the
    median of the B-scan's other pixels (mostly vitreous / background), so that the padding's edge is not
    taken for a tissue boundary.
    """
    if max(scans[:, 0].max(), scans[:, -1].max()) < 250:
        return scans
    white = scans >= 250
    top = np.logical_and.accumulate(white, axis=1)
    bottom = np.logical_and.accumulate(white[:, ::-1], axis=1)[:, ::-1]
    pad = top | bottom
    for i in range(len(scans)):
        if pad[i].any():
            scans[i][pad[i]] = np.median(scans[i][~pad[i]]) if not pad[i].all() else 0
    return scans


class _Scale:
    """Pixel sizes of the boundary search for one B-scan shape (all in px)."""

    def __init__(self, h: int, w: int, axial_um: Optional[float], max_jump: Optional[int]) -> None:
        s = REFERENCE_AXIAL_UM / axial_um if axial_um else h / 496.0
        self.s = float(np.clip(s, 0.5, 3.0))
        self.sigma_axial = max(0.8, 1.0 * self.s)
        self.sigma_lateral = max(1.0, 1.5 * w / 512.0)
        self.sigma_flat = max(1.5, 4.0 * w / 512.0)
        self.jump = int(max_jump) if max_jump else max(2, math.ceil(0.6 * h / w))
        self.fy = max(1, int(round(h / 160)))
        self.fx = max(1, int(round(w / 256)))
        self.separation = max(4, int(round(0.045 * h)), int(round(80 / (axial_um or 1e9))))
        """Least distance (px) between the ILM and the photoreceptor boundary when both are first found."""


def find_boundaries(
    volume: np.ndarray,
    *,
    axial_um: Optional[float] = None,
    max_jump: Optional[int] = None,
    workers: Optional[int] = None,
    chunk: int = 16,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> np.ndarray:
    """Find the nine boundaries of :data:`engine.oct.BOUNDARY_NAMES` in every B-scan.

    Args:
        volume: (N, H, W) or (H, W) uint8 (an (H, W, 3) or (N, H, W, 3) colour export is converted to grey).
        axial_um: axial µm per px when known (physical scale); otherwise the scale is guessed from H
            (H = 496 px is taken as the Spectralis 3.87 µm/px). Only smoothing and band sizes depend on it.
        max_jump: largest row change of a boundary between neighbouring columns (px); default from H / W.
        workers: threads over chunks of B-scans (default: min(2, CPU count)).
        chunk: B-scans processed together in one vectorised pass.
        progress, cancel: see :mod:`engine.progress` (checked between chunks).

    Returns:
        (N, 9, W) float32 rows (or (9, W) for one B-scan), non-decreasing along the boundary axis in every column.
    """
    arr = np.asarray(volume)
    single = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))  # one grey or colour B-scan
    if single:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[-1] in (3, 4):
        arr = np.stack([cv2.cvtColor(np.ascontiguousarray(a[..., :3]), cv2.COLOR_RGB2GRAY) for a in arr])
    if arr.ndim != 3 or arr.shape[1] < 16 or arr.shape[2] < 8:
        raise ValueError(f"expected (N, H, W) or (H, W) B-scans of at least 16x8 px, got shape {np.shape(volume)}")
    n, h, w = arr.shape
    scale = _Scale(h, w, axial_um, max_jump)
    out = np.empty((n, len(BOUNDARY_NAMES), w), np.float32)
    starts = list(range(0, n, max(1, chunk)))
    workers = workers or min(2, os.cpu_count() or 1)
    done = 0

    def job(start: int) -> int:
        check(cancel)
        stop = min(n, start + chunk)
        out[start:stop] = _find_chunk(arr[start:stop], scale)
        return stop - start

    report(progress, 0.0, f"graph search on {n} B-scan(s)")
    if workers <= 1 or len(starts) == 1:
        for start in starts:
            done += job(start)
            report(progress, done / n, f"layers: {done}/{n} B-scans")
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for count in pool.map(job, starts):
                check(cancel)  # chunks in flight finish; the rest are dropped
                done += count
                report(progress, done / n, f"layers: {done}/{n} B-scans")
    return out[0] if single else out


def _find_chunk(scans: np.ndarray, sc: _Scale) -> np.ndarray:
    """(n, H, W) uint8 -> (n, 9, W) float32 boundary rows."""
    from scipy.ndimage import gaussian_filter1d  # lazy: importing engine.oct.analyse stays light

    n, h, w = scans.shape
    img = remove_padding(scans.astype(np.float32))
    smooth = np.empty_like(img)
    for i in range(n):
        cv2.GaussianBlur(img[i], (0, 0), sigmaX=sc.sigma_lateral, sigmaY=sc.sigma_axial, dst=smooth[i])
    ilm, pr = _ilm_and_photoreceptors(smooth, sc)
    thick = np.maximum(np.median(pr - ilm, axis=1), 8.0)[:, None]  # (n, 1) typical retina thickness, px
    t = float(np.median(thick))
    jump, pen = sc.jump, 0.03
    j = lambda frac: np.full((n, w), int(round(frac * t)), np.int32)  # noqa: E731  a band size in px
    b = np.empty((n, len(BOUNDARY_NAMES), w), np.int32)

    # Outer retina, flattened to the photoreceptor boundary found first: rows pr + j, j in [-up, depth - up).
    up = max(3, int(round(0.15 * t)), 2 * math.ceil(2 * (max(1, round(sc.s)) + sc.sigma_axial)))
    depth = int(min(h, max(1.3 * t, 0.3 * h))) + up
    flat = gaussian_filter1d(_gather(smooth, pr, -up, depth), 2 * sc.sigma_flat, axis=2)
    k_fine = max(1, round(sc.s))
    fine_pos = edge_cost(box_edge(flat, k_fine), +1)
    # A thinner bright line just above it (EZ above the RPE, or the ELM above the EZ) is the top of the
    # photoreceptors when its edge is at least half as strong: the ONL ends there. It must lie above the
    # blurred flank of the edge already found (gap).
    gap = max(3, math.ceil(2 * (k_fine + sc.sigma_axial)))
    top = shortest_paths(fine_pos, np.full((n, w), 1), np.full((n, w), max(1, up - gap)), jump, pen)
    here = np.full((n, w), up, np.int32)
    ratio = _strength(fine_pos, top) / _strength(fine_pos, shortest_paths(fine_pos, here - 1, here + 1, 1))
    strong = ratio > 0.5
    onl_ez = np.where(strong[:, None], top, here)
    outer_jump, outer_pen = max(1, jump // 2), 0.06
    bm = shortest_paths(
        edge_cost(box_edge(flat, max(2, round(0.03 * t)), max(3, round(0.12 * t))), -1),
        here + np.maximum(j(0.05), 3), here + j(0.45), outer_jump, outer_pen,
    )
    ez_rpe = shortest_paths(
        edge_cost(box_edge(flat, max(2, round(0.02 * t))), +1), onl_ez + np.maximum(j(0.04), 2), bm - 2,
        outer_jump, outer_pen,
    )
    cs = shortest_paths(
        edge_cost(box_edge(flat, max(2, round(0.08 * t))), -1), bm + j(0.1), np.minimum(bm + j(1.0), depth - 1),
        jump, 0.06,
    )
    pr = pr - up + onl_ez
    b[:, 0], b[:, 5] = ilm, pr
    b[:, 6], b[:, 7], b[:, 8] = pr - onl_ez + ez_rpe, pr - onl_ez + bm, pr - onl_ez + cs

    # Inner retina, flattened to the ILM: rows ilm + j, j in [0, span).
    inner = np.maximum(pr - ilm, 2)  # (n, W) retina height above the photoreceptors, px
    span = int(inner.max()) + 1
    flat = gaussian_filter1d(_gather(smooth, ilm, 0, span), sc.sigma_flat, axis=2)
    one = np.ones((n, w), np.int32)
    # The ONL is the thick dark band right above the photoreceptors: its darkest path, then the
    # bright-to-dark edge above it is OPL/ONL.
    k_onl = max(1, round(0.05 * t))
    dark = flat / (np.percentile(flat[:, ::3, ::3].reshape(n, -1), 99, axis=1)[:, None, None] + 1e-6)
    onl_mid = shortest_paths(_box_mean(dark, k_onl), one + 1, inner - 2, jump, pen)
    opl = shortest_paths(
        edge_cost(box_edge(flat, max(1, round(0.03 * t)), max(1, round(0.06 * t))), -1), np.maximum(one, onl_mid - j(0.3)), onl_mid - 1,
        jump, pen,
    )
    inl = shortest_paths(
        edge_cost(box_edge(flat, max(1, round(0.02 * t))), +1), np.maximum(one, opl - j(0.15)), opl - 1, jump, pen
    )
    k_in = max(1, round(0.03 * t))
    ipl = shortest_paths(edge_cost(box_edge(flat, k_in), -1), np.maximum(one, inl - j(0.25)), inl - 1, jump, pen)
    nfl = shortest_paths(
        edge_cost(box_edge(flat, k_in, 2 * k_in), -1), one, ipl - np.maximum(j(0.06), 1), jump, pen
    )
    b[:, 1], b[:, 2], b[:, 3], b[:, 4] = ilm + nfl, ilm + ipl, ilm + inl, ilm + opl
    b = np.maximum.accumulate(np.clip(b, 0, h - 1), axis=1)  # order holds by construction; guard the clipping
    return b.astype(np.float32)


def _ilm_and_photoreceptors(smooth: np.ndarray, sc: _Scale) -> tuple[np.ndarray, np.ndarray]:
    """(n, H, W) float32 smoothed scans -> ILM and ONL/EZ rows, each (n, W) int32.

    The two strongest dark-to-bright paths at a large scale on a coarse copy: one is the ILM, the other the top
    of the photoreceptor complex. The second path is searched above and below the first (outside a gap of
    ``sc.separation``); if there is a real edge above the first, the first is the photoreceptor boundary.
    """
    n, h, w = smooth.shape
    hc, wc = max(8, h // sc.fy), max(4, w // sc.fx)
    fy, fx = h / hc, w / wc
    coarse = np.stack([cv2.resize(s, (wc, hc), interpolation=cv2.INTER_AREA) for s in smooth])
    cost = edge_cost(box_edge(coarse, max(1, round(3 / fy * sc.s))), +1)
    jump = max(1, math.ceil(sc.jump * fx / fy))
    gap = max(2, int(round(sc.separation / fy)))
    top, bottom = np.zeros((n, wc), np.int32), np.full((n, wc), hc - 1, np.int32)
    first = shortest_paths(cost, top, bottom, jump, 0.05)
    above = shortest_paths(cost, top, np.maximum(first - gap, 0), jump, 0.05)
    below = shortest_paths(cost, np.minimum(first + gap, hc - 1), bottom, jump, 0.05)

    edge_above = (_strength(cost, above) > 0.4 * _strength(cost, first)) & ((first - above).mean(axis=1) > gap)
    ilm_c = np.where(edge_above[:, None], above, first)
    pr_c = np.where(edge_above[:, None], first, below)

    # Back to full resolution, then refine each in a narrow band (flattened to the coarse path) with a fine edge.
    cols = np.minimum((np.arange(w) / fx).astype(np.int32), wc - 1)
    radius = int(math.ceil(fy)) + 2
    k = max(1, round(1.5 * sc.s))
    refined = []
    for path in (ilm_c, pr_c):
        centre = ((path[:, cols] + 0.5) * fy).astype(np.int32)
        band = _gather(smooth, centre, -radius - k, 2 * (radius + k) + 1)
        cost = edge_cost(box_edge(band, k), +1)
        lo = np.full((n, w), k, np.int32)
        rows = shortest_paths(cost, lo, lo + 2 * radius, 1, 0.05)
        refined.append(centre - radius - k + rows)
    ilm, pr = refined
    pr = np.maximum(pr, ilm + 2)
    return ilm, pr
