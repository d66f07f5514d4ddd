"""File > Export report…: a one-page A4 PDF of the current exam, drawn with Qt's own ``QPdfWriter``.

Contents: exam id, eye, source and date; the fundus and the current B-scan as shown (with the overlays the user
has switched on), the grade with its probabilities, every model that ran with its weights' SHA-256, the
biomarkers, the RNFL thickness profile along the shown B-scan, the app version and the research-use statement.
:func:`print_report` draws the same page on a printer. The file is written to a temporary name beside the target and renamed (a reader never sees half a PDF).
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
from PySide6 import QtCore, QtGui

from engine.fundus.ddls import rim_absent
from glaucoma_viewer import __version__
from glaucoma_viewer.state import GRADE_LABELS, RIM_SECTORS, AnalysisView
from glaucoma_viewer.worker import data_details, data_note

if TYPE_CHECKING:  # pragma: no cover
    from glaucoma_viewer.main_window import ExamEntry, MainWindow

RESEARCH_STATEMENT = (
    "Research use only. Not a medical device; not for diagnosis or treatment decisions. The grade, masks and "
    "thickness values come from models trained on small public samples; read each model card."
)
RIM_ABSENT_FILL = "#f8c9c8"
"""Where no rim is left on the rim plot: the viewer's translucent red on white paper."""
_CLASS_RGB = {"non": "#43a047", "early": "#fb8c00", "mid_advanced": "#e53935"}


def write_report(path: Path, window: "MainWindow", entry: "ExamEntry") -> Path:
    """Render the report of ``entry`` as shown in ``window`` to ``path`` (PDF); returns ``path``."""
    path = Path(path)
    if path.suffix.lower() != ".pdf":
        path = path.with_suffix(".pdf")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        _render(tmp, window, entry)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _render(filename: str, window: "MainWindow", entry: "ExamEntry") -> None:
    assert entry.loaded is not None
    writer = QtGui.QPdfWriter(filename)
    writer.setPageSize(QtGui.QPageSize(QtGui.QPageSize.PageSizeId.A4))
    writer.setPageMargins(QtCore.QMarginsF(12, 12, 12, 12), QtGui.QPageLayout.Unit.Millimeter)
    writer.setResolution(150)
    writer.setTitle(f"Glaucoma Viewer report {entry.loaded.exam_id}")
    writer.setCreator(f"Glaucoma Viewer {__version__}")
    painter = QtGui.QPainter(writer)
    try:
        _draw(painter, writer, window, entry)
    finally:
        painter.end()


def print_report(printer: QtGui.QPagedPaintDevice, window: "MainWindow", entry: "ExamEntry") -> None:
    """Draw the same one-page report on ``printer`` (a ``QPrinter`` from the print dialog)."""
    painter = QtGui.QPainter(printer)
    if not painter.isActive():
        raise OSError("the printer could not be opened")
    try:
        _draw(painter, printer, window, entry)
    finally:
        painter.end()


class _Page:
    """A top-down cursor over the printable area (device px at the writer's resolution)."""

    def __init__(self, painter: QtGui.QPainter, writer: QtGui.QPagedPaintDevice) -> None:
        self.p = painter
        rect = writer.pageLayout().paintRectPixels(writer.resolution())
        self.w, self.h = rect.width(), rect.height()
        self.y = 0.0
        self.px_per_pt = writer.resolution() / 72.0

    def font(self, size: float, bold: bool = False) -> None:
        f = QtGui.QFont("DejaVu Sans")
        f.setPointSizeF(size)
        f.setBold(bold)
        self.p.setFont(f)

    def text(self, x: float, y: float, w: float, text: str, size: float = 9, bold: bool = False,
             colour: str = "#202124", flags: int = int(QtCore.Qt.AlignmentFlag.AlignLeft)) -> float:
        """Draw wrapped text in a box of width ``w``; return its height."""
        self.font(size, bold)
        self.p.setPen(QtGui.QColor(colour))
        rect = QtCore.QRectF(x, y, w, 10_000)
        bound = self.p.boundingRect(rect, flags | int(QtCore.Qt.TextFlag.TextWordWrap), text)
        self.p.drawText(rect, flags | int(QtCore.Qt.TextFlag.TextWordWrap), text)
        return bound.height()


def _draw(painter: QtGui.QPainter, writer: QtGui.QPagedPaintDevice, window: "MainWindow", entry: "ExamEntry") -> None:
    loaded = entry.loaded
    assert loaded is not None
    exam = loaded.exam
    view: Optional[AnalysisView] = entry.analysis
    page = _Page(painter, writer)
    p = painter
    p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    p.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform)
    W = page.w
    gap = 0.02 * W

    # Research-use band and title.
    band_h = 0.035 * page.h
    p.fillRect(QtCore.QRectF(0, 0, W, band_h), QtGui.QColor("#ffe082"))
    page.text(gap / 2, band_h * 0.18, W - gap, "RESEARCH USE ONLY — not a medical device", 11, True, "#3e2723")
    y = band_h + gap * 0.6
    y += page.text(0, y, W, f"Glaucoma Viewer — exam report: {loaded.exam_id}", 15, True)
    inferred = view.eye_inferred if view is not None else ""
    eye = ({"OD": "right eye (OD)", "OS": "left eye (OS)"}.get(exam.eye)
           or {"OD": "right eye (OD) from the disc's side of the photo",
               "OS": "left eye (OS) from the disc's side of the photo"}.get(inferred, "eye unknown"))
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    meta = [f"Exam {loaded.exam_id} · {eye} · modalities: {', '.join(exam.modalities)}",
            f"Source: {loaded.source or 'n/a'}", f"Report made {when} with Glaucoma Viewer {__version__}"]
    data = data_note(exam)
    if data:
        meta.insert(0, f"Data: {data}")
    details = data_details(exam)
    if details:
        meta.append(details)
    y += page.text(0, y + 4, W, "\n".join(meta), 8.5, False, "#455a64") + gap * 0.6

    # Images as shown (overlays included).
    img_h = 0.24 * page.h
    shots = []
    if exam.fundus is not None:
        shots.append(("Fundus (overlays as shown)", window.fundus_view.grab_photo()))
    elif loaded.photo_kind == "xray":
        shots.append(("Panoramic radiograph (heat map as shown)", window.fundus_view.photo_view.grab()))
    elif loaded.enface is not None:
        shots.append(("OCT en-face projection", window.fundus_view.enface_view.grab()))
    if exam.oct is not None:
        k = window.oct_view.current_index
        shots.append((f"OCT B-scan {k + 1} / {len(exam.oct)}", window.oct_view.view.grab()))
    elif loaded.mri_display is not None:
        k = window.oct_view.current_index
        shots.append((f"MRI {loaded.mri_sequence.upper()} slice {k + 1} / {len(loaded.mri_display)}",
                      window.oct_view.view.grab()))
    if shots:
        cell_w = (W - gap * (len(shots) - 1)) / len(shots)
        for i, (caption, pix) in enumerate(shots):
            x = i * (cell_w + gap)
            page.text(x, y, cell_w, caption, 8.5, True, "#37474f")
            _draw_pixmap(p, pix, QtCore.QRectF(x, y + 0.018 * page.h, cell_w, img_h))
        y += img_h + 0.018 * page.h + gap

    # Grade and probabilities (left), biomarkers (right).
    col_w = (W - gap) / 2
    top = y
    y_left = top + page.text(0, top, col_w, "Grade", 11, True)
    if view is not None and view.grade is not None and view.ensemble is not None:
        y_left += page.text(0, y_left + 2, col_w, GRADE_LABELS.get(view.grade, view.grade), 13, True,
                            "#78909c" if view.grade_caution else _CLASS_RGB.get(view.grade, "#202124")) + 6
        if view.grade_caution:
            y_left += page.text(0, y_left, col_w, view.grade_caution, 9, True, "#bf360c") + 6
        for name, prob in view.ensemble.items():
            y_left = _bar(page, 0, y_left, col_w, name, prob, _CLASS_RGB.get(name, "#1e88e5"))
        if view.ensemble_rule:
            y_left += page.text(0, y_left + 2, col_w, view.ensemble_rule, 8, False, "#546e7a") + 4
    elif view is not None and view.tasks and not any(m in exam.modalities for m in ("fundus", "oct")):
        y_left += page.text(0, y_left + 2, col_w, "No glaucoma grade: the exam has no fundus photo or OCT.", 9,
                            False, "#546e7a") + 4
    else:
        reason = "; ".join(view.messages) if view is not None and view.messages else "not analysed"
        y_left += page.text(0, y_left + 2, col_w, f"No grade: {reason}", 9, False, "#bf360c") + 4
    x2 = col_w + gap
    y_right = top + page.text(x2, top, col_w, "Biomarkers", 11, True)
    markers = view.biomarkers if view is not None else []
    if markers:
        for m in markers:
            page.text(x2, y_right + 2, col_w * 0.55, m.name, 9, False, "#455a64")
            y_right += page.text(x2 + col_w * 0.55, y_right + 2, col_w * 0.45, m.value, 9, True) + 2
    else:
        note = view.disc_note if view is not None and view.disc_note else "no disc/cup measurements"
        y_right += page.text(x2, y_right + 2, col_w, note, 9, False, "#546e7a")
    if view is not None and view.disc_method:
        y_right += page.text(x2, y_right + 4, col_w, view.disc_method, 7.5, False, "#546e7a") + 4
    if view is not None and view.rim_profile is not None:  # under the grade, where the left column has room
        angles, ratio = view.rim_profile
        tsnit = view.rim_eye in ("OD", "OS")
        names = [tick for tick, _ in RIM_SECTORS["TSNIT" if tsnit else "photo"]]
        y_left += gap * 0.5 + page.text(0, y_left + gap * 0.5, col_w, "Neuro-retinal rim around the disc", 9, True)
        plot_h = 0.06 * page.h
        every_degree = np.interp(np.arange(361.0), angles, ratio, period=360.0)  # 0 to 360 inclusive
        gone = view.rim_absent_deg
        _plot(page, QtCore.QRectF(0, y_left + 4, col_w, plot_h), every_degree,
              "rim width / disc diameter" + (", TSNIT" if tsnit else " (eye unknown: the photo's sides)")
              + (f"; no rim over {gone:.0f}° (shaded)" if gone else ""),
              hi=0.5, ticks=[(i / 4, names[i % 4]) for i in range(5)], shaded=rim_absent(every_degree))
        y_left += plot_h + 4 + 22 * page.px_per_pt
    y = max(y_left, y_right) + gap

    # Other findings (ODIR labels, glioma grade, bone health): one line each, with the model and its hash.
    if view is not None and view.tasks:
        y += page.text(0, y, W, "Other findings", 11, True)
        for task in view.tasks:
            probs = ", ".join(f"{k} {100 * v:.0f} %" for k, v in task.probabilities.items())
            y += page.text(0, y + 2, W, f"{task.title}: {task.verdict} ({probs}). Model {task.run.name}, "
                           f"SHA-256 {task.run.sha256[:16]}…", 8.5) + 2
            if task.notes:
                y += page.text(0, y + 1, W, "; ".join(task.notes), 8, False, "#546e7a") + 2
        if not view.models and view.messages:
            y += page.text(0, y + 2, W, "Notes: " + "; ".join(view.messages), 8, False, "#546e7a") + 2
        y += gap

    # Thickness profile along the shown B-scan.
    if view is not None and view.rnfl_profiles is not None and exam.oct is not None:
        k = window.oct_view.current_index
        if 0 <= k < len(view.rnfl_profiles):
            y += page.text(0, y, W, f"RNFL thickness along B-scan {k + 1} ({view.rnfl_unit}"
                           f"{'' if view.rnfl_unit != 'px' else ', scale not known'})", 11, True)
            plot_h = 0.08 * page.h
            n = len(view.rnfl_profiles[k])
            span = f"{n * view.lateral_mm:.2f} mm" if view.lateral_mm else f"{n} px"
            _plot(page, QtCore.QRectF(0, y + 4, W, plot_h), view.rnfl_profiles[k],
                  f"position along the B-scan (0 – {span}); thickness in {view.rnfl_unit}")
            y += plot_h + gap
            if view.layer_method:
                y += page.text(0, y - gap * 0.6, W, f"Layers by {view.layer_method}.", 8, False, "#546e7a")

    # Footer first (its height bounds the model list), drawn last.
    foot = RESEARCH_STATEMENT + f"  Glaucoma Viewer {__version__}, {when}."
    page.font(7.5)
    foot_h = p.boundingRect(QtCore.QRectF(0, 0, W, 10_000), int(QtCore.Qt.TextFlag.TextWordWrap), foot).height()
    limit = page.h - foot_h - 14

    # Models and hashes: one line each; a long ensemble is cut where the page ends, and says so.
    y += page.text(0, y, W, "Models", 11, True)
    if view is not None and view.models:
        line_h = 12 * page.px_per_pt
        for i, run in enumerate(view.models):
            if y + 2 * line_h > limit and i < len(view.models) - 1:
                rest = len(view.models) - i
                y += page.text(0, y + 2, W, f"… and {rest} more model(s): names and SHA-256 in the model cards "
                               "(Help > Model cards) and in the batch CSV.", 8, False, "#546e7a")
                break
            top = max(run.probabilities, key=run.probabilities.get) if run.probabilities else ""
            share = f"{top} {100 * run.probabilities.get(top, 0):.0f} %" if top else ""
            line = f"{run.name} ({run.inputs}): {share} · SHA-256 {run.sha256[:16] or 'n/a'}"
            y += page.text(0, y + 1, W, line, 7.5, False, "#263238") + 1
        if view.default_weights and y + line_h < limit:
            y += page.text(0, y + 2, W, "Bundled default weights (research use only).", 8, False, "#bf360c")
    else:
        y += page.text(0, y + 2, W, "No model graded this exam.", 8, False, "#546e7a")

    # Footer: the statement, always at the bottom of the page.
    height = foot_h
    p.setPen(QtGui.QPen(QtGui.QColor("#b0bec5"), 1))
    p.drawLine(QtCore.QPointF(0, page.h - height - 8), QtCore.QPointF(W, page.h - height - 8))
    page.text(0, page.h - height - 4, W, foot, 7.5, False, "#455a64")


def _draw_pixmap(p: QtGui.QPainter, pix: QtGui.QPixmap, box: QtCore.QRectF) -> None:
    """Fit ``pix`` into ``box`` keeping its aspect, on a dark backdrop like the screen."""
    p.fillRect(box, QtGui.QColor("#101418"))
    if pix.isNull() or pix.width() == 0 or pix.height() == 0:
        return
    scale = min(box.width() / pix.width(), box.height() / pix.height())
    w, h = pix.width() * scale, pix.height() * scale
    target = QtCore.QRectF(box.x() + (box.width() - w) / 2, box.y() + (box.height() - h) / 2, w, h)
    p.drawPixmap(target, pix, QtCore.QRectF(pix.rect()))


def _bar(page: _Page, x: float, y: float, w: float, name: str, prob: float, colour: str) -> float:
    p = page.p
    row_h = 16 * page.px_per_pt
    name_w = 0.32 * w
    value_w = 0.18 * w
    page.text(x, y + 2, name_w, name, 9)
    track = QtCore.QRectF(x + name_w, y + row_h * 0.2, w - name_w - value_w, row_h * 0.6)
    p.fillRect(track, QtGui.QColor("#eceff1"))
    p.fillRect(QtCore.QRectF(track.x(), track.y(), track.width() * float(np.clip(prob, 0, 1)), track.height()),
               QtGui.QColor(colour))
    page.text(x + w - value_w, y + 2, value_w, f"{100 * prob:.1f} %", 9, False, "#202124",
              int(QtCore.Qt.AlignmentFlag.AlignRight))
    return y + row_h


def _plot(page: _Page, box: QtCore.QRectF, profile: np.ndarray, caption: str, hi: Optional[float] = None,
          ticks: Sequence[tuple[float, str]] = (), shaded: Optional[np.ndarray] = None) -> None:
    """A line plot of ``profile`` (NaN gaps left open) from 0 to ``hi`` (its maximum x 1.1 when None), with
    ``caption`` under it and ``ticks`` ((fraction along x, text)) on the x axis; ``shaded``: (len(profile),) bool,
    the samples whose stretch of x is filled behind the line (where no rim is left)."""
    p = page.p
    margin_l, margin_b = 0.07 * box.width(), 0.18 * box.height()
    area = QtCore.QRectF(box.x() + margin_l, box.y(), box.width() - margin_l, box.height() - margin_b)
    n = len(profile)
    xs = area.x() + area.width() * np.arange(n) / max(n - 1, 1)
    if shaded is not None and shaded.any():
        step = area.width() / max(n - 1, 1)
        for k in np.flatnonzero(shaded):
            p.fillRect(QtCore.QRectF(float(xs[k]) - step / 2, area.y(), step, area.height()) & area,
                       QtGui.QColor(RIM_ABSENT_FILL))
    p.setPen(QtGui.QPen(QtGui.QColor("#90a4ae"), 1))
    p.drawRect(area)
    finite = profile[np.isfinite(profile)]
    if finite.size == 0:
        page.text(area.x(), area.center().y(), area.width(), "no thickness on this B-scan", 8, False, "#78909c",
                  int(QtCore.Qt.AlignmentFlag.AlignHCenter))
        return
    hi = hi or float(np.max(finite)) * 1.1 or 1.0
    ys = area.bottom() - area.height() * np.clip(profile / hi, 0, 1)
    pen = QtGui.QPen(QtGui.QColor("#f9a825"), 2)
    p.setPen(pen)
    path = QtGui.QPainterPath()
    drawing = False
    for x, yv, ok in zip(xs, ys, np.isfinite(profile)):
        if not ok:
            drawing = False
            continue
        if drawing:
            path.lineTo(float(x), float(yv))
        else:
            path.moveTo(float(x), float(yv))
            drawing = True
    p.drawPath(path)
    right = int(QtCore.Qt.AlignmentFlag.AlignRight)
    page.text(box.x(), area.y(), margin_l - 4, f"{hi:.0f}" if hi >= 10 else f"{hi:.2g}", 7, False, "#546e7a", right)
    page.text(box.x(), area.bottom() - 10, margin_l - 4, "0", 7, False, "#546e7a", right)
    centre = int(QtCore.Qt.AlignmentFlag.AlignHCenter)
    for at, text in ticks:
        page.text(area.x() + at * area.width() - 20, area.bottom() + 1, 40, text, 7, True, "#546e7a", centre)
    below = area.bottom() + (11 * page.px_per_pt if ticks else 2)
    page.text(area.x(), below, area.width(), caption, 7.5, False, "#546e7a", centre)
