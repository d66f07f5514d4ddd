"""The only bridge between the window and ``engine``: everything slow runs here, off the UI thread.

Two ways to run work, and no others (napari's ``_qt/qthreading.py`` and ``_layer_slicer.py`` patterns):

- :class:`Worker` runs **one-shot jobs** (discover, load, grade, batch export, report data) on a
  ``QThreadPool``. A job is a plain function ``fn(*args, progress=..., cancel=..., **kwargs)`` that returns a
  plain result object; it reaches the UI thread through the ``finished`` / ``failed`` / ``progress`` signals of
  its :class:`JobHandle`. ``engine.progress.CancelToken`` cancels it cooperatively.
- :class:`LatestOnlyExecutor` runs **scroll-driven work** (the overlays of the current slice): an immutable
  request on a one-thread pool; a new request supersedes the pending one and cancels the running one; only the
  response to the newest request is delivered.

Only the UI thread touches widgets: jobs never receive a widget, and their signals are delivered on the UI
thread (queued connections to a ``QObject`` that lives there). ``synchronous=True`` runs every job inline, for
tests that want determinism without an event loop.

Heavy modules (torch, MONAI, the pipeline) are imported inside the job functions, never at module level.
"""

from __future__ import annotations

import re
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np
from PySide6 import QtCore

from engine.progress import Cancelled, CancelToken
from glaucoma_viewer.process_runner import RemoteError

if TYPE_CHECKING:  # pragma: no cover
    from glaucoma_viewer.state import AnalysisView, DiscoverResult, LoadedExam


@dataclass(frozen=True)
class JobFailure:
    """Why a job did not return a result.

    Attributes:
        message: one line fit for a status bar or a list row (no traceback).
        detail: the full traceback text for "Details…", empty for expected errors and cancels.
        cancelled: True when the job stopped because its token was cancelled.
    """

    message: str
    detail: str = ""
    cancelled: bool = False


def user_message(exc: BaseException) -> str:
    """A one-line message for ``exc``: engine errors already read well; others get their type name."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, RemoteError):
        return text or "the analysis process failed"
    expected = _expected_error_types()
    if isinstance(exc, expected):
        return text or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "not enough memory for this exam"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _expected_error_types() -> tuple[type, ...]:
    """Error types whose message is written for users (no traceback needed)."""
    from engine.fundus.corrections import CorrectionsFileError
    from engine.fundus.hand_outline import OutlineError
    from engine.io.errors import ExamLoadError
    from engine.models.checkpoint import CheckpointError

    return (ExamLoadError, CheckpointError, OutlineError, CorrectionsFileError, FileNotFoundError, PermissionError)


class JobSignals(QtCore.QObject):
    """Lives on the UI thread; emitted from the pool thread, so every connection is queued."""

    finished = QtCore.Signal(object)
    failed = QtCore.Signal(object)
    progress = QtCore.Signal(float, str)


class JobHandle:
    """What ``Worker.submit`` returns: the job's signals, its cancel token and its state."""

    def __init__(self, name: str, signals: JobSignals, token: CancelToken) -> None:
        self.name = name
        self.signals = signals
        self.token = token
        self.state = "queued"  # queued -> running -> finished | failed | cancelled
        self.result: Any = None
        self.failure: Optional[JobFailure] = None
        self.started_at: Optional[float] = None
        self.ended_at: Optional[float] = None

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def is_active(self) -> bool:
        return self.state in ("queued", "running")

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<JobHandle {self.name!r} {self.state}>"


UI_SWITCH_INTERVAL = 0.001
"""GIL switch interval (s) while the viewer runs: a pool thread running Python hands the GIL to the UI
thread within ~1 ms instead of CPython's default 5 ms."""


def favour_ui_thread(interval: Optional[float] = None) -> None:
    """Make the UI thread win the GIL quickly from pool threads (``sys.setswitchinterval``)."""
    import sys

    sys.setswitchinterval(UI_SWITCH_INTERVAL if interval is None else interval)


_THREAD_STATE = threading.local()
WORKER_NICE = 5
"""How much lower than the UI thread a pool thread is scheduled (Linux per-thread nice): on a busy machine
the UI thread gets the CPU, and with it the GIL, first."""


def _background_priority() -> None:
    """Lower this pool thread's scheduling priority once (Linux; a no-op where per-thread nice is absent)."""
    if getattr(_THREAD_STATE, "niced", False):
        return
    _THREAD_STATE.niced = True
    try:
        import os

        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICE))
    except (AttributeError, OSError):  # not Linux, or not permitted: keep the default priority
        pass


class _Runnable(QtCore.QRunnable):
    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, handle: JobHandle, min_interval: float):
        super().__init__()
        self.setAutoDelete(True)
        self._fn, self._args, self._kwargs, self._handle = fn, args, kwargs, handle
        self._min_interval = min_interval
        self._last_progress = 0.0
        self._last_message = ""

    def _progress(self, fraction: float, message: str) -> None:
        # Rate-limit repeats so a chatty engine function cannot flood the UI thread's event queue; a new
        # message (a new stage, "exam k of N") always goes through.
        now = time.perf_counter()
        if fraction < 1.0 and message == self._last_message and now - self._last_progress < self._min_interval:
            return
        self._last_progress, self._last_message = now, message
        self._handle.signals.progress.emit(float(fraction), str(message))

    def run(self) -> None:
        _background_priority()
        handle = self._handle
        handle.started_at = time.perf_counter()
        if handle.token.cancelled:
            handle.failure = JobFailure("cancelled", cancelled=True)
            handle.state = "cancelled"
        else:
            handle.state = "running"
            try:
                handle.result = self._fn(*self._args, progress=self._progress, cancel=handle.token, **self._kwargs)
                handle.state = "finished"
            except Cancelled:
                handle.failure = JobFailure("cancelled", cancelled=True)
                handle.state = "cancelled"
            except BaseException as exc:  # noqa: BLE001 - a job never takes the app down
                expected = isinstance(exc, _expected_error_types()) or getattr(exc, "expected", False)
                detail = getattr(exc, "detail", "") or ("" if expected else traceback.format_exc())
                handle.failure = JobFailure(user_message(exc), detail)
                handle.state = "failed"
        handle.ended_at = time.perf_counter()
        # Drop references to inputs before signalling, so big arrays are freed as soon as the UI is done.
        self._fn = self._args = self._kwargs = None  # type: ignore[assignment]
        if handle.state == "finished":
            handle.signals.finished.emit(handle.result)
        else:
            handle.signals.failed.emit(handle.failure)


class Worker(QtCore.QObject):
    """One-shot jobs on a thread pool, with finished / failed / progress signals.

    Args:
        max_threads: threads of the pool (2: one exam can load while another grades).
        synchronous: run each job inline inside ``submit`` (tests).
    """

    active_changed = QtCore.Signal(int)  # number of queued + running jobs

    def __init__(self, parent: Optional[QtCore.QObject] = None, max_threads: int = 2, synchronous: bool = False):
        super().__init__(parent)
        self.synchronous = synchronous
        self._pool = QtCore.QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, max_threads))
        self._pool.setExpiryTimeout(2000)  # idle threads end soon: nothing lingers at exit
        self._handles: list[JobHandle] = []
        self._lock = threading.Lock()

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str = "",
        on_finished: Optional[Callable[[Any], None]] = None,
        on_failed: Optional[Callable[[JobFailure], None]] = None,
        on_progress: Optional[Callable[[float, str], None]] = None,
        token: Optional[CancelToken] = None,
        priority: int = 0,
        progress_interval: float = 0.05,
        **kwargs: Any,
    ) -> JobHandle:
        """Run ``fn(*args, progress=cb, cancel=token, **kwargs)`` off the UI thread; return its handle."""
        signals = JobSignals()
        handle = JobHandle(name or getattr(fn, "__name__", "job"), signals, token or CancelToken())
        # One closure per outcome: the user's callback runs first, then the job stops counting as active,
        # so "nothing active" always means "every result was delivered".
        def finished(result: Any, h: JobHandle = handle) -> None:
            try:
                if on_finished is not None:
                    on_finished(result)
            finally:
                self._forget(h)

        def failed(failure: JobFailure, h: JobHandle = handle) -> None:
            try:
                if on_failed is not None:
                    on_failed(failure)
            finally:
                self._forget(h)

        signals.finished.connect(finished)
        signals.failed.connect(failed)
        if on_progress is not None:
            signals.progress.connect(on_progress)
        with self._lock:
            self._handles.append(handle)
        self.active_changed.emit(self.active_count)
        runnable = _Runnable(fn, args, kwargs, handle, 0.0 if self.synchronous else progress_interval)
        if self.synchronous:
            runnable.run()
        else:
            self._pool.start(runnable, priority)
        return handle

    def _forget(self, handle: JobHandle) -> None:
        with self._lock:
            if handle in self._handles:
                self._handles.remove(handle)
        self.active_changed.emit(self.active_count)

    @property
    def active_count(self) -> int:
        """Jobs queued, running, or finished but not yet delivered to the UI thread."""
        with self._lock:
            return len(self._handles)

    def handles(self) -> list[JobHandle]:
        with self._lock:
            return list(self._handles)

    def cancel_all(self) -> None:
        for handle in self.handles():
            handle.cancel()

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel everything, drop queued jobs, wait for running ones; True when the pool is empty."""
        self.cancel_all()
        self._pool.clear()
        ok = self._pool.waitForDone(timeout_ms)
        return bool(ok)

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until the pool is idle (tests, screenshot mode); signals are still delivered afterwards."""
        return bool(self._pool.waitForDone(timeout_ms))

    def thread_count(self) -> int:
        return self._pool.activeThreadCount()


@dataclass(frozen=True)
class SliceRequest:
    """An immutable description of scroll-driven work: what to compute for which slice.

    ``key`` identifies the data (for example the exam id and overlay kind); ``index`` is the slice.
    """

    key: Any
    index: int


class LatestOnlyExecutor(QtCore.QObject):
    """Scroll-driven work on one thread: the newest request wins, older ones are dropped or cancelled.

    ``request(req, fn, on_done)`` runs ``fn(req, cancel)`` on the executor thread and calls ``on_done(req,
    result)`` on the UI thread, but only if no newer request arrived meanwhile. A request made while another
    waits replaces it; a request made while another runs cancels the running one's token.
    """

    _delivered = QtCore.Signal(object, object, object)  # (generation, request, result)

    def __init__(self, parent: Optional[QtCore.QObject] = None, synchronous: bool = False):
        super().__init__(parent)
        self.synchronous = synchronous
        self._pool = QtCore.QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._pool.setExpiryTimeout(2000)
        self._generation = 0
        self._token: Optional[CancelToken] = None
        self._callbacks: dict[int, Callable[[Any, Any], None]] = {}
        self._delivered.connect(self._deliver)
        self.dropped = 0  # superseded requests, for tests and benchmarks

    def request(self, req: SliceRequest, fn: Callable[[Any, CancelToken], Any], on_done: Callable[[Any, Any], None]):
        if self._token is not None:
            self._token.cancel()
        self._generation += 1
        generation = self._generation
        token = self._token = CancelToken()
        self._callbacks = {generation: on_done}

        def run() -> None:
            if generation != self._generation or token.cancelled:
                self.dropped += 1
                return
            try:
                result = fn(req, token)
            except Cancelled:
                self.dropped += 1
                return
            except Exception as exc:  # noqa: BLE001 - an overlay failure must not take the view down
                result = JobFailure(user_message(exc), traceback.format_exc())
            self._delivered.emit(generation, req, result)

        if self.synchronous:
            run()
        else:
            self._pool.start(run)

    def _deliver(self, generation: int, req: Any, result: Any) -> None:
        callback = self._callbacks.get(generation)
        if generation != self._generation or callback is None:
            self.dropped += 1
            return
        callback(req, result)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        if self._token is not None:
            self._token.cancel()
        self._generation += 1
        self._pool.clear()
        return bool(self._pool.waitForDone(timeout_ms))


# =================================================================================================== jobs
# Plain functions run by ``Worker.submit``: engine in, plain result objects (glaucoma_viewer.state) out.
# Heavy imports (the pipeline pulls in torch and MONAI) happen inside them, on the pool thread.

MAX_DISPLAY = 2048
"""Longest side (px) of the photo as drawn; larger photos are shown downsampled, overlays stay in original px."""


def candidate_identity(candidate: Any, source: str = "") -> tuple[str, str, str]:
    """``(key, label, source)`` of an ``engine.io.discover.ExamSource`` (or of an already loaded ``Exam``)."""
    exam_id = str(getattr(candidate, "exam_id", None) or "exam")
    src = source or _source_path(candidate)
    key = f"{src}::{exam_id}" if src else f"{exam_id}::{id(candidate)}"
    return key, exam_id, src


def _source_path(candidate: Any) -> str:
    """Where a candidate lives: its folder, else its first file (empty for in-memory exams)."""
    folder = getattr(candidate, "folder", None)
    if folder:
        return str(folder)
    paths = getattr(candidate, "paths", None) or []
    if paths:
        return str(paths[0])
    files = getattr(getattr(candidate, "provenance", None), "files", None) or []
    return str(Path(files[0].path).parent) if files else ""


WARM_UP_MODULES = ("torch", "monai", "scipy.ndimage", "engine.pipeline", "engine.fundus.analysis",
                   "engine.oct.analyse", "engine.explain")


def warm_up(progress=None, cancel=None) -> list[str]:
    """Import the analysis modules on a pool thread, right after the window appears.

    Initialising extension modules (torch, MONAI, SciPy) holds the GIL for up to a second at a time, which the
    UI thread feels as a stall; done here, it happens once while the first exam is still being read, not in
    the middle of later work. Returns the modules that could not be imported (optional parts not installed).
    """
    import importlib

    missing = []
    for name in WARM_UP_MODULES:
        if cancel is not None and cancel.cancelled:
            break
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def discover_paths(paths: Sequence[str], progress=None, cancel=None) -> "DiscoverResult":
    """Find the exams in ``paths`` (folders and/or files) and every path skipped, with the reason.

    A given path that does not exist (or cannot be read at all) is reported as failed, not skipped.
    """
    from engine.io.discover import discover
    from glaucoma_viewer.state import DiscoverResult

    result = DiscoverResult()
    existing = []
    for p in paths:
        if Path(p).exists():
            existing.append(Path(p))
        else:
            result.failed.append((str(p), "no such file or folder"))
    if existing:
        found = discover(existing, progress=progress, cancel=cancel)
        result.candidates = list(found.sources)
        result.skipped = [(str(s.path), str(s.reason)) for s in found.skipped]
    return result


def load_exam(candidate: Any, key: str, source: str, progress=None, cancel=None) -> "LoadedExam":
    """Load one discovered exam (``ExamSource.load``; an ``Exam`` is taken as is) and prepare the display."""
    from engine.io.exam import Exam
    from engine.progress import check, report, sub_progress

    t0 = time.perf_counter()
    exam = candidate if isinstance(candidate, Exam) else candidate.load(sub_progress(progress, 0.0, 0.9), cancel)
    check(cancel)
    report(progress, 0.9, "preparing the display")
    loaded = prepare_display(exam, key, source)
    loaded.load_seconds = time.perf_counter() - t0
    return loaded


def prepare_display(exam: Any, key: str, source: str) -> "LoadedExam":
    """The display arrays of an exam: a downsampled photo, the en-face projection, a window/level suggestion."""
    import cv2

    from glaucoma_viewer.state import LoadedExam

    loaded = LoadedExam(key=key, exam=exam, source=source)
    photo = exam.fundus
    if photo is None and exam.xray is not None:  # a radiograph is shown in the photo view
        photo = cv2.cvtColor(exam.xray, cv2.COLOR_GRAY2RGB)
        loaded.photo_kind = "xray"
    if photo is not None:
        h, w = photo.shape[:2]
        loaded.fundus_shape = (h, w)
        if loaded.photo_kind == "fundus":  # what corrections drawn by hand are remembered by
            from engine.fundus.corrections import photo_sha256

            loaded.photo_sha256 = photo_sha256(photo)
        scale = MAX_DISPLAY / max(h, w)
        if scale < 1.0:
            size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
            loaded.fundus_display = np.ascontiguousarray(cv2.resize(photo, size, interpolation=cv2.INTER_AREA))
        else:
            loaded.fundus_display = np.ascontiguousarray(photo)
    if exam.oct is None and exam.mri:
        loaded.mri_sequence = "flair" if "flair" in exam.mri else sorted(exam.mri)[0]
        loaded.mri_display = mri_display_volume(exam.mri[loaded.mri_sequence])
    if exam.oct is not None and len(exam.oct):
        volume = exam.oct
        n, _, w = volume.shape
        # Percentiles on a strided sample (about 1 M voxels) are enough for a window/level suggestion.
        step = max(1, int(round((volume.size / 1_000_000) ** (1 / 3))))
        sample = volume[::step, ::step, ::step]
        lo, hi = np.percentile(sample, [1.0, 99.7])
        hi = max(float(hi), float(lo) + 8.0)
        loaded.oct_wl = (float(hi - lo), float((hi + lo) / 2.0))
        if (exam.bscan_positions is None or exam.fundus is None) and n > 1:  # positions need the photo to be drawn on
            loaded.enface = enface_projection(volume)
            spacing = exam.oct_spacing
            if spacing is not None and len(spacing.mm) == 3:
                loaded.enface_aspect = float(spacing.mm[0] / spacing.mm[2])
            else:
                loaded.enface_aspect = float(w) / float(n)  # unknown: draw the cube square
    return loaded


def mri_display_volume(volume: np.ndarray) -> np.ndarray:
    """(D, H, W) MRI of any dtype -> C-contiguous uint8 stretched between its 1st and 99th percentiles
    (over the non-zero voxels: the background outside the head is zero)."""
    v = np.asarray(volume)
    sample = v[:: max(1, v.shape[0] // 32)]
    sample = sample[sample != 0]
    lo, hi = np.percentile(sample, (1.0, 99.0)) if sample.size else (0.0, 1.0)
    scale = 255.0 / max(float(hi - lo), 1e-6)
    out = np.empty(v.shape, np.uint8)
    for k in range(v.shape[0]):  # slice by slice: no float copy of the whole volume
        out[k] = np.clip((v[k].astype(np.float32) - lo) * scale + 0.5, 0, 255)
    return out


def enface_projection(volume: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 -> (N, W) uint8: mean along depth, stretched between the 0.5th and 99.5th percentiles.

    Computed once per volume (it reads every voxel), in slabs so no float copy of the volume is made.
    """
    n, h, w = volume.shape
    out = np.empty((n, w), np.float32)
    for start in range(0, n, 16):
        out[start : start + 16] = volume[start : start + 16].mean(axis=1, dtype=np.float32)
    lo, hi = np.percentile(out, [0.5, 99.5])
    scaled = (out - lo) * (255.0 / max(float(hi - lo), 1e-3))
    return np.ascontiguousarray(np.clip(scaled, 0, 255).astype(np.uint8))


LEVEL_WORDS = {"fundus": "fundus", "disc": "disc crop", "oct": "OCT"}


def analyse_exam(loaded: "LoadedExam", progress=None, cancel=None, models: Any = None,
                 calibration: Any = None, disc_at: Optional[tuple[float, float]] = None,
                 outlines: Any = None) -> "AnalysisView":
    """Disc/cup, layers, grade and Grad-CAM for one loaded exam (``engine.pipeline.grade``), ready to draw.

    When no grader fits (no weights, a modality no model takes) the disc/cup and layer analyses still run and
    the view says why there is no grade. ``calibration``: a site's cup-outline calibration for the disc/cup result
    (:mod:`engine.fundus.site_calibration`; the graders keep the uncalibrated measurements). ``disc_at``: (row, col)
    photo px where the user placed the optic disc (the disc/cup analysis and the disc crop go there).
    ``outlines``: :class:`engine.fundus.hand_outline.HandOutlines` drawn by the user, shown and measured in place
    of the segmenter's (the graders keep the automatic outline); one that cannot be used is said in the messages.
    """
    from engine import pipeline
    from engine.progress import check, report, sub_progress
    from engine.tasks import needs_glaucoma_grader
    from glaucoma_viewer.state import AnalysisView

    exam = loaded.exam
    view = AnalysisView(disc_at=disc_at)
    t0 = time.perf_counter()
    result = disc = layers = None
    glaucoma = sub_progress(progress, 0.0, 0.85)
    if needs_glaucoma_grader(exam):
        try:
            result = pipeline.grade(exam, models=models, progress=glaucoma, cancel=cancel,
                                    disc_calibration=calibration, disc_at=disc_at)
        except pipeline.GradingError as err:
            view.messages.append(f"No grade: {err}")
            check(cancel)
            disc, layers, timings = _analyses_without_grade(exam, view.messages, glaucoma, cancel, calibration,
                                                            disc_at)
            view.timings.update(timings)
        else:
            disc, layers = result.disc, result.layers
            _fill_grade(view, result, default_weights=models is None)
            view.messages.extend(result.warnings)
            view.timings.update({k: float(v) for k, v in result.timings.items() if k != "total"})
    check(cancel)
    t = time.perf_counter()
    _run_tasks(view, loaded, None if result is None else result.biomarkers, sub_progress(progress, 0.85, 0.97),
               cancel)
    if view.tasks:
        view.timings["other tasks"] = time.perf_counter() - t
    check(cancel)
    report(progress, 0.97, "preparing overlays")
    view.messages = [friendly_message(m) for m in view.messages]
    view.disc_analysis = disc
    if outlines is not None and outlines.parts and disc is not None:
        from engine.fundus.hand_outline import OutlineError, apply_outlines

        try:
            disc, view.outlines = apply_outlines(disc, outlines, exam), outlines
        except OutlineError as err:
            view.messages.append(f"{outlines.describe().capitalize()} drawn by hand not used: {err}")
    _fill_disc(view, exam, disc, result)
    _fill_caution(view, disc, result)
    _fill_layers(view, exam, layers)
    _fill_cams(view, result, loaded)
    view.raw = result
    view.timings["analysis total"] = time.perf_counter() - t0
    return view


NO_DISC_CAUTION = ("No optic disc found in this photo: check that it is a fundus photo of usable quality before "
                   "reading this grade.")
"""The grade's caution when the disc/cup analysis found no disc (graders still grade any image they are given)."""


def _fill_caution(view: "AnalysisView", disc: Any, result: Any) -> None:
    """The grade's caution (:func:`engine.pipeline.grade_caution`) for the disc/cup analysis ``disc`` shown (outlines
    drawn by hand applied), in the viewer's words; "" without a grade."""
    from engine.pipeline import grade_caution

    view.grade_caution = _caution_text(grade_caution(result, disc), result) if view.grade is not None else ""


def _caution_text(kind: str, result: Any) -> str:
    """The viewer's words for :func:`engine.pipeline.grade_caution`'s ``kind`` ("" for none)."""
    from engine.pipeline import whole_photo_graders

    if kind == "no disc":
        return NO_DISC_CAUTION
    if kind == "no colour":
        return ("This photo has no colour (red-free or grey): the graders were trained on colour photos only (the "
                "disc/cup networks at most on grey copies of them); read this grade with caution.")
    if kind == "out of focus":
        return ("This photo is out of focus: the disc and cup outlines (check them) and what the graders saw may be "
                "off; read this grade with caution.")
    if kind == "disc uncertain":
        return ("The optic disc found is uncertain (low confidence, or another region also looked like a disc): check "
                "its outline (right-click the photo to place the disc) before reading this grade.")
    if kind == "centred photo":
        return (f"This photo is a crop centred on the optic disc: {len(whole_photo_graders(result))} of the "
                f"{len(result.per_model)} graders look at the whole photo and were trained on full photos only; read "
                "this grade with caution.")
    return ""


ODIR_CAM_PX = 512
"""Long side (px) of the ODIR per-label heat maps kept for display (Grad-CAM is coarse; eight full-size maps
would cost ~28 MB per exam)."""
TASK_TITLES = {"odir": "Fundus diseases (ODIR labels)", "glioma": "Glioma grade (MRI)",
               "bone": "Bone health (radiograph)"}
TASK_INPUTS = {"odir": "fundus", "glioma": "MRI", "bone": "panoramic radiograph"}


def _run_tasks(view: "AnalysisView", loaded: "LoadedExam", biomarkers: Any, progress, cancel) -> None:
    """The sibling tasks the exam's modalities fit (``engine.tasks.run_sibling_tasks``), as plain data: their
    probabilities, the models' cards, and heat maps at display size (ODIR per label on the photo; bone health
    on the radiograph and glioma attention on the MRI slices, drawn as the views' Grad-CAM)."""
    from engine.tasks import run_sibling_tasks
    from engine.tasks.odir import LABEL_NAMES, LABELS
    from glaucoma_viewer.state import ModelRun, TaskRun

    exam = loaded.exam
    found = run_sibling_tasks(exam, progress=progress, cancel=cancel, biomarkers=biomarkers, cams=True)
    ran = set(found.cards)
    notes = [m for m in found.messages if m.split(":", 1)[0] in ran]
    view.messages.extend(m for m in (*found.errors, *found.messages)
                         if m not in notes and "no weights installed" not in m)
    for k, (task, card) in enumerate(found.cards.items()):  # the tasks that ran, in the order of found.models
        outcome, name, sha = found.results[task], found.models[k], found.weights_sha256[k]
        run = ModelRun(name=name, inputs=TASK_INPUTS[task], probabilities=dict(outcome.probabilities),
                       weights=str(card.get("weights", card.get("file", ""))), sha256=sha, card=card)
        own = [m.split(":", 1)[1].strip() for m in notes if m.split(":", 1)[0] == task]
        if task == "odir":
            words = dict(zip(LABELS, LABEL_NAMES))
            probabilities = {f"{label} {words[label]}": float(p) for label, p in outcome.probabilities.items()}
            verdict = ", ".join(words[label] for label in outcome.positive) or "no label above its threshold"
            cams = {label: _display_map(m, loaded.fundus_display, ODIR_CAM_PX) for label, m in outcome.cams.items()}
            view.tasks.append(TaskRun(task, TASK_TITLES[task], verdict, probabilities, run, cams, own))
        elif task == "glioma":
            view.tasks.append(TaskRun(task, TASK_TITLES[task], outcome.grade, dict(outcome.probabilities), run,
                                      notes=own))
            if loaded.mri_display is not None and outcome.attention.shape == loaded.mri_display.shape:
                view.oct_cam = _display_map(outcome.attention, None)
        else:
            view.tasks.append(TaskRun(task, TASK_TITLES[task], outcome.diagnosis, dict(outcome.probabilities), run,
                                      notes=own))
            if outcome.heatmap is not None and loaded.photo_kind == "xray":
                view.fundus_cam = _display_map(outcome.heatmap, loaded.fundus_display)


def _display_map(heat: np.ndarray, display: Optional[np.ndarray], max_side: Optional[int] = None) -> np.ndarray:
    """(H, W) float map in [0, 1] on the original image -> uint8 at the size of ``display`` (at most ``max_side``
    px on its long side: the view stretches a heat map over the image); ``display`` None keeps the map's own
    shape (also (D, H, W), one map per slice)."""
    import cv2

    heat = np.asarray(heat, np.float32)
    if display is not None:
        h, w = display.shape[:2]
        k = min(1.0, (max_side or max(h, w)) / max(h, w))
        size = (max(1, round(w * k)), max(1, round(h * k)))
        if heat.shape != (size[1], size[0]):
            heat = cv2.resize(heat, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8))


_MISSING_CHECKPOINT = re.compile(r"(?P<path>[^\s:]+\.pt): checkpoint not found")
_MODEL_WORDS = {"disc_cup": "disc/cup", "oct_layers": "OCT layer", "layers": "OCT layer"}


_NEEDS = re.compile(r"needs ([\w+ -]+?) \(not in this exam\)")


def friendly_message(message: str) -> str:
    """Rewrite engine messages for the panel: a missing checkpoint reads "No disc/cup model installed (…)";
    "no grader fits this exam (…; name: needs fundus (not in this exam); …)" is summed up by what is missing."""
    if "no grader fits this exam" in message:
        needs = _NEEDS.findall(message)
        if needs:
            counts = {what: needs.count(what) for what in dict.fromkeys(needs)}
            parts = ", ".join(f"{n} need {what}" for what, n in counts.items())
            return f"No grade: none of the {len(needs)} installed graders takes this exam ({parts})."
    match = _MISSING_CHECKPOINT.search(message)
    if match is None:
        return message
    name = Path(match.group("path")).name
    what = _MODEL_WORDS.get(Path(name).stem, Path(name).stem)
    return f"No {what} model installed ({name} is not in resources/models)."


def data_note(exam: Any) -> str:
    """Where the exam's images came from, saying plainly which are synthetic (the demo's OCT is)."""
    prov = getattr(exam, "provenance", None)
    synthetic = [m for m in exam.modalities if exam.is_synthetic_modality(m)]
    parts = []
    if exam.is_synthetic:
        parts.append("SYNTHETIC exam (generated, not a patient)")
    elif synthetic:
        parts.append("SYNTHETIC " + " + ".join(m.upper() if m == "oct" else m for m in synthetic)
                     + " (generated, not acquired)")
    reader = getattr(prov, "reader", "")
    if reader:
        parts.append(f"read by {reader}")
    return "; ".join(parts)


def data_details(exam: Any) -> str:
    """The provenance notes of the exam (files, scale sources, generator), one per line."""
    prov = getattr(exam, "provenance", None)
    return "\n".join(str(n) for n in (getattr(prov, "notes", None) or []))


def _analyses_without_grade(exam: Any, messages: list[str], progress, cancel, calibration: Any = None,
                            disc_at: Optional[tuple[float, float]] = None) -> tuple[Any, Any, dict[str, float]]:
    """The disc/cup and OCT-layer analyses on their own (public engine entry points), each timed."""
    from engine.progress import Cancelled, check, report

    disc = layers = None
    timings: dict[str, float] = {}
    if exam.fundus is not None:
        report(progress, 0.1, "optic disc and cup")
        t = time.perf_counter()
        from engine.fundus import analyse_disc
        from engine.pipeline import calibrate_disc

        try:
            disc = analyse_disc(exam.fundus, spacing=exam.fundus_spacing, eye=exam.eye, disc_at=disc_at,
                                cancel=cancel)
        except Cancelled:
            raise
        except Exception as err:  # noqa: BLE001 - one failed analysis must not hide the other
            messages.append(f"disc/cup analysis failed: {user_message(err)}")
        disc = calibrate_disc(disc, calibration, {}, messages)
        timings["disc"] = time.perf_counter() - t
    check(cancel)
    if exam.oct is not None:
        report(progress, 0.4, "OCT layers")
        t = time.perf_counter()
        from engine.oct import analyse_oct

        try:
            layers = analyse_oct(exam, cancel=cancel)
        except Cancelled:
            raise
        except Exception as err:  # noqa: BLE001
            messages.append(f"OCT layer analysis failed: {user_message(err)}")
        timings["oct_layers"] = time.perf_counter() - t
    return disc, layers, timings


def _fill_grade(view: "AnalysisView", result: Any, default_weights: bool) -> None:
    from glaucoma_viewer.state import ModelRun

    classes = tuple(result.classes)
    view.classes = classes
    view.grade = result.grade_name
    view.ensemble = {c: float(p) for c, p in zip(classes, result.probabilities)}
    for name in result.models_used:
        pred = result.per_model.get(name)
        if pred is None:
            continue
        card = dict(result.model_cards.get(name, {}))
        view.models.append(ModelRun(
            name=name,
            inputs=" + ".join(LEVEL_WORDS.get(lv, lv) for lv in pred.levels),
            probabilities={c: float(p) for c, p in zip(classes, pred.probabilities)},
            weights=str(card.get("weights", card.get("file", ""))),
            sha256=result.weights_sha256.get(name, pred.sha256),
            card=card,
            default_weights=default_weights,
        ))
    view.default_weights = default_weights
    ens = result.ensemble or {}
    n = len(view.models)
    if n <= 1:
        view.ensemble_rule = "One model graded this exam."
    elif ens.get("method") in ("mode", "vote", "majority"):
        tie = ens.get("tie") or "first"
        broken = f"; this tie was broken by {ens['tie_broken_by']}" if ens.get("tie_broken_by") else ""
        view.ensemble_rule = f"Ensemble of {n} models: majority vote (tie: {tie}){broken}."
    else:
        view.ensemble_rule = f"Ensemble of {n} models: mean of their probabilities."
    if result.models_skipped:
        view.messages.append(
            "Not run: " + "; ".join(f"{name} ({why})" for name, why in result.models_skipped.items())
        )


def mask_contours(mask: Optional[np.ndarray]) -> list[np.ndarray]:
    """Outer contours of a (H, W) bool/uint8 mask as (K, 2) float32 (row, col) px polylines, largest first."""
    import cv2

    if mask is None:
        return []
    mask = np.asarray(mask)
    if mask.ndim != 2 or not mask.any():
        return []
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = [c[:, 0, ::-1].astype(np.float32) for c in sorted(contours, key=cv2.contourArea, reverse=True)]
    return [p for p in polys if len(p) >= 3]


def _field(obj: Any, *names: str) -> Any:
    """The first of ``names`` present on ``obj`` (attribute or mapping key), else None."""
    if obj is None:
        return None
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def write_corrections(store: Any, path: Optional[str] = None, progress=None, cancel=None) -> None:
    """Write an :class:`engine.fundus.corrections.CorrectionStore` to its file, or a copy to ``path`` (off the UI
    thread: a large one takes a tenth of a second)."""
    store.write(None if path is None else Path(path))


def read_corrections_file(path: str, progress=None, cancel=None) -> Any:
    """The :class:`engine.fundus.corrections.CorrectionStore` of the file at ``path``.

    Raises:
        engine.fundus.corrections.CorrectionsFileError: no such file, or it cannot be read (one line).
    """
    from engine.fundus.corrections import read_corrections

    return read_corrections(Path(path))


def correct_outlines(view: "AnalysisView", exam: Any, outlines: Any, progress=None, cancel=None) -> "AnalysisView":
    """``view`` drawn again with the user's ``outlines`` (:class:`engine.fundus.hand_outline.HandOutlines`; None:
    the segmenter's) in place of the segmenter's: contours, biomarkers, method line and editor vertices. Nothing is
    segmented or graded again (the graders keep the automatic outline): a few ms, plus the contours of a 12 MP photo.

    Raises:
        engine.fundus.hand_outline.OutlineError: an outline that cannot be used (one line, for the status bar).
    """
    from engine.fundus.hand_outline import apply_outlines

    disc = view.disc_analysis
    if disc is None:
        raise ValueError("no disc/cup analysis to correct")
    new = replace(view, anatomy_models=[], messages=list(view.messages), outline_vertices={},
                  outlines=outlines if outlines is not None and outlines.parts else None)
    shown = apply_outlines(disc, new.outlines, exam)
    _fill_disc(new, exam, shown, view.raw)
    _fill_caution(new, shown, view.raw)  # a disc drawn where none was found, or over an uncertain one
    return new


def export_disc_mask(view: "AnalysisView", exam: Any, path: str, progress=None, cancel=None) -> str:
    """Write the disc/cup outline shown in ``view`` (drawn by hand, calibrated or the segmenter's) as a GAMMA
    convention PNG at the photo's resolution (0 cup, 128 rim, 255 background) to ``path``, atomically; returns it.

    Raises:
        PermissionError: ``path`` is one of the exam's own files (patient files are only read).
        engine.fundus.hand_outline.OutlineError: no disc was found.
        OSError: the file cannot be written.
    """
    from engine.fundus.hand_outline import OutlineError, apply_outlines
    from engine.fundus.segment_cli import png_bytes
    from engine.models.checkpoint import atomic_write_bytes

    out = Path(path).resolve()
    files = getattr(getattr(exam, "provenance", None), "files", None) or []
    if any(Path(f.path).resolve() == out for f in files):
        raise PermissionError(f"{out.name} is one of the exam's own files, which are only read: choose another name")
    disc = None if view.disc_analysis is None else apply_outlines(view.disc_analysis, view.outlines, exam)
    if disc is None or not disc.found:
        raise OutlineError("no optic disc was found: there is no outline to write")
    atomic_write_bytes(out, png_bytes(disc.label_mask()))
    return str(out)


def _fill_disc(view: "AnalysisView", exam: Any, disc: Any, result: Any) -> None:
    """The disc/cup part of ``view`` from the analysis ``disc`` (outlines drawn by hand already applied) and the
    grading ``result`` (None without a grade)."""
    if exam.fundus is None:
        return
    disc_mask, cup_mask = _field(disc, "disc_mask"), _field(disc, "cup_mask")
    view.disc_contours = mask_contours(disc_mask)
    view.cup_contours = mask_contours(cup_mask)
    drawn = tuple(_field(disc, "hand_outlined") or ())
    if _field(disc, "found") and disc_mask is not None:
        from engine.fundus.hand_outline import outline_vertices

        for part, mask in (("disc", disc_mask), ("cup", cup_mask)):
            polygon = getattr(view.outlines, part, None) if part in drawn else None
            view.outline_vertices[part] = np.asarray(polygon if polygon is not None else outline_vertices(mask))
    box = getattr(result, "disc_box", None) if result is not None else None
    if box is None:
        box = _field(disc, "crop_box", "disc_box")
    view.crop_box = None if box is None else tuple(float(v) for v in box)  # type: ignore[assignment]
    if disc is None:
        why = [m for m in view.messages if "disc/cup" in m]
        view.disc_note = why[0] if why else "Disc/cup analysis unavailable for this exam."
        view.messages = [m for m in view.messages if m not in why]  # said once, under Biomarkers
    else:
        note = _field(disc, "message", "note")
        found = _field(disc, "found", "ok")
        view.disc_note = str(note) if note else ("" if found in (None, True) else "Optic disc not found.")
        if view.disc_at is not None:
            view.disc_hint = ("Right-click the photo to place the disc elsewhere or to find it automatically." if found
                              else "Right-click the photo to place the disc elsewhere, to find it automatically or "
                              "to outline it and its cup by hand.")
        elif drawn:
            view.disc_hint = "Right-click the photo to correct the outlines again or to use the automatic ones."
        elif view.disc_note:  # not found, low confidence, another disc-like region
            view.disc_hint = "Right-click the photo on the disc to place it by hand" + (
                " or to correct its outline." if found else " or to outline it and its cup by hand.")
        sha = str(_field(disc, "weights_sha256") or "")
        confidence = _field(disc, "confidence")
        method = "Disc and cup by the segmentation network" + (f" (weights {sha[:12]}…)" if sha else "")
        placed = _field(disc, "placed_at")
        if placed is not None:
            method = f"Disc placed by hand at x {placed[1]:.0f}, y {placed[0]:.0f} px; d{method[1:]}"
        if confidence is not None:
            method += f", confidence {float(confidence):.2f}"
        view.disc_method = method + "."
        if _field(disc, "centred"):
            view.disc_method += (" The photo was read as a crop centred on the optic disc (no black border, the disc "
                                 "filling much of the frame).")
        calibration = _field(disc, "site_calibration")
        if calibration is not None:
            view.disc_method += (f" Cup outline scaled x{calibration.cup_scale:.2f} by the site calibration "
                                 f"'{calibration.name}' (fitted on {len(calibration.photos)} photos outlined by "
                                 "that site's experts); graders are given the uncalibrated outline.")
            view.messages = [m for m in view.messages if not m.startswith(calibration.describe())]
        if drawn and not _field(view.disc_analysis, "found"):
            view.disc_method += (" It found no disc: the disc and cup outlines were drawn by hand, and the masks and "
                                 "biomarkers are measured on them; graders did not use them.")
        elif drawn:
            what = "Disc and cup outlines" if len(drawn) > 1 else f"{drawn[0].capitalize()} outline"
            view.disc_method += (f" {what} drawn by hand: the masks and biomarkers are measured on "
                                 f"{'them' if len(drawn) > 1 else 'it'}; graders are given the automatic outline.")
        card = _field(disc, "model_card")
        if card:
            from glaucoma_viewer.state import ModelRun

            view.anatomy_models.append(ModelRun(name=str(card.get("name", "disc_cup")), inputs="fundus (disc region)",
                                                probabilities={}, weights=str(card.get("weights_file", "")),
                                                sha256=sha, card=dict(card)))
    source = getattr(result, "disc_source", None) if result is not None else None
    if source == "brightness heuristic":
        view.disc_note = (view.disc_note + " Disc crop located by a brightness heuristic.").strip()
    markers = dict(result.biomarkers) if result is not None else {}
    if disc is not None:
        from engine.pipeline import _as_float_dict  # the pipeline's own flattening of a biomarker object

        own = _field(disc, "biomarkers")  # those of the outline shown (drawn by hand, calibrated), not the graders'
        if own is not None:
            markers.update(_as_float_dict(own))
        elif not markers:
            markers = _as_float_dict(disc)
    spread = expert_spread_note(_field(disc, "model_card"))
    if _field(disc, "eye_inferred"):
        view.eye_inferred = str(getattr(_field(disc, "biomarkers"), "eye", ""))
    view.biomarkers = format_biomarkers(markers, exam, vcdr_note=spread, eye_inferred=view.eye_inferred)
    view.rim_profile, view.rim_absent, view.rim_eye = None, None, "unknown"
    if _field(disc, "found") and disc_mask is not None and cup_mask is not None:
        from engine.fundus.biomarkers import rim_to_disc_profile
        from engine.fundus.ddls import rim_absent

        eye = str(getattr(_field(disc, "biomarkers"), "eye", None) or getattr(exam, "eye", "unknown"))
        view.rim_eye = eye if eye in ("OD", "OS") else "unknown"
        view.rim_profile = rim_to_disc_profile(disc_mask, cup_mask, view.rim_eye)
        view.rim_absent = rim_absent(view.rim_profile[1])
    if spread and view.biomarkers:
        view.disc_method = f"{view.disc_method} Vertical CDR: {spread}.".strip()
    if view.eye_inferred:
        view.disc_method += (f" Eye: {EYE_WORDS[view.eye_inferred]}, from the disc's side of the photo (the exam does "
                             "not say which eye; Analysis → Eye to set it).")
    spacing = exam.fundus_spacing
    if view.biomarkers and spacing is not None and spacing.source == "user":
        view.disc_method = (f"{view.disc_method} Photo scale typed in: {spacing.mm[0] * 1000:.2f} µm per pixel "
                            "(Analysis → Photo scale…).").strip()


def expert_spread_note(card: Any) -> str:
    """"experts differ by ±X ..." from a disc/cup card's ``expert_agreement`` (mean distance of one expert's
    vertical CDR from the mean of the others, on the photos it was measured on), or "" when the card does not say."""
    try:
        experts = card["expert_agreement"]["experts"]
        spread = float(experts["expert_vcdr_loo_mae"])
    except (KeyError, TypeError, ValueError):
        return ""
    if spread != spread:
        return ""
    raters = "/".join(str(n) for n in experts.get("experts_per_photo", [])) or "several"
    return (f"experts differ by ±{spread:.2f} on average ({experts.get('photos_with_expert_ratios', '?')} photos "
            f"rated by {raters} experts; model card)")


_BIOMARKER_ORDER = (
    "vcdr", "vertical_cdr", "hcdr", "horizontal_cdr", "area_cdr", "rim_to_disc", "rim_to_disc_ratio", "ddls_min",
    "rim_area_mm2", "rim_area_px2", "disc_area_mm2", "disc_area_px2", "cup_area_mm2", "cup_area_px2",
    "isnt", "isnt_rule", "isnt_ok", "ist", "rim_inferior_px", "rim_superior_px", "rim_nasal_px", "rim_temporal_px",
    "rim_inferior_mm", "rim_superior_mm", "rim_nasal_mm", "rim_temporal_mm",
    "cup_eccentricity", "eccentricity", "centroid_shift", "centroid_distance_px", "centroid_distance_mm",
)
"""The disc/cup values shown, in this order (extents and duplicates stay in the CSV and the report data)."""

_BIOMARKER_LABELS = {
    "vcdr": "vertical CDR", "vertical_cdr": "vertical CDR", "hcdr": "horizontal CDR",
    "horizontal_cdr": "horizontal CDR", "area_cdr": "area CDR", "rim_to_disc": "rim / disc",
    "rim_to_disc_ratio": "rim / disc", "isnt": "ISNT rule", "isnt_rule": "ISNT rule", "isnt_ok": "ISNT rule",
    "ist": "IST rule",
    "cup_eccentricity": "cup eccentricity", "eccentricity": "cup eccentricity",
    "centroid_shift": "cup–disc centroid shift", "centroid_distance": "cup–disc centroid shift",
    "rnfl_mean_px": "RNFL mean px", "rnfl_mean_um": "RNFL mean um",
    "total_retina_mean_px": "retina mean px", "total_retina_mean_um": "retina mean um",
}


EYE_WORDS = {"OD": "right (OD)", "OS": "left (OS)"}


def format_biomarkers(markers: dict[str, float], exam: Any, vcdr_note: str = "", eye_inferred: str = "") -> list:
    """Biomarkers as display rows. Physical units only when the matching scale is physical (not assumed);
    ``vcdr_note`` goes beside the vertical CDR (how far experts' own ratios differ); ``eye_inferred``: "OD" / "OS"
    when the disc was measured with the eye its side of the photo shows (the exam's is unknown)."""
    from glaucoma_viewer.state import Biomarker

    fundus_physical = exam.fundus_spacing is not None and exam.fundus_spacing.is_physical
    oct_physical = exam.oct_spacing is not None and exam.oct_spacing.is_physical
    rows: list[Biomarker] = []
    rank = {k: i for i, k in enumerate(_BIOMARKER_ORDER)}

    def scale_note(is_oct: bool) -> str:
        spacing = exam.oct_spacing if is_oct else exam.fundus_spacing
        return "scale typed in" if getattr(spacing, "source", "") == "user" else "scale from the file"

    shown = [k for k in markers if k.lower() in rank or "rnfl" in k.lower() or "retina" in k.lower()]
    for key in sorted(shown, key=lambda k: rank.get(k.lower(), len(rank))):
        value = markers[key]
        lower = key.lower()
        is_oct = "rnfl" in lower or "retina" in lower or "thick" in lower
        physical = oct_physical if is_oct else fundus_physical
        if any(tag in lower for tag in ("_mm", "_um", "mm2", "_µm")) and not physical:
            continue  # never show a physical unit derived from an assumed scale
        twin = re.sub(r"_px(2?)$", r"_mm\1", lower)
        if physical and twin != lower and twin in markers:
            continue  # the same value is shown in mm / mm²
        label = _BIOMARKER_LABELS.get(lower, key.replace("_", " "))
        if lower == "ddls_min":
            rows.append(_ddls_row(markers, fundus_physical, scale_note(False)))
            continue
        if lower.startswith("isnt") or lower == "ist":
            text = "unknown" if value != value else ("holds" if value >= 0.5 else "violated")
            note = ("Inferior ≥ superior ≥ nasal ≥ temporal rim width" if lower != "ist" else
                    "Inferior ≥ superior ≥ temporal rim width: the ISNT rule without the nasal rim, which holds in "
                    "more normal eyes")
            if eye_inferred:
                note += f"; eye {EYE_WORDS[eye_inferred]} from the disc's side of the photo"
            elif exam.eye == "unknown":
                text, note = "unknown", "needs the eye (OD/OS), which is unknown"
        elif lower.endswith(("_mm2",)):
            label, text, note = label.replace(" mm2", ""), f"{value:.2f} mm²", scale_note(is_oct)
        elif lower.endswith(("_px2", "_area_px")):
            label, text, note = label.replace(" px2", ""), f"{value:.0f} px²", "pixel units: the scale is not known"
        elif lower.endswith("_um"):
            label, text, note = label.replace(" um", ""), f"{value:.0f} µm", scale_note(is_oct)
        elif lower.endswith("_px"):
            label, text, note = label.replace(" px", ""), f"{value:.1f} px", "pixel units"
        elif lower.endswith("_mm"):
            label, text, note = label.replace(" mm", ""), f"{value:.2f} mm", scale_note(is_oct)
        else:
            text, note = (f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"), ""
            if label == "vertical CDR":
                note = vcdr_note
        rows.append(Biomarker(label, text, note))
    return rows


def _ddls_row(markers: dict[str, float], physical: bool, scale: str) -> Any:
    """The Disc Damage Likelihood Scale row: one stage when the disc's size is known (mm scale), else the stages
    from a large to a small disc; the name says which (the PDF report shows names and values only)."""
    from engine.fundus.ddls import disc_size
    from glaucoma_viewer.state import Biomarker

    lowest, highest = int(markers["ddls_min"]), int(markers.get("ddls_max", markers["ddls_min"]))
    height = markers.get("disc_height_mm")
    size = disc_size(height) if physical and height is not None else None
    if size is not None and "ddls_stage" in markers:
        name, text = f"DDLS, {size} disc", f"{int(markers['ddls_stage'])}"
        note = f"Disc Damage Likelihood Scale; the disc is {height:.2f} mm tall ({scale})"
    elif lowest == highest:
        name, text, note = "DDLS stage", f"{lowest}", "Disc Damage Likelihood Scale; the same for any disc size"
    else:
        name, text = "DDLS by disc size", f"{lowest}–{highest}"
        note = (f"Disc Damage Likelihood Scale: {lowest} for a large disc to {highest} for a small one; the disc's "
                "size needs the photo's scale (Analysis → Photo scale…)")
    absent = markers.get("rim_absent_deg", 0.0)
    if absent > 0:
        note += f"; no rim over {absent:.0f}°"
    return Biomarker(name, text, note)


def _fill_layers(view: "AnalysisView", exam: Any, layers: Any) -> None:
    if exam.oct is None or layers is None:
        return
    labels = _field(layers, "labels", "label_volume")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape == exam.oct.shape:
            view.oct_labels = np.ascontiguousarray(labels.astype(np.uint8, copy=False))
    method = _field(layers, "method_detail", "method")
    view.layer_method = str(method) if method else ""
    view.layer_notes = [str(n) for n in (_field(layers, "notes") or [])]
    profiles = _field(layers, "rnfl_thickness", "rnfl", "rnfl_px")
    if profiles is None:
        thickness = _field(layers, "thickness")
        profiles = _field(thickness, "NFL", "RNFL", "nfl") if thickness is not None else None
    if profiles is not None:
        profiles = np.asarray(profiles, np.float32)
        if profiles.ndim == 2:
            physical = exam.oct_spacing is not None and exam.oct_spacing.is_physical
            unit = str(_field(layers, "unit", "thickness_unit") or "px")
            if unit != "px" and not physical:
                unit = "px"  # an assumed scale is never shown in µm: convert back to px
                axial_um = exam.oct_spacing.mm[1] * 1000.0 if exam.oct_spacing is not None else 1.0
                profiles = profiles / axial_um
            view.rnfl_profiles = profiles
            view.rnfl_unit = "µm" if unit in ("um", "µm") else unit
            if physical and exam.oct_spacing is not None:
                view.lateral_mm = float(exam.oct_spacing.mm[2])
    tsnit, angles = _field(layers, "tsnit"), _field(layers, "tsnit_angles_deg")
    if tsnit is not None and angles is not None and view.rnfl_profiles is not None:
        view.tsnit = (np.asarray(angles, np.float32), np.asarray(tsnit, np.float32))
    grid = _field(layers, "sector_grid")
    view.sector_grid = str(grid) if grid else ""
    sectors = _field(layers, "sectors", "rnfl_sectors")
    if isinstance(sectors, dict):
        view.rnfl_sectors = {str(k): float(v) for k, v in sectors.items() if np.isfinite(v)}


def _fill_cams(view: "AnalysisView", result: Any, loaded: "LoadedExam") -> None:
    import cv2

    if result is None or not result.cams:
        return
    cams = result.cams
    fundus_cam = cams.get("fundus") or cams.get("disc")
    if fundus_cam is not None and loaded.fundus_display is not None:
        heat = fundus_cam.heatmap
        h, w = loaded.fundus_display.shape[:2]
        if heat.shape != (h, w):
            heat = cv2.resize(heat, (w, h), interpolation=cv2.INTER_AREA)
        view.fundus_cam = np.ascontiguousarray(heat)
    oct_cam = cams.get("oct")
    if oct_cam is not None and loaded.exam.oct is not None and oct_cam.heatmap.shape[0] == len(loaded.exam.oct):
        view.oct_cam = np.ascontiguousarray(oct_cam.heatmap)


@dataclass
class BatchSummary:
    """What a batch export wrote: rows ok / error, whether it stopped early (``partial``), the CSV path."""

    out: str
    total: int
    ok: int
    errors: int
    partial: bool
    skipped: list[str]
    seconds: float
    placed: int = 0  # exams graded with the disc placed by hand in the window
    outlined: int = 0  # exams measured on outlines drawn by hand in the window
    cautions: dict[str, int] = field(default_factory=dict)  # rows per caution (engine.pipeline.grade_caution)


def batch_export(folders: Sequence[str], out: str, progress=None, cancel=None, models: Any = None,
                 calibration: Any = None, corrections: Any = None, photo_spacing: Any = None,
                 size_scales: Optional[dict[str, float]] = None) -> BatchSummary:
    """Grade every exam under ``folders`` into ``out`` with the columns of ``engine grade`` (one row per exam).

    ``corrections``: the window's :class:`engine.fundus.corrections.CorrectionStore` (discs placed and outlines
    drawn by hand, this session or earlier ones, matched by the photo's pixels); those exams are graded with the
    disc placed there (rows: ``disc_source`` = ``user``) and measured on the outlines drawn (message column; the
    graders keep the automatic outline). ``photo_spacing``: an :class:`engine.io.exam.Spacing` typed in for every
    fundus photo (``grade --photo-scale``); ``size_scales``: otherwise, µm per px typed in for every photo of a size
    (``{"WxH": µm}``, Analysis → Photo scale…) for the photos without a scale of their own.

    Rows are written atomically after each exam, with the ``OUT.partial`` marker of
    :mod:`engine.results_csv` until the end; a cancel keeps the rows finished so far and leaves the marker
    (the file then says it is partial). Broken exams become error rows; the others are still graded.
    Progress messages read "exam k of N: ID".
    """
    from engine.cli.grade_cmd import discover_sources, grade_one
    from engine.pipeline import load_models, resolve_device
    from engine.progress import report
    from engine.results_csv import caution_counts, clear_partial, error_row, mark_partial, write_csv

    t0 = time.perf_counter()
    out_path = Path(out)
    report(progress, 0.0, "looking for exams")
    # The CLI's own discovery and per-exam function: same exams, same rows, same error rows as `engine grade`.
    sources, skipped, given_errors = discover_sources([str(f) for f in folders])
    n = len(sources) + len(given_errors)
    device = resolve_device("auto")
    report(progress, 0.0, f"exam 0 of {n}: loading the models")
    ensemble = load_models(models, device)
    rows: list[dict[str, str]] = [error_row(exam_id, reason) for exam_id, reason in given_errors]
    mark_partial(out_path, {"total": n, "done": 0, "reason": "running"})
    write_csv(out_path, rows)
    partial = False
    placed = outlined = 0
    for k, source in enumerate(sources, start=len(rows) + 1):
        if cancel is not None and cancel.cancelled:
            partial = True
            break
        report(progress, (k - 1) / max(n, 1), f"exam {k} of {n}: {source.exam_id}")
        outcome = grade_one(source, ensemble, device, source.exam_id, None, True, calibration=calibration,
                            corrections=corrections, photo_spacing=photo_spacing, size_scales=size_scales)
        placed += outcome.placed
        outlined += outcome.outlined
        rows.append(outcome.row)
        write_csv(out_path, rows)
        report(progress, min(k / max(n, 1), 0.999), f"exam {k} of {n}: {source.exam_id} done")
    if partial:
        mark_partial(out_path, {"total": n, "done": len(rows), "reason": "cancelled in the viewer"})
    else:
        clear_partial(out_path)
    errors = sum(1 for r in rows if r.get("status") != "ok")
    return BatchSummary(str(out_path), n, len(rows) - errors, errors, partial, list(skipped),
                        time.perf_counter() - t0, placed, outlined, caution_counts(rows))
