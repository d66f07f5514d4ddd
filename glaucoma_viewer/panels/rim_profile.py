"""The rim profile under the biomarkers: rim width / disc diameter all round the disc, drawn with QPainter.

A plain painted widget rather than a pyqtgraph ``PlotWidget``: it is a fixed 0–360° by 0–0.5 sparkline that is
never zoomed, and showing a ``PlotWidget`` (a graphics view) added 17–50 ms of UI-thread time each time an
analysis appeared (measured with and without it; the heart-beat test's 100 ms limit was then crossed once in CI),
against 1.0 ms to paint this one (median of 50 repaints at 420 x 125 px).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

RIM_TOP = 0.5
"""The y axis' top: a disc without a cup has a rim / disc ratio of 0.5 all round."""
PLOT_HEIGHT = 108
"""Pixels of the plot under its title (axes, ticks and their labels); the title, wrapped to the width, adds its own."""
_WRAP = int(QtCore.Qt.AlignmentFlag.AlignHCenter | QtCore.Qt.TextFlag.TextWordWrap)


class RimProfilePlot(QtWidgets.QWidget):
    """``set_profile(angles, ratio, ticks, title, absent)``; ``angles`` (K,) degrees in [0, 360), evenly spaced,
    ``ratio`` (K,) unitless; ``ticks``: the 5 labels at 0, 90, 180, 270 and 360 degrees; ``absent``: (K,) bool,
    shaded where True (no rim left). The narrowest point is marked."""

    def __init__(self, colour: tuple[int, int, int], parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setFixedHeight(PLOT_HEIGHT)
        self.colour = QtGui.QColor(*colour)
        self.title = ""
        self._ticks: Sequence[str] = ()
        self._xy: Optional[tuple[np.ndarray, np.ndarray]] = None
        self._absent: np.ndarray = np.zeros(0)  # degrees of the rays without rim

    def set_profile(self, angles: np.ndarray, ratio: np.ndarray, ticks: Sequence[str], title: str,
                    absent: Optional[np.ndarray] = None) -> None:
        self._xy = (np.append(angles, angles[0] + 360.0), np.append(ratio, ratio[0]))  # closed round the disc
        self._absent = np.zeros(0) if absent is None else np.asarray(angles)[np.asarray(absent, bool)]
        self._ticks, self.title = tuple(ticks), title
        self._fit_title(self.width())
        self.update()

    def clear(self) -> None:
        self._xy, self._absent, self._ticks, self.title = None, np.zeros(0), (), ""
        self._fit_title(self.width())
        self.update()

    def _title_height(self, width: int) -> int:
        """Pixels the title takes wrapped to ``width`` (at least one line)."""
        metrics = self.fontMetrics()
        box = metrics.boundingRect(QtCore.QRect(0, 0, max(width, 1), 10_000), _WRAP, self.title or " ")
        return max(box.height(), metrics.height())

    def _fit_title(self, width: int) -> None:
        self.setFixedHeight(PLOT_HEIGHT + self._title_height(width))  # a narrow column wraps the title, never cuts it

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt naming
        if event.size().width() != event.oldSize().width():
            self._fit_title(event.size().width())
        super().resizeEvent(event)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt naming
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        text = self.palette().color(QtGui.QPalette.ColorRole.WindowText)
        muted = QtGui.QColor(text)
        muted.setAlpha(150)
        metrics = p.fontMetrics()
        line_h = metrics.height()
        title_h = self._title_height(self.width())
        area = QtCore.QRectF(metrics.horizontalAdvance("0.5") + 10, title_h + 4, 0, 0)
        area.setRight(self.width() - 8)
        area.setBottom(self.height() - line_h - 4)
        p.setPen(text)
        p.drawText(QtCore.QRectF(0, 0, self.width(), title_h), _WRAP, self.title)
        p.setPen(QtGui.QPen(muted, 1))
        p.drawRect(area)

        def x_at(deg: float) -> float:
            return area.left() + area.width() * deg / 360.0

        def y_at(value: float) -> float:
            return area.bottom() - area.height() * min(max(value, 0.0), RIM_TOP) / RIM_TOP

        right = int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        for value in (0.0, RIM_TOP):
            p.drawText(QtCore.QRectF(0, y_at(value) - line_h / 2, area.left() - 4, line_h), right, f"{value:g}")
        p.setPen(QtGui.QPen(muted, 1, QtCore.Qt.PenStyle.DashLine))
        for deg in (45.0, 135.0, 225.0, 315.0):  # sector borders
            p.drawLine(QtCore.QPointF(x_at(deg), area.top()), QtCore.QPointF(x_at(deg), area.bottom()))
        p.setPen(text)
        for k, label in enumerate(self._ticks):
            box = QtCore.QRectF(x_at(90.0 * k) - 30, area.bottom() + 2, 60, line_h)
            p.drawText(box, int(QtCore.Qt.AlignmentFlag.AlignHCenter), label)
        if self._xy is None:
            return
        xs, ys = self._xy
        half = 180.0 / max(len(xs) - 1, 1)  # half a ray's share of the circle
        for deg in self._absent:  # no rim left along this ray
            p.fillRect(QtCore.QRectF(x_at(deg - half), area.top(), x_at(deg + half) - x_at(deg - half),
                                     area.height()), QtGui.QColor(229, 57, 53, 70))
        p.setPen(QtGui.QPen(self.colour, 2))
        p.drawPolyline(QtGui.QPolygonF([QtCore.QPointF(x_at(x), y_at(y)) for x, y in zip(xs, ys)]))
        k = int(np.argmin(ys))
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(QtGui.QColor(255, 255, 255))
        p.drawEllipse(QtCore.QPointF(x_at(xs[k]), y_at(ys[k])), 4.5, 4.5)
