"""``python -m engine segment INPUT... --task layers --out DIR``: layer labels, thickness CSV, en-face RNFL map.

Writes (all atomically: temp file + rename), for each exam found in the inputs (``engine.io.discover``; lone
images are read as OCT B-scans):

- ``DIR/<exam>/labels/<exam>_<k>.png``: one label PNG per B-scan at the B-scan's own size, values 0 (outside
  the retina) then 1..8 = NFL, GCL+IPL, INL, OPL, ONL, EZ, RPE, choroid (never decreasing down a column; a
  merged band carries its uppermost layer's value and ``summary.json`` says so);
- ``DIR/<exam>/overlays/<exam>_<k>.png``: the B-scan with the boundaries drawn (colour, for looking);
- ``DIR/<exam>/rnfl_enface.png``: the en-face RNFL thickness map (N x W stretched to the scan's aspect),
  colour scale 0 .. ``colour_max`` in ``unit`` (both in ``summary.json``);
- ``DIR/<exam>/summary.json``: method, unit, notes, sectors, TSNIT, per-layer means;
- ``DIR/layers_thickness.csv``: a row per B-scan (mean thickness of every layer, total retina, thinnest NFL,
  in the row's unit) and an error row for every input that could not be segmented.

Exit status 0 when every exam was segmented, 1 when some failed (their rows say why), 2 when none could be.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from engine.models.checkpoint import atomic_write_bytes
from engine.oct import LAYER_NAMES
from engine.oct.thickness import TABLE_COLUMNS, thickness_table

CSV_NAME = "layers_thickness.csv"
CSV_COLUMNS = ("exam_id", "bscan", "method", "unit", *TABLE_COLUMNS, "status", "message")
BOUNDARY_COLOURS = (  # BGR, one per boundary of BOUNDARY_NAMES
    (0, 255, 255), (0, 165, 255), (0, 255, 0), (255, 255, 0), (255, 0, 255), (255, 128, 0), (0, 0, 255),
    (128, 0, 255), (200, 200, 200),
)


def _png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, data.tobytes())


def overlay(bscan: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    """(H, W) uint8 B-scan + (9, W) rows -> (H, W, 3) uint8 BGR with each found boundary drawn as a polyline."""
    out = cv2.cvtColor(np.asarray(bscan, np.uint8), cv2.COLOR_GRAY2BGR)
    cols = np.arange(boundaries.shape[1], dtype=np.float64)
    for k, rows in enumerate(boundaries):
        ok = np.isfinite(rows)
        if ok.sum() < 2:
            continue
        pts = np.stack([cols[ok], rows[ok]], axis=1).round().astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], False, BOUNDARY_COLOURS[k % len(BOUNDARY_COLOURS)], 1, cv2.LINE_AA)
    return out


def enface_png(thickness_map: np.ndarray, aspect: float, colour_max: Optional[float] = None) -> tuple[np.ndarray, float]:
    """(N, W) thickness -> ((H', W, 3) uint8 BGR turbo colour map, colour_max); H' = round(W * aspect), NaN black.

    ``aspect``: en-face height / width of the scanned area (1 for an unknown square raster).
    """
    m = np.asarray(thickness_map, np.float32)
    finite = m[np.isfinite(m)]
    top = float(colour_max if colour_max else (np.percentile(finite, 99) if finite.size else 1.0)) or 1.0
    scaled = np.clip(np.nan_to_num(m, nan=0.0) / top * 255.0, 0, 255).astype(np.uint8)
    colour = cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO)
    colour[~np.isfinite(m)] = 0
    w = m.shape[1]
    height = max(1, int(round(w * aspect)))
    return cv2.resize(colour, (w, height), interpolation=cv2.INTER_NEAREST), top


def _csv_text(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue().encode("utf-8")


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_exam(out: Path, exam: Any, result: Any) -> dict[str, Any]:
    """Write one exam's label PNGs, overlays, en-face map and summary under ``out/<exam_id>``; the summary."""
    folder = out / exam.exam_id
    n = len(exam.oct)
    digits = max(3, len(str(n - 1)))
    for k in range(n):
        name = f"{exam.exam_id}_{k:0{digits}d}.png"
        _png(folder / "labels" / name, result.labels[k])
        _png(folder / "overlays" / name, overlay(exam.oct[k], result.boundaries[k]))
    spacing = exam.oct_spacing
    aspect = 1.0
    if spacing is not None and spacing.is_physical and len(spacing.mm) == 3:
        aspect = n * spacing.mm[0] / (exam.oct.shape[2] * spacing.mm[2])
    image, top = enface_png(result.rnfl_thickness, aspect if n > 1 else 1.0 / exam.oct.shape[2])
    _png(folder / "rnfl_enface.png", image)
    table = thickness_table(result.boundaries, result.axial_um or 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a layer never found (network: choroid) stays NaN
        means = np.nanmean(table, axis=0)
    summary = {
        "exam_id": exam.exam_id, "method": result.method, "method_detail": result.method_detail,
        "unit": result.unit, "bscans": n, "bscan_shape": list(exam.oct.shape[1:]),
        "label_values": {"0": "outside the retina", **{str(i + 1): name for i, name in enumerate(LAYER_NAMES)}},
        "region": result.region, "sector_grid": result.sector_grid, "sectors": result.sectors,
        "total_sectors": result.total_sectors, "tsnit": result.tsnit, "biomarkers": result.biomarkers,
        "enface_colour_max": top, "layer_means": dict(zip(TABLE_COLUMNS, means)),
        "notes": result.notes, "seconds": result.seconds,
    }
    atomic_write_bytes(folder / "summary.json", json.dumps(_json_ready(summary), indent=2).encode("utf-8"))
    summary["rows"] = [
        {"exam_id": exam.exam_id, "bscan": k, "method": result.method, "unit": result.unit,
         **dict(zip(TABLE_COLUMNS, (float(v) for v in table[k]))), "status": "ok", "message": ""}
        for k in range(n)
    ]
    return summary


def _error_row(exam_id: str, message: str) -> dict[str, Any]:
    return {"exam_id": exam_id, "bscan": "", "method": "", "unit": "", "status": "error", "message": message}


def run_layers(args: Any) -> int:
    """The ``--task layers`` branch of ``segment``. ``args``: ``inputs``, ``out``, ``json``; optional ``method``
    (``graph``/``network``), ``weights`` (a .pt), ``region`` (auto/macula/disc), ``eye`` (OD/OS: overrides the
    exams' eye, for the sector names), ``bscans_per_exam``."""
    from engine.io.discover import discover
    from engine.io.errors import ExamLoadError
    from engine.oct.analyse import analyse_oct

    out = Path(args.out)
    method = getattr(args, "method", None) or "graph"
    region = getattr(args, "region", None) or "auto"
    eye = getattr(args, "eye", None)
    network = None
    if method == "network":
        from engine.oct.layers import LayerModelMissing, load_layer_network
        from engine.models.checkpoint import CheckpointError

        try:
            network = load_layer_network(getattr(args, "weights", None))
        except (LayerModelMissing, CheckpointError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    try:
        found = discover([Path(p) for p in args.inputs], modality="oct",
                         bscans_per_exam=getattr(args, "bscans_per_exam", None))
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = [_error_row(Path(s.path).name, f"skipped: {s.reason}") for s in found.skipped
                                  if Path(s.path).resolve() in {Path(p).resolve() for p in args.inputs}]
    for row in rows:
        print(f"error: {row['exam_id']}: {row['message']}", file=sys.stderr)
    summaries, failed = [], 0
    for source in found.sources:
        try:
            exam = source.load()
            if eye in ("OD", "OS"):
                exam.eye = eye
            if exam.oct is None:
                raise ExamLoadError("no OCT B-scans in this exam", source.paths[0] if source.paths else None)
            result = analyse_oct(exam, method=method, network=network, region=region)
            summary = write_exam(out, exam, result)
        except (ExamLoadError, ValueError, OSError) as err:
            failed += 1
            rows.append(_error_row(source.exam_id, str(err)))
            print(f"error: {source.exam_id}: {err}", file=sys.stderr)
            continue
        rows.extend(summary.pop("rows"))
        summaries.append(summary)
        if not args.json:
            print(f"{exam.exam_id}: {len(exam.oct)} B-scan(s), {result.method}, mean RNFL "
                  f"{result.biomarkers.get('rnfl_mean_um', result.biomarkers.get('rnfl_mean_px')):.1f} {result.unit}"
                  f" -> {out / exam.exam_id}")
    atomic_write_bytes(out / CSV_NAME, _csv_text(rows))
    if args.json:
        print(json.dumps(_json_ready({"task": "layers", "out": str(out), "csv": str(out / CSV_NAME),
                                      "exams": summaries, "errors": [r for r in rows if r["status"] == "error"]})))
    if not summaries:
        if not rows:
            print("error: no OCT exam found in the inputs", file=sys.stderr)
        return 2
    return 1 if any(r["status"] == "error" for r in rows) else 0
