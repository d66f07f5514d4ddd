"""``python -m engine segment IMAGE... --task disc-cup --out DIR [--json]``.

For every fundus photo (an IMAGE that is a folder gives the fundus photo of every exam :mod:`engine.io.discover`
finds in it, named by its exam id: :func:`photos_to_segment`): ``DIR/<stem>.png``, the disc/cup mask at the
photo's size in the GAMMA convention (0 = cup, 128 = neuro-retinal rim, 255 = background), and one line of
biomarkers on stdout (``--json``: one JSON document with every photo instead); a last stderr line sums the batch
up (:func:`summary_line`). ``DIR/disc_cup_biomarkers.json`` keeps the same document and
``DIR/disc_cup_biomarkers.csv`` one row per photo (:data:`CSV_COLUMNS`; empty cells where a value is unknown or
the photo failed); ``--overlays`` adds ``DIR/<stem>_overlay.jpg`` (the photo and its disc region with the disc
and cup outlines). Each JSON row also holds the rim width / disc diameter every 2 degrees around the disc
(``rim_to_disc_profile``: TSNIT angles for a known eye, the photo's own otherwise; see
:func:`engine.fundus.biomarkers.rim_to_disc_profile`). All files are written atomically (temp file + rename);
an input is never overwritten (its mask is then named ``<stem>_disc_cup.png``).

A photo that cannot be read, or whose disc is not found with confidence, gives one stderr line and no mask;
the others go on. Exit status: 0 all photos segmented, 1 some failed, 2 bad usage, no usable segmenter weights or
site calibration (``--site-calibration FILE``: the cup outline scaled as fitted for a site, see
:mod:`engine.fundus.site_calibration`; said in every line and in the JSON document).

``--disc-at X,Y`` (one photo): the disc is at column X, row Y px; the networks look there only (see
:func:`engine.fundus.analysis.analyse_disc`), for a photo where the automatic search chose another region.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from engine.fundus.biomarkers import DiscBiomarkers
from engine.models.checkpoint import atomic_write_bytes

SUMMARY_NAME = "disc_cup_biomarkers.json"
TABLE_NAME = "disc_cup_biomarkers.csv"
CSV_COLUMNS = ("input", "status", "confidence", "centred", "eye_inferred", "sharpness", "photo_size", "photo_scale",
               *(f.name for f in fields(DiscBiomarkers) if f.name not in ("isnt", "ist")),
               "isnt_rule", "ist_rule", "outlined_by_hand", "disc_at_x", "disc_at_y", "mask", "message")
"""The table's columns: the photo, whether its disc was found (and whether the photo was read as a crop centred
on the disc, whether its ``eye`` was inferred from the disc's side of the photo, how much in focus it is:
:func:`engine.fundus.localize.sharpness`), its size (``WxH`` px) and the scale it was measured with
(:func:`engine.results_csv.scale_label`; empty when not known), every :class:`DiscBiomarkers` field (mm ones only
filled when the photo's scale is known; ``isnt`` / ``ist`` as the words ``isnt_rule`` / ``ist_rule``), corrections
by hand, mask path."""


def png_bytes(mask: np.ndarray) -> bytes:
    """A (H, W) uint8 mask as PNG file bytes."""
    import cv2

    ok, data = cv2.imencode(".png", mask)
    if not ok:
        raise OSError("PNG encoding failed")
    return data.tobytes()


def mask_path(out: Path, stem: str, inputs: set[Path], taken: set[Path], suffix: str = ".png") -> Path:
    """``out/<stem><suffix>``, or ``<stem>_disc_cup<suffix>`` (then ``_2``, ``_3`` ...) when that is an input or
    taken."""
    candidate = out / f"{stem}{suffix}"
    k = 1
    while candidate.resolve() in inputs or candidate in taken:
        k += 1
        candidate = out / (f"{stem}_disc_cup{suffix}" if k == 2 else f"{stem}_disc_cup_{k - 1}{suffix}")
    taken.add(candidate)
    return candidate


@dataclass(frozen=True)
class Photo:
    """One photo to segment: its file, the name of its outputs (``<stem>.png``), the eye its files give, and how
    its line on stdout names it."""

    path: Path
    stem: str
    eye: str
    label: str


def photos_to_segment(paths: Sequence[Path]) -> tuple[list[Photo], list[str]]:
    """The :class:`Photo` of every input, and one line per file left out.

    A file is taken as it is (named by its stem; the eye its or its folder's name says,
    :func:`engine.io.discover.eye_from_name`). A folder gives the fundus photo of every exam
    :func:`engine.io.discover.discover` finds in it (named by the exam id; the eye its ``exam.json`` or names say);
    annotation masks, tables, optic-nerve-head crops beside their full photo and exams without a photo are left out.
    """
    from engine.io.discover import discover, eye_from_name

    photos: list[Photo] = []
    left_out: list[str] = []
    for path in paths:
        if not path.is_dir():
            eye = eye_from_name(path.stem)
            eye = eye if eye != "unknown" else eye_from_name(path.parent.name)
            photos.append(Photo(path, path.stem, eye, path.name))
            continue
        found = discover([path])
        left_out += [f"{s.path}: {s.reason}" for s in found.skipped]
        for source in sorted(found.sources, key=lambda s: s.exam_id):
            image = source.paths[0] if source.kind == "image" and source.modality in (None, "fundus") else None
            if (source.fundus or image) is None:
                left_out.append(f"{source.folder or source.paths[0]}: exam {source.exam_id} has no fundus photo")
                continue
            eye = source.sidecar.eye if source.sidecar is not None and source.sidecar.eye else source.eye
            photos.append(Photo(source.fundus or image, source.exam_id, eye, source.exam_id))
    return photos, left_out


def table_csv(results: Sequence[dict[str, Any]]) -> str:
    """The :data:`TABLE_NAME` text of the JSON document's ``results`` rows (one per photo)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in results:
        at = row.get("disc_at") or {}
        drawn = "+".join(row.get("outlined_by_hand", ()))
        writer.writerow({**row.get("biomarkers", {}), **row, "outlined_by_hand": drawn, "disc_at_x": at.get("x", ""),
                         "disc_at_y": at.get("y", "")})
    return buffer.getvalue()


def summary_line(results: Sequence[dict[str, Any]]) -> str:
    """One stderr line for a batch: photos measured, not found and unreadable, how many discs found carry each
    message of :func:`engine.fundus.analysis.analyse_disc` that asks for a check, and how many eyes were inferred
    from the disc's side."""
    from engine.fundus.analysis import FOCUS_MESSAGE, LOW_CONFIDENCE_MESSAGE, NO_COLOUR, RIVAL_MESSAGE
    from engine.fundus.laterality import CHECK_THE_EYE

    flags = (("low confidence", LOW_CONFIDENCE_MESSAGE), ("another disc-like region", RIVAL_MESSAGE),
             ("no colour", NO_COLOUR), ("out of focus", FOCUS_MESSAGE), ("eye to check", CHECK_THE_EYE))
    ok = [r for r in results if r.get("status") == "ok"]
    line = (f"segmented {len(ok)} of {len(results)} photo(s): "
            f"{sum(r.get('status') == 'not_found' for r in results)} without a disc found, "
            f"{sum(r.get('status') == 'error' for r in results)} unreadable")
    flagged = [(name, sum(words in (r.get("message") or "") for r in ok)) for name, words in flags]
    flagged = [f"{n} {name}" for name, n in flagged if n]
    inferred = sum(bool(r.get("eye_inferred")) for r in ok)
    return (line + (f"; flagged: {', '.join(flagged)}" if flagged else "")
            + (f"; eye from the disc's side: {inferred}" if inferred else ""))


def _ddls(b: dict[str, Any]) -> str:
    """``DDLS 4 (average disc)``, ``DDLS 3-5 (disc size unknown)`` or ``DDLS 1`` (any size) of biomarkers ``b``."""
    if "ddls_stage" in b:
        return f"DDLS {b['ddls_stage']} ({b['disc_size']} disc)"
    return f"DDLS {b['ddls_min']}" + ("" if b["ddls_min"] == b["ddls_max"] else f"-{b['ddls_max']} (disc size unknown)")


def _line(name: str, b: dict[str, Any]) -> str:
    mm = f", disc area {b['disc_area_mm2']:.2f} mm²" if "disc_area_mm2" in b else ""
    return (f"{name}: vertical CDR {b['vcdr']:.3f}, horizontal CDR {b['hcdr']:.3f}, area CDR {b['area_cdr']:.3f}, "
            f"disc {b['disc_height_px']:.0f}x{b['disc_width_px']:.0f} px{mm}, ISNT {b['isnt_rule']}, "
            f"IST {b['ist_rule']}, {_ddls(b)}")


def parse_disc_at(text: str) -> tuple[float, float]:
    """``"X,Y"`` (column, row px) -> (row, col). Raises ValueError with a one-line message."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--disc-at must look like X,Y in photo pixels (e.g. 812,640), got {text!r}") from None
    if not (np.isfinite(x) and np.isfinite(y)):
        raise ValueError(f"--disc-at must be finite pixel coordinates, got {text!r}")
    return y, x


@dataclass(frozen=True)
class Options:
    """What ``segment --task disc-cup`` was asked for besides its photos (:func:`read_options`)."""

    disc_at: Optional[tuple[float, float]]  # (row, col) px of a disc placed by hand on the one photo
    corrections: Any  # an engine.fundus.corrections.CorrectionStore, or None
    typed: Any  # an engine.io.exam.Spacing typed in for every photo, or None
    by_size: dict[str, float]  # "WxH" -> µm per px for the photos of that size without a scale of their own
    eyes: dict[str, str]  # exam id -> "OD" / "OS" from a table
    eye: Optional[str]  # --eye: every photo's ("unknown": measure without one), or None


def read_options(args: Any) -> Options:
    """The :class:`Options` of ``args`` (see :func:`run_disc_cup`).

    Raises:
        ValueError: a bad value or file, or two options that exclude each other (one line).
    """
    from engine.fundus.corrections import read_corrections
    from engine.io.exam import parse_size_scales, typed_photo_spacing
    from engine.io.eye_table import read_eye_table

    given = getattr(args, "disc_corrections", None)
    scale = getattr(args, "photo_scale", None)
    table = getattr(args, "eyes", None)
    options = Options(
        disc_at=parse_disc_at(args.disc_at) if getattr(args, "disc_at", None) else None,
        corrections=read_corrections(Path(given)) if given else None,
        typed=None if scale is None else typed_photo_spacing(scale),
        by_size=parse_size_scales(getattr(args, "photo_scale_for", None) or ()),
        eyes=read_eye_table(Path(table)) if table else {},
        eye=getattr(args, "eye", None))
    if options.typed is not None and options.by_size:
        raise ValueError("give --photo-scale (every photo) or --photo-scale-for (per photo size), not both")
    if options.eyes and options.eye:
        raise ValueError("give --eye (every photo) or --eyes (a table), not both")
    return options


def measure_photo(photo: Photo, row: dict[str, Any], options: Options, segmenter: Any,
                  calibration: Any) -> tuple[Any, Any]:
    """Read and analyse one photo as ``options`` ask (its scale; its eye from the table, ``--eye``, the eye set by
    hand in the corrections file or its names; a disc placed or outlines drawn by hand; the site ``calibration``);
    fills ``row``'s size, scale and status fields and returns the :class:`engine.fundus.analysis.DiscAnalysis` and
    the photo's exam.

    Raises:
        engine.io.errors.ExamLoadError, ValueError, OSError: the photo cannot be read or analysed (one line).
    """
    from engine.fundus.analysis import analyse_disc
    from engine.fundus.corrections import photo_sha256
    from engine.fundus.hand_outline import OutlineError, apply_outlines
    from engine.fundus.site_calibration import apply_calibration
    from engine.io.exam import photo_size, scale_for_size
    from engine.io.images import load_image_exam
    from engine.results_csv import scale_label

    exam = load_image_exam(photo.path, modality="fundus", eye=photo.eye)
    exam.fundus_spacing = (options.typed if options.typed is not None
                           else scale_for_size(exam.fundus, exam.fundus_spacing, options.by_size))
    row.update(photo_size=photo_size(exam.fundus), photo_scale=scale_label(exam.fundus_spacing))
    placed_at, outlines, eye_set = options.disc_at, None, None
    if options.corrections is not None:
        sha = photo_sha256(exam.fundus)
        if placed_at is None:
            placed_at, outlines = options.corrections.get(sha)
        eye_set = options.corrections.eye(sha)  # set by hand in the viewer
    eye = exam.eye = options.eyes.get(photo.stem) or options.eye or eye_set or photo.eye
    result = apply_calibration(analyse_disc(exam.fundus, spacing=exam.fundus_spacing, eye=eye, segmenter=segmenter,
                                            disc_at=placed_at, infer_eye=options.eye != "unknown"), calibration)
    if outlines is not None:
        try:
            result = apply_outlines(result, outlines, exam)
        except OutlineError as err:
            result.message = "; ".join(m for m in (result.message, f"outlines drawn by hand not used: {err}") if m)
    row.update(status="ok" if result.found else "not_found", confidence=round(result.confidence, 4),
               centred=result.centred, eye_inferred=result.eye_inferred, message=result.message,
               sharpness=None if result.localisation is None else round(result.localisation.sharpness, 3),
               outlined_by_hand=list(result.hand_outlined))
    if placed_at is not None:
        row["disc_at"] = {"x": placed_at[1], "y": placed_at[0]}
    return result, exam


def _notes(result: Any) -> str:
    """`` (…)`` notes after a photo's line: the analysis's message and how it was measured."""
    placed = result.placed_at and f"disc placed at x {result.placed_at[1]:.0f}, y {result.placed_at[0]:.0f} px"
    drawn = result.hand_outlined and f"{' and '.join(result.hand_outlined)} drawn by hand"
    scaled = result.site_calibration and result.site_calibration.describe()  # None once a cup is drawn
    centred = result.centred and "read as a crop centred on the disc"
    inferred = result.eye_inferred and f"eye {result.biomarkers.eye} from the disc's side of the photo"
    return "".join(f" ({m})" for m in (result.message, centred, inferred, placed, drawn, scaled) if m)


def run_disc_cup(args: Any) -> int:
    """The ``--task disc-cup`` branch of ``segment``. ``args``: ``inputs``, ``out``, ``json``, ``weights``, ``eye``,
    ``site_calibration``, ``disc_at``, ``disc_corrections``, ``photo_scale`` (µm per px, typed in),
    ``photo_scale_for`` (``WxH=UM`` texts, :func:`engine.io.exam.parse_size_scales`), ``eyes`` (an ``exam,eye``
    table, :func:`engine.io.eye_table.read_eye_table`), ``overlays``."""
    from engine.fundus.biomarkers import rim_to_disc_profile
    from engine.fundus.segmenter import default_weights_path, load_segmenter
    from engine.fundus.site_calibration import CalibrationError, check_weights, load_calibration
    from engine.io.errors import ExamLoadError
    from engine.io.eye_table import left_alone_note
    from engine.models.checkpoint import CheckpointError
    from engine.overlays import disc_cup_overlay, write_jpeg

    try:
        options = read_options(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    photos, left_out = photos_to_segment([Path(p) for p in args.inputs])
    if left_out:
        print(f"note: {len(left_out)} file(s) in the folders given left out, e.g. {left_out[0]}", file=sys.stderr)
    note = left_alone_note(args.eyes, options.eyes, (photo.stem for photo in photos), "the photos")
    if note:
        print(f"note: {note}", file=sys.stderr)
    if options.disc_at is not None and len(photos) != 1:
        print(f"error: --disc-at places the disc on one photo; the inputs hold {len(photos)}", file=sys.stderr)
        return 2
    weights = getattr(args, "weights", None)
    try:
        seg = load_segmenter(weights)
    except (CheckpointError, OSError) as err:
        where = weights or default_weights_path()
        print(f"error: disc/cup segmenter weights unusable ({where}): {err}. Train them with "
              "'python -m engine train disc-cup --data DIR --out RUN' and pass --weights RUN/best.pt",
              file=sys.stderr)
        return 2
    calibration = None
    if getattr(args, "site_calibration", None):
        try:
            calibration = load_calibration(args.site_calibration)
            check_weights(calibration, seg.sha256)
        except CalibrationError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"error: cannot create output folder {out}: {err.strerror or err}", file=sys.stderr)
        return 2
    inputs = {photo.path.resolve() for photo in photos if photo.path.exists()}
    taken: set[Path] = set()
    results: list[dict[str, Any]] = []
    for photo in photos:
        row: dict[str, Any] = {"input": str(photo.path)}
        results.append(row)
        try:
            result, exam = measure_photo(photo, row, options, seg, calibration)
        except (ExamLoadError, ValueError, OSError) as err:
            message = str(err) if str(photo.path) in str(err) else f"{photo.path}: {err}"
            print(f"error: {message}", file=sys.stderr)
            row.update(status="error", message=str(err))
            continue
        if not result.found:
            print(f"error: {photo.path}: {result.message}", file=sys.stderr)
            continue
        target = mask_path(out, photo.stem, inputs, taken)
        atomic_write_bytes(target, png_bytes(result.label_mask()))
        markers = result.biomarkers.to_dict()
        if getattr(args, "overlays", False):
            caption = (f"{photo.label}  vertical CDR {markers['vcdr']:.2f}  {_ddls(markers)}  confidence "
                       f"{result.confidence:.2f}")
            caption += f"  ({result.message})" if result.message else ""
            overlay = disc_cup_overlay(exam.fundus, result.disc_mask, result.cup_mask, result.crop_box, caption=caption)
            write_jpeg(mask_path(out, photo.stem, inputs, taken, "_overlay.jpg"), overlay)
        angles, ratio = rim_to_disc_profile(result.disc_mask, result.cup_mask, result.biomarkers.eye)
        row.update(mask=str(target), center=[round(v, 1) for v in result.center],
                   crop_box=[round(float(v), 1) for v in result.crop_box], biomarkers=markers,
                   rim_to_disc_profile={"angles_deg": np.round(angles, 1).tolist(),
                                        "ratio": np.round(ratio, 4).tolist(),
                                        "angles": "TSNIT" if result.biomarkers.eye in ("OD", "OS") else "photo"})
        if not args.json:
            print(_line(photo.label, markers) + _notes(result), flush=True)
    sizes = {row.get("photo_size") for row in results}
    for size in sorted(set(options.by_size) - sizes):
        print(f"note: --photo-scale-for {size}: no photo of that size among the inputs", file=sys.stderr)
    doc = {"task": "disc-cup", "mask_convention": "0 cup, 128 rim, 255 background", "weights_sha256": seg.sha256,
           "site_calibration": None if calibration is None else json.loads(calibration.to_json()),
           "results": results}
    text = json.dumps(doc, indent=1) + "\n"
    atomic_write_bytes(out / SUMMARY_NAME, text.encode())
    atomic_write_bytes(out / TABLE_NAME, table_csv(results).encode("utf-8", "backslashreplace"))
    if args.json:
        sys.stdout.write(text)
    print(summary_line(results), file=sys.stderr)
    return 1 if any(row.get("status") != "ok" for row in results) else 0
