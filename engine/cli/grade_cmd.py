"""``grade PATH... --csv OUT``: batch-grade exams into a CSV (GAMMA columns first), optional CAM overlays.

Exit codes: 0 every exam graded, 1 at least one error row (the others are still graded), 2 bad usage or
unusable models (missing / tampered weights), 130 interrupted (the CSV then holds the finished exams and a
``OUT.partial`` marker; rerun with ``--resume``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

NAME = "grade"
CAUTION_NOTES = {"no disc": " (no optic disc found: check the photo)",
                 "no colour": " (no colour: the graders were trained on colour photos)",
                 "out of focus": " (out of focus: check the disc outline)",
                 "disc uncertain": " (optic disc uncertain: check its outline)",
                 "centred photo": " (a crop centred on the disc: whole-photo graders never saw one)"}
"""The progress line's note per :func:`engine.pipeline.grade_caution` (the CSV's ``caution`` column; its message column
has the details)."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="grade exams into a CSV (GAMMA columns first) with optional Grad-CAM overlays",
        description="Grade glaucoma (non / early / mid_advanced) for every exam found in PATH... "
        "Writes the CSV atomically; progress goes to stderr. Research use only.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="exam folders, files, or folders of exams")
    p.add_argument("--csv", "--out", dest="csv", required=True, type=Path, metavar="OUT", help="CSV to write")
    p.add_argument("--cams", type=Path, metavar="DIR", help="write Grad-CAM overlay PNGs per exam and modality")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="exams graded in parallel (processes)")
    p.add_argument("--shard", metavar="I/N", help="grade only exams I, I+N, I+2N ... (0 <= I < N) of the sorted list")
    p.add_argument("--resume", action="store_true",
                   help="keep the ok rows of an existing OUT and grade the rest; rows graded with another disc "
                   "placement or hand outlines than this run gives are graded again (refused when they were graded "
                   "by other models, without a model this run adds, or with another site calibration)")
    p.add_argument("--anonymize", action="store_true",
                   help="replace exam ids by a salted hash (without --salt a random salt is made and printed once)")
    p.add_argument("--salt", help="secret salt for --anonymize (or env GV_ANON_SALT); needed with --resume")
    p.add_argument("--models", type=Path, metavar="FILE", help="ensemble file (.json/.toml) or one .pt grader")
    p.add_argument("--no-analyses", action="store_true", help="skip the disc/cup and OCT-layer analyses")
    p.add_argument("--site-calibration", type=Path, metavar="FILE",
                   help="a site's cup-outline calibration for the disc/cup biomarkers (engine.fundus.site_calibration)")
    p.add_argument("--photo-scale", type=float, metavar="UM_PER_PX",
                   help="micrometres per pixel of every fundus photo (one camera and resolution), typed in: disc "
                   "sizes in mm and one DDLS stage (CSV photo_scale; a file's own scale is replaced)")
    p.add_argument("--photo-scale-for", action="append", default=[], metavar="WxH=UM_PER_PX",
                   help="micrometres per pixel of every fundus photo of that size (W x H px, CSV photo_size: one "
                   "camera), typed in, for the photos without a scale of their own; repeat it for each camera")
    p.add_argument("--disc-positions", type=Path, metavar="CSV",
                   help="optic discs placed by hand: a CSV with columns exam,x,y (exam id, column and row in photo "
                   "px); those exams' disc analysis and disc crop go there, the others are found automatically")
    p.add_argument("--disc-corrections", type=Path, metavar="FILE",
                   help="discs placed and outlines drawn by hand in the viewer (its disc_corrections.json; matched by "
                   "the photo's pixels): those exams are graded with the disc placed there and measured on the "
                   "outlines drawn (the graders keep the automatic outline); --disc-positions wins for the exams "
                   "it names")
    p.add_argument("--eyes", type=Path, metavar="CSV",
                   help="which eye each exam shows: a CSV with columns exam,eye (OD/OS, right/left); it wins over "
                   "names, exam.json and the disc's side of the photo (CSV eye; nasal/temporal rims and the ISNT rule)")
    p.add_argument("--quiet", action="store_true", help="no per-exam progress lines")
    return p


def parse_shard(text: Optional[str]) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N; None -> (0, 1). Raises ValueError with a clear message."""
    if not text:
        return 0, 1
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ValueError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


# ------------------------------------------------------------------------------------------- discovery


def discover_sources(paths: Sequence[str]) -> tuple[list[Any], list[str], list[tuple[str, str]]]:
    """What ``engine.io.discover`` finds under ``paths``.

    Returns:
        (exam sources sorted by id, one line per skipped path, ``(exam id, reason)`` for each path named on
        the command line itself that is no readable exam: those become error rows).
    """
    from engine.io.discover import discover
    from engine.io.exam import exam_id_for

    found = discover([Path(p) for p in paths])
    given = {str(Path(p)) for p in paths} | {str(Path(p).resolve()) for p in paths if Path(p).exists()}
    skipped, errors = [], []
    for s in found.skipped:
        if str(Path(s.path)) in given:
            errors.append((exam_id_for(Path(s.path)) if Path(s.path).exists() else Path(s.path).stem or s.path,
                           f"{s.path}: {s.reason}"))
        else:
            skipped.append(f"{s.path}: {s.reason}")
    ordered = sorted(found.sources, key=lambda s: (s.exam_id, str(s.paths[0]) if s.paths else ""))
    return ordered, skipped, errors


def load_source(source: Any) -> Any:
    """Read the exam's pixels (raises ``engine.io.ExamLoadError`` with a one-line message for bad input)."""
    return source.load()


def read_disc_positions(path: Path) -> dict[str, tuple[float, float]]:
    """``exam,x,y`` rows (exam id, column and row in photo px) -> ``{exam id: (row, col)}``.

    Raises:
        ValueError: unreadable file, other columns, a repeated exam or a value that is no finite number (one line).
    """
    import csv
    import math

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if [c.strip() for c in reader.fieldnames or ()] != ["exam", "x", "y"]:
                raise ValueError(f"{path}: the columns must be exam,x,y (got {','.join(reader.fieldnames or ())})")
            out: dict[str, tuple[float, float]] = {}
            for n, row in enumerate(reader, start=2):
                exam = (row.get("exam") or "").strip()
                try:
                    x, y = float(row["x"]), float(row["y"])
                except (TypeError, ValueError):
                    raise ValueError(f"{path}, line {n}: x and y must be numbers") from None
                if not exam or not (math.isfinite(x) and math.isfinite(y)):
                    raise ValueError(f"{path}, line {n}: needs an exam id and finite x, y")
                if exam in out:
                    raise ValueError(f"{path}, line {n}: exam {exam} is listed twice")
                out[exam] = (y, x)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    return out


# --------------------------------------------------------------------------------------------- grading


@dataclass
class Outcome:
    """One exam's CSV row and what to say on stderr."""

    row: dict[str, str]
    line: str
    placed: bool = False  # graded with a disc placed by hand
    outlined: bool = False  # measured on outlines drawn by hand


def grade_one(
    source: Any,
    ensemble: Any,
    device: str,
    data_id: str,
    cams_dir: Optional[Path],
    analyses: bool,
    loader: Callable[[Any], Any] = load_source,
    calibration: Any = None,
    disc_at: Optional[tuple[float, float]] = None,
    disc_outlines: Any = None,
    corrections: Any = None,
    photo_spacing: Any = None,
    size_scales: Optional[Mapping[str, float]] = None,
    eye: Optional[str] = None,
) -> Outcome:
    """Load, grade and (optionally) draw one exam; every failure becomes an error row, never an exception.

    ``disc_at`` / ``disc_outlines``: the disc placed / outlines drawn by hand (:func:`engine.pipeline.grade`);
    ``corrections``: an :class:`engine.fundus.corrections.CorrectionStore` looked up by the photo's pixels when
    neither is given; ``photo_spacing``: an :class:`engine.io.exam.Spacing` typed in for the fundus photo;
    ``size_scales``: µm per px typed in for every photo of a size (``{"WxH": µm}``), used when ``photo_spacing`` is
    None for a photo without a scale of its own (:func:`engine.io.exam.scale_for_size`); ``eye``: ``"OD"`` /
    ``"OS"`` from a table (:func:`engine.io.eye_table.read_eye_table`), in place of the exam's own (else the eye
    set by hand in ``corrections``, which ``disc_correction`` then names).
    """
    from engine.io.errors import ExamLoadError
    from engine.pipeline import GradingError, grade, grade_caution
    from engine.results_csv import correction_label, error_row, eye_label, row_from_result

    t0 = time.perf_counter()
    try:
        exam = loader(source)
    except ExamLoadError as err:
        return Outcome(error_row(data_id, str(err)), f"error: {err}")
    except (OSError, ValueError, MemoryError) as err:
        where = source.folder or (source.paths[0] if source.paths else source.exam_id)
        return Outcome(error_row(data_id, f"{where}: {err}"), f"error: {where}: {err}")
    from engine.tasks import add_sibling_columns, needs_glaucoma_grader, sibling_only_row

    if not needs_glaucoma_grader(exam):  # brain MRI, dental X-ray: only the sibling tasks apply
        return Outcome(*sibling_only_row(exam, data_id, device, cams_dir))
    if photo_spacing is not None and exam.fundus is not None:
        exam.fundus_spacing = photo_spacing
    elif size_scales and exam.fundus is not None:
        from engine.io.exam import scale_for_size

        exam.fundus_spacing = scale_for_size(exam.fundus, exam.fundus_spacing, size_scales)
    eye_set = None  # the eye set by hand in the viewer, when the table gives none
    if corrections is not None and exam.fundus is not None:
        from engine.fundus.corrections import photo_sha256

        sha = photo_sha256(exam.fundus)
        if disc_at is None and disc_outlines is None:
            disc_at, disc_outlines = corrections.get(sha)
        eye_set = corrections.eye(sha) if eye is None else None
    if eye or eye_set:
        exam.eye = eye or eye_set
    try:
        result = grade(exam, ensemble, device=device, cams=cams_dir is not None, analyses=analyses,
                       disc_calibration=calibration, disc_at=disc_at, disc_outlines=disc_outlines)
    except GradingError as err:
        return Outcome(error_row(data_id, str(err)), f"error: {err}")
    except Exception as err:  # one exam's failure must not stop the batch
        msg = f"grading failed ({type(err).__name__}: {err})"
        return Outcome(error_row(data_id, msg), f"error: {msg}")
    row = add_sibling_columns(row_from_result(result, data_id), exam, device, result.biomarkers, cams_dir)
    row["disc_correction"] = correction_label(disc_at, disc_outlines, eye_set)
    row["eye"] = eye_label(exam.eye, result.disc)
    if exam.fundus is not None:
        from engine.io.exam import photo_size

        row["photo_size"] = photo_size(exam.fundus)
    if cams_dir is not None and result.cams:
        from engine.overlays import write_cam_overlays

        try:
            write_cam_overlays(exam, result.cams, cams_dir, _safe_stem(data_id))
        except OSError as err:
            row["message"] = "; ".join(x for x in (row["message"], f"CAM overlay not written: {err}") if x)
    p = max(result.probabilities)
    caution = CAUTION_NOTES.get(grade_caution(result), "")
    return Outcome(row, f"ok {result.grade_name} (p={p:.2f}){caution} in {time.perf_counter() - t0:.1f}s",
                   placed=disc_at is not None, outlined=bool(getattr(result.disc, "hand_outlined", ())))


def changed_corrections(rows: Sequence[dict[str, str]], jobs: Sequence[tuple[str, Any]],
                        positions: dict[str, tuple[float, float]], corrections: Any,
                        eyes: Optional[Mapping[str, str]] = None) -> set[str]:
    """Data ids of the earlier ``ok`` rows, among ``jobs`` (data id, exam source), whose exam this run grades
    with another hand correction than the row's ``disc_correction`` says (a placement in ``positions``, else a
    record of the :class:`engine.fundus.corrections.CorrectionStore` ``corrections``, else none): ``--resume``
    grades them again. The eye set by hand in ``corrections`` counts too, unless the table ``eyes`` (exam id ->
    eye) names the exam. With ``corrections``, the photo of each such row that measured, placed or corrected a disc
    is read (its records are keyed by pixels; an OCT volume beside it is not); one that cannot be read is graded
    again (to an error row)."""
    from engine.fundus.corrections import photo_sha256
    from engine.io.errors import ExamLoadError
    from engine.results_csv import correction_label

    sources = dict(jobs)
    changed = set()
    for row in rows:
        source = sources.get(row["data"])
        if source is None or row.get("status") != "ok":
            continue
        placed = positions.get(source.exam_id)
        stored_at, outlines, eye = None, None, None
        if corrections is not None and (row.get("vcdr") or row.get("disc_source") or row.get("disc_correction")):
            try:
                fundus = source.load_photo()
            except (ExamLoadError, OSError, ValueError, MemoryError):  # grading it again writes the error row
                changed.add(row["data"])
                continue
            if fundus is not None:
                sha = photo_sha256(fundus)
                stored_at, outlines = corrections.get(sha)
                eye = None if source.exam_id in (eyes or {}) else corrections.eye(sha)
        now = correction_label(placed, None, eye) if placed is not None else correction_label(stored_at, outlines, eye)
        if now != row.get("disc_correction", ""):
            changed.add(row["data"])
    return changed


def _safe_stem(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "exam"


_WORKER: dict[str, Any] = {}


def _worker_init(models: Optional[str], device: str, threads: int, calibration: Any, corrections: Any,
                 photo_spacing: Any, size_scales: Mapping[str, float]) -> None:
    import torch

    from engine.pipeline import load_models

    torch.set_num_threads(max(1, threads))
    _WORKER.update(ensemble=load_models(models, device), device=device, calibration=calibration,
                   corrections=corrections, photo_spacing=photo_spacing, size_scales=size_scales)


def _worker_grade(source: Any, data_id: str, cams_dir: Optional[str], analyses: bool,
                  disc_at: Optional[tuple[float, float]], eye: Optional[str]) -> Outcome:
    return grade_one(source, _WORKER["ensemble"], _WORKER["device"], data_id, Path(cams_dir) if cams_dir else None,
                     analyses, calibration=_WORKER["calibration"], disc_at=disc_at,
                     corrections=_WORKER["corrections"], photo_spacing=_WORKER["photo_spacing"],
                     size_scales=_WORKER["size_scales"], eye=eye)


def run(args: argparse.Namespace) -> int:
    from engine.models.checkpoint import CheckpointError
    from engine.models.ensemble import EnsembleError
    from engine.pipeline import GradingError, load_models, resolve_device
    from engine.results_csv import (
        ResultsCsvError,
        anonymize_id,
        calibration_conflict,
        calibration_label,
        caution_counts,
        clear_partial,
        counts_text,
        done_ids,
        grader_conflict,
        mark_partial,
        read_csv,
        scale_changed,
        write_csv,
    )

    def err(msg: str) -> None:
        print(f"grade: {msg}", file=sys.stderr)

    try:
        shard_i, shard_n = parse_shard(args.shard)
    except ValueError as e:
        err(str(e))
        return 2
    if args.jobs < 1:
        err("--jobs must be at least 1")
        return 2
    salt = args.salt or os.environ.get("GV_ANON_SALT", "")
    if args.anonymize and not salt:
        if args.resume:
            err("--resume --anonymize needs the salt of the first run: pass --salt S (or set GV_ANON_SALT)")
            return 2
        import secrets

        salt = secrets.token_hex(16)
        print(f"anonymize salt: {salt} (keep it to link ids later, and to --resume)", file=sys.stderr)
    try:
        device = resolve_device(args.device)
    except GradingError as e:
        err(str(e))
        return 2
    calibration = None
    if args.site_calibration:
        from engine.fundus.segmenter import load_segmenter
        from engine.fundus.site_calibration import CalibrationError, check_weights, load_calibration

        try:
            calibration = load_calibration(args.site_calibration)
            check_weights(calibration, load_segmenter().sha256)  # the segmenter every exam's analysis uses
        except CalibrationError as e:
            err(str(e))
            return 2

    from engine.fundus.corrections import read_corrections
    from engine.io.exam import parse_size_scales, typed_photo_spacing
    from engine.io.eye_table import left_alone_note, read_eye_table

    try:
        positions = read_disc_positions(args.disc_positions) if args.disc_positions else {}
        corrections = read_corrections(args.disc_corrections) if args.disc_corrections else None
        photo_spacing = None if args.photo_scale is None else typed_photo_spacing(args.photo_scale)
        size_scales = parse_size_scales(args.photo_scale_for)
        eyes = read_eye_table(args.eyes) if args.eyes else {}
        if photo_spacing is not None and size_scales:
            raise ValueError("give --photo-scale (every photo) or --photo-scale-for (per photo size), not both")
    except ValueError as e:
        err(str(e))
        return 2

    sources, skipped, given_errors = discover_sources(args.paths)
    for note in skipped:
        err(f"skipped {note}")
    for table, named in ((args.disc_positions, positions), (args.eyes, eyes)):
        note = left_alone_note(table, named, (s.exam_id for s in sources), "the exams found")
        if note:
            err(note)
    sources = sources[shard_i::shard_n]
    given_errors = given_errors[shard_i::shard_n]

    def data_id(exam_id: str) -> str:
        return anonymize_id(exam_id, salt) if args.anonymize else exam_id

    jobs = [(data_id(s.exam_id), s) for s in sources]

    previous: list[dict[str, str]] = []
    if args.resume and args.csv.exists():
        try:
            previous = [r for r in read_csv(args.csv) if r.get("status") == "ok"]
        except (ResultsCsvError, OSError, UnicodeDecodeError) as e:
            err(f"cannot resume: {e}")
            return 2
        conflict = calibration_conflict(previous, calibration_label(calibration))
        if conflict:
            err(f"cannot resume {args.csv}: {conflict} (give the same --site-calibration, or grade into a new CSV)")
            return 2
        exam_of = {d: s.exam_id for d, s in jobs}
        rescaled = scale_changed(previous, photo_spacing, size_scales)
        other_eye = {r["data"] for r in previous
                     if exam_of.get(r["data"]) in eyes and r.get("eye") != eyes[exam_of[r["data"]]]} - rescaled
        for redo, why in ((rescaled, "photo another scale than their rows' photo_scale"),
                          (other_eye, "exam another eye than their rows' eye")):
            if redo:
                previous = [r for r in previous if r["data"] not in redo]
                if not args.quiet:
                    err(f"{len(redo)} exam(s) graded again: this run gives their {why}")
        changed = changed_corrections(previous, jobs, positions, corrections, eyes)
        if changed:
            previous = [r for r in previous if r["data"] not in changed]
            if not args.quiet:
                err(f"{len(changed)} exam(s) graded again: the disc placed or outlines drawn by hand differ from "
                    "their rows'")
    finished = done_ids(previous)
    todo = [(d, s) for d, s in jobs if d not in finished]
    if not sources and not previous and not given_errors:
        err("no exams found in " + ", ".join(args.paths))
        write_csv(args.csv, [])
        return 1

    try:  # with --jobs N the workers load their own; the parent's copy fails fast on bad or tampered weights
        loaded = load_models(args.models, device if args.jobs == 1 else "cpu")
    except (GradingError, CheckpointError, EnsembleError) as e:
        err(str(e))
        return 2
    conflict = grader_conflict(previous, {g.name: g.sha256 for g in loaded.members},
                               {g.name: (g.required_modalities, g.extra_features) for g in loaded.members})
    if conflict:
        err(f"cannot resume {args.csv}: {conflict} (give the same --models, or grade into a new CSV)")
        return 2
    ensemble = loaded if args.jobs == 1 else None

    from engine.results_csv import error_row

    rows: dict[str, dict[str, str]] = {r["data"]: r for r in previous}
    for name, reason in given_errors:  # a path named on the command line that is no readable exam
        rows[data_id(name)] = error_row(data_id(name), reason)
    order = [d for d, _ in jobs] + [data_id(n) for n, _ in given_errors]
    order += [d for d in rows if d not in set(order)]
    if args.cams:
        args.cams.mkdir(parents=True, exist_ok=True)
    mark_partial(args.csv, {"total": len(sources), "done": len(finished), "reason": "running"})
    last_write = 0.0

    def flush(final: bool = False) -> None:
        nonlocal last_write
        now = time.monotonic()
        if final or now - last_write > 2.0:
            write_csv(args.csv, [rows[d] for d in order if d in rows])
            last_write = now

    if not args.quiet and finished:
        err(f"resuming: {len(finished)} exam(s) already graded, {len(todo)} to go")
    n_total = len(todo)
    try:
        outcomes = _run_all(args, todo, ensemble, device, calibration, positions, corrections, photo_spacing,
                            size_scales, eyes)
        corrected, exam_ids = 0, {d: s.exam_id for d, s in todo}
        for k, (did, outcome) in enumerate(outcomes, 1):
            rows[did] = outcome.row
            corrected += outcome.outlined or (outcome.placed and exam_ids[did] not in positions)  # from the file
            flush()
            if not args.quiet:
                err(f"[{k}/{n_total}] {did}: {outcome.line}")
    except KeyboardInterrupt:
        flush(final=True)
        mark_partial(args.csv, {"total": len(sources), "done": sum(1 for d in order if d in rows),
                                "reason": "interrupted"})
        err(f"interrupted: {args.csv} holds the exams finished so far; rerun with --resume to continue")
        return 130
    flush(final=True)
    clear_partial(args.csv)
    final_rows = [rows[d] for d in order if d in rows]
    n_err = sum(1 for r in final_rows if r["status"] != "ok")
    for size in sorted(set(size_scales) - {r.get("photo_size") for r in final_rows}):
        err(f"note: --photo-scale-for {size}: no photo of that size among the exams")
    if not args.quiet:
        cautions = caution_counts(final_rows)
        said = f"; with a caution: {counts_text(cautions)}" if cautions else ""
        err(f"wrote {args.csv}: {len(final_rows) - n_err} ok, {n_err} error(s){said}")
        if corrections is not None:
            err(f"{corrected} exam(s) graded with the disc placed or outlines drawn by hand in "
                f"{args.disc_corrections} ({len(corrections)} photo(s) there)")
    return 1 if n_err else 0


def _run_all(args: argparse.Namespace, todo: list[tuple[str, Any]], ensemble: Any, device: str,
             calibration: Any = None, positions: Optional[dict[str, tuple[float, float]]] = None,
             corrections: Any = None, photo_spacing: Any = None,
             size_scales: Optional[Mapping[str, float]] = None, eyes: Optional[Mapping[str, str]] = None) -> Any:
    """Yield ``(data id, Outcome)`` in input order, in this process or in ``--jobs`` worker processes
    (``positions``: exam id -> (row, col) px of a disc placed by hand; ``corrections``: a
    :class:`engine.fundus.corrections.CorrectionStore` for the others; ``photo_spacing``: a typed-in scale;
    ``size_scales``: µm per px typed in per photo size, see :func:`grade_one`; ``eyes``: exam id -> eye from a
    table)."""
    size_scales, eyes = dict(size_scales or {}), dict(eyes or {})
    positions = positions or {}
    cams_dir = args.cams
    analyses = not args.no_analyses
    if args.jobs == 1 or len(todo) <= 1:
        if ensemble is None:
            from engine.pipeline import load_models

            ensemble = load_models(args.models, device)
        for did, s in todo:
            yield did, grade_one(s, ensemble, device, did, cams_dir, analyses, calibration=calibration,
                                 disc_at=positions.get(s.exam_id), corrections=corrections,
                                 photo_spacing=photo_spacing, size_scales=size_scales, eye=eyes.get(s.exam_id))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 2) // args.jobs)
    models = str(args.models) if args.models else None
    with ProcessPoolExecutor(
        max_workers=args.jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
        initargs=(models, device, threads, calibration, corrections, photo_spacing, size_scales),
    ) as pool:
        cams = str(cams_dir) if cams_dir else None
        futures = [(did, pool.submit(_worker_grade, s, did, cams, analyses, positions.get(s.exam_id),
                                     eyes.get(s.exam_id))) for did, s in todo]
        for did, f in futures:
            yield did, f.result()
