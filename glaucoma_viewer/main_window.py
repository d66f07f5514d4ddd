"""The main window: exam list | fundus over OCT | results, a research-use banner, menus and a status bar.

Flow of one exam: a drop (or File > Open) runs a *discover* job (which exams, which files skipped and why);
each exam found gets a row with status ``loading`` and a *load* job (decode + display preparation); then an
*analyse* job (disc/cup, layers, grading, Grad-CAM: ``engine.pipeline.grade``) while the row says
``analysing``; then ``done`` or ``error``. All jobs run on :mod:`glaucoma_viewer.worker`; this module only
assigns prepared arrays to widgets.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from engine.io.exam import PHOTO_UM_PER_PX_RANGE, photo_size, scale_for_size, typed_photo_spacing
from glaucoma_viewer import __version__, worker as jobs
from glaucoma_viewer.panels.exam_list import ExamList, LoadReportDialog
from glaucoma_viewer.panels.results_panel import ModelCardDialog, ResultsPanel
from glaucoma_viewer.process_runner import ProcessRunner
from glaucoma_viewer.state import AnalysisView, DiscoverResult, LoadedExam, ModelRun
from glaucoma_viewer.views.fundus_view import FundusView
from glaucoma_viewer.views.oct_view import SliceView
from glaucoma_viewer.worker import JobFailure, JobHandle, Worker

BANNER_NO_GRADE = "RESEARCH USE ONLY — not a medical device. No grade for this exam (the Grade panel says why)."
PathLike = Union[str, Path]
MAX_RECENT = 10
DEFAULT_MAX_VOLUMES = 4
"""Exams kept in memory at once (settings key ``memory/max_exams``); the least recently used are dropped."""
BANNER_TEXT = (
    "RESEARCH USE ONLY — not a medical device. Grades come from the bundled default weights trained on small "
    "public samples (click for the model cards)."
)


@dataclass
class ExamEntry:
    """One row of the exam list and everything the window holds for it."""

    key: str
    label: str
    source: str
    status: str = "loading"
    message: str = ""
    progress: float = 0.0
    progress_text: str = ""
    loaded: Optional[LoadedExam] = None
    analysis: Optional[AnalysisView] = None
    job: Optional[JobHandle] = None
    current_bscan: Optional[int] = None
    started: float = field(default_factory=time.perf_counter)
    candidate: Any = None  # what loads it again (an engine.io.discover.ExamSource), None for in-memory exams
    last_used: float = field(default_factory=time.perf_counter)
    disc_at: Optional[tuple[float, float]] = None  # (row, col) photo px where the user placed the optic disc
    outlines: Any = None  # engine.fundus.hand_outline.HandOutlines the user drew (None: the segmenter's)
    outline_undo: list = field(default_factory=list)  # the outlines measured before each change, oldest first
    read_spacing: Any = None  # the photo's spacing as read from its file (restored when a typed scale is cleared)
    read_eye: str = "unknown"  # the eye as the files say (restored when "As the files say" is chosen)

    @property
    def reloadable(self) -> bool:
        """True when the exam can be dropped from memory and read again from disk."""
        return callable(getattr(self.candidate, "load", None))


class ClickableLabel(QtWidgets.QLabel):
    clicked = QtCore.Signal()

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt naming
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mousePressEvent(event)


SIZE_SCALES_KEY = "photo_scale/by_size"
"""Settings key of the scales typed in for every photo of one size: JSON ``{"WxH": µm per px}``."""


def read_size_scales(settings: QtCore.QSettings) -> dict[str, float]:
    """The scales typed in for every photo of a size, from the settings; a value that is not a plausible scale
    (:data:`engine.io.exam.PHOTO_UM_PER_PX_RANGE`) or a file written by hand wrongly is left out."""
    low, high = PHOTO_UM_PER_PX_RANGE
    try:
        stored = json.loads(str(settings.value(SIZE_SCALES_KEY, "{}") or "{}"))
        return {str(k): float(v) for k, v in stored.items() if low <= float(v) <= high}
    except (TypeError, ValueError, AttributeError):
        return {}


def _photo_spacing(entry: "ExamEntry") -> Any:
    """The spacing the exam's photo is measured with now (None when not loaded or not known)."""
    return entry.loaded.exam.fundus_spacing if entry.loaded is not None else None


def corrections_path(settings: QtCore.QSettings) -> Path:
    """Where the discs placed and outlines drawn by hand are kept: beside the settings file, or in the
    application's data folder where the settings live in the Windows registry (no file to sit beside)."""
    from engine.fundus.corrections import FILE_NAME

    if sys.platform == "win32" and settings.format() == QtCore.QSettings.Format.NativeFormat:
        where = QtCore.QStandardPaths.StandardLocation.AppDataLocation
        return Path(QtCore.QStandardPaths.writableLocation(where)) / FILE_NAME
    return Path(settings.fileName()).with_name(FILE_NAME)


def _shipped_disc_cup_sha256() -> str:
    """The shipped disc/cup weights' SHA-256 from their model card (a JSON read, no weights loaded); "" when the
    card cannot be read (the analysis then says why the weights are unusable)."""
    from engine.fundus.segmenter import default_weights_path
    from engine.models.checkpoint import CheckpointError, read_card

    try:
        return str(read_card(default_weights_path()).get("sha256", ""))
    except CheckpointError:
        return ""


class MainWindow(QtWidgets.QMainWindow):
    """The clinician's window.

    Args:
        settings: where to keep last folder, overlay toggles and geometry (a throw-away one in tests).
        synchronous: run every job inline (tests that need no event loop for the engine part).
        models: what grades (an ensemble file, see ``engine.pipeline.load_models``); None = bundled defaults.
        isolate_analysis: run the analysis in a child process (:mod:`glaucoma_viewer.process_runner`) so
            it never holds the UI thread's GIL; the app does, tests that patch the job function do not.
        max_exams: most exams held in memory (default: setting ``memory/max_exams``, else 4); the least
            recently shown are dropped (pixels and analysis) and reloaded from disk when selected again.

    Signals:
        idle(): emitted whenever the last running job finished (screenshot mode waits for it).
        examReady(str), examAnalysed(str), examFailed(str): per-exam milestones (keys).
    """

    idle = QtCore.Signal()
    examReady = QtCore.Signal(str)
    examAnalysed = QtCore.Signal(str)
    examFailed = QtCore.Signal(str)

    def __init__(self, settings: Optional[QtCore.QSettings] = None, synchronous: bool = False,
                 models: Any = None, max_exams: Optional[int] = None, isolate_analysis: bool = False,
                 parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.runner: Optional[ProcessRunner] = ProcessRunner() if isolate_analysis else None
        if self.runner is not None:
            self.runner.start()
        self.models = models  # None: the bundled default weights (engine.pipeline.load_models)
        self.setWindowTitle("Glaucoma Viewer — research use only")
        self.settings = settings if settings is not None else QtCore.QSettings()
        if max_exams is None:
            try:
                max_exams = int(self.settings.value("memory/max_exams", DEFAULT_MAX_VOLUMES))
            except (TypeError, ValueError):
                max_exams = DEFAULT_MAX_VOLUMES
        self.max_exams = max(1, int(max_exams))
        self.worker = Worker(self, max_threads=2, synchronous=synchronous)
        self.analysis_worker = Worker(self, max_threads=1, synchronous=synchronous)
        self.entries: dict[str, ExamEntry] = {}
        self.load_report: dict[str, list[tuple[str, str]]] = {"opened": [], "skipped": [], "failed": []}
        self._pending_discover = 0
        self._current_key: Optional[str] = None
        self._closing = False
        self._default_weights_in_use = True
        self.site_calibration: Any = None  # engine.fundus.site_calibration.SiteCalibration applied to disc/cup
        self.photo_scales: dict[str, float] = {}  # exam key -> µm per photo px typed in (Analysis > Photo scale…)
        self.size_scales = read_size_scales(self.settings)  # "WxH" -> µm per px for every photo of that size
        self.eyes: dict[str, str] = {}  # exam key -> "OD" / "OS" set by hand for an exam without a photo
        from engine.fundus.corrections import CorrectionStore  # numpy and json only

        self.corrections = CorrectionStore(corrections_path(self.settings))

        self._build_ui()
        self._build_menus()
        self._build_status_bar()
        self._restore_settings()
        self.setAcceptDrops(True)
        self.worker.active_changed.connect(self._jobs_changed)
        self.analysis_worker.active_changed.connect(self._jobs_changed)

    # ================================================================================================ UI
    def _build_ui(self) -> None:
        self.banner = ClickableLabel(BANNER_TEXT)
        self.banner.setObjectName("banner")
        self.banner.setCursor(QtGui.QCursor(QtCore.Qt.CursorShape.PointingHandCursor))
        self.banner.setToolTip("Show the model cards of the weights in use")
        self.banner.clicked.connect(self.show_model_cards)

        self.exam_list = ExamList()
        self.fundus_view = FundusView()
        self.oct_view = SliceView(title="OCT B-scan", unit_name="B-scan")
        self.results = ResultsPanel()

        left = self._pane(self.exam_list)
        fundus = self._pane(self.fundus_view)
        octp = self._pane(self.oct_view)
        self.fundus_pane, self.oct_pane = fundus, octp  # a pane with nothing to show is hidden (see show_exam)
        self.centre_split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.centre_split.addWidget(fundus)
        self.centre_split.addWidget(octp)
        self.centre_split.setStretchFactor(0, 1)
        self.centre_split.setStretchFactor(1, 1)

        results_scroll = QtWidgets.QScrollArea()
        results_scroll.setWidgetResizable(True)
        results_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        results_scroll.setWidget(self.results)
        results_scroll.setAcceptDrops(False)
        results_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results.setMinimumWidth(360)
        results_scroll.setMinimumWidth(380)  # the results column never gets narrower than its content

        self.main_split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.main_split.addWidget(left)
        self.main_split.addWidget(self.centre_split)
        self.main_split.addWidget(results_scroll)
        self.main_split.setStretchFactor(0, 0)
        self.main_split.setStretchFactor(1, 3)
        self.main_split.setStretchFactor(2, 1)
        self.main_split.setSizes([200, 860, 500])
        self.main_split.setChildrenCollapsible(False)

        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        body = QtWidgets.QVBoxLayout()
        body.setContentsMargins(6, 6, 6, 4)
        body.addWidget(self.main_split, 1)
        layout.addLayout(body, 1)
        self.setCentralWidget(central)

        # Linked navigation.
        self.oct_view.sliceChanged.connect(self._slice_changed)
        self.fundus_view.bscanSelected.connect(self.oct_view.set_index)
        self.exam_list.examSelected.connect(self.show_exam)
        self.exam_list.reportRequested.connect(self.show_load_report)
        self.exam_list.reanalyseRequested.connect(self.reanalyse)
        self.results.modelCardRequested.connect(self.show_model_card)
        self.results.photoCamRequested.connect(self._show_photo_cam)
        self.fundus_view.overlaysChanged.connect(self._save_overlays)
        self.fundus_view.discPlaced.connect(lambda row, col: self.place_disc((row, col)))
        self.fundus_view.discPlacementCleared.connect(lambda: self.place_disc(None))
        self.fundus_view.outlineEdited.connect(self.correct_outline)
        self.fundus_view.outlinesReset.connect(lambda: self.set_outlines(None))
        self.fundus_view.outlinesDrawnAt.connect(lambda row, col: self.draw_outlines_at((row, col)))
        self.oct_view.overlaysChanged.connect(self._save_overlays)
        self.resize(1500, 940)
        self._set_drops_to_window(self.centralWidget())

    @staticmethod
    def _pane(widget: QtWidgets.QWidget) -> QtWidgets.QFrame:
        frame = QtWidgets.QFrame()
        frame.setObjectName("pane")
        lay = QtWidgets.QVBoxLayout(frame)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(widget)
        return frame

    def _set_drops_to_window(self, root: QtWidgets.QWidget) -> None:
        """Children never accept drops, so a drop anywhere falls through to the window."""
        for child in root.findChildren(QtWidgets.QWidget):
            child.setAcceptDrops(False)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_folder_action = file_menu.addAction("Open folder…", self.open_folder_dialog)
        self.open_folder_action.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        file_menu.addAction("Open files…", self.open_files_dialog)
        self.recent_menu = file_menu.addMenu("Recent exams")
        file_menu.addSeparator()
        self.batch_action = file_menu.addAction("Batch export CSV…", self.open_batch_export)
        self.report_action = file_menu.addAction("Export report…", self.export_report_dialog)
        self.report_action.setShortcut(QtGui.QKeySequence("Ctrl+E"))
        self.print_action = file_menu.addAction("Print report…", self.print_report_dialog)
        self.print_action.setShortcut(QtGui.QKeySequence.StandardKey.Print)
        self.mask_action = file_menu.addAction("Export disc/cup mask…", self.export_mask_dialog)
        self.mask_action.setToolTip("The outline shown (drawn by hand or the segmenter's) as a PNG mask at the photo's "
                                    "resolution: 0 cup, 128 rim, 255 background (the GAMMA convention)")
        self.corrections_menu = file_menu.addMenu("Hand corrections of the disc")
        self.corrections_menu.setToolTip("The optic discs placed and outlines drawn by hand, remembered between "
                                         "sessions by the photo's pixels")
        self.corrections_menu.setToolTipsVisible(True)
        self.corrections_menu.aboutToShow.connect(self._update_corrections_menu)
        self.export_corrections_action = self.corrections_menu.addAction("Export…", self.export_corrections_dialog)
        self.export_corrections_action.setToolTip("A copy of the file, for `python -m engine grade "
                                                  "--disc-corrections FILE` or to give to a colleague")
        self.corrections_menu.addAction("Import…", self.import_corrections_dialog).setToolTip(
            "Take another file's corrections (newer ones win); open exams they concern are analysed again")
        self.forget_corrections_action = self.corrections_menu.addAction("Forget all…",
                                                                         self.forget_corrections_dialog)
        file_menu.addSeparator()
        file_menu.addAction("Load report…", self.show_load_report)
        file_menu.addSeparator()
        quit_action = file_menu.addAction("Quit", self.close)
        quit_action.setShortcut(QtGui.QKeySequence.StandardKey.Quit)

        view_menu = bar.addMenu("&View")
        view_menu.addAction("Fit fundus", self.fundus_view.fit)
        view_menu.addAction("Zoom to the optic disc", self.fundus_view.zoom_to_disc)
        view_menu.addAction("Auto window/level", self.oct_view.auto_window_level)
        view_menu.addSeparator()
        for text, box in (
            ("Disc + cup contours", self.fundus_view.disc_toggle),
            ("Disc-crop box", self.fundus_view.crop_toggle),
            ("Fundus Grad-CAM", self.fundus_view.cam_toggle),
            ("B-scan line", self.fundus_view.line_toggle),
            ("Layer overlay", self.oct_view.layers_toggle),
            ("OCT Grad-CAM", self.oct_view.cam_toggle),
        ):
            action = view_menu.addAction(text)
            action.setCheckable(True)
            action.setChecked(box.isChecked())
            action.toggled.connect(box.setChecked)
            box.toggled.connect(action.setChecked)

        analysis_menu = bar.addMenu("&Analysis")
        analysis_menu.addAction("Analyse again", lambda: self._current_key and self.reanalyse(self._current_key))
        self.cancel_action = analysis_menu.addAction("Cancel", self.cancel_running)
        self.cancel_action.setShortcut(QtGui.QKeySequence("Esc"))
        analysis_menu.addAction("Timings…", self.show_timings)
        analysis_menu.addSeparator()
        analysis_menu.addAction("Site calibration of the cup…", self.choose_site_calibration)
        self.clear_calibration_action = analysis_menu.addAction("No site calibration",
                                                                lambda: self.set_site_calibration(None))
        self.clear_calibration_action.setEnabled(False)
        analysis_menu.addAction("Photo scale…", self.ask_photo_scale)
        self.eye_menu = analysis_menu.addMenu("Eye")
        self.eye_actions = QtGui.QActionGroup(self)
        for eye, text in ((None, "As the files say, else from the disc's side of the photo"),
                          ("OD", "Right eye (OD)"), ("OS", "Left eye (OS)")):
            action = self.eye_menu.addAction(text, lambda e=eye: self._current_key and self.set_eye(self._current_key,
                                                                                                  e))
            action.setCheckable(True)
            action.setData(eye)
            self.eye_actions.addAction(action)
        self.eye_menu.aboutToShow.connect(self._check_eye_action)
        analysis_menu.addSeparator()
        self.undo_outline_action = analysis_menu.addAction("Undo outline change", self.undo_outline)
        self.undo_outline_action.setShortcut(QtGui.QKeySequence.StandardKey.Undo)
        self.undo_outline_action.setEnabled(False)
        self.fundus_view.undo_button.clicked.connect(self.undo_outline)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction("Model cards…", self.show_model_cards)
        help_menu.addAction("About", self.show_about)
        self._refresh_recent_menu()

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.status_label = QtWidgets.QLabel("Ready")
        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setFixedWidth(220)
        self.progress_bar.setFormat("%p %")
        self.progress_bar.hide()
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running loading and analyses (Esc)")
        self.cancel_button.clicked.connect(self.cancel_running)
        self.cancel_button.hide()
        self.timings_button = QtWidgets.QToolButton()
        self.timings_button.setText("Timings ›")
        self.timings_button.clicked.connect(self.show_timings)
        # Stays in view while a site calibration changes every cup outline (the status line is overwritten).
        self.calibration_badge = QtWidgets.QLabel()
        self.calibration_badge.setObjectName("calibrationBadge")
        self.calibration_badge.hide()
        status.addWidget(self.status_label, 1)
        status.addPermanentWidget(self.calibration_badge)
        status.addPermanentWidget(self.progress_bar)
        status.addPermanentWidget(self.cancel_button)
        status.addPermanentWidget(self.timings_button)

    # ================================================================================================ settings
    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if isinstance(geometry, QtCore.QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        for name, splitter in (("main", self.main_split), ("centre", self.centre_split)):
            state = s.value(f"window/{name}_split")
            if isinstance(state, QtCore.QByteArray) and not state.isEmpty():
                splitter.restoreState(state)
        calibration = str(s.value("disc_cup/site_calibration", "") or "")
        if calibration:
            self.set_site_calibration(calibration, reanalyse=False)
        overlays = s.value("overlays")
        if overlays:
            try:
                data = json.loads(str(overlays))
                self.fundus_view.restore_overlay_state(data)
                self.oct_view.restore_overlay_state(data)
            except (ValueError, TypeError):
                pass
        if self.corrections.problem:
            self.status_label.setText(f"Discs placed and outlines drawn in earlier sessions not used: "
                                      f"{self.corrections.problem}; they are started afresh")

    def _save_overlays(self) -> None:
        state = {**self.fundus_view.overlay_state(), **self.oct_view.overlay_state()}
        self.settings.setValue("overlays", json.dumps(state))

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/main_split", self.main_split.saveState())
        s.setValue("window/centre_split", self.centre_split.saveState())
        self._save_overlays()
        s.sync()

    def last_folder(self) -> str:
        return str(self.settings.value("last_folder", "") or "")

    def recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in (value or [])]

    def _remember(self, paths: Sequence[PathLike]) -> None:
        recent = self.recent()
        for p in paths:
            text = str(Path(p).resolve())
            if text in recent:
                recent.remove(text)
            recent.insert(0, text)
        self.settings.setValue("recent", recent[:MAX_RECENT])
        first = Path(paths[0]).resolve()
        self.settings.setValue("last_folder", str(first if first.is_dir() else first.parent))
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = self.recent()
        if not items:
            self.recent_menu.addAction("(none yet)").setEnabled(False)
        for path in items:
            self.recent_menu.addAction(path, lambda p=path: self.open_paths([p]))

    # ================================================================================================ opening
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 - Qt naming
        if self._local_paths(event.mimeData()):
            event.acceptProposedAction()
            self.status_label.setText("Drop to open")
        else:
            event.ignore()

    def dragMoveEvent(self, event: QtGui.QDragMoveEvent) -> None:  # noqa: N802 - Qt naming
        if self._local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 - Qt naming
        paths = self._local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_paths(paths)

    @staticmethod
    def _local_paths(mime: QtCore.QMimeData) -> list[str]:
        if not mime.hasUrls():
            return []
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]

    def open_folder_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a patient folder", self.last_folder())
        if folder:
            self.open_paths([folder])

    def open_files_dialog(self) -> None:
        files, _ = QtWidgets.QFileDialog.getOpenFileNames(
            self, "Open image or DICOM files", self.last_folder(),
            "Images and volumes (*.jpg *.jpeg *.png *.tif *.tiff *.bmp *.dcm *.nii *.nii.gz);;All files (*)",
        )
        if files:
            self.open_paths(files)

    def open_paths(self, paths: Sequence[PathLike], remember: bool = True) -> None:
        """Open everything in ``paths`` (folders and/or files): discover the exams, then load and analyse each."""
        paths = [str(p) for p in paths if str(p)]
        if not paths:
            return
        if remember:
            self._remember(paths)
        self._pending_discover += 1
        self.status_label.setText(f"Looking for exams in {', '.join(Path(p).name for p in paths)}…")
        self.worker.submit(
            jobs.discover_paths, paths, name="discover",
            on_finished=self._discovered,
            on_failed=lambda failure, p=paths: self._discover_failed(p, failure),
        )

    def _discovered(self, found: DiscoverResult) -> None:
        self._pending_discover -= 1
        self.load_report["skipped"] += found.skipped
        self.load_report["failed"] += found.failed
        for path, why in found.failed:
            key = f"failed:{path}"
            entry = ExamEntry(key, Path(path).name or path, path, status="error", message=why)
            self.entries[key] = entry
            self.exam_list.add_exam(key, entry.label, "error")
            self.exam_list.set_status(key, "error", why)
            self.examFailed.emit(key)
        for candidate in found.candidates:
            key, label, source = jobs.candidate_identity(candidate)
            if key in self.entries and self.entries[key].status in ("loading", "analysing", "done"):
                self.exam_list.select(key)  # already open
                continue
            self._start_load(key, label, source, candidate)
        self._update_report_button()
        if not found.candidates and not found.failed:
            self.status_label.setText("No exam found in what was dropped (see Load report…)")
        self._first_selection()
        self._jobs_changed()

    def _discover_failed(self, paths: Sequence[str], failure: JobFailure) -> None:
        self._pending_discover -= 1
        for path in paths:
            key = f"failed:{path}"
            self.load_report["failed"].append((path, failure.message))
            self.entries[key] = ExamEntry(key, Path(path).name or path, path, status="error", message=failure.message)
            self.exam_list.add_exam(key, self.entries[key].label, "error")
            self.exam_list.set_status(key, "error", failure.message)
            self.examFailed.emit(key)
        self._update_report_button()
        self.status_label.setText(f"Could not open: {failure.message}")
        self._first_selection()
        self._jobs_changed()

    def add_exam(self, exam: Any, source: str = "") -> str:
        """Open an already loaded ``engine.io.Exam`` (synthetic exams, tests); returns its key."""
        key, label, src = jobs.candidate_identity(exam, source)
        self._start_load(key, label, src, exam)
        self._first_selection()
        return key

    def _start_load(self, key: str, label: str, source: str, candidate: Any,
                    disc_at: Optional[tuple[float, float]] = None, outlines: Any = None) -> None:
        entry = ExamEntry(key, label, source, candidate=candidate, disc_at=disc_at, outlines=outlines)
        self.entries[key] = entry
        self.exam_list.add_exam(key, label, "loading")
        entry.job = self.worker.submit(
            jobs.load_exam, candidate, key, source, name=f"load {label}",
            on_finished=self._loaded,
            on_failed=lambda failure, k=key: self._failed(k, failure),
            on_progress=lambda f, m, k=key: self._progress(k, f, m, "loading"),
        )
        if key == self._current_key:
            self.show_exam(key)

    def _loaded(self, loaded: LoadedExam) -> None:
        entry = self.entries.get(loaded.key)
        if entry is None or self._closing:
            return
        entry.loaded = loaded
        entry.label = loaded.label
        entry.last_used = time.perf_counter()
        self.exam_list.add_exam(entry.key, loaded.label, "analysing")
        self.load_report["opened"].append((entry.source, f"{loaded.exam_id}: {', '.join(loaded.exam.modalities)}"))
        self._update_report_button()
        self.examReady.emit(entry.key)
        entry.read_spacing, entry.read_eye = loaded.exam.fundus_spacing, loaded.exam.eye
        self._apply_photo_scale(entry)
        loaded.exam.eye = self._eye_of(entry)
        restored = self._restore_corrections(entry)
        if loaded.photo_sha256 and self.corrections.eye(loaded.photo_sha256):
            restored = " and ".join(x for x in (restored, f"eye {loaded.exam.eye} set") if x)
        if self._current_key == entry.key:
            self.show_exam(entry.key)
        self._start_analysis(entry)
        if restored:
            self.status_label.setText(f"{entry.label}: {restored} by hand in an earlier session (right-click the "
                                      "photo or Analysis → Eye to change it)")
        self._enforce_memory_limit()

    # ------------------------------------------------------------------------------------------- memory (LRU)
    def resident_keys(self) -> list[str]:
        """Keys of the exams whose pixels are in memory now."""
        return [k for k, e in self.entries.items() if e.loaded is not None]

    def _enforce_memory_limit(self) -> None:
        """Drop the least recently used exams beyond ``max_exams`` (never the shown one nor one being worked on)."""
        resident = [e for e in self.entries.values() if e.loaded is not None]
        excess = len(resident) - self.max_exams
        if excess <= 0:
            return
        droppable = [e for e in resident if e.reloadable and e.key != self._current_key
                     and not (e.job is not None and e.job.is_active)]
        for entry in sorted(droppable, key=lambda e: e.last_used)[:excess]:
            self._unload(entry)

    def _unload(self, entry: ExamEntry) -> None:
        entry.loaded = None
        entry.analysis = None  # its label and Grad-CAM volumes are as large as the exam itself
        entry.status = "unloaded"
        self.exam_list.set_status(entry.key, "unloaded", "not in memory: select it to read it again")

    def _reload(self, entry: ExamEntry) -> None:
        """Read an unloaded exam again from disk (and analyse it again), keeping its row, slice, placed disc and
        outlines drawn by hand."""
        bscan = entry.current_bscan
        self._start_load(entry.key, entry.label, entry.source, entry.candidate, entry.disc_at, entry.outlines)
        self.entries[entry.key].current_bscan = bscan

    def _start_analysis(self, entry: ExamEntry) -> None:
        assert entry.loaded is not None
        entry.status = "analysing"
        entry.progress, entry.progress_text = 0.0, "queued"
        entry.analysis = None
        if self._current_key == entry.key:
            self.fundus_view.set_outline_vertices({}, ())  # nothing to correct until the analysis is back
        self.exam_list.set_status(entry.key, "analysing", progress=0.0)
        run = jobs.analyse_exam if self.runner is None else functools.partial(self.runner.call, jobs.analyse_exam)
        entry.job = self.analysis_worker.submit(
            run, entry.loaded, name=f"analyse {entry.label}", models=self.models, calibration=self.site_calibration,
            disc_at=entry.disc_at, outlines=entry.outlines,
            on_finished=lambda view, k=entry.key, asked=(entry.disc_at, entry.outlines, _photo_spacing(entry),
                                                         entry.loaded.exam.eye):
                self._analysed(k, view, asked),
            on_failed=lambda failure, k=entry.key: self._failed(k, failure),
            on_progress=lambda f, m, k=entry.key: self._progress(k, f, m, "analysing"),
        )
        if self._current_key == entry.key:
            self.results.set_pending(f"Analysing {entry.label}…")

    def reanalyse(self, key: str) -> None:
        entry = self.entries.get(key)
        if entry is None:
            return
        if entry.loaded is None:
            if not entry.source:
                return
            self.entries.pop(key, None)
            self.open_paths([entry.source], remember=False)
            return
        if entry.job is not None and entry.job.is_active:
            return
        self._start_analysis(entry)

    def _analysed(self, key: str, view: AnalysisView, asked: tuple[Any, Any, Any, str]) -> None:
        """Show ``view``, the analysis of exam ``key`` with the placement, outlines, photo spacing and eye ``asked``;
        when they changed while it ran (a disc placed, corrections imported or forgotten, a scale typed in, the eye
        set), analyse again instead."""
        entry = self.entries.get(key)
        if entry is None or self._closing:
            return
        entry.job = None
        now = (entry.disc_at, entry.outlines, _photo_spacing(entry), entry.loaded.exam.eye if entry.loaded else None)
        if asked[0] != now[0] or asked[1] is not now[1] or asked[2:] != now[2:]:
            self._start_analysis(entry)
            return
        entry.analysis = view
        entry.status = "done"
        message = "; ".join(view.messages)
        self.exam_list.set_status(key, "done", message, caution=view.grade_caution)
        if key == self._current_key:
            self._apply_analysis(entry)
        self.status_label.setText(f"{entry.label}: {self._grade_text(view)}")
        self._enforce_memory_limit()
        self.examAnalysed.emit(key)

    def _failed(self, key: str, failure: JobFailure) -> None:
        entry = self.entries.get(key)
        if entry is None or self._closing:
            return
        entry.status = "cancelled" if failure.cancelled else "error"
        entry.message = "stopped by the user" if failure.cancelled else failure.message
        entry.job = None
        self.exam_list.set_status(key, entry.status, entry.message)
        if failure.detail:
            self.exam_list.list.item(self.exam_list.keys().index(key)).setToolTip(
                failure.message + "\n\n(details are in the Load report)"
            )
            self.load_report["failed"].append((entry.source, failure.message))
        elif not failure.cancelled:
            self.load_report["failed"].append((entry.source, failure.message))
        self._update_report_button()
        self.status_label.setText(f"{entry.label}: {entry.message}")
        if key == self._current_key:
            self.show_exam(key)
        self.examFailed.emit(key)

    def _progress(self, key: str, fraction: float, message: str, phase: str) -> None:
        entry = self.entries.get(key)
        if entry is None:
            return
        entry.progress, entry.progress_text = fraction, message
        if phase == "analysing":
            self.exam_list.set_status(key, "analysing", progress=fraction)
        self._update_progress_display()

    # ================================================================================================ showing
    def _first_selection(self) -> None:
        if self._current_key is None and self.exam_list.keys():
            self.exam_list.select(self.exam_list.keys()[0])

    def show_exam(self, key: str) -> None:
        """Make ``key`` the current exam and show what is known of it."""
        entry = self.entries.get(key)
        if entry is None:
            return
        previous = self._current_key
        self._current_key = key
        entry.last_used = time.perf_counter()
        if self.exam_list.current_key() != key:
            self.exam_list.select(key)
        if entry.status == "unloaded":
            self._reload(entry)
            entry = self.entries[key]
        loaded = entry.loaded
        if loaded is None:
            text = {"loading": f"Loading {entry.label}…"}.get(entry.status, f"{entry.label}: {entry.message}")
            self.fundus_view.clear(text)
            self.fundus_pane.show()
            self.oct_pane.show()
            self.oct_view.set_volume(None, message=text)
            self.results.set_pending(text)
            self.results.set_data_note("")
            return
        exam = loaded.exam
        if loaded.photo_kind == "xray":
            self.fundus_view.set_photo(loaded.fundus_display, loaded.fundus_shape,
                                       title=f"Panoramic radiograph — {loaded.exam_id}", kind="xray")
        else:
            self.fundus_view.set_photo(loaded.fundus_display, loaded.fundus_shape, title=self._photo_title(entry))
        self.results.set_data_note(jobs.data_note(exam), jobs.data_details(exam))
        n = 0 if exam.oct is None else len(exam.oct)
        # The slice browser shows the OCT volume, or else the MRI's axial slices (glioma attention as its heat map).
        volume = exam.oct if exam.oct is not None else loaded.mri_display
        if previous != key or volume is None or self.oct_view.volume is not volume:
            self.oct_view.set_volume(volume, key=key, auto_wl=loaded.oct_wl, index=entry.current_bscan,
                                     message="No OCT volume or MRI in this exam")
        # An exam with no slices gives the photo the whole column; one with neither a photo nor an OCT en-face
        # projection (an MRI) gives it to the slices.
        self.oct_pane.setVisible(volume is not None)
        self.fundus_pane.setVisible(loaded.fundus_display is not None or loaded.enface is not None
                                    or volume is None)
        if exam.oct is None and loaded.mri_display is not None:
            self.oct_view.unit_name = "slice"
            self.oct_view.cam_toggle.setText("Attention")
            self.oct_view.set_title(f"MRI — {loaded.mri_sequence.upper()}, axial slices")
        else:
            self.oct_view.unit_name = "B-scan"
            self.oct_view.cam_toggle.setText("Grad-CAM")
            oct_synthetic = exam.oct is not None and exam.is_synthetic_modality("oct")
            self.oct_view.set_title("OCT B-scan — SYNTHETIC (generated, not acquired)" if oct_synthetic
                                    else "OCT B-scan")
        self.fundus_view.set_disc_placed(entry.disc_at)
        self.fundus_view.placing_enabled = loaded.photo_kind == "fundus" and exam.fundus is not None
        self.fundus_view.set_geometry(exam.bscan_positions, n, loaded.enface, loaded.enface_aspect)
        self.fundus_view.set_current(self.oct_view.current_index)
        if entry.analysis is not None:
            self._apply_analysis(entry)
        else:
            self.fundus_view.set_disc_overlay([], [], None)
            self.fundus_view.set_outline_vertices({}, ())  # not those of the exam shown before
            self._update_undo(None)
            self.fundus_view.set_cam(None)
            self.oct_view.set_overlays(None, None)
            if entry.status == "analysing":
                self.results.set_pending(f"Analysing {entry.label}… {int(100 * entry.progress)} %")
            elif entry.status in ("error", "cancelled"):
                self.results.set_pending(f"{entry.status.capitalize()}: {entry.message}")
        self._update_banner()

    def place_disc(self, point: Optional[tuple[float, float]]) -> None:
        """Analyse the shown exam again with its optic disc at ``point`` ((row, col) photo px), or found by the
        engine itself (None). An analysis already running finishes first; the new one follows it."""
        entry = self.current_entry()
        if entry is None or entry.loaded is None or entry.loaded.exam.fundus is None or entry.disc_at == point:
            return
        entry.disc_at, entry.outlines = point, None  # outlines drawn on the previous disc do not carry over
        entry.outline_undo.clear()
        self.fundus_view.stop_editing()
        self.fundus_view.set_disc_placed(point)
        self._remember_corrections(entry)
        where = "found automatically" if point is None else f"placed at x {point[1]:.0f}, y {point[0]:.0f}"
        self.status_label.setText(f"{entry.label}: optic disc {where}; analysing again")
        if entry.job is None or not entry.job.is_active:
            self._start_analysis(entry)

    def _restore_corrections(self, entry: ExamEntry) -> str:
        """Put back the disc placed / outlines drawn for this photo in an earlier session (unless this session
        already has its own); returns what was restored, in words ("" for nothing)."""
        if entry.loaded is None or entry.disc_at is not None or entry.outlines is not None:
            return ""
        entry.disc_at, entry.outlines = self.corrections.get(entry.loaded.photo_sha256)
        said = (["optic disc placed"] if entry.disc_at is not None else []) + (
            [entry.outlines.describe() + " drawn"] if entry.outlines is not None else [])
        return " and ".join(said)

    def _remember_corrections(self, entry: ExamEntry) -> None:
        """Remember the exam's placement and outlines; the corrections file is written on the worker (a failure is
        said in the status line)."""
        if entry.loaded is not None and self.corrections.put(entry.loaded.photo_sha256, entry.disc_at, entry.outlines):
            self._write_corrections()

    def _write_corrections(self) -> None:
        """Write the corrections file on the worker; a failure is said in the status line."""
        self.worker.submit(jobs.write_corrections, self.corrections, name="remember corrections",
                           on_failed=lambda failure: self.status_label.setText(
                               f"Corrections not remembered for the next session: {failure.message}"))

    # ------------------------------------------------------------------------ hand corrections, as a file
    def _update_corrections_menu(self) -> None:
        n = len(self.corrections)
        self.export_corrections_action.setText(f"Export… ({n} photo{'' if n == 1 else 's'})")
        self.export_corrections_action.setEnabled(n > 0)
        self.forget_corrections_action.setEnabled(n > 0)

    def export_corrections_dialog(self) -> None:
        from engine.fundus.corrections import FILE_NAME

        path = self._ask_save_path("Export hand corrections", FILE_NAME, "JSON (*.json)")
        if path:
            self.export_corrections(path)

    def export_corrections(self, path: PathLike) -> JobHandle:
        """Write a copy of the remembered placements and outlines to ``path`` on the worker; the status line says
        where and how to grade with it (or why it was not written)."""
        n = len(self.corrections)
        return self.worker.submit(
            jobs.write_corrections, self.corrections.snapshot(), str(path), name="export corrections",
            on_finished=lambda _: self.status_label.setText(
                f"Hand corrections of {n} photo(s) written to {path} (grade a batch with them: python -m engine "
                f"grade ... --disc-corrections {path})"),
            on_failed=lambda failure: self.status_label.setText(f"Hand corrections not exported: {failure.message}"))

    def import_corrections_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Import hand corrections", self.last_folder(),
                                                        "JSON (*.json)")
        if path:
            self.import_corrections(path)

    def import_corrections(self, path: PathLike) -> JobHandle:
        """Read a corrections file on the worker and take its records where they are new or newer than ours; open
        exams whose photos they concern take them and are analysed again. An unreadable file is said in a dialog."""

        def take(other: Any) -> None:
            changed = self.corrections.merge(other)
            if changed:
                self._write_corrections()
            shown = self._take_stored_corrections(changed)
            self.status_label.setText(
                f"Imported hand corrections of {len(changed)} photo(s) from {Path(path).name} ({len(other)} there; "
                f"older or the same as ours: {len(other) - len(changed)})"
                + (f"; {shown} open exam(s) analysed again with them" if shown else ""))

        return self.worker.submit(
            jobs.read_corrections_file, str(path), name="import corrections", on_finished=take,
            on_failed=lambda failure: QtWidgets.QMessageBox.warning(
                self, "Import hand corrections", f"Not imported: {failure.message}"))

    def forget_corrections_dialog(self) -> None:
        n = len(self.corrections)
        answer = QtWidgets.QMessageBox.question(
            self, "Forget all hand corrections",
            f"Forget the optic discs placed, outlines drawn and eyes set by hand for {n} photo(s)? Open exams go back "
            "to the automatic disc and outlines and to the eye their files give. Export them first to keep a copy.")
        if answer == QtWidgets.QMessageBox.StandardButton.Yes:
            self.forget_corrections()

    def forget_corrections(self) -> None:
        """Forget every remembered placement and outline (the file is written on the worker); open exams that had
        one are analysed again without it."""
        forgotten = self.corrections.forget_all()
        self._write_corrections()
        keys = forgotten | {e.loaded.photo_sha256 for e in self.entries.values()
                            if e.loaded is not None and (e.disc_at is not None or e.outlines is not None)}
        shown = self._take_stored_corrections(keys)
        self.status_label.setText(f"Hand corrections of {len(forgotten)} photo(s) forgotten"
                                  + (f"; {shown} open exam(s) analysed again without them" if shown else ""))

    def _take_stored_corrections(self, photos: set[str]) -> int:
        """Open exams whose photo (SHA-256) is among ``photos`` take the placement and outlines stored for it (none
        when there is no record) and are analysed again; returns how many changed."""
        from engine.results_csv import correction_label

        changed = 0
        for entry in self.entries.values():
            if entry.loaded is None:  # dropped from memory: read again, it takes what the store then holds for it
                entry.disc_at, entry.outlines = None, None
                entry.outline_undo.clear()
                continue
            if entry.loaded.photo_sha256 not in photos:
                continue
            disc_at, outlines = self.corrections.get(entry.loaded.photo_sha256)
            if correction_label(disc_at, outlines) == correction_label(entry.disc_at, entry.outlines):
                changed += self._apply_eye(entry)  # the eye set by hand may be all that changed
                continue
            entry.loaded.exam.eye = self._eye_of(entry)
            entry.disc_at, entry.outlines = disc_at, outlines
            entry.outline_undo.clear()
            if entry.key == self._current_key:
                self.fundus_view.stop_editing()
                self.fundus_view.set_disc_placed(disc_at)
            if entry.job is None or not entry.job.is_active:  # else _analysed starts it again
                self._start_analysis(entry)
            changed += 1
        return changed

    def correct_outline(self, part: str, points: Any) -> None:
        """Measure the shown exam again with its "disc" or "cup" outline drawn by hand as ``points`` ((K, 2) (row,
        col) photo px); nothing is segmented or graded again. A polygon that cannot be used is said in the status
        line and the editor goes back to the last outline measured."""
        from engine.fundus.hand_outline import HandOutlines, OutlineError

        entry = self.current_entry()
        if entry is None or entry.analysis is None or entry.analysis.disc_analysis is None:
            return
        try:
            outlines = (entry.outlines or HandOutlines()).replace(part, points)
        except OutlineError as err:
            self._outline_refused(entry, str(err))
            return
        self.set_outlines(outlines)

    def set_outlines(self, outlines: Any, undoing: bool = False) -> None:
        """Show and measure the shown exam with ``outlines`` (:class:`engine.fundus.hand_outline.HandOutlines`; None:
        the segmenter's), on the worker (a few ms; the contours of a 12 MP photo take longer). Unless ``undoing``,
        the outlines shown before are kept for :meth:`undo_outline` once the new ones are measured."""
        entry = self.current_entry()
        if entry is None or entry.analysis is None or entry.loaded is None or entry.outlines is outlines:
            return
        before = entry.analysis.outlines
        entry.outlines = outlines
        self.worker.submit(jobs.correct_outlines, entry.analysis, entry.loaded.exam, outlines,
                           name=f"outlines {entry.label}",
                           on_finished=lambda view, k=entry.key: self._outlines_measured(
                               k, view, outlines, () if undoing else (before,)),
                           on_failed=lambda failure, k=entry.key: self._outlines_failed(k, failure, outlines))

    def draw_outlines_at(self, point: tuple[float, float]) -> None:
        """Where the segmenter found no disc: a disc outline of the size the localiser expects (a tenth of the
        photo's short side when it has none) and a cup half as wide, around ``point`` ((row, col) photo px), to be
        corrected in the editor."""
        from engine.fundus.hand_outline import EDITOR_VERTICES, HandOutlines

        entry = self.current_entry()
        if entry is None or entry.loaded is None or entry.loaded.exam.fundus is None or entry.analysis is None:
            return
        h, w = entry.loaded.exam.fundus.shape[:2]
        radius = float(getattr(getattr(entry.analysis.disc_analysis, "localisation", None), "radius_px", 0.0)
                       or 0.05 * min(h, w))
        t = np.linspace(0.0, 2.0 * np.pi, EDITOR_VERTICES, endpoint=False)
        ring = np.stack([np.sin(t), np.cos(t)], axis=1)
        centre = np.asarray(point, np.float64)
        self.set_outlines(HandOutlines(disc=centre + radius * ring, cup=centre + 0.5 * radius * ring))

    def undo_outline(self) -> None:
        """Analysis > Undo outline change (Ctrl+Z): the shown exam's outlines as they were before the last change
        measured (a change still being measured is not undone)."""
        entry = self.current_entry()
        if entry is None or entry.analysis is None or not entry.outline_undo or entry.outlines is not \
                entry.analysis.outlines:
            return
        self.set_outlines(entry.outline_undo.pop(), undoing=True)

    def _outlines_measured(self, key: str, view: AnalysisView, outlines: Any, replaced: tuple = ()) -> None:
        """``replaced``: (the outlines this change replaced,) to keep for Undo; () when undoing."""
        entry = self.entries.get(key)
        if entry is None or entry.analysis is None or entry.outlines is not outlines:
            return  # a newer change (or a new analysis) follows
        entry.outline_undo.extend(replaced)
        entry.analysis = view
        self._remember_corrections(entry)
        self.exam_list.set_status(key, "done", "; ".join(view.messages), caution=view.grade_caution)
        if key == self._current_key:
            self._apply_analysis(entry)
        vcdr = next((b.value for b in view.biomarkers if b.name == "vertical CDR"), "?")
        what = outlines.describe() + " drawn by hand" if outlines is not None else "automatic outlines"
        self.status_label.setText(f"{entry.label}: {what}; vertical CDR {vcdr}")

    def _outlines_failed(self, key: str, failure: JobFailure, outlines: Any) -> None:
        entry = self.entries.get(key)
        if entry is not None and entry.analysis is not None and entry.outlines is outlines:
            self._outline_refused(entry, failure.message)

    def _outline_refused(self, entry: ExamEntry, why: str) -> None:
        """Back to the last outlines measured (the editor too), saying why in the status line."""
        assert entry.analysis is not None
        entry.outlines = entry.analysis.outlines
        self.status_label.setText(f"{entry.label}: outline not used: {why}")
        if entry.key == self._current_key:
            self._apply_analysis(entry)

    def _update_undo(self, entry: Optional[ExamEntry]) -> None:
        can = entry is not None and entry.analysis is not None and bool(entry.outline_undo)
        self.undo_outline_action.setEnabled(can)
        self.fundus_view.undo_button.setEnabled(can)

    def _photo_title(self, entry: ExamEntry) -> str:
        """The fundus pane's title: the eye first (it must show), as the exam gives it or as its analysis inferred
        it from the disc's side of the photo, then the exam id."""
        assert entry.loaded is not None
        exam = entry.loaded.exam
        inferred = entry.analysis.eye_inferred if entry.analysis is not None else ""
        eye = ({"OD": "OD right", "OS": "OS left"}.get(exam.eye)
               or {"OD": "OD right (disc side)", "OS": "OS left (disc side)"}.get(inferred, "eye unknown"))
        synthetic = " — SYNTHETIC" if exam.is_synthetic_modality("fundus") else ""
        what = "Fundus" if exam.fundus is not None else "No fundus photo"
        return f"{what} — {eye} — {entry.loaded.exam_id}{synthetic}"

    def _apply_analysis(self, entry: ExamEntry) -> None:
        view = entry.analysis
        assert view is not None
        if entry.loaded is not None and entry.loaded.photo_kind != "xray":
            self.fundus_view.set_title(self._photo_title(entry))
        self.fundus_view.set_disc_overlay(view.disc_contours, view.cup_contours, view.crop_box)
        drawn = () if view.outlines is None else view.outlines.parts
        self.fundus_view.set_outline_vertices(view.outline_vertices, drawn,
                                              can_draw=view.disc_analysis is not None and not view.outline_vertices)
        self._update_undo(entry)
        self.oct_view.set_overlays(view.oct_labels, view.oct_cam)
        self.results.set_analysis(view, self.oct_view.current_index)
        choice = self.results.cam_choice
        self.fundus_view.set_cam(view.fundus_cam if choice is None else choice.currentData())
        self._update_banner()

    def _show_photo_cam(self, cam: Any) -> None:
        """A heat map chosen in the results panel (glaucoma grade or one ODIR label) goes on the photo, shown."""
        self.fundus_view.set_cam(cam)
        if cam is not None:
            self.fundus_view.cam_toggle.setChecked(True)

    def _slice_changed(self, index: int) -> None:
        self.fundus_view.set_current(index)
        self.results.set_current_bscan(index)
        entry = self.entries.get(self._current_key or "")
        if entry is not None:
            entry.current_bscan = index

    @staticmethod
    def _grade_text(view: AnalysisView) -> str:
        if (view.grade is None or view.ensemble is None) and view.tasks:
            return "; ".join(f"{t.title}: {t.verdict}" for t in view.tasks)
        if view.grade is None or view.ensemble is None:
            return "analysed (no grade)"
        caution = f"; {view.grade_caution.split(':')[0].lower()}" if view.grade_caution else ""  # its first clause
        return f"grade {view.grade} ({100 * view.ensemble.get(view.grade, 0):.0f} %{caution})"

    def _update_banner(self) -> None:
        entry = self.entries.get(self._current_key or "")
        default = True
        if entry is not None and entry.analysis is not None and entry.analysis.models:
            default = entry.analysis.default_weights
        self._default_weights_in_use = default
        analysis = entry.analysis if entry is not None else None
        graded = analysis is not None and bool(analysis.models or analysis.tasks)
        self.banner.setText(BANNER_TEXT if graded or entry is None or entry.analysis is None else BANNER_NO_GRADE)
        self.banner.setVisible(default)

    # ================================================================================================ jobs
    def _jobs_changed(self, *_: Any) -> None:
        self._update_progress_display()
        if not self.is_busy():
            self.idle.emit()

    def is_busy(self) -> bool:
        return bool(self._pending_discover or self.worker.active_count or self.analysis_worker.active_count)

    def _update_progress_display(self) -> None:
        active = [e for e in self.entries.values() if e.status in ("loading", "analysing") and e.job is not None]
        busy = self.is_busy()
        self.cancel_button.setVisible(busy)
        self.progress_bar.setVisible(busy)
        if not busy:
            return
        running = [e for e in active if e.job is not None and e.job.state == "running"] or active
        if running:
            e = running[0]
            verb = "Loading" if e.status == "loading" else "Analysing"
            extra = f" (+{len(active) - 1} more)" if len(active) > 1 else ""
            self.status_label.setText(f"{verb} {e.label} — {e.progress_text or 'starting'}{extra}")
            self.progress_bar.setValue(int(round(100 * e.progress)))
        else:
            self.progress_bar.setRange(0, 0)  # discovering: indeterminate
            return
        self.progress_bar.setRange(0, 100)

    def cancel_running(self) -> None:
        """Cancel every queued or running load and analysis; what finished stays."""
        self.worker.cancel_all()
        self.analysis_worker.cancel_all()
        self.status_label.setText("Cancelling…")

    def running_jobs(self) -> list[JobHandle]:
        return self.worker.handles() + self.analysis_worker.handles()

    # ================================================================================================ dialogs
    def _update_report_button(self) -> None:
        r = self.load_report
        summary = f"({len(r['skipped'])} skipped)" if r["skipped"] else ""
        self.exam_list.set_report_available(bool(r["opened"] or r["skipped"] or r["failed"]), summary)

    def show_load_report(self) -> QtWidgets.QDialog:
        dialog = LoadReportDialog(self.load_report["opened"], self.load_report["skipped"], self.load_report["failed"],
                                  self)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_model_card(self, run: ModelRun) -> QtWidgets.QDialog:
        dialog = ModelCardDialog(run, self)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_model_cards(self) -> None:
        entry = self.entries.get(self._current_key or "")
        runs = ([*entry.analysis.models, *entry.analysis.anatomy_models]
                if entry is not None and entry.analysis is not None else [])
        if not runs:
            QtWidgets.QMessageBox.information(
                self, "Model cards",
                "No model has run on this exam yet. The default weights and their cards are in resources/models/; "
                "every card says what data trained the model and how it was evaluated.",
            )
            return
        for run in runs:
            self.show_model_card(run)

    def show_timings(self) -> None:
        entry = self.entries.get(self._current_key or "")
        if entry is None or entry.loaded is None:
            QtWidgets.QMessageBox.information(self, "Timings", "No exam loaded yet.")
            return
        lines = [f"load + prepare: {entry.loaded.load_seconds:.2f} s"]
        if entry.analysis is not None:
            lines += [f"{k}: {v:.2f} s" for k, v in entry.analysis.timings.items()]
        QtWidgets.QMessageBox.information(self, f"Timings — {entry.label}", "\n".join(lines))

    def choose_site_calibration(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Site calibration of the cup (python -m engine.fundus.site_calibration)", self.last_folder(),
            "Site calibration (*.json)")
        if path:
            self.set_site_calibration(path)

    def set_site_calibration(self, path: Optional[str], reanalyse: bool = True) -> bool:
        """Use the site calibration file ``path`` for every disc/cup result from now on (None: none), remember it,
        and analyse the current exam again. A file that cannot be used (unreadable, or fitted for other disc/cup
        weights than the shipped ones) is said in a dialog (at start-up, in the status line) and forgotten."""
        from engine.fundus.site_calibration import CalibrationError, check_weights, load_calibration

        calibration = None
        if path:
            try:
                calibration = load_calibration(Path(path))
                check_weights(calibration, _shipped_disc_cup_sha256())
            except CalibrationError as err:
                self.settings.remove("disc_cup/site_calibration")
                if reanalyse:
                    QtWidgets.QMessageBox.warning(self, "Site calibration", str(err))
                else:
                    self.status_label.setText(f"Site calibration not used: {err}")
                return False
        self.site_calibration = calibration
        self.settings.setValue("disc_cup/site_calibration", path or "")
        self.clear_calibration_action.setEnabled(calibration is not None)
        self.calibration_badge.setVisible(calibration is not None)
        if calibration:
            said = calibration.describe()
            self.calibration_badge.setText(f"Cup ×{calibration.cup_scale:.2f} · {calibration.name}")
            self.calibration_badge.setToolTip(f"{said[:1].upper()}{said[1:]} "
                                              "(Analysis → No site calibration to stop)")
            self.status_label.setText(said)
        else:
            self.status_label.setText("No site calibration: the segmenter's own cup outline")
        if reanalyse and self._current_key:
            self.reanalyse(self._current_key)
        return True

    def ask_photo_scale(self) -> None:
        """Analysis > Photo scale…: type in the shown photo's scale (or clear it) and analyse it again."""
        from glaucoma_viewer.dialogs.photo_scale import PhotoScaleDialog

        entry = self.current_entry()
        if entry is None or entry.loaded is None or entry.loaded.exam.fundus is None:
            self.status_label.setText("Photo scale: show an exam with a fundus photo first")
            return
        rows = [c[:, 0] for c in (entry.analysis.disc_contours if entry.analysis is not None else []) if len(c)]
        height = float(np.ptp(np.concatenate(rows))) if rows else None  # the disc outline's height, photo px
        um, origin = self.photo_scale_of(entry)
        size = photo_size(entry.loaded.exam.fundus)
        now = {"exam": f"{um or 0:.2f} µm per pixel, typed in for this exam",
               "size": f"{um or 0:.2f} µm per pixel, typed in for every {size} px photo",
               "file": f"{um or 0:.2f} µm per pixel, from the file"}.get(origin, "not known (sizes in pixels, DDLS as "
                                                                           "a range)")
        typed = um if origin in ("exam", "size") else None
        dialog = PhotoScaleDialog(self, entry.label, typed, height, now, size.replace("x", "×"), origin == "size")
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            self.set_photo_scale(entry.key, dialog.value, every_size=dialog.every_size)

    def set_eye(self, key: str, eye: Optional[str]) -> None:
        """Measure exam ``key`` as a right (``"OD"``) or left (``"OS"``) eye, or (None) as its files say, else with
        the eye the disc's side of the photo shows; analyse it again when that changes. Remembered with the hand
        corrections of its photo (later sessions, batch export, ``grade`` / ``segment --disc-corrections``), for the
        session where the exam has no photo."""
        entry = self.entries.get(key)
        if entry is None or entry.loaded is None:
            return
        sha = entry.loaded.photo_sha256
        if sha:
            if self.corrections.put_eye(sha, eye):
                self._write_corrections()
        elif eye is None:
            self.eyes.pop(key, None)
        else:
            self.eyes[key] = eye
        said = {"OD": "measured as a right eye (OD)", "OS": "measured as a left eye (OS)"}.get(
            eye or "", "eye as the files say" + ("" if entry.read_eye in ("OD", "OS") else
                                                 ", else from the disc's side of the photo"))
        self.status_label.setText(f"{entry.label}: {said}" + (" (remembered for this photo)" if sha and eye else ""))
        self._apply_eye(entry)

    def _eye_set(self, entry: ExamEntry) -> Optional[str]:
        """The eye set by hand for exam ``entry`` (remembered for its photo, or this session for an exam without
        one), or None."""
        sha = entry.loaded.photo_sha256 if entry.loaded is not None else ""
        return self.corrections.eye(sha) if sha else self.eyes.get(entry.key)

    def _eye_of(self, entry: ExamEntry) -> str:
        """The eye exam ``entry`` is measured with: :meth:`_eye_set`, else as its files say."""
        return self._eye_set(entry) or entry.read_eye

    def _apply_eye(self, entry: ExamEntry) -> bool:
        """Give the open exam the eye :meth:`_eye_of` finds and analyse it again when that changes it; returns
        whether it did."""
        eye = self._eye_of(entry)
        if entry.loaded is None or eye == entry.loaded.exam.eye:
            return False
        entry.loaded.exam.eye = eye
        if entry.key == self._current_key:
            self.fundus_view.set_title(self._photo_title(entry))
        self.reanalyse(entry.key)
        return True

    def _check_eye_action(self) -> None:
        """Tick the Eye menu's entry for the shown exam."""
        entry = self.current_entry()
        chosen = None if entry is None else self._eye_set(entry)
        for action in self.eye_actions.actions():
            action.setChecked(action.data() == chosen)

    def photo_scale_of(self, entry: ExamEntry) -> tuple[Optional[float], str]:
        """The µm per pixel the exam's photo is measured with and where it comes from: ``"exam"`` (typed in for
        it), ``"file"``, ``"size"`` (typed in for every photo of its size), or ``(None, "")`` when not known."""
        spacing = self._measured_spacing(entry)
        if spacing is None or not spacing.is_physical:
            return None, ""
        if entry.key in self.photo_scales:
            return self.photo_scales[entry.key], "exam"
        if spacing is entry.read_spacing:
            return float(spacing.mm[0]) * 1000.0, "file"
        return self.size_scales[photo_size(entry.loaded.exam.fundus)], "size"

    def _measured_spacing(self, entry: ExamEntry) -> Any:
        """The :class:`engine.io.exam.Spacing` for the exam's photo: one typed in for the exam, else the file's or
        the one typed in for every photo of its size, as :func:`engine.io.exam.scale_for_size` chooses."""
        if entry.key in self.photo_scales:
            return typed_photo_spacing(self.photo_scales[entry.key])
        exam = entry.loaded.exam if entry.loaded is not None else None
        if exam is None or exam.fundus is None:
            return entry.read_spacing
        return scale_for_size(exam.fundus, entry.read_spacing, self.size_scales)

    def set_photo_scale(self, key: str, um_per_px: Optional[float], every_size: bool = False) -> None:
        """Use ``um_per_px`` (µm per photo px, typed in; None: back to the file's own scale) for exam ``key``'s photo
        until the window closes, and analyse it again; ``every_size``: for every photo of its size with no scale of
        its own (the exam's own typed scale is dropped), remembered in the settings for later sessions, and every
        exam open whose scale that changes is analysed again."""
        entry = self.entries.get(key)
        exam = entry.loaded.exam if entry is not None and entry.loaded is not None else None
        if every_size and exam is not None and exam.fundus is not None:
            size = photo_size(exam.fundus)
            self.photo_scales.pop(key, None)
            if um_per_px is None:
                self.size_scales.pop(size, None)
            else:
                self.size_scales[size] = float(um_per_px)
            self.settings.setValue(SIZE_SCALES_KEY, json.dumps(self.size_scales, sort_keys=True))
            changed = [e for e in self.entries.values() if self._apply_photo_scale(e)]
            said = (f"photo scale {um_per_px:.2f} µm per pixel for every {size} px photo with no scale of its own"
                    if um_per_px is not None else f"no photo scale for {size} px photos")
            for other in changed:
                self.reanalyse(other.key)
            flags = " ".join(f"--photo-scale-for {k}={v:g}" for k, v in sorted(self.size_scales.items()))
            flags = f"; on the command line: {flags}" if flags else ""
            self.status_label.setText(f"{said} ({len(changed)} exam(s) open measured again{flags})")
            return
        if um_per_px is None:
            self.photo_scales.pop(key, None)
        else:
            self.photo_scales[key] = float(um_per_px)
        if exam is None or exam.fundus is None:
            return
        self._apply_photo_scale(entry)
        um, origin = self.photo_scale_of(entry)
        size = photo_size(exam.fundus)
        said = {"exam": f"photo scale {um or 0:.2f} µm per pixel typed in: disc sizes in mm and one DDLS stage",
                "size": f"photo scale {um or 0:.2f} µm per pixel, typed in for every {size} px photo"
                }.get(origin, "photo scale as the file gives it")
        self.status_label.setText(f"{entry.label}: {said}")
        self.reanalyse(key)

    def _apply_photo_scale(self, entry: ExamEntry) -> bool:
        """Give the exam's photo the scale :meth:`_measured_spacing` finds; returns whether its spacing changed."""
        exam = entry.loaded.exam if entry.loaded is not None else None
        if exam is None or exam.fundus is None:
            return False
        spacing = self._measured_spacing(entry)
        changed = spacing != exam.fundus_spacing
        exam.fundus_spacing = spacing
        return changed

    def show_about(self) -> None:
        QtWidgets.QMessageBox.about(
            self, "About Glaucoma Viewer",
            f"Glaucoma Viewer {__version__}\n\nResearch use only — not a medical device.\n"
            "Fundus + OCT viewer with optic disc/cup, retinal layers and glaucoma grading.",
        )

    def open_batch_export(self) -> QtWidgets.QDialog:
        from glaucoma_viewer.dialogs.batch_export import BatchExportDialog

        folders = [self.last_folder()] if self.last_folder() else []
        dialog = BatchExportDialog(self.worker, folders=folders, models=self.models,
                                   calibration=self.site_calibration, isolate=self.runner is not None, parent=self,
                                   corrections=self.corrections, size_scales=self.size_scales)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def warm_up(self) -> JobHandle:
        """Import the analysis modules on the worker now (see ``worker.warm_up``), not in the first analysis."""
        if self.runner is not None:  # the imports that matter happen in the analysis process
            return self.analysis_worker.submit(self.runner.call, jobs.warm_up, name="warm up")
        return self.worker.submit(jobs.warm_up, name="warm up")

    def current_entry(self) -> Optional[ExamEntry]:
        return self.entries.get(self._current_key or "")

    def _ask_save_path(self, title: str, file_name: str, file_filter: str) -> str:
        """A save dialog opening on ``file_name`` in the last folder used (the home folder at first); "" when
        cancelled."""
        default = str(Path(self.last_folder() or str(Path.home())) / file_name)
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, title, default, file_filter)
        return path

    def export_report_dialog(self) -> None:
        entry = self.current_entry()
        if entry is None or entry.loaded is None:
            QtWidgets.QMessageBox.information(self, "Export report", "Open an exam first.")
            return
        path = self._ask_save_path("Export report", f"{entry.loaded.exam_id}_report.pdf", "PDF (*.pdf)")
        if path:
            self.export_report(path)

    def print_report_dialog(self) -> None:
        """File > Print report…: the one-page report on a printer chosen in Qt's print dialog."""
        from PySide6 import QtPrintSupport

        from glaucoma_viewer.report import print_report

        entry = self.current_entry()
        if entry is None or entry.loaded is None:
            QtWidgets.QMessageBox.information(self, "Print report", "Open an exam first.")
            return
        printer = QtPrintSupport.QPrinter(QtPrintSupport.QPrinter.PrinterMode.HighResolution)
        dialog = QtPrintSupport.QPrintDialog(printer, self)
        if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
            return
        try:
            print_report(printer, self, entry)
        except OSError as err:
            QtWidgets.QMessageBox.warning(self, "Print report", f"Could not print: {err}")
            return
        self.status_label.setText("Report sent to the printer")

    def export_mask_dialog(self) -> None:
        """File > Export disc/cup mask…: the shown outline as a GAMMA-convention PNG, e.g. to fit a site
        calibration or train on outlines corrected here."""
        entry = self.current_entry()
        view = None if entry is None else entry.analysis
        if entry is None or entry.loaded is None or view is None or not view.outline_vertices:
            QtWidgets.QMessageBox.information(self, "Export disc/cup mask", "No disc/cup outline is shown.")
            return
        path = self._ask_save_path("Export disc/cup mask", f"{entry.loaded.exam_id}_disc_cup_mask.png", "PNG (*.png)")
        if path:
            self.export_mask(path)

    def export_mask(self, path: PathLike) -> JobHandle:
        """Write the shown exam's disc/cup outline to ``path`` on the worker; the status line says where (or why
        not)."""
        entry = self.current_entry()
        if entry is None or entry.loaded is None or entry.analysis is None:
            raise RuntimeError("no analysed exam is shown")
        label = entry.label
        drawn = "" if entry.analysis.outlines is None else f"; {entry.analysis.outlines.describe()} drawn by hand"
        return self.worker.submit(
            jobs.export_disc_mask, entry.analysis, entry.loaded.exam, str(path), name=f"mask {label}",
            on_finished=lambda out: self.status_label.setText(
                f"{label}: disc/cup mask written to {out} (0 cup, 128 rim, 255 background{drawn})"),
            on_failed=lambda failure: self.status_label.setText(f"{label}: mask not written: {failure.message}"))

    def export_report(self, path: PathLike) -> Path:
        """Write the one-page PDF report of the current exam to ``path``."""
        from glaucoma_viewer.report import write_report

        entry = self.current_entry()
        if entry is None or entry.loaded is None:
            raise RuntimeError("no exam is open")
        try:
            out = write_report(Path(path), self, entry)
        except OSError as err:
            QtWidgets.QMessageBox.warning(self, "Export report", f"Could not write the report: {err}")
            raise
        self.status_label.setText(f"Report written: {out}")
        return out

    # ================================================================================================ closing
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt naming
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self, timeout_ms: int = 15000) -> None:
        """Save settings, cancel every job and wait for the threads to finish (nothing left running at exit)."""
        if self._closing:
            return
        self._closing = True
        try:
            self._save_settings()
        except Exception:  # noqa: BLE001 - settings must never block closing
            pass
        for child in self.findChildren(QtWidgets.QDialog):
            stop = getattr(child, "shutdown", None)
            if callable(stop):
                stop()
        self.oct_view.shutdown()
        self.worker.cancel_all()
        self.analysis_worker.cancel_all()
        if self.runner is not None:
            self.runner.shutdown(timeout_ms / 1000.0)
        self.worker.shutdown(timeout_ms)
        self.analysis_worker.shutdown(timeout_ms)
