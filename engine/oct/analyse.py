"""Exam -> :class:`LayerAnalysis`: boundaries (graph search or network), labels, thickness maps, sectors, TSNIT.

Thickness is in µm only when the exam's OCT spacing is physical (``Spacing.is_physical``), else in px (axial
rows), and ``unit`` says which. ETDRS sectors (macular volumes: a foveal pit found in the total-retina map) and
disc quadrants with a TSNIT profile (``region="disc"``: circle of 1.73 mm radius around the scan centre, taken
as the disc centre) need the en-face geometry in mm, i.e. a physical spacing and at least 3 B-scans; otherwise
they are empty and ``notes`` says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from engine.io.exam import Exam, Spacing
from engine.oct import BOUNDARY_NAMES, LAYER_NAMES
from engine.oct import thickness as th
from engine.oct.graph_boundaries import find_boundaries
from engine.oct.labels import labels_from_boundaries, merged_note
from engine.progress import CancelToken, ProgressCallback, check, report, sub_progress

GRAPH_METHOD = "graph-search"
NETWORK_METHOD = "network"


@dataclass
class LayerAnalysis:
    """The OCT layer result for one volume (plain data: safe to pass between threads).

    Attributes:
        method: ``"graph-search"`` or ``"network"``; ``method_detail`` says which weights / algorithm.
        labels: (N, H, W) uint8, 0 outside the retina then 1..8 = LAYER_NAMES, non-decreasing down columns.
        boundaries: (N, 9, W) float32 rows (BOUNDARY_NAMES), NaN where not found.
        boundary_names, layer_names: the names in order.
        thickness: ``{layer name: (N, W) float32}`` per-layer thickness in ``unit``.
        rnfl_thickness: (N, W) float32 RNFL (NFL) thickness in ``unit`` (the en-face RNFL map).
        total_thickness: (N, W) float32 ILM to Bruch's membrane in ``unit``.
        unit: ``"µm"`` (physical axial scale) or ``"px"``; ``axial_um``: µm per row when physical.
        region: ``"macula"``, ``"disc"`` or ``"unknown"``; ``centre``: en-face (row, col) px of the fovea / disc.
        sector_grid: ``"ETDRS"``, ``"quadrants"`` or None; ``sectors``: sector -> mean RNFL in ``unit``
            (ETDRS: total retina means are in ``total_sectors``).
        tsnit_angles_deg, tsnit: (256,) float32 RNFL around the disc (TSNIT order) or None.
        biomarkers: ``{"rnfl_mean_um"|"rnfl_mean_px": v, "total_retina_mean_...": v}``.
        notes: merged bands, missing geometry, assumptions. ``seconds``: time spent.
    """

    method: str
    method_detail: str
    labels: np.ndarray
    boundaries: np.ndarray
    thickness: dict[str, np.ndarray]
    rnfl_thickness: np.ndarray
    total_thickness: np.ndarray
    unit: str
    axial_um: Optional[float] = None
    boundary_names: tuple[str, ...] = BOUNDARY_NAMES
    layer_names: tuple[str, ...] = LAYER_NAMES
    region: str = "unknown"
    centre: Optional[tuple[float, float]] = None
    sector_grid: Optional[str] = None
    sectors: dict[str, float] = field(default_factory=dict)
    total_sectors: dict[str, float] = field(default_factory=dict)
    tsnit_angles_deg: Optional[np.ndarray] = None
    tsnit: Optional[np.ndarray] = None
    biomarkers: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def analyse_volume(
    volume: np.ndarray,
    spacing: Optional[Spacing] = None,
    *,
    eye: str = "unknown",
    first_is_inferior: bool = False,
    method: str = "graph",
    network: Any = None,
    region: str = "auto",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> LayerAnalysis:
    """Segment and measure an (N, H, W) or (H, W) uint8 volume.

    Args:
        spacing: (slice, axial, lateral) mm, or (axial, lateral) for one B-scan; None = unknown (px results).
        method: ``"graph"`` (training-free) or ``"network"`` (``network`` a loaded
            :class:`engine.oct.layers.LayerNetwork`, or None for the shipped default weights).
        region: ``"auto"`` (macula when a foveal pit is found), ``"macula"`` or ``"disc"``.

    Raises:
        ValueError: bad shape or method; engine.oct.layers.LayerModelMissing: network without weights.
    """
    t0 = time.perf_counter()
    vol = np.asarray(volume)
    if vol.ndim == 2:
        vol = vol[None]
    if vol.ndim != 3:
        raise ValueError(f"expected (N, H, W) or (H, W) B-scans, got shape {np.shape(volume)}")
    n, h, w = vol.shape
    physical = spacing is not None and spacing.is_physical
    axial_um = float(spacing.mm[-2]) * 1000.0 if spacing is not None else None
    notes: list[str] = []
    if method == "graph":
        b = find_boundaries(vol, axial_um=axial_um, progress=sub_progress(progress, 0.0, 0.8), cancel=cancel)
        name, detail = GRAPH_METHOD, "graph search on vertical gradients (Chiu et al. 2010), no weights"
    elif method == "network":
        from engine.oct.layers import load_layer_network

        net = network if network is not None else load_layer_network()
        b = net.find_boundaries(vol, progress=sub_progress(progress, 0.0, 0.8), cancel=cancel)
        name, detail = NETWORK_METHOD, f"layer network {net.name} (sha256 {net.sha256[:12]})"
        notes.append("the network does not find the choroid/sclera boundary: choroid thickness is not measured")
    else:
        raise ValueError(f"unknown layer method {method!r} (use 'graph' or 'network')")
    check(cancel)
    report(progress, 0.85, "layer thickness")
    labels = labels_from_boundaries(b, h)
    note = merged_note({k: bool(np.isfinite(b[:, i]).any()) for i, k in enumerate(BOUNDARY_NAMES)})
    if note:
        notes.append(note)
    scale = axial_um if physical and axial_um else 1.0
    unit = "µm" if physical else "px"
    if not physical:
        notes.append("axial scale assumed or unknown: thickness in px (rows)")
    per_layer = th.layer_thickness(b) * np.float32(scale)
    thickness = {layer: per_layer[:, k] for k, layer in enumerate(LAYER_NAMES)}
    total = th.total_retina(b) * np.float32(scale)
    result = LayerAnalysis(
        method=name, method_detail=detail, labels=labels, boundaries=b, thickness=thickness,
        rnfl_thickness=thickness["NFL"], total_thickness=total, unit=unit,
        axial_um=axial_um if physical else None, notes=notes,
    )
    _sectors(result, spacing, eye, first_is_inferior, region)
    key = "um" if physical else "px"
    result.biomarkers = {f"rnfl_mean_{key}": _nanmean(result.rnfl_thickness),
                         f"total_retina_mean_{key}": _nanmean(total)}
    result.seconds = time.perf_counter() - t0
    check(cancel)
    report(progress, 1.0, f"layers done ({name})")
    return result


def _sectors(result: LayerAnalysis, spacing: Optional[Spacing], eye: str, first_is_inferior: bool, region: str) -> None:
    """Fill region, centre, sectors and TSNIT of ``result`` where the geometry allows (else a note)."""
    n, w = result.rnfl_thickness.shape
    if region not in ("auto", "macula", "disc"):
        raise ValueError(f"unknown scan region {region!r} (use auto, macula or disc)")
    if n < 3 or spacing is None or len(spacing.mm) < 3 or not spacing.is_physical:
        why = "fewer than 3 B-scans" if n < 3 else "the scan geometry (mm) is assumed or unknown"
        result.notes.append(f"no sector grid / TSNIT: {why}")
        result.region = region if region != "auto" else "unknown"
        return
    geo = th.Geometry(float(spacing.mm[0]), float(spacing.mm[2]), eye, first_is_inferior)
    if eye not in ("OD", "OS"):
        result.notes.append("eye unknown: sectors named left/right instead of temporal/nasal")
    if region in ("auto", "macula"):
        fovea = th.find_fovea(result.total_thickness)
        if fovea is None:
            result.notes.append("no foveal pit found: no ETDRS grid")
            result.region = "unknown" if region == "auto" else "macula"
            return
        result.region, result.centre, result.sector_grid = "macula", fovea, "ETDRS"
        result.sectors = th.etdrs_sectors(result.rnfl_thickness, fovea, geo)
        result.total_sectors = th.etdrs_sectors(result.total_thickness, fovea, geo)
        return
    centre = ((n - 1) / 2.0, (w - 1) / 2.0)
    result.notes.append("disc centre taken as the scan centre (disc-centred protocol)")
    angles, values = th.tsnit_profile(result.rnfl_thickness, centre, geo)
    result.region, result.centre, result.sector_grid = "disc", centre, "quadrants"
    result.tsnit_angles_deg, result.tsnit = angles, values
    result.sectors = th.tsnit_quadrants(angles, values)
    if not np.isfinite(values).all():
        result.notes.append(f"the {th.TSNIT_RADIUS_MM} mm circle leaves the scan: part of the TSNIT profile is missing")


def _nanmean(a: np.ndarray) -> float:
    v = np.asarray(a, np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def analyse_oct(
    exam: Exam,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    *,
    method: str = "graph",
    network: Any = None,
    region: str = "auto",
) -> Optional[LayerAnalysis]:
    """The layer analysis of ``exam.oct`` (None when the exam has no OCT). See :func:`analyse_volume`."""
    if exam.oct is None:
        return None
    inferior_first = False
    if exam.bscan_positions is not None and len(exam.bscan_positions) > 1:
        inferior_first = bool(exam.bscan_positions[0, 0, 0] > exam.bscan_positions[-1, 0, 0])
    return analyse_volume(
        exam.oct, exam.oct_spacing, eye=exam.eye, first_is_inferior=inferior_first, method=method,
        network=network, region=region, progress=progress, cancel=cancel,
    )

