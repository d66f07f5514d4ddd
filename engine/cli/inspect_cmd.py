"""``inspect PATH... [--json]``: what is in a folder or file, as the engine will read it.

For every exam: id, eye, modalities, shapes, dtype, scale and its source, the B-scan files in load order,
provenance notes, and the skipped files of its folder; then every skipped path with its reason. Exams are
loaded one at a time and dropped, so memory stays that of the largest exam.

Exit status: 0 when every given path yielded at least one exam and every exam loaded; 1 when any path
yielded none or any exam failed (one line per failure on stderr, no traceback); 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any, Optional

NAME = "inspect"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        NAME,
        help="list the exams in folders/files: modalities, shapes, order, scale, skipped files",
        description="List the exams found in PATH(s) as the engine reads them, and every file skipped and why.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="patient folder(s), dataset folder(s) or files")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.add_argument(
        "--modality", choices=("fundus", "oct", "xray"), default=None,
        help="read lone images / DICOM files as this modality instead of guessing",
    )
    parser.add_argument(
        "--bscans-per-exam", type=_positive_int, default=None, metavar="N",
        help="split flat folders of numbered B-scans into exams of N consecutive B-scans",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    from engine.io.discover import discover
    from engine.io.errors import ExamLoadError

    exams: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    for given in args.paths:
        found = discover([given], modality=args.modality, bscans_per_exam=args.bscans_per_exam)
        skipped.extend({"path": s.path, "reason": s.reason} for s in found.skipped)
        if not found.sources:
            failed.append({"path": given, "id": None, "error": _nothing_found(given, found.skipped)})
        for source in found.sources:
            try:
                exam = source.load()
            except ExamLoadError as err:
                failed.append({"path": str(source.folder or source.paths[0]), "id": source.exam_id, "error": str(err)})
                continue
            except MemoryError:
                failed.append({"path": str(source.folder or source.paths[0]), "id": source.exam_id,
                               "error": "not enough memory to load this exam"})
                continue
            summary = _summary(exam, source)
            summary["skipped"] = [s for s in ({"path": k.path, "reason": k.reason} for k in found.skipped)
                                  if source.folder is not None and _inside(s["path"], source.folder)]
            exams.append(summary)
            del exam
    if args.json:
        json.dump({"exams": exams, "skipped": skipped, "failed": failed}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(exams, skipped)
    for f in failed:
        print(f"error: {f['error']}", file=sys.stderr)
    return 1 if failed else 0


def _nothing_found(given: str, skipped: list) -> str:
    mine = [s for s in skipped if s.path == given or s.path == str(Path(given))]
    if mine:
        return f"{given}: {mine[0].reason}"
    if skipped:
        return f"{given}: no exam found ({len(skipped)} paths skipped; first: {Path(skipped[0].path).name}: {skipped[0].reason})"
    return f"{given}: no exam found"


def _inside(path: str, folder: Path) -> bool:
    try:
        return Path(path).is_relative_to(folder)
    except ValueError:
        return False


def _spacing(spacing: Any) -> Optional[dict[str, Any]]:
    if spacing is None:
        return None
    return {"mm": [float(v) for v in spacing.mm], "source": spacing.source}


def _summary(exam: Any, source: Any) -> dict[str, Any]:
    def shape(a: Any) -> Optional[list[int]]:
        return None if a is None else [int(s) for s in a.shape]

    dtypes = {name: str(a.dtype) for name, a in (("fundus", exam.fundus), ("oct", exam.oct), ("xray", exam.xray))
              if a is not None}
    dtypes.update({f"mri.{k}": str(v.dtype) for k, v in exam.mri.items()})
    return {
        "id": exam.exam_id,
        "kind": source.kind,
        "eye": exam.eye,
        "modalities": list(exam.modalities),
        "fundus_shape": shape(exam.fundus),
        "oct_shape": shape(exam.oct),
        "xray_shape": shape(exam.xray),
        "mri_shapes": {k: shape(v) for k, v in exam.mri.items()},
        "dtype": dtypes,
        "scale": {
            "fundus": _spacing(exam.fundus_spacing),
            "oct": _spacing(exam.oct_spacing),
            "xray": _spacing(exam.xray_spacing),
            "mri": _spacing(exam.mri_spacing),
        },
        "bscan_files": list(exam.bscan_files),
        "source": str(source.folder or source.paths[0]),
        "files": [{"path": f.path, "sha256": f.sha256} for f in exam.provenance.files],
        "notes": list(exam.provenance.notes),
        "synthetic": exam.is_synthetic,
        "synthetic_modalities": [m for m in exam.modalities if exam.is_synthetic_modality(m)],
    }


def _fmt_shape(shape: list[int]) -> str:
    return " x ".join(str(s) for s in shape)


def _fmt_scale(scale: Optional[dict[str, Any]], axes: str) -> str:
    if scale is None:
        return "scale unknown"
    values = " x ".join(f"{v:.4g}" for v in scale["mm"])
    return f"{axes} {values} mm/px [{scale['source']}]"


def _print_text(exams: list[dict[str, Any]], skipped: list[dict[str, str]]) -> None:
    out = sys.stdout
    for e in exams:
        out.write(f"exam {e['id']}  ({e['kind']}: {e['source']})\n")
        shown = [f"{m} (SYNTHETIC)" if m in e["synthetic_modalities"] else m for m in e["modalities"]]
        out.write(f"  eye: {e['eye']}    modalities: {', '.join(shown) or 'none'}\n")
        if e["fundus_shape"]:
            out.write(f"  fundus: {_fmt_shape(e['fundus_shape'])} {e['dtype']['fundus']}, "
                      f"{_fmt_scale(e['scale']['fundus'], '(row, col)')}\n")
        if e["oct_shape"]:
            out.write(f"  oct: {_fmt_shape(e['oct_shape'])} {e['dtype']['oct']} (N, H, W), "
                      f"{_fmt_scale(e['scale']['oct'], '(slice, axial, lateral)')}\n")
        if e["xray_shape"]:
            out.write(f"  xray: {_fmt_shape(e['xray_shape'])} {e['dtype']['xray']}, "
                      f"{_fmt_scale(e['scale']['xray'], '(row, col)')}\n")
        for seq, shp in e["mri_shapes"].items():
            out.write(f"  mri {seq}: {_fmt_shape(shp)} {e['dtype'][f'mri.{seq}']} (D, H, W), "
                      f"{_fmt_scale(e['scale']['mri'], '(D, H, W)')}\n")
        if e["bscan_files"]:
            names = ", ".join(Path(p).name for p in e["bscan_files"])
            out.write(textwrap.fill(f"B-scans in order ({len(e['bscan_files'])}): {names}", width=110,
                                    initial_indent="  ", subsequent_indent="    ") + "\n")
        for note in e["notes"]:
            out.write(textwrap.fill(f"note: {note}", width=110, initial_indent="  ", subsequent_indent="    ") + "\n")
    out.write(f"{len(exams)} exam(s) loaded; {len(skipped)} path(s) skipped\n")
    for s in skipped:
        out.write(f"skipped {s['path']}: {s['reason']}\n")
