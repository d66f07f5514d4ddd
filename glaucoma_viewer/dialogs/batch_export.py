"""File > Batch export CSV…: grade every exam in one or more folders into one CSV, with progress and Cancel.

The CSV has exactly the columns of ``python -m engine grade`` (:mod:`engine.results_csv`: GAMMA submission
columns first, then grade, biomarkers, models, status, message) because the same engine function writes it
(:func:`glaucoma_viewer.worker.batch_export`). Cancel stops after the exam being graded: the rows finished so
far stay in the file and ``OUT.csv.partial`` says the file is partial.
"""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from PySide6 import QtCore, QtWidgets

from engine.io.exam import PHOTO_UM_PER_PX_RANGE, typed_photo_spacing
from glaucoma_viewer import worker as jobs
from glaucoma_viewer.process_runner import ProcessRunner
from glaucoma_viewer.worker import JobFailure, JobHandle, Worker

_EXAM_K_OF_N = re.compile(r"exam (\d+) of (\d+)")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class BatchExportDialog(QtWidgets.QDialog):
    """Folders + output file -> CSV, on the worker; "exam k of N", elapsed and remaining time; Cancel.

    Signals:
        finished_export(object): the :class:`~glaucoma_viewer.worker.BatchSummary` (also after a cancel).
        failed_export(object): the :class:`~glaucoma_viewer.worker.JobFailure` when nothing could be graded.
    """

    finished_export = QtCore.Signal(object)
    failed_export = QtCore.Signal(object)

    def __init__(self, worker: Worker, folders: Sequence[str] = (), out: str = "", models: Any = None,
                 calibration: Any = None, isolate: bool = False, parent: Optional[QtWidgets.QWidget] = None,
                 corrections: Any = None, size_scales: Optional[dict[str, float]] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Batch export CSV")
        self.resize(620, 420)
        self.worker = worker
        self.models = models
        self.calibration = calibration
        self.corrections = corrections  # engine.fundus.corrections.CorrectionStore: discs placed, outlines drawn
        self.size_scales = dict(size_scales or {})  # "WxH" -> µm per px typed in for every photo of that size
        # Grading in its own child process keeps the window smooth while a large folder is exported.
        self.runner: Optional[ProcessRunner] = ProcessRunner() if isolate else None
        self.job: Optional[JobHandle] = None
        self.summary: Optional[jobs.BatchSummary] = None
        self._t0 = 0.0

        self.folders = QtWidgets.QListWidget()
        self.folders.addItems([f for f in folders if f])
        add = QtWidgets.QPushButton("Add folder…")
        remove = QtWidgets.QPushButton("Remove")
        add.clicked.connect(self._add_folder)
        remove.clicked.connect(lambda: [self.folders.takeItem(self.folders.row(i)) for i in self.folders.selectedItems()])
        self.out_edit = QtWidgets.QLineEdit(out)
        self.out_edit.setPlaceholderText("output CSV, e.g. grades.csv")
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._choose_out)
        # A typed-in scale for every photo (one camera and resolution): disc sizes in mm and one DDLS stage.
        self.scale = QtWidgets.QDoubleSpinBox(minimum=0.0, maximum=PHOTO_UM_PER_PX_RANGE[1], decimals=2,
                                              singleStep=0.1)
        self.scale.setSpecialValueText("not known")
        self.scale.setSuffix(" µm per pixel")
        self.scale.setToolTip("Every fundus photo's scale, for a cohort from one camera at one resolution: disc "
                              "sizes in mm and one DDLS stage per exam (CSV photo_scale). 'not known' keeps each "
                              "file's own scale, if any.")
        sizes = "; ".join(f"{size.replace('x', '×')} px: {um:.2f} µm per pixel"
                          for size, um in sorted(self.size_scales.items()))
        self.size_note = QtWidgets.QLabel(
            f"'not known': a photo without a scale of its own takes the one typed in for every photo of its size "
            f"({sizes}; Analysis → Photo scale…)." if sizes else "")
        self.size_note.setObjectName("note")
        self.size_note.setWordWrap(True)
        self.size_note.setVisible(bool(sizes))

        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.count_label = QtWidgets.QLabel("Not started")
        self.count_label.setObjectName("value")
        self.time_label = QtWidgets.QLabel("")
        self.time_label.setObjectName("note")
        self.result_label = QtWidgets.QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setDefault(True)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.close_button = QtWidgets.QPushButton("Close")
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)

        folder_row = QtWidgets.QHBoxLayout()
        folder_row.addWidget(self.folders, 1)
        side = QtWidgets.QVBoxLayout()
        side.addWidget(add)
        side.addWidget(remove)
        side.addStretch(1)
        folder_row.addLayout(side)
        out_row = QtWidgets.QHBoxLayout()
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(browse)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.start_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(QtWidgets.QLabel("Folders (each may hold many patients):"))
        layout.addLayout(folder_row, 1)
        layout.addWidget(QtWidgets.QLabel("Output CSV (same columns as `engine grade`):"))
        layout.addLayout(out_row)
        scale_row = QtWidgets.QHBoxLayout()
        scale_row.addWidget(QtWidgets.QLabel("Photo scale (all photos):"))
        scale_row.addWidget(self.scale)
        scale_row.addStretch(1)
        layout.addLayout(scale_row)
        layout.addWidget(self.size_note)
        layout.addSpacing(6)
        layout.addWidget(self.count_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.time_label)
        layout.addWidget(self.result_label)
        layout.addLayout(buttons)

        self._clock = QtCore.QTimer(self)
        self._clock.setInterval(500)
        self._clock.timeout.connect(self._tick)
        self._fraction = 0.0

    # ----------------------------------------------------------------------------------------------- inputs
    def _add_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Add a folder of exams")
        if folder:
            self.folders.addItem(folder)

    def _choose_out(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Output CSV", self.out_edit.text() or "grades.csv",
                                                        "CSV (*.csv)")
        if path:
            self.out_edit.setText(path)

    def folder_list(self) -> list[str]:
        return [self.folders.item(i).text() for i in range(self.folders.count())]

    # ----------------------------------------------------------------------------------------------- run
    def start(self) -> Optional[JobHandle]:
        folders = self.folder_list()
        out = self.out_edit.text().strip()
        if not folders:
            self.result_label.setText("Add at least one folder.")
            return None
        if not out:
            self.result_label.setText("Choose an output CSV file.")
            return None
        if not Path(out).parent.exists():
            self.result_label.setText(f"The folder of {out} does not exist.")
            return None
        photo_spacing = None
        if self.scale.value() > 0:
            try:
                photo_spacing = typed_photo_spacing(self.scale.value())
            except ValueError as err:
                self.result_label.setText(f"{str(err)[:1].upper()}{str(err)[1:]}.")
                return None
        self.summary = None
        self._t0 = time.perf_counter()
        self._fraction = 0.0
        self.progress.setValue(0)
        self.count_label.setText("Looking for exams…")
        self.result_label.setText("")
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._clock.start()
        run = jobs.batch_export if self.runner is None else functools.partial(self.runner.call, jobs.batch_export)
        self.job = self.worker.submit(
            run, folders, out, name="batch export", models=self.models, calibration=self.calibration,
            corrections=None if self.corrections is None else self.corrections.snapshot(),
            photo_spacing=photo_spacing, size_scales=self.size_scales if photo_spacing is None else None,
            on_finished=self._finished, on_failed=self._failed, on_progress=self._progress,
        )
        return self.job

    def cancel(self) -> None:
        if self.job is not None and self.job.is_active:
            self.job.cancel()
            self.count_label.setText(self.count_label.text() + " — cancelling after this exam…")
            self.cancel_button.setEnabled(False)

    def _progress(self, fraction: float, message: str) -> None:
        self._fraction = fraction
        self.progress.setValue(int(round(100 * fraction)))
        match = _EXAM_K_OF_N.search(message)
        self.count_label.setText(message[0].upper() + message[1:] if match else message)
        self._tick()

    def _tick(self) -> None:
        if not self._t0:
            return
        elapsed = time.perf_counter() - self._t0
        text = f"elapsed {format_duration(elapsed)}"
        if 0.02 < self._fraction < 1.0:
            text += f" · remaining ~{format_duration(elapsed * (1 - self._fraction) / self._fraction)}"
        self.time_label.setText(text)

    def _finished(self, summary: "jobs.BatchSummary") -> None:
        self._stop()
        self.summary = summary
        self.progress.setValue(100 if not summary.partial else self.progress.value())
        done = summary.ok + summary.errors
        state = "PARTIAL (cancelled)" if summary.partial else "complete"
        self.count_label.setText(f"{state}: {done} of {summary.total} exam(s) written")
        lines = [f"Wrote {summary.out}: {summary.ok} ok, {summary.errors} error row(s), "
                 f"{format_duration(summary.seconds)}."]
        if summary.placed:
            lines.append(f"{summary.placed} exam(s) graded with the optic disc placed by hand in the viewer.")
        if summary.outlined:
            lines.append(f"{summary.outlined} exam(s) measured on disc/cup outlines drawn by hand in the viewer.")
        if summary.cautions:
            from engine.results_csv import counts_text

            lines.append(f"{sum(summary.cautions.values())} exam(s) with a caution ({counts_text(summary.cautions)}): "
                         "the CSV's caution column says which.")
        if summary.partial:
            lines.append(f"The file holds only the exams finished before Cancel; {summary.out}.partial says so.")
        if summary.skipped:
            lines.append(f"{len(summary.skipped)} path(s) held no exam: " + "; ".join(summary.skipped[:3]))
        self.result_label.setText("\n".join(lines))
        self.finished_export.emit(summary)

    def _failed(self, failure: JobFailure) -> None:
        self._stop()
        self.count_label.setText("Stopped" if failure.cancelled else "Failed")
        self.result_label.setText(f"Nothing graded: {failure.message}")
        self.failed_export.emit(failure)

    def _stop(self) -> None:
        self._clock.stop()
        self._tick()
        self._t0 = 0.0
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def shutdown(self) -> None:
        """Cancel a running export (the window is closing) and stop the grading process."""
        if self.job is not None and self.job.is_active:
            self.job.cancel()
        if self.runner is not None:
            self.runner.shutdown()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        if self.job is not None and self.job.is_active:
            answer = QtWidgets.QMessageBox.question(
                self, "Batch export", "An export is running. Cancel it? (finished rows are kept)")
            if answer != QtWidgets.QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.job.cancel()
        self.shutdown()
        super().closeEvent(event)
