"""A slice browser for a (N, H, W) uint8 volume: the OCT B-scans here, reusable for MRI slices later.

Navigation: slider, mouse wheel (Ctrl+wheel zooms), arrow keys (one slice), PageUp/PageDown (ten), Home/End.
The label reads "k / N" with k counted from 1. ``sliceChanged(index)`` (0-based) drives the fundus line.

Speed (pyqtgraph's ImageItem fast path): each slice is a C-contiguous ``(H, W)`` uint8 view of the volume
shown with explicit levels ``(0, 255)``; window/level lives in a 256-entry uint8 LUT that we own and change
only when the user moves window/level, never per frame. Slider and window/level drags go through
``SignalProxy`` so a fast drag is condensed to at most ``rate_limit`` updates per second. Overlays of the current
slice (layer labels, Grad-CAM) are fetched by a :class:`~glaucoma_viewer.worker.LatestOnlyExecutor`: a newer
slice supersedes an older request, so scrolling never queues work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from engine.progress import CancelToken
from glaucoma_viewer.views.common import (
    LAYER_COLOURS,
    LAYER_NAMES,
    LEVELS,
    ImageViewBox,
    gray_lut,
    heat_lut,
    label_lut,
    legend_html,
    make_graphics_view,
)
from glaucoma_viewer.worker import JobFailure, LatestOnlyExecutor, SliceRequest


@dataclass(frozen=True)
class SliceOverlays:
    """What is drawn over one slice: labels (H, W) uint8 (0 = none), heat (h, w) uint8 0..255; None = absent."""

    labels: Optional[np.ndarray] = None
    heat: Optional[np.ndarray] = None


def slice_overlays(labels: Optional[np.ndarray], heat: Optional[np.ndarray], index: int) -> SliceOverlays:
    """Pick slice ``index`` of the label volume (N, H, W) uint8 and heat volume (N, h, w) uint8 as C-contiguous."""
    lab = None if labels is None or index >= len(labels) else np.ascontiguousarray(labels[index])
    hot = None if heat is None or index >= len(heat) else np.ascontiguousarray(heat[index])
    return SliceOverlays(lab, hot)


class SliceView(QtWidgets.QWidget):
    """Current slice of a volume, its navigation, window/level and overlays.

    Args:
        title: panel title ("OCT B-scan").
        unit_name: what a slice is called in messages ("B-scan", "slice").
        rate_limit: most image updates per second during slider / window-level drags.
        synchronous: fetch overlays inline (tests).
    """

    sliceChanged = QtCore.Signal(int)
    overlaysChanged = QtCore.Signal()

    def __init__(
        self,
        title: str = "OCT B-scan",
        unit_name: str = "B-scan",
        rate_limit: float = 60.0,
        synchronous: bool = False,
        parent: Optional[QtWidgets.QWidget] = None,
    ) -> None:
        super().__init__(parent)
        self.base_title = title
        self.unit_name = unit_name
        self._volume: Optional[np.ndarray] = None
        self._labels: Optional[np.ndarray] = None
        self._heat: Optional[np.ndarray] = None
        self._key: Any = None
        self._index = 0
        self._auto_wl = (255.0, 127.5)
        self.frames_drawn = 0
        self.executor = LatestOnlyExecutor(self, synchronous=synchronous)

        self.title = QtWidgets.QLabel(title)
        self.title.setObjectName("panelTitle")
        self.position = QtWidgets.QLabel("")
        self.position.setObjectName("sliceLabel")
        self.layers_toggle = QtWidgets.QCheckBox("Layers")
        self.layers_toggle.setChecked(True)
        self.cam_toggle = QtWidgets.QCheckBox("Grad-CAM")
        self.cam_toggle.setChecked(False)
        self.legend = QtWidgets.QLabel(legend_html())
        self.legend.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.legend.setObjectName("legend")

        header = QtWidgets.QHBoxLayout()
        header.setContentsMargins(6, 2, 6, 2)
        header.addWidget(self.title)
        header.addWidget(self.position)
        header.addStretch(1)
        header.addWidget(self.layers_toggle)
        header.addWidget(self.cam_toggle)

        self.box = ImageViewBox(wheel_steps_slices=True, lock_aspect=False)
        self.view = make_graphics_view(self.box)
        self.view.installEventFilter(self)
        self._lut = gray_lut()
        self.image_item = pg.ImageItem(levels=LEVELS, lut=self._lut)
        self.label_item = pg.ImageItem(levels=LEVELS, lut=label_lut())
        self.label_item.setZValue(5)
        self.heat_item = pg.ImageItem(levels=LEVELS, lut=heat_lut())
        self.heat_item.setZValue(6)
        self.heat_item.setOpacity(0.5)
        for item in (self.image_item, self.label_item, self.heat_item):
            self.box.addItem(item)
        self.placeholder = pg.TextItem("", color=(150, 160, 170), anchor=(0.5, 0.5))
        self.box.addItem(self.placeholder)

        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setSingleStep(1)
        self.slider.setPageStep(10)
        self.slider.setToolTip("Wheel, arrow keys, PageUp/PageDown, Home/End")
        self.window = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.window.setRange(1, 255)
        self.window.setValue(255)
        self.window.setFixedWidth(90)
        self.window.setToolTip("Window (contrast)")
        self.level = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.level.setRange(0, 255)
        self.level.setValue(128)
        self.level.setFixedWidth(90)
        self.level.setToolTip("Level (brightness)")
        self.wl_reset = QtWidgets.QToolButton()
        self.wl_reset.setText("Auto")
        self.wl_reset.setToolTip("Window/level from this volume's intensity percentiles")

        footer = QtWidgets.QHBoxLayout()
        footer.setContentsMargins(6, 2, 6, 4)
        footer.addWidget(self.slider, 1)
        footer.addSpacing(12)
        footer.addWidget(QtWidgets.QLabel("W"))
        footer.addWidget(self.window)
        footer.addWidget(QtWidgets.QLabel("L"))
        footer.addWidget(self.level)
        footer.addWidget(self.wl_reset)

        legend_row = QtWidgets.QHBoxLayout()
        legend_row.setContentsMargins(6, 0, 6, 0)
        legend_row.addWidget(self.legend)
        legend_row.addStretch(1)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addLayout(legend_row)
        layout.addWidget(self.view, 1)
        layout.addLayout(footer)

        # Every navigation path ends in slider.setValue; the slider's stream is rate-limited by a SignalProxy.
        self._slice_proxy = pg.SignalProxy(self.slider.valueChanged, delay=1.0 / rate_limit, rateLimit=rate_limit,
                                           slot=self._slider_moved)
        self._wl_proxies = [
            pg.SignalProxy(s.valueChanged, delay=1.0 / rate_limit, rateLimit=rate_limit, slot=self._wl_moved)
            for s in (self.window, self.level)
        ]
        self.box.wheelStep.connect(self.step)
        self.wl_reset.clicked.connect(self.auto_window_level)
        self.layers_toggle.toggled.connect(self._apply_visibility)
        self.cam_toggle.toggled.connect(self._apply_visibility)
        self.set_volume(None)

    # ----------------------------------------------------------------------------------------------- content
    def set_volume(
        self,
        volume: Optional[np.ndarray],
        key: Any = None,
        auto_wl: Optional[tuple[float, float]] = None,
        message: str = "No OCT volume in this exam",
        index: Optional[int] = None,
    ) -> None:
        """Show ``volume`` ((N, H, W) uint8, C-contiguous); ``key`` names it for overlay requests."""
        self._volume = None if volume is None else np.ascontiguousarray(volume)
        self._key = key
        self._labels = self._heat = None
        self.label_item.clear()
        self.heat_item.clear()
        self.layers_toggle.setEnabled(False)
        self.cam_toggle.setEnabled(False)
        if self._volume is None or self._volume.ndim != 3 or len(self._volume) == 0:
            self._volume = None
            self.image_item.clear()
            self.placeholder.setText(message)
            self.placeholder.setPos(0, 0)
            self.placeholder.show()
            self.box.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
            with QtCore.QSignalBlocker(self.slider):
                self.slider.setRange(0, 0)
            self.slider.setEnabled(False)
            self.position.setText("")
            self.title.setText(self.base_title)
            self._index = 0
            return
        self.placeholder.hide()
        n = len(self._volume)
        self.slider.setEnabled(True)
        start = (n // 2) if index is None else int(np.clip(index, 0, n - 1))
        with QtCore.QSignalBlocker(self.slider):
            self.slider.setRange(0, n - 1)
            self.slider.setValue(start)
        self._auto_wl = auto_wl or (255.0, 127.5)
        self.auto_window_level()
        self._show(start, force=True)
        h, w = self._volume.shape[1:]
        self.box.setRange(xRange=(0, w), yRange=(0, h), padding=0.0)

    def set_title(self, title: str) -> None:
        """Panel title for the current volume (e.g. "OCT B-scan — SYNTHETIC")."""
        self.title.setText(title)

    def set_overlays(self, labels: Optional[np.ndarray], heat: Optional[np.ndarray]) -> None:
        """Per-slice overlays for the current volume: labels (N, H, W) uint8, heat (N, h, w) uint8 or None."""
        self._labels = labels
        self._heat = heat
        self.layers_toggle.setEnabled(labels is not None)
        self.cam_toggle.setEnabled(heat is not None)
        if labels is None:
            self.label_item.clear()
        if heat is None:
            self.heat_item.clear()
        self._request_overlays(self._index)
        self._apply_visibility()

    @property
    def volume(self) -> Optional[np.ndarray]:
        return self._volume

    @property
    def current_index(self) -> int:
        return self._index

    @property
    def count(self) -> int:
        return 0 if self._volume is None else len(self._volume)

    # ----------------------------------------------------------------------------------------------- navigation
    def set_index(self, index: int) -> None:
        """Go to slice ``index`` (clamped), through the slider like every other navigation path."""
        if self._volume is None:
            return
        self.slider.setValue(int(np.clip(index, 0, len(self._volume) - 1)))

    def step(self, delta: int) -> None:
        self.set_index(self.slider.value() + int(delta))

    def show_now(self, index: int) -> None:
        """Switch to ``index`` immediately, bypassing the rate limit (benchmarks, programmatic jumps)."""
        if self._volume is None:
            return
        index = int(np.clip(index, 0, len(self._volume) - 1))
        with QtCore.QSignalBlocker(self.slider):
            self.slider.setValue(index)
        self._show(index)

    def _slider_moved(self, args: tuple) -> None:
        self._show(int(args[0]))

    def _show(self, index: int, force: bool = False) -> None:
        if self._volume is None:
            return
        changed = index != self._index
        self._index = index
        # A view into the C-contiguous volume: no copy, no conversion, explicit levels, our own LUT.
        self.image_item.setImage(self._volume[index], autoLevels=False, levels=LEVELS)
        self.frames_drawn += 1
        n = len(self._volume)
        self.position.setText(f"{index + 1} / {n}")
        self._request_overlays(index)
        if changed or force:
            self.sliceChanged.emit(index)

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 - Qt naming
        if obj is self.view and event.type() == QtCore.QEvent.Type.KeyPress:
            if self.handle_key(event.key()):
                return True
        return super().eventFilter(obj, event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt naming
        if not self.handle_key(event.key()):
            super().keyPressEvent(event)

    def handle_key(self, key: int) -> bool:
        """Arrow keys step one slice, PageUp/PageDown ten, Home/End to the ends; True when handled."""
        keys = QtCore.Qt.Key
        if self._volume is None:
            return False
        steps = {keys.Key_Left: -1, keys.Key_Up: -1, keys.Key_Right: 1, keys.Key_Down: 1,
                 keys.Key_PageUp: -10, keys.Key_PageDown: 10}
        if key in steps:
            self.step(steps[key])
            return True
        if key == keys.Key_Home:
            self.set_index(0)
            return True
        if key == keys.Key_End:
            self.set_index(len(self._volume) - 1)
            return True
        return False

    # ----------------------------------------------------------------------------------------------- window/level
    def set_window_level(self, window: float, level: float) -> None:
        with QtCore.QSignalBlocker(self.window), QtCore.QSignalBlocker(self.level):
            self.window.setValue(int(round(window)))
            self.level.setValue(int(round(level)))
        self._apply_lut()

    def auto_window_level(self) -> None:
        self.set_window_level(*self._auto_wl)

    def window_level(self) -> tuple[int, int]:
        return self.window.value(), self.level.value()

    def _wl_moved(self, _args: tuple) -> None:
        self._apply_lut()

    def _apply_lut(self) -> None:
        self._lut = gray_lut(self.window.value(), self.level.value())
        self.image_item.setLookupTable(self._lut)

    # ----------------------------------------------------------------------------------------------- overlays
    def _request_overlays(self, index: int) -> None:
        if self._labels is None and self._heat is None:
            return
        labels, heat = self._labels, self._heat
        request = SliceRequest(self._key, index)

        def work(req: SliceRequest, cancel: CancelToken) -> SliceOverlays:
            cancel.raise_if_cancelled()
            return slice_overlays(labels, heat, req.index)

        self.executor.request(request, work, self._overlays_ready)

    def _overlays_ready(self, req: SliceRequest, result: Any) -> None:
        if req.key != self._key or req.index != self._index or self._volume is None:
            return
        if isinstance(result, JobFailure):
            self.label_item.clear()
            self.heat_item.clear()
            return
        h, w = self._volume.shape[1:]
        for item, array in ((self.label_item, result.labels), (self.heat_item, result.heat)):
            if array is None:
                item.clear()
            else:
                item.setImage(array, autoLevels=False, levels=LEVELS)
                item.setRect(QtCore.QRectF(0, 0, w, h))
        self._apply_visibility()

    def overlay_state(self) -> dict[str, object]:
        return {"layers": self.layers_toggle.isChecked(), "oct_cam": self.cam_toggle.isChecked()}

    def restore_overlay_state(self, state: dict[str, object]) -> None:
        if "layers" in state:
            self.layers_toggle.setChecked(bool(state["layers"]))
        if "oct_cam" in state:
            self.cam_toggle.setChecked(bool(state["oct_cam"]))

    def _apply_visibility(self, *_: object) -> None:
        self.label_item.setVisible(self.layers_toggle.isChecked() and self._labels is not None)
        self.heat_item.setVisible(self.cam_toggle.isChecked() and self._heat is not None)
        self.legend.setVisible(self.layers_toggle.isChecked() and self._labels is not None)
        self.overlaysChanged.emit()

    def shutdown(self) -> None:
        self.executor.shutdown()


__all__ = ["LAYER_COLOURS", "LAYER_NAMES", "SliceOverlays", "SliceView", "slice_overlays"]
