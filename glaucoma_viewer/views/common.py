"""Shared drawing helpers: lookup tables, the image view box, fixed overlay colours.

Everything drawn follows pyqtgraph's fast path (its ``imageitem.rst``, section Performance): row-major,
C-contiguous uint8 arrays, explicit levels ``(0, 255)`` and a 256-entry uint8 lookup table, so Qt receives an
indexed image without any per-frame conversion. Levels are never automatic: window/level lives in the LUT.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="#101418", foreground="#d0d6dc")

LAYER_NAMES = ("NFL", "GCL+IPL", "INL", "OPL", "ONL", "EZ", "RPE", "choroid")
"""The eight retinal layers, label values 1..8 in anatomical order (0 = outside the retina)."""
LAYER_COLOURS = (
    (255, 214, 0),  # NFL: gold (the layer glaucoma thins; the brightest colour)
    (0, 200, 83),  # GCL+IPL: green
    (0, 176, 255),  # INL: sky blue
    (170, 80, 255),  # OPL: violet
    (255, 64, 129),  # ONL: pink
    (255, 145, 0),  # EZ: orange
    (229, 57, 53),  # RPE: red
    (161, 136, 127),  # choroid: taupe
)
"""Fixed RGB per layer, the same in every exam, legend and report."""

LEVELS = (0, 255)


def gray_lut(window: float = 255.0, level: float = 127.5) -> np.ndarray:
    """(256,) uint8 lookup table for window/level on uint8 data: ``level`` centre, ``window`` width."""
    window = max(1.0, float(window))
    x = np.arange(256, dtype=np.float32)
    y = (x - (level - window / 2.0)) * (255.0 / window)
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def turbo_rgb(x: np.ndarray) -> np.ndarray:
    """Google's Turbo colour map (polynomial fit), ``x`` in [0, 1] -> (..., 3) float in [0, 1]."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    r = 0.13572138 + x * (4.61539260 + x * (-42.66032258 + x * (132.13108234 + x * (-152.94239396 + x * 59.28637943))))
    g = 0.09140261 + x * (2.19418839 + x * (4.84296658 + x * (-14.18503333 + x * (4.27729857 + x * 2.82956604))))
    b = 0.10667330 + x * (12.64194608 + x * (-60.58204836 + x * (110.36276771 + x * (-89.90310912 + x * 27.34824973))))
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0)


def heat_lut(threshold: float = 0.15) -> np.ndarray:
    """(256, 4) uint8 RGBA Turbo table for heat maps; values below ``threshold`` fade to transparent."""
    x = np.linspace(0.0, 1.0, 256)
    rgb = turbo_rgb(x)
    alpha = np.clip((x - threshold) / max(1e-6, 0.35 - threshold), 0.0, 1.0) * 0.85 + 0.15 * (x >= threshold)
    alpha = np.clip(alpha, 0.0, 1.0)
    return np.concatenate([rgb * 255.0, alpha[:, None] * 255.0], axis=1).round().astype(np.uint8)


def label_lut(alpha: int = 110) -> np.ndarray:
    """(256, 4) uint8 RGBA for layer labels: 0 transparent, 1..8 the fixed layer colours."""
    lut = np.zeros((256, 4), np.uint8)
    for k, colour in enumerate(LAYER_COLOURS, start=1):
        lut[k, :3] = colour
        lut[k, 3] = alpha
    return lut


def to_uint8_map(values: np.ndarray) -> np.ndarray:
    """A float map in [0, 1] (or uint8) -> C-contiguous uint8 in [0, 255] for a LUT-coloured ImageItem."""
    if values.dtype == np.uint8:
        return np.ascontiguousarray(values)
    return np.ascontiguousarray(np.clip(np.nan_to_num(values) * 255.0 + 0.5, 0, 255).astype(np.uint8))


def legend_html(names: tuple[str, ...] = LAYER_NAMES, colours: tuple[tuple[int, int, int], ...] = LAYER_COLOURS) -> str:
    """Rich text with a coloured square before each layer name."""
    parts = [
        f'<span style="color: rgb{tuple(c)}; font-size: 13px;">&#9632;</span>&nbsp;{name}'
        for name, c in zip(names, colours)
    ]
    return "&nbsp;&nbsp;".join(parts)


class ImageViewBox(pg.ViewBox):
    """A view box for images: y down, wheel either zooms (default) or steps slices; clicks reported in data px.

    Signals:
        clicked(x, y): a left click, in the view's coordinates (x = column px, y = row px).
        contextRequested(x, y, QPoint): a right click there, with its screen position (for a context menu).
        wheelStep(int): +1 / -1 per wheel notch when ``wheel_steps_slices`` (Ctrl+wheel still zooms).
    """

    clicked = QtCore.Signal(float, float)
    contextRequested = QtCore.Signal(float, float, QtCore.QPoint)
    wheelStep = QtCore.Signal(int)

    def __init__(self, wheel_steps_slices: bool = False, lock_aspect: bool = True) -> None:
        super().__init__(invertY=True, lockAspect=lock_aspect, enableMenu=False)
        self.wheel_steps_slices = wheel_steps_slices
        self._wheel_accum = 0

    def wheelEvent(self, ev, axis=None):  # noqa: N802 - Qt naming
        modifiers = ev.modifiers()
        if self.wheel_steps_slices and not (modifiers & QtCore.Qt.KeyboardModifier.ControlModifier):
            delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
            self._wheel_accum += delta
            steps = int(self._wheel_accum / 120)
            if steps:
                self._wheel_accum -= steps * 120
                # Wheel up (away from the user) shows the previous B-scan, like a page scrolling up.
                self.wheelStep.emit(-steps)
            ev.accept()
            return
        super().wheelEvent(ev, axis)

    def mouseClickEvent(self, ev):  # noqa: N802 - Qt naming
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            pos = self.mapSceneToView(ev.scenePos())
            self.clicked.emit(float(pos.x()), float(pos.y()))
            ev.accept()
            return
        if ev.button() == QtCore.Qt.MouseButton.RightButton:
            pos = self.mapSceneToView(ev.scenePos())
            self.contextRequested.emit(float(pos.x()), float(pos.y()), ev.screenPos().toPoint())
            ev.accept()
            return
        super().mouseClickEvent(ev)


class ElidedLabel(QtWidgets.QLabel):
    """A one-line label that ends in "…" when it is narrower than its text (a plain QLabel cuts the text off
    mid-word with no sign of it); the full text stays in :meth:`text`."""

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt naming
        return QtCore.QSize(0, super().minimumSizeHint().height())

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt naming
        painter = QtGui.QPainter(self)
        box = self.contentsRect()
        shown = self.fontMetrics().elidedText(self.text(), QtCore.Qt.TextElideMode.ElideRight, box.width())
        self.style().drawItemText(painter, box, int(self.alignment()), self.palette(), self.isEnabled(), shown,
                                  self.foregroundRole())


def make_graphics_view(box: ImageViewBox) -> pg.GraphicsView:
    """A frameless GraphicsView that shows ``box`` filling it; drops fall through to the main window."""
    view = pg.GraphicsView()
    view.setCentralItem(box)
    view.setAcceptDrops(False)
    view.viewport().setAcceptDrops(False)
    view.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
    view.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
    return view


def pen(rgb: tuple[int, int, int], width: float = 2.0, alpha: int = 255, style: Optional[QtCore.Qt.PenStyle] = None):
    """A cosmetic pen (width in screen px, independent of zoom)."""
    p = pg.mkPen(color=(*rgb, alpha), width=width)
    p.setCosmetic(True)
    if style is not None:
        p.setStyle(style)
    return p
