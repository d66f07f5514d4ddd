"""The results panel: grade and probabilities, models that ran, other tasks, biomarkers, RNFL thickness, timings.

Reads only :class:`~glaucoma_viewer.state.AnalysisView` objects; nothing here computes. Units follow the
exam's scale: µm / mm only when the scale came from the file (or the user), px otherwise, and it says so.
"""

from __future__ import annotations

import json
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from glaucoma_viewer.panels.pair_grid import PairGrid
from glaucoma_viewer.panels.rim_profile import RimProfilePlot
from glaucoma_viewer.state import GRADE_LABELS, RIM_SECTORS, AnalysisView, ModelRun, TaskRun
from glaucoma_viewer.views.common import LEVELS, ImageViewBox, heat_lut, make_graphics_view, pen, to_uint8_map

CLASS_COLOURS = {"non": QtGui.QColor("#66bb6a"), "early": QtGui.QColor("#ffb300"), "mid_advanced": QtGui.QColor("#ef5350")}
_FALLBACK = [QtGui.QColor("#64b5f6"), QtGui.QColor("#ba68c8"), QtGui.QColor("#4db6ac")]


def class_colour(name: str, index: int = 0) -> QtGui.QColor:
    return CLASS_COLOURS.get(name, _FALLBACK[index % len(_FALLBACK)])


class ProbabilityBars(QtWidgets.QWidget):
    """Horizontal bars, one per class: name, bar, probability. Drawn with QPainter (no layout churn)."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self._rows: list[tuple[str, float]] = []
        self._highlight: Optional[str] = None
        self.setMinimumHeight(22)

    def set_probabilities(self, probs: Optional[dict[str, float]], highlight: Optional[str] = None) -> None:
        self._rows = [] if probs is None else [(k, float(v)) for k, v in probs.items()]
        self._highlight = highlight
        self.setMinimumHeight(max(22, 22 * len(self._rows)))
        self.updateGeometry()
        self.update()

    def rows(self) -> list[tuple[str, float]]:
        return list(self._rows)

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt naming
        return QtCore.QSize(260, max(22, 22 * len(self._rows)))

    def columns(self) -> tuple[int, int, int]:
        """Pixels of the name, bar and value columns (names measured bold: the highlighted one is)."""
        bold = QtGui.QFont(self.font())
        bold.setBold(True)
        name_w = max([QtGui.QFontMetrics(bold).horizontalAdvance(n) for n, _ in self._rows] + [60]) + 10
        value_w = self.fontMetrics().horizontalAdvance("100.0 %") + 8
        return name_w, max(20, self.width() - name_w - value_w - 4), value_w

    def paintEvent(self, _event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt naming
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        name_w, bar_w, value_w = self.columns()
        for i, (name, p) in enumerate(self._rows):
            y = i * 22
            bold = name == self._highlight
            font = painter.font()
            font.setBold(bold)
            painter.setFont(font)
            painter.setPen(QtGui.QColor("#e8eaed" if bold else "#b8c0c8"))
            painter.drawText(QtCore.QRectF(0, y, name_w, 20), QtCore.Qt.AlignmentFlag.AlignVCenter, name)
            track = QtCore.QRectF(name_w, y + 4, bar_w, 13)
            painter.setPen(QtCore.Qt.PenStyle.NoPen)
            painter.setBrush(QtGui.QColor("#2a3139"))
            painter.drawRoundedRect(track, 3, 3)
            fill = QtCore.QRectF(track.x(), track.y(), track.width() * min(max(p, 0.0), 1.0), track.height())
            painter.setBrush(class_colour(name, i))
            painter.drawRoundedRect(fill, 3, 3)
            painter.setPen(QtGui.QColor("#e8eaed" if bold else "#b8c0c8"))
            painter.drawText(QtCore.QRectF(name_w + bar_w + 4, y, value_w, 20),
                             QtCore.Qt.AlignmentFlag.AlignVCenter | QtCore.Qt.AlignmentFlag.AlignRight, f"{100 * p:.1f} %")
        painter.end()


class StackedBar(QtWidgets.QWidget):
    """One segmented bar: the class probabilities of one model side by side (compact per-model view)."""

    def __init__(self, probs: dict[str, float], parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.probs = probs
        self.setFixedHeight(14)
        self.setMinimumWidth(80)
        self.setToolTip("  ".join(f"{k} {100 * v:.0f} %" for k, v in probs.items()))

    def paintEvent(self, _event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt naming
        painter = QtGui.QPainter(self)
        x = 0.0
        total = sum(max(v, 0.0) for v in self.probs.values()) or 1.0
        for i, (name, p) in enumerate(self.probs.items()):
            w = self.width() * max(p, 0.0) / total
            painter.fillRect(QtCore.QRectF(x, 1, w, self.height() - 2), class_colour(name, i))
            x += w
        painter.end()


class Section(QtWidgets.QFrame):
    """A titled box in the right column."""

    def __init__(self, title: str, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("section")
        self.title = QtWidgets.QLabel(title)
        self.title.setObjectName("panelTitle")
        self.body = QtWidgets.QVBoxLayout()
        self.body.setContentsMargins(0, 0, 0, 0)
        self.body.setSpacing(4)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addLayout(self.body)


RIM_RGB = (0, 220, 255)
"""The rim profile's colour: the disc outline's."""


def _fixed_plot(height: int, title: str) -> pg.PlotWidget:
    """A small plot of fixed height that ignores the mouse (no zoom, no menu) and passes drops to the window."""
    plot = pg.PlotWidget()
    plot.setAcceptDrops(False)
    plot.viewport().setAcceptDrops(False)
    plot.setFixedHeight(height)
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.showGrid(x=True, y=True, alpha=0.2)
    if title:
        plot.getPlotItem().setTitle(title, size="9pt")
    return plot


def _clear_layout(layout: QtWidgets.QLayout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        widget = item.widget()
        if widget is not None:
            widget.setParent(None)
            widget.deleteLater()
        elif item.layout() is not None:
            _clear_layout(item.layout())


class ModelCardDialog(QtWidgets.QDialog):
    """A model's card: what trained it, how it was evaluated, its hash."""

    def __init__(self, run: ModelRun, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model card: {run.name}")
        self.resize(640, 520)
        text = QtWidgets.QTextBrowser()
        text.setOpenExternalLinks(False)
        lines = [
            f"<h3>{_esc(run.name)}</h3>",
            f"<p><b>Inputs:</b> {_esc(run.inputs)}<br><b>Weights:</b> {_esc(run.weights or 'n/a')}<br>"
            f"<b>SHA-256:</b> <code>{_esc(run.sha256 or 'n/a')}</code><br>"
            f"<b>Default weights:</b> {'yes (bundled, research use only)' if run.default_weights else 'no'}</p>",
        ]
        card = dict(run.card)
        # what it is for, what it saw and how it did first; the long per-network training records after them
        for key in ("intended_use", "data", "training_data", "limitations", "held_out", "expert_agreement",
                    "evaluation", "metrics", "grey_networks", "pseudo_labels", "fine_pass"):
            if key == "held_out" and isinstance(card.get(key), list):
                lines.append("<p><b>Held-out evaluation</b> (data the model never saw):</p>"
                             + held_out_table(card.pop(key)))
            elif key == "grey_networks" and isinstance(card.get(key), dict):
                grey = dict(card.pop(key))
                table = held_out_table(grey.pop("held_out")) if isinstance(grey.get("held_out"), list) else ""
                lines.append(f"<p><b>Photos without colour:</b> {_esc(grey.pop('what', ''))}. Held out, on the "
                             f"photos' grey copies:</p>{table}<p>{_fmt(grey)}</p>")
            elif key in card:
                value = card.pop(key)
                sep = "" if isinstance(value, (list, dict)) else "<br>"
                lines.append(f"<p><b>{_esc(key.replace('_', ' ').capitalize())}:</b>{sep}{_fmt(value)}</p>")
        if card:
            lines.append("<p><b>Other fields:</b></p><pre>" + _esc(json.dumps(card, indent=2, default=str)) + "</pre>")
        text.setHtml("\n".join(lines))
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(text, 1)
        layout.addWidget(buttons)


def _esc(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


MAX_MESSAGE = 220
"""Characters of a note shown in the panel; the whole note is in the tooltip (long model lists)."""


def _shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip(" ;,(") + "… (hover for all)"


def _fmt(value: object) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "<ul>" + "".join(f"<li>{_esc(v)}</li>" for v in value) + "</ul>"
    if isinstance(value, dict):  # nested fields as nested lists (wraps, unlike JSON)
        items = (f"<li><i>{_esc(k).replace('_', ' ')}</i>: {_fmt(v)}</li>" for k, v in value.items())
        return "<ul>" + "".join(items) + "</ul>"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):  # records: numbered
        return "<ol>" + "".join(f"<li>{_fmt(v)}</li>" for v in value) + "</ol>"
    if isinstance(value, list):  # numbers, matrices: one line when short
        flat = json.dumps(value, default=str)
        if len(flat) <= 120:
            return f"<code>{_esc(flat)}</code>"
        return "<pre>" + _esc(json.dumps(value, indent=2, default=str)) + "</pre>"
    if isinstance(value, float):
        return f"{value:.4g}"
    return _esc(value)


_HELD_OUT_COLUMNS = (("n", "photos", "{:.0f}"), ("dice_disc", "disc Dice", "{:.3f}"),
                     ("dice_cup", "cup Dice", "{:.3f}"), ("vcdr_mae", "vCDR error", "{:.3f}"),
                     ("vcdr_bias", "vCDR bias", "{:+.3f}"), ("vcdr_mae_offset_removed", "error − bias", "{:.3f}"),
                     ("vcdr_pearson", "vCDR r", "{:.2f}"))


def _number(value: float, fmt: str) -> str:
    """``fmt.format(value)`` without a sign on a value that rounds to zero ("-0.00", "+0.000" -> "0.00", "0.000")."""
    text = fmt.format(value)
    return text.lstrip("+-") if float(text) == 0 else text


def held_out_table(blocks: list) -> str:
    """A disc/cup card's ``held_out`` blocks as one HTML table: per block and source, the model's figures, the
    circles baseline's and a reference baseline's when the block has one (``reference_baseline``, under its
    label); missing values are blank."""

    def cells(metrics: object) -> str:
        m = metrics if isinstance(metrics, dict) else {}
        out = []
        for key, _, fmt in _HELD_OUT_COLUMNS:
            v = m.get(key)
            out.append(f"<td align='right'>{_number(v, fmt) if isinstance(v, (int, float)) and v == v else ''}</td>")
        return "".join(out)

    head = "".join(f"<th>{label}</th>" for _, label, _ in _HELD_OUT_COLUMNS)
    rows = [f"<tr><th align='left'>held out</th><th></th>{head}</tr>"]
    for block in blocks:
        if not isinstance(block, dict):
            continue
        trained = f"; trained on {block['trained_on']}" if block.get("trained_on") else ""
        rows.append(f"<tr><td colspan='{2 + len(_HELD_OUT_COLUMNS)}'><i>{_esc(block.get('held_out', ''))}"
                    f"{_esc(trained)}</i></td></tr>")
        model = block.get("model") or {}
        reference = block.get("reference_baseline") if isinstance(block.get("reference_baseline"), dict) else {}
        others = [("circles", block.get("baseline_metrics") or {}),
                  (str(reference.get("label", "reference")), reference.get("metrics") or {})]
        sources = [s for s in model if s != "all" or len(model) != 2]  # one source: its "all" row repeats it
        for source in sources:
            rows.append(f"<tr><td>&nbsp;&nbsp;{_esc(source)}</td><td>model</td>{cells(model[source])}</tr>")
            rows += [f"<tr style='color:#8a949e;'><td></td><td>{_esc(label)}</td>{cells(metrics[source])}</tr>"
                     for label, metrics in others if isinstance(metrics, dict) and source in metrics]
        if reference.get("what"):
            trained = f", trained on {reference['trained_on']}" if reference.get("trained_on") else ""
            rows.append(f"<tr style='color:#8a949e;'><td colspan='{2 + len(_HELD_OUT_COLUMNS)}'>"
                        f"{_esc(others[1][0])}: {_esc(reference['what'])}{_esc(trained)}</td></tr>")
    return "<table cellspacing='0' cellpadding='3'>" + "".join(rows) + "</table>"


class ResultsPanel(QtWidgets.QWidget):
    """Right column: Grade, Other findings (ODIR / glioma / bone health), Biomarkers, RNFL thickness, Timings."""

    modelCardRequested = QtCore.Signal(object)  # ModelRun
    photoCamRequested = QtCore.Signal(object)  # (h, w) uint8 heat map for the photo view, or None

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self._view: Optional[AnalysisView] = None
        self._current = 0

        # Where the images came from (synthetic modalities said plainly); kept across clear().
        self.data_label = QtWidgets.QLabel("")
        self.data_label.setWordWrap(True)
        self.data_label.hide()

        # Grade.
        self.grade_section = Section("Grade")
        self.grade_label = QtWidgets.QLabel("—")
        self.grade_label.setObjectName("gradeLabel")
        self.grade_label.setWordWrap(True)
        self.caution_label = QtWidgets.QLabel("")
        self.caution_label.setObjectName("warning")
        self.caution_label.setWordWrap(True)
        self.caution_label.hide()
        self.bars = ProbabilityBars()
        self.models_toggle = QtWidgets.QToolButton()
        self.models_toggle.setCheckable(True)
        self.models_toggle.setAutoRaise(True)
        self.models_toggle.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.models_toggle.toggled.connect(self._show_models)
        self.models_box = QtWidgets.QWidget()
        self.models_grid = QtWidgets.QGridLayout(self.models_box)
        self.models_grid.setContentsMargins(0, 4, 0, 0)
        self.models_grid.setHorizontalSpacing(8)
        self.models_grid.setVerticalSpacing(3)
        self.ensemble_note = QtWidgets.QLabel("")
        self.ensemble_note.setObjectName("note")
        self.ensemble_note.setWordWrap(True)
        self.grade_section.body.addWidget(self.grade_label)
        self.grade_section.body.addWidget(self.caution_label)
        self.grade_section.body.addWidget(self.bars)
        self.grade_section.body.addWidget(self.models_toggle)
        self.grade_section.body.addWidget(self.models_box)
        self.grade_section.body.addWidget(self.ensemble_note)
        self.messages_label = QtWidgets.QLabel("")
        self.messages_label.setObjectName("warning")
        self.messages_label.setWordWrap(True)
        self.grade_section.body.addWidget(self.messages_label)

        # Other findings: the sibling tasks that ran (ODIR labels on the photo, glioma grade, bone health).
        self.tasks_section = Section("Other findings")
        self.tasks_box = QtWidgets.QVBoxLayout()
        self.tasks_box.setSpacing(4)
        self.tasks_section.body.addLayout(self.tasks_box)
        self.cam_choice: Optional[QtWidgets.QComboBox] = None

        # Biomarkers.
        self.bio_section = Section("Biomarkers")
        self.bio_grid = PairGrid()
        self.bio_note = QtWidgets.QLabel("")
        self.bio_note.setObjectName("note")
        self.bio_note.setWordWrap(True)
        self.bio_card = QtWidgets.QLabel("")
        self.bio_card.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.bio_card.setWordWrap(True)
        self.bio_card.linkActivated.connect(self._request_anatomy_card)
        self.rim_plot = RimProfilePlot(RIM_RGB)
        self.rim_plot.hide()
        self.bio_section.body.addWidget(self.bio_grid)
        self.bio_section.body.addWidget(self.rim_plot)
        self.bio_section.body.addWidget(self.bio_note)
        self.bio_section.body.addWidget(self.bio_card)

        # RNFL thickness: profile along the current B-scan + en-face map.
        self.rnfl_section = Section("RNFL thickness")
        self.profile_plot = pg.PlotWidget()
        self.profile_plot.setAcceptDrops(False)
        self.profile_plot.viewport().setAcceptDrops(False)
        self.profile_plot.setMinimumHeight(120)
        self.profile_plot.setMaximumHeight(230)
        self.profile_plot.setMenuEnabled(False)
        self.profile_plot.setMouseEnabled(x=False, y=False)
        self.profile_plot.showGrid(x=True, y=True, alpha=0.2)
        self.profile_curve = self.profile_plot.plot([], [], pen=pen((255, 214, 0), 2.0))
        self.map_box = ImageViewBox(lock_aspect=False)
        self.map_box.setMouseEnabled(x=False, y=False)
        self.map_view = make_graphics_view(self.map_box)
        self.map_view.setMinimumHeight(90)
        self.map_view.setMaximumHeight(160)
        self.map_item = pg.ImageItem(levels=LEVELS, lut=heat_lut(threshold=0.0))
        self.map_line = pg.PlotCurveItem(pen=pen((255, 255, 255), 1.5))
        self.map_line.setZValue(5)
        self.map_box.addItem(self.map_item)
        self.map_box.addItem(self.map_line)
        self.tsnit_plot = _fixed_plot(130, "TSNIT around the disc")
        self.tsnit_curve = self.tsnit_plot.plot([], [], pen=pen((0, 200, 83), 2.0))
        self.map_caption = QtWidgets.QLabel("")
        self.map_caption.setObjectName("note")
        self.map_caption.setWordWrap(True)
        self.sectors_label = QtWidgets.QLabel("")
        self.sectors_label.setObjectName("note")
        self.sectors_label.setWordWrap(True)
        self.rnfl_note = QtWidgets.QLabel("")
        self.rnfl_note.setObjectName("note")
        self.rnfl_note.setWordWrap(True)
        self.rnfl_section.body.addWidget(self.profile_plot, 3)
        self.rnfl_section.body.addWidget(self.map_caption)
        self.rnfl_section.body.addWidget(self.map_view, 2)
        self.rnfl_section.body.addWidget(self.tsnit_plot)
        self.rnfl_section.body.addWidget(self.sectors_label)
        self.rnfl_section.body.addWidget(self.rnfl_note)

        # Timings.
        self.timings_label = QtWidgets.QLabel("")
        self.timings_label.setObjectName("note")
        self.timings_label.setWordWrap(True)

        column = QtWidgets.QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(6)
        column.addWidget(self.data_label)
        column.addWidget(self.grade_section)
        column.addWidget(self.tasks_section)
        column.addWidget(self.bio_section)
        column.addWidget(self.rnfl_section, 1)
        column.addWidget(self.timings_label)
        column.addStretch(0)
        self._column = column
        self.clear()

    # ----------------------------------------------------------------------------------------------- content
    def clear(self, status: str = "No exam open", rim_shown: bool = False) -> None:
        """Empty every box (``status`` in the grade's place); ``rim_shown``: keep the rim plot's place (an analysis
        with a rim profile follows)."""
        self._view = None
        _clear_layout(self.tasks_box)
        self.cam_choice = None
        self.tasks_section.hide()
        for section in (self.grade_section, self.bio_section, self.rnfl_section):
            section.show()
        self.grade_label.setText(status)
        self.caution_label.hide()
        self.grade_label.setStyleSheet("font-size: 11pt; font-weight: 600; color: #b8c0c8;")
        self.bars.set_probabilities(None)
        _clear_layout(self.models_grid)
        self.models_toggle.hide()
        self.models_box.hide()
        self.ensemble_note.setText("")
        self.bio_grid.clear()
        self.bio_note.setText("")
        self.bio_card.setText("")
        self.rim_plot.clear()
        self.rim_plot.setVisible(rim_shown)  # left as it is when it stays: hiding and showing again relays the column
        self.profile_curve.setData([], [])
        self.map_item.clear()
        self.map_line.setData([], [])
        self.tsnit_curve.setData([], [])
        self.tsnit_plot.hide()
        self.map_caption.setText("")
        self.sectors_label.setText("")
        self.rnfl_note.setText("")
        self._set_rnfl_visible(False)
        self.messages_label.setText("")
        self.messages_label.setToolTip("")
        self.messages_label.hide()
        self.timings_label.setText("")

    def set_data_note(self, text: str, details: str = "") -> None:
        """One line on the exam's data (``worker.data_note``); shown as a warning when anything is synthetic."""
        self.data_label.setText(f"Data: {text}" if text else "")
        self.data_label.setToolTip(details)
        self.data_label.setObjectName("warning" if "SYNTHETIC" in text else "note")
        self.data_label.setStyleSheet(self.data_label.styleSheet())  # re-polish after the object name changed
        self.data_label.style().unpolish(self.data_label)
        self.data_label.style().polish(self.data_label)
        self.data_label.setVisible(bool(text))

    def set_pending(self, status: str) -> None:
        """While loading / analysing: say so, keep the layout."""
        self.clear(status)

    def set_analysis(self, view: AnalysisView, current_bscan: int = 0) -> None:
        self.clear(rim_shown=view.rim_profile is not None)
        self._view = view
        self._show_grade(view)
        self._show_tasks(view)
        self._show_biomarkers(view)
        self._show_rnfl(view)
        if view.tasks and not view.models and not view.biomarkers and view.rnfl_profiles is None:
            # an MRI or a radiograph: the glaucoma boxes have nothing to say; their notes move to this box
            for section in (self.grade_section, self.bio_section, self.rnfl_section):
                section.hide()
            self._move_messages(self.tasks_section)
        else:
            self._move_messages(self.grade_section)
        self.set_current_bscan(current_bscan)
        if view.messages:
            self.messages_label.setText("\n".join(f"• {_shorten(m)}" for m in view.messages))
            self.messages_label.setToolTip("\n\n".join(view.messages))
            self.messages_label.show()
        if view.timings:
            parts = [f"{k} {v:.2f} s" for k, v in view.timings.items()]
            self.timings_label.setText("Timings: " + " · ".join(parts))

    def _move_messages(self, section: Section) -> None:
        """Put the notes label at the end of ``section`` (the grade box, or the other findings box)."""
        for owner in (self.grade_section, self.tasks_section):
            owner.body.removeWidget(self.messages_label)
        section.body.addWidget(self.messages_label)

    @property
    def analysis(self) -> Optional[AnalysisView]:
        return self._view

    def _show_grade(self, view: AnalysisView) -> None:
        if view.grade is None or view.ensemble is None:
            self.grade_label.setText("No grade for this exam")
            self.grade_label.setStyleSheet("font-size: 12pt; font-weight: 700; color: #ffcc80;")
            return
        colour = "#8a949e" if view.grade_caution else class_colour(view.grade).name()  # muted: not to be read as is
        self.grade_label.setText(f"{GRADE_LABELS.get(view.grade, view.grade)}")
        self.grade_label.setStyleSheet(f"color: {colour};")
        self.caution_label.setText(f"⚠ {view.grade_caution}")
        self.caution_label.setVisible(bool(view.grade_caution))
        self.bars.set_probabilities(view.ensemble, highlight=view.grade)
        if view.models:
            n = len(view.models)
            self.models_toggle.setText(f"{n} model{'s' if n > 1 else ''} graded this exam")
            self.models_toggle.setToolTip("Show or hide each model's probabilities (click a name for its model card)")
            self.models_toggle.show()
            self.models_toggle.setChecked(n <= 4)  # a long ensemble starts folded
            self._show_models(self.models_toggle.isChecked())
        for row, run in enumerate(view.models, start=1):
            link = QtWidgets.QLabel(f'<a href="#" style="color:#90caf9;">{_esc(run.name)}</a>')
            link.setTextFormat(QtCore.Qt.TextFormat.RichText)
            # Long names are clipped rather than widening the column past the window.
            link.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
            link.setMinimumWidth(60)
            link.setToolTip(f"{run.inputs}\n{run.weights}\nSHA-256 {run.sha256[:16]}…" if run.sha256 else run.inputs)
            link.linkActivated.connect(lambda _href, r=run: self.modelCardRequested.emit(r))
            inputs = QtWidgets.QLabel(run.inputs)
            inputs.setObjectName("note")
            top = max(run.probabilities, key=run.probabilities.get) if run.probabilities else ""
            value = QtWidgets.QLabel(f"{top} {100 * run.probabilities.get(top, 0):.0f} %" if top else "")
            value.setObjectName("note")
            self.models_grid.addWidget(link, row, 0)
            self.models_grid.addWidget(StackedBar(run.probabilities), row, 1)
            self.models_grid.addWidget(value, row, 2)
        self.models_grid.setColumnStretch(0, 3)
        self.models_grid.setColumnStretch(1, 2)
        self.ensemble_note.setText(view.ensemble_rule)

    def _show_tasks(self, view: AnalysisView) -> None:
        """One block per sibling task: title, verdict, probability bars, its model (card on click); for ODIR a
        choice of which label's Grad-CAM the photo view shows."""
        if not view.tasks:
            return
        self.tasks_section.show()
        for task in view.tasks:
            title = QtWidgets.QLabel(f"<b>{_esc(task.title)}</b>: {_esc(task.verdict)}")
            title.setWordWrap(True)
            bars = ProbabilityBars()
            bars.set_probabilities(task.probabilities, highlight=max(task.probabilities, key=task.probabilities.get))
            link = QtWidgets.QLabel(f'model <a href="#" style="color:#90caf9;">{_esc(task.run.name)}</a>'
                                    f" ({_esc(task.run.inputs)})")
            link.setObjectName("note")
            link.setTextFormat(QtCore.Qt.TextFormat.RichText)
            link.setToolTip(f"SHA-256 {task.run.sha256[:16]}…" if task.run.sha256 else "")
            link.linkActivated.connect(lambda _href, r=task.run: self.modelCardRequested.emit(r))
            for widget in (title, bars, link):
                self.tasks_box.addWidget(widget)
            if task.notes:
                notes = QtWidgets.QLabel("\n".join(f"• {n}" for n in task.notes))
                notes.setObjectName("warning" if any("no clinical validity" in n for n in task.notes) else "note")
                notes.setWordWrap(True)
                self.tasks_box.addWidget(notes)
            if task.cams:
                self.cam_choice = self._cam_choice(view, task)
                self.tasks_box.addWidget(self.cam_choice)

    def _cam_choice(self, view: AnalysisView, task: TaskRun) -> QtWidgets.QComboBox:
        """Which heat map the photo shows: the glaucoma grade's Grad-CAM (when there is one) or one label's."""
        combo = QtWidgets.QComboBox()
        combo.setToolTip("Heat map drawn on the photo when its Grad-CAM box is ticked")
        if view.fundus_cam is not None:
            combo.addItem("Heat map on the photo: glaucoma grade", view.fundus_cam)
        names = {name.split(" ", 1)[0]: name for name in task.probabilities}
        for label, cam in task.cams.items():
            combo.addItem(f"Heat map on the photo: {names.get(label, label)}", cam)
        combo.currentIndexChanged.connect(lambda i: self.photoCamRequested.emit(combo.itemData(i)))
        return combo

    def _show_models(self, shown: bool) -> None:
        self.models_box.setVisible(shown)
        self.models_toggle.setArrowType(QtCore.Qt.ArrowType.DownArrow if shown else QtCore.Qt.ArrowType.RightArrow)

    def _request_anatomy_card(self, href: str) -> None:
        view = self._view
        if view is not None and href.isdigit() and int(href) < len(view.anatomy_models):
            self.modelCardRequested.emit(view.anatomy_models[int(href)])

    def _show_biomarkers(self, view: AnalysisView) -> None:
        self.bio_card.setText(" ".join(
            f'<a href="{k}" style="color:#90caf9;">Model card: {_esc(run.name)}</a> '
            f'<span style="color:#8a949e;">(how it was trained and tested on unseen cameras)</span>'
            for k, run in enumerate(view.anatomy_models)))
        if not view.biomarkers:
            self.bio_note.setText(" ".join(t for t in (view.disc_note or "No disc/cup measurements for this exam.",
                                                       view.disc_hint) if t))
            return
        pairs = []
        for marker in view.biomarkers:
            name = QtWidgets.QLabel(marker.name)
            name.setObjectName("note")
            value = QtWidgets.QLabel(marker.value)
            value.setObjectName("value")
            for label in (name, value):
                label.setToolTip(f"{marker.name}: {marker.note}" if marker.note else marker.name)
            pairs.append((name, value))
        self.bio_grid.set_pairs(pairs)
        self.bio_note.setText(" ".join(t for t in (view.disc_method, view.disc_note, view.disc_hint) if t))
        self._show_rim(view)

    def _show_rim(self, view: AnalysisView) -> None:
        """Rim width / disc diameter all round the disc, sectors named (TSNIT with a known eye), narrowest marked."""
        if view.rim_profile is None:
            return
        angles, ratio = view.rim_profile
        k = int(np.argmin(ratio))
        names = RIM_SECTORS["TSNIT" if view.rim_eye in ("OD", "OS") else "photo"]
        where = names[int(((angles[k] + 45.0) % 360.0) // 90.0)]
        gone = view.rim_absent_deg
        title = (f"Rim width / disc diameter around the disc: no rim over {gone:.0f}°, {where[1]}" if gone
                 else f"Rim width / disc diameter around the disc: narrowest {ratio[k]:.2f}, {where[1]}")
        self.rim_plot.set_profile(angles, ratio, [names[i % 4][0] for i in range(5)], title, view.rim_absent)
        self.rim_plot.setToolTip(
            "Neuro-retinal rim width along each ray from the disc's centroid over the disc's diameter in that "
            "direction (its minimum is 'rim / disc'); dashed lines: sector borders; shaded: no rim left"
            + ("" if view.rim_eye in ("OD", "OS") else ". Eye unknown: nasal and temporal cannot be named, the "
               "photo's left and right are shown") + ".")

    def _show_rnfl(self, view: AnalysisView) -> None:
        unit = view.rnfl_unit
        plot = self.profile_plot.getPlotItem()
        x_unit = "mm" if view.lateral_mm else "px"
        plot.setLabel("left", f"RNFL ({unit})")
        plot.setLabel("bottom", f"position along the B-scan ({x_unit})")
        if view.rnfl_profiles is None:
            self.rnfl_note.setText("No layer segmentation for this exam.")
            return
        self._set_rnfl_visible(True)
        profiles = view.rnfl_profiles
        finite = profiles[np.isfinite(profiles)]
        hi = float(np.percentile(finite, 99)) if finite.size else 1.0
        plot.setYRange(0, max(hi * 1.1, 1.0), padding=0)
        self.map_item.setImage(to_uint8_map(np.nan_to_num(profiles / max(hi, 1e-6), nan=0.0)), autoLevels=False,
                               levels=LEVELS)
        self.map_item.setRect(QtCore.QRectF(0, 0, profiles.shape[1], profiles.shape[0]))
        self.map_box.autoRange(padding=0)
        self.map_caption.setText(f"En-face RNFL map (rows = B-scans, colour 0 – {hi:.0f} {unit}); white line = current B-scan")
        if view.rnfl_sectors:
            self.sectors_label.setText(
                f"{view.sector_grid or 'Sectors'} (mean RNFL): "
                + " · ".join(f"{k} {v:.0f} {unit}" for k, v in view.rnfl_sectors.items())
            )
        if view.tsnit is not None:
            angles, values = view.tsnit
            self.tsnit_curve.setData(angles.astype(np.float64), values.astype(np.float64), connect="finite")
            item = self.tsnit_plot.getPlotItem()
            item.setLabel("left", unit)
            item.setLabel("bottom", "T · S · N · I · T (degrees)")
            self.tsnit_plot.show()
        note = f"Layers by {view.layer_method}." if view.layer_method else ""
        notes = list(view.layer_notes)
        if unit == "px" and not any("px" in n for n in notes):
            notes.append("axial scale assumed or unknown: thickness in px, not µm")
        if notes:
            note += " Notes: " + "; ".join(notes) + "."
        self.rnfl_note.setText(note.strip())

    def _set_rnfl_visible(self, visible: bool) -> None:
        for widget in (self.profile_plot, self.map_view, self.map_caption):
            widget.setVisible(visible)
        # With plots the RNFL box takes the spare height; without, the boxes stay compact at the top.
        self._column.setStretchFactor(self.rnfl_section, 1 if visible else 0)
        self._column.setStretch(self._column.count() - 1, 0 if visible else 1)

    def set_current_bscan(self, index: int) -> None:
        """Show the RNFL profile along B-scan ``index`` and mark it on the en-face map."""
        self._current = index
        view = self._view
        if view is None or view.rnfl_profiles is None or not (0 <= index < len(view.rnfl_profiles)):
            self.profile_curve.setData([], [])
            self.map_line.setData([], [])
            return
        profile = view.rnfl_profiles[index]
        x = np.arange(profile.shape[0], dtype=np.float64)
        if view.lateral_mm:
            x = x * view.lateral_mm
        self.profile_curve.setData(x, profile, connect="finite")
        width = profile.shape[0]
        self.map_line.setData([0, width], [index + 0.5, index + 0.5])
        self.profile_plot.getPlotItem().setTitle(f"along B-scan {index + 1}", size="9pt")
