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
from typing import Any, Callable, Optional, Sequence

NAME = "grade"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="grade exams into a CSV (GAMMA columns first) with optional Grad-CAM overlays",
        description="Grade glaucoma (non / early / mid_advanced) for every exam found in PATH... "
        "Writes the CSV atomically; progress goes to stderr. Research use only.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="exam folders, files, or folders of exams")
    p.add_argument("--csv", required=True, type=Path, metavar="OUT", help="CSV to write")
    p.add_argument("--cams", type=Path, metavar="DIR", help="write Grad-CAM overlay PNGs per exam and modality")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="exams graded in parallel (processes)")
    p.add_argument("--shard", metavar="I/N", help="grade only exams I, I+N, I+2N ... (0 <= I < N) of the sorted list")
    p.add_argument("--resume", action="store_true", help="keep the ok rows of an existing OUT and grade the rest")
    p.add_argument("--anonymize", action="store_true", help="replace exam ids by a salted hash (needs --salt)")
    p.add_argument("--salt", help="secret salt for --anonymize (or env GV_ANON_SALT)")
    p.add_argument("--models", type=Path, metavar="FILE", help="ensemble file (.json/.toml) or one .pt grader")
    p.add_argument("--no-analyses", action="store_true", help="skip the disc/cup and OCT-layer analyses")
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


@dataclass(frozen=True)
class ExamSource:
    """One exam to grade: its id and where it is (picklable, for worker processes)."""

    exam_id: str
    path: str


def discover_sources(paths: Sequence[str]) -> tuple[list[ExamSource], list[str]]:
    """Exams found under ``paths`` (sorted by id) and one message per path that held no exam."""
    try:
        from engine.io.discover import discover
    except ImportError:
        sources, skipped = _simple_discover(paths)
    else:
        found = discover([Path(p) for p in paths])
        sources = [ExamSource(str(e.exam_id), str(e.path)) for e in found.exams]
        skipped = [str(s) for s in found.skipped]
    return sorted(sources, key=lambda s: (s.exam_id, s.path)), skipped


def load_source(source: ExamSource) -> Any:
    """Load the exam (raises ``engine.io.ExamLoadError`` with a one-line message for bad input)."""
    try:
        from engine.io.discover import load_exam
    except ImportError:
        return _simple_load(Path(source.path))
    return load_exam(Path(source.path))


_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def _simple_discover(paths: Sequence[str]) -> tuple[list[ExamSource], list[str]]:
    """Minimal GAMMA-layout discovery used only while ``engine.io.discover`` is not installed.

    An exam is an image file, or a folder holding a fundus image and/or a sub-folder of B-scan images;
    a folder whose children are exams is a cohort.
    """
    sources: list[ExamSource] = []
    skipped: list[str] = []

    def is_exam_dir(d: Path) -> bool:
        return any(f.suffix.lower() in _IMAGE_EXT for f in d.iterdir() if f.is_file()) or any(
            sub.is_dir() and any(f.suffix.lower() in _IMAGE_EXT for f in sub.iterdir()) for sub in d.iterdir()
        )

    for text in paths:
        path = Path(text)
        if not path.exists():
            sources.append(ExamSource(path.stem or str(path), str(path)))  # becomes a clear error row
        elif path.is_file():
            sources.append(ExamSource(path.stem, str(path)))
        else:
            children = [c for c in sorted(path.iterdir()) if c.is_dir() and not c.name.startswith(".")]
            files = [f for f in path.iterdir() if f.is_file() and f.suffix.lower() in _IMAGE_EXT]
            if children and not files and all(is_exam_dir(c) for c in children):
                sources += [ExamSource(c.name, str(c)) for c in children]
            elif is_exam_dir(path):
                sources.append(ExamSource(path.name, str(path)))
            else:
                skipped.append(f"{path}: no exam found")
    return sources, skipped


def _read_image(path: Path, grey: bool) -> Any:
    import cv2
    import numpy as np

    from engine.io.errors import CorruptFileError

    data = np.fromfile(str(path), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise CorruptFileError("not a readable image", path)
    return image if grey else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _simple_load(path: Path) -> Any:
    import re

    import numpy as np

    from engine.io.errors import InconsistentVolumeError, NotFoundError
    from engine.io.exam import Exam

    if not path.exists():
        raise NotFoundError("no such file or folder", path)
    if path.is_file():
        return Exam(exam_id=path.stem, fundus=_read_image(path, grey=False))
    images = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in _IMAGE_EXT)
    fundus = _read_image(images[0], grey=False) if images else None
    volume = None
    subs = [d for d in sorted(path.iterdir()) if d.is_dir()]
    if subs:
        def order(f: Path) -> tuple:
            m = re.match(r"(\d+)", f.stem)
            return (int(m.group(1)) if m else 1 << 30, f.name)

        scans = sorted((f for f in subs[0].iterdir() if f.suffix.lower() in _IMAGE_EXT), key=order)
        if scans:
            slices = [_read_image(f, grey=True) for f in scans]
            if len({s.shape for s in slices}) != 1:
                raise InconsistentVolumeError("B-scans differ in size", subs[0])
            volume = np.stack(slices)
    return Exam(exam_id=path.name, fundus=fundus, oct=volume)


# --------------------------------------------------------------------------------------------- grading


@dataclass
class Outcome:
    """One exam's CSV row and what to say on stderr."""

    row: dict[str, str]
    line: str


def grade_one(
    source: ExamSource,
    ensemble: Any,
    device: str,
    data_id: str,
    cams_dir: Optional[Path],
    analyses: bool,
    loader: Callable[[ExamSource], Any] = load_source,
) -> Outcome:
    """Load, grade and (optionally) draw one exam; every failure becomes an error row, never an exception."""
    from engine.io.errors import ExamLoadError
    from engine.pipeline import GradingError, grade
    from engine.results_csv import error_row, row_from_result

    t0 = time.perf_counter()
    try:
        exam = loader(source)
    except ExamLoadError as err:
        return Outcome(error_row(data_id, str(err)), f"error: {err}")
    except (OSError, ValueError, MemoryError) as err:
        return Outcome(error_row(data_id, f"{source.path}: {err}"), f"error: {source.path}: {err}")
    try:
        result = grade(exam, ensemble, device=device, cams=cams_dir is not None, analyses=analyses)
    except GradingError as err:
        return Outcome(error_row(data_id, str(err)), f"error: {err}")
    except Exception as err:  # one exam's failure must not stop the batch
        msg = f"grading failed ({type(err).__name__}: {err})"
        return Outcome(error_row(data_id, msg), f"error: {msg}")
    row = row_from_result(result, data_id)
    if cams_dir is not None and result.cams:
        from engine.overlays import write_cam_overlays

        try:
            write_cam_overlays(exam, result.cams, cams_dir, _safe_stem(data_id))
        except OSError as err:
            row["message"] = "; ".join(x for x in (row["message"], f"CAM overlay not written: {err}") if x)
    p = max(result.probabilities)
    return Outcome(row, f"ok {result.grade_name} (p={p:.2f}) in {time.perf_counter() - t0:.1f}s")


def _safe_stem(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "exam"


_WORKER: dict[str, Any] = {}


def _worker_init(models: Optional[str], device: str, threads: int) -> None:
    import torch

    from engine.pipeline import load_models

    torch.set_num_threads(max(1, threads))
    _WORKER.update(ensemble=load_models(models, device), device=device)


def _worker_grade(source: ExamSource, data_id: str, cams_dir: Optional[str], analyses: bool) -> Outcome:
    return grade_one(
        source, _WORKER["ensemble"], _WORKER["device"], data_id, Path(cams_dir) if cams_dir else None, analyses
    )


def run(args: argparse.Namespace) -> int:
    from engine.models.checkpoint import CheckpointError
    from engine.models.ensemble import EnsembleError
    from engine.pipeline import GradingError, load_models, resolve_device
    from engine.results_csv import (
        ResultsCsvError,
        anonymize_id,
        clear_partial,
        done_ids,
        mark_partial,
        read_csv,
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
        err("--anonymize needs --salt S (or GV_ANON_SALT)")
        return 2
    try:
        device = resolve_device(args.device)
    except GradingError as e:
        err(str(e))
        return 2

    sources, skipped = discover_sources(args.paths)
    for note in skipped:
        err(f"skipped {note}")
    sources = sources[shard_i::shard_n]
    ids = {s: (anonymize_id(s.exam_id, salt) if args.anonymize else s.exam_id) for s in sources}

    previous: list[dict[str, str]] = []
    if args.resume and args.csv.exists():
        try:
            previous = [r for r in read_csv(args.csv) if r.get("status") == "ok"]
        except (ResultsCsvError, OSError, UnicodeDecodeError) as e:
            err(f"cannot resume: {e}")
            return 2
    finished = done_ids(previous)
    todo = [s for s in sources if ids[s] not in finished]
    if not sources and not previous:
        err("no exams found in " + ", ".join(args.paths))
        write_csv(args.csv, [])
        return 1

    try:
        ensemble = load_models(args.models, device) if args.jobs == 1 else None
        if ensemble is None:
            load_models(args.models, "cpu")  # fail fast in the parent on bad or tampered weights
    except (GradingError, CheckpointError, EnsembleError) as e:
        err(str(e))
        return 2

    rows: dict[str, dict[str, str]] = {r["data"]: r for r in previous}
    order = [ids[s] for s in sources] + [d for d in rows if d not in {ids[s] for s in sources}]
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
        outcomes = _run_all(args, todo, ids, ensemble, device)
        for k, (source, outcome) in enumerate(outcomes, 1):
            rows[ids[source]] = outcome.row
            flush()
            if not args.quiet:
                err(f"[{k}/{n_total}] {ids[source]}: {outcome.line}")
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
    if not args.quiet:
        err(f"wrote {args.csv}: {len(final_rows) - n_err} ok, {n_err} error(s)")
    return 1 if n_err else 0


def _run_all(args: argparse.Namespace, todo: list[ExamSource], ids: dict, ensemble: Any, device: str) -> Any:
    """Yield ``(source, Outcome)`` in input order, in this process or in ``--jobs`` worker processes."""
    cams_dir = args.cams
    analyses = not args.no_analyses
    if args.jobs == 1 or len(todo) <= 1:
        if ensemble is None:
            from engine.pipeline import load_models

            ensemble = load_models(args.models, device)
        for s in todo:
            yield s, grade_one(s, ensemble, device, ids[s], cams_dir, analyses)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 2) // args.jobs)
    models = str(args.models) if args.models else None
    with ProcessPoolExecutor(
        max_workers=args.jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
        initargs=(models, device, threads),
    ) as pool:
        futures = [pool.submit(_worker_grade, s, ids[s], str(cams_dir) if cams_dir else None, analyses) for s in todo]
        for s, f in zip(todo, futures):
            yield s, f.result()
