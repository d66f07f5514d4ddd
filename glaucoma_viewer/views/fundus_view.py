"""The fundus view: photo with disc/cup contours, disc-crop box, Grad-CAM, and where the current B-scan lies.

Coordinates: the view's x is the photo's column and y its row, in **original photo pixels**, even when the
photo is displayed downsampled (the image item is stretched over the original size), so every overlay from
the engine can be drawn in the photo's own ``(row, col)`` px.

When the exam has an OCT volume but the B-scan positions on the photo are unknown, an **en-face projection**
of the volume (one row per B-scan, computed once per volume on the worker) is shown beside the photo and
labelled as such; the current B-scan is a line across it and a click on it selects a B-scan.

A right click on the photo offers to place the optic disc there (for a photo where the automatic search chose
another region, or found none); a placed disc is marked with a cross until the automatic search is asked back.
The same menu opens the **outline editor** on the disc or the cup: the outline becomes a polygon whose points can
be dragged (a click on an edge adds a point, a right click on a point removes it, dragging inside moves it all);
each change is sent to be measured again (``outlineEdited``) and "Done" closes the editor.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from glaucoma_viewer.views.common import (
    LEVELS,
    ElidedLabel,
    ImageViewBox,
    gray_lut,
    heat_lut,
    make_graphics_view,
    pen,
)

def height_bar(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) photo px of segment pairs (pyqtgraph ``connect="pairs"``) drawing an outline's height: a vertical bar
    from its top row to its bottom row at its middle column, with a tick across each end. The vertical cup-to-disc
    ratio is the cup's bar over the disc's; ``points``: (K, 2) (row, col) px of the outline."""
    top, bottom = float(points[:, 0].min()), float(points[:, 0].max())
    left, right = float(points[:, 1].min()), float(points[:, 1].max())
    x, tick = (left + right) / 2.0, 0.15 * (right - left)
    xs = np.array([x, x, x - tick, x + tick, x - tick, x + tick])
    ys = np.array([top, bottom, top, top, bottom, bottom])
    return xs, ys


DISC_RGB = (0, 229, 255)
CUP_RGB = (255, 193, 7)
LINE_RGB = (0, 230, 118)
CROP_RGB = (236, 239, 241)


class FundusView(QtWidgets.QWidget):
    """Photo + overlays, and the en-face stand-in when B-scan positions are unknown.

    Signals:
        bscanSelected(int): a click on (or near) a B-scan line, or on a row of the en-face projection.
        overlaysChanged(): a toggle or the opacity changed (the main window saves them).
        discPlaced(row, col): the user placed the optic disc there (photo px) from the context menu.
        discPlacementCleared(): the user asked for the automatic disc search back.
        outlineEdited(part, points): the user changed the "disc" or "cup" outline in the editor: (K, 2) float
            (row, col) photo px.
        outlinesReset(): the user asked for the segmenter's outlines back.
        outlinesDrawnAt(row, col): the user asked to outline the disc and cup by hand around that point (photo px),
            where the segmenter found no disc.
    """

    bscanSelected = QtCore.Signal(int)
    overlaysChanged = QtCore.Signal()
    discPlaced = QtCore.Signal(float, float)
    discPlacementCleared = QtCore.Signal()
    outlineEdited = QtCore.Signal(str, object)
    outlinesReset = QtCore.Signal()
    outlinesDrawnAt = QtCore.Signal(float, float)

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self._photo_shape: Optional[tuple[int, int]] = None
        self._positions: Optional[np.ndarray] = None  # (N, 2, 2) (row, col) px
        self._enface_rows: int = 0
        self._enface_row_h: float = 1.0
        self._current = 0
        self._placed: Optional[tuple[float, float]] = None
        self._menu: Optional[QtWidgets.QMenu] = None
        self._editable: dict[str, np.ndarray] = {}  # "disc" / "cup" -> (K, 2) (row, col) px the editor starts from
        self._drawn: tuple[str, ...] = ()  # the outlines drawn by hand in the analysis shown
        self.editing: Optional[str] = None  # the outline being corrected
        self.outline_roi: Optional[pg.PolyLineROI] = None
        self.placing_enabled = False  # the main window allows it on a fundus photo (not on a radiograph)
        self.drawing_enabled = False  # "Outline the disc and cup by hand here" (where the segmenter found no disc)

        self.title = ElidedLabel("Fundus")
        self.title.setObjectName("panelTitle")
        # A long exam id ends in "…" (full text in the tooltip) instead of widening the centre column.
        self.title.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.title.setMinimumWidth(120)
        self.disc_toggle = QtWidgets.QCheckBox("Disc + cup")
        self.crop_toggle = QtWidgets.QCheckBox("Crop box")
        self.cam_toggle = QtWidgets.QCheckBox("Grad-CAM")
        self.line_toggle = QtWidgets.QCheckBox("B-scan line")
        for box in (self.disc_toggle, self.line_toggle):
            box.setChecked(True)
        self.crop_toggle.setChecked(True)
        self.cam_toggle.setChecked(False)
        self.opacity = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.setFixedWidth(64)  # narrow enough for the header to fit a 1200 px wide window
        self.opacity.setToolTip("Grad-CAM opacity")
        self.disc_button = QtWidgets.QToolButton()
        self.disc_button.setText("Disc")
        self.disc_button.setToolTip("Zoom to the optic disc (its outline then fills half the view)")
        self.disc_button.setEnabled(False)
        self.fit_button = QtWidgets.QToolButton()
        self.fit_button.setText("Fit")
        self.fit_button.setToolTip("Fit the image to the view (zoom: wheel, pan: drag; right-click: place the "
                                   "optic disc or correct its outline)")

        # The title row, and the controls beside the title when both fit whole, else on a row of their own: the
        # eye in the title must show (a 1280 px window left it "Fundus — ey…").
        header = QtWidgets.QVBoxLayout()
        header.setContentsMargins(6, 2, 6, 2)
        header.setSpacing(2)
        self._title_row = QtWidgets.QHBoxLayout()
        self._title_row.addWidget(self.title, 1)  # takes the free width; clipped only when there is none
        self._controls_row = QtWidgets.QHBoxLayout()
        self._controls_row.addStretch(1)
        header.addLayout(self._title_row)
        header.addLayout(self._controls_row)
        self._controls = (self.disc_toggle, self.crop_toggle, self.cam_toggle, self.opacity, self.line_toggle,
                          self.disc_button, self.fit_button)
        self.controls_below = False
        for w in self._controls:
            self._title_row.addWidget(w)

        # Photo pane.
        self.photo_box = ImageViewBox(wheel_steps_slices=False, lock_aspect=True)
        self.photo_view = make_graphics_view(self.photo_box)
        self.photo_item = pg.ImageItem(levels=LEVELS)
        self.cam_item = pg.ImageItem(levels=LEVELS, lut=heat_lut())
        self.cam_item.setZValue(5)
        self.photo_box.addItem(self.photo_item)
        self.photo_box.addItem(self.cam_item)
        self.disc_curves: list[pg.PlotCurveItem] = []
        self.cup_curves: list[pg.PlotCurveItem] = []
        self.crop_item = pg.PlotCurveItem(pen=pen(CROP_RGB, 1.5, 220, QtCore.Qt.PenStyle.DashLine))
        self.crop_item.setZValue(9)
        self.photo_box.addItem(self.crop_item)
        self.area_item = pg.PlotCurveItem(pen=pen(LINE_RGB, 1.0, 130, QtCore.Qt.PenStyle.DashLine))
        self.line_item = pg.PlotCurveItem(pen=pen(LINE_RGB, 3.0))
        for z, item in ((10, self.area_item), (11, self.line_item)):
            item.setZValue(z)
            self.photo_box.addItem(item)
        self.placed_item = pg.ScatterPlotItem(symbol="+", size=24, pen=pen(DISC_RGB, 2.5), brush=None)
        self.placed_item.setZValue(12)
        self.photo_box.addItem(self.placed_item)
        self.photo_placeholder = pg.TextItem("", color=(150, 160, 170), anchor=(0.5, 0.5))
        self.photo_box.addItem(self.photo_placeholder)

        # En-face pane (only when positions are unknown).
        self.enface_title = QtWidgets.QLabel("OCT en-face projection")
        self.enface_title.setObjectName("subTitle")
        self.enface_title.setToolTip(
            "Mean intensity of each B-scan along depth, one row per B-scan (top = first B-scan).\n"
            "It stands in for the photo because the B-scan positions on the photo are unknown."
        )
        self.enface_box = ImageViewBox(wheel_steps_slices=False, lock_aspect=True)
        self.enface_view = make_graphics_view(self.enface_box)
        self.enface_item = pg.ImageItem(levels=LEVELS, lut=gray_lut())
        self.enface_line = pg.PlotCurveItem(pen=pen(LINE_RGB, 3.0))
        self.enface_line.setZValue(10)
        self.enface_box.addItem(self.enface_item)
        self.enface_box.addItem(self.enface_line)
        self.enface_pane = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(self.enface_pane)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.enface_title)
        lay.addWidget(self.enface_view, 1)
        self.enface_pane.hide()

        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.photo_view)
        self.splitter.addWidget(self.enface_pane)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)

        self.note = QtWidgets.QLabel("")
        self.note.setObjectName("note")
        self.note.setWordWrap(True)
        self.note.hide()

        # Outline editor bar (shown while an outline is being corrected).
        self.edit_label = QtWidgets.QLabel("")
        self.edit_label.setObjectName("note")
        self.edit_label.setWordWrap(True)
        self.undo_button = QtWidgets.QPushButton("Undo")
        self.undo_button.setToolTip("Back to the outlines before the last change (Ctrl+Z)")
        self.undo_button.setEnabled(False)
        self.done_button = QtWidgets.QPushButton("Done")
        self.done_button.setToolTip("Close the outline editor (every change is already measured)")
        self.edit_bar = QtWidgets.QWidget()
        bar = QtWidgets.QHBoxLayout(self.edit_bar)
        bar.setContentsMargins(6, 2, 6, 2)
        bar.addWidget(self.edit_label, 1)
        bar.addWidget(self.undo_button)
        bar.addWidget(self.done_button)
        self.edit_bar.hide()

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.edit_bar)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.note)

        for box in (self.disc_toggle, self.crop_toggle, self.cam_toggle, self.line_toggle):
            box.toggled.connect(self._apply_visibility)
        self.opacity.valueChanged.connect(self._apply_visibility)
        self.fit_button.clicked.connect(self.fit)
        self.disc_button.clicked.connect(self.zoom_to_disc)
        self.done_button.clicked.connect(self.stop_editing)
        self.photo_box.clicked.connect(self._photo_clicked)
        self.photo_box.contextRequested.connect(self._photo_context)
        self.enface_box.clicked.connect(self._enface_clicked)
        self.clear()

    # ----------------------------------------------------------------------------------------------- content
    def clear(self, message: str = "Drop a patient folder or image here, or use File > Open folder…") -> None:
        """Back to the empty state with ``message`` in the middle."""
        self._photo_shape = None
        self._positions = None
        self._enface_rows = 0
        self.photo_item.clear()
        self.cam_item.clear()
        self.enface_item.clear()
        self.set_disc_overlay([], [], None)
        self.set_disc_placed(None)
        self.set_outline_vertices({}, ())
        self.placing_enabled = False
        self.line_item.setData([], [])
        self.area_item.setData([], [])
        self.enface_line.setData([], [])
        self.enface_pane.hide()
        self.note.hide()
        self.title.setText("Fundus")
        self.photo_placeholder.setText(message)
        self.photo_placeholder.setPos(0, 0)
        self.photo_placeholder.show()
        self.photo_box.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)

    def _controls_width(self) -> int:
        """Pixels the shown controls take on one row, with the header's margins."""
        shown = [w for w in self._controls if not w.isHidden()]
        spacing = max(self._title_row.spacing(), 0)
        return sum(w.sizeHint().width() for w in shown) + spacing * max(len(shown) - 1, 0) + 12

    def _place_controls(self, width: int) -> None:
        """The controls beside the title when ``width`` holds both whole, on the row below otherwise."""
        spacing = max(self._title_row.spacing(), 0)
        below = width < self.title.fontMetrics().horizontalAdvance(self.title.text()) + spacing + self._controls_width()
        if below == self.controls_below:
            return
        self.controls_below = below
        source, target = (self._title_row, self._controls_row) if below else (self._controls_row, self._title_row)
        for w in self._controls:
            source.removeWidget(w)
            target.addWidget(w)

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt naming
        """As narrow as the controls on a row of their own: the title beside them never widens the column."""
        return QtCore.QSize(max(self._controls_width(), self.title.minimumWidth() + 12),
                            super().minimumSizeHint().height())

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt naming
        self._place_controls(event.size().width())
        super().resizeEvent(event)

    def set_title(self, title: str) -> None:
        """The pane's title (the controls move below it when both do not fit)."""
        self.title.setText(title)
        self.title.setToolTip(title)
        self._place_controls(self.width())

    def set_photo(self, display: Optional[np.ndarray], shape: Optional[tuple[int, int]], title: str = "Fundus",
                  kind: str = "fundus") -> None:
        """Show ``display`` ((h, w, 3) uint8 RGB, possibly downsampled) stretched over the original ``shape`` (H, W);
        ``kind``: "fundus", or "xray" (a radiograph: no optic disc to outline, crop or zoom to)."""
        self.stop_editing()
        for control in (self.cam_toggle, self.opacity):
            control.setVisible(display is not None)  # photo overlays only where there is a photo
        for control in (self.disc_toggle, self.crop_toggle, self.disc_button):
            control.setVisible(display is not None and kind == "fundus")
        self.set_title(title)
        if display is None or shape is None:
            self._photo_shape = None
            self.photo_item.clear()
            self.photo_placeholder.setText("No fundus photo in this exam")
            self.photo_placeholder.setPos(0, 0)
            self.photo_placeholder.show()
            self.photo_box.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
            return
        self.photo_placeholder.hide()
        self._photo_shape = (int(shape[0]), int(shape[1]))
        self.photo_item.setImage(np.ascontiguousarray(display), autoLevels=False, levels=LEVELS)
        self.photo_item.setRect(QtCore.QRectF(0, 0, shape[1], shape[0]))
        self.fit()

    def set_geometry(self, positions: Optional[np.ndarray], n_bscans: int, enface: Optional[np.ndarray],
                     enface_aspect: float = 1.0) -> None:
        """B-scan geometry: ``positions`` (N, 2, 2) (row, col) px on the photo, else the ``enface`` (N, W) uint8.

        ``enface_aspect`` is the displayed height of one en-face row in lateral px (1.0 when unknown).
        """
        self.line_toggle.setVisible(n_bscans > 0)  # no B-scans, no line
        drawable = positions is not None and self._photo_shape is not None  # positions need a photo to lie on
        self._positions = np.asarray(positions, np.float32) if drawable else None
        if self._positions is not None:
            first, last = self._positions[0], self._positions[-1]
            quad = np.array([first[0], first[1], last[1], last[0], first[0]])
            self.area_item.setData(quad[:, 1], quad[:, 0])
            self.enface_pane.hide()
            self.note.hide()
        else:
            self.area_item.setData([], [])
        if self._positions is None and enface is not None and n_bscans > 0:
            self._enface_rows = int(enface.shape[0])
            self._enface_row_h = float(enface_aspect)
            self.enface_item.setImage(np.ascontiguousarray(enface), autoLevels=False, levels=LEVELS)
            self.enface_item.setRect(QtCore.QRectF(0, 0, enface.shape[1], enface.shape[0] * self._enface_row_h))
            self.enface_pane.show()
            self.enface_box.autoRange(padding=0.02)
            self.note.setText(
                ("B-scan positions on the photo are unknown" if self._photo_shape is not None else
                 "No fundus photo to show the B-scan positions on")
                + ": the OCT en-face projection stands in (click a row to open that B-scan).")
            self.note.show()
            if self._photo_shape is None:
                self.photo_view.hide()
            else:
                self.photo_view.show()
        else:
            self._enface_rows = 0
            self.enface_pane.hide()
            self.photo_view.show()
        self.set_current(self._current)
        self._place_controls(self.width())

    def set_disc_overlay(
        self,
        disc: Sequence[np.ndarray],
        cup: Sequence[np.ndarray],
        crop_box: Optional[tuple[float, float, float, float]],
    ) -> None:
        """Contours as (K, 2) float (row, col) px polylines (closed by us), each part with the bar of its height
        (:func:`height_bar`); ``crop_box`` (r0, c0, r1, c1) px."""
        for curves in (self.disc_curves, self.cup_curves):
            for curve in curves:
                self.photo_box.removeItem(curve)
            curves.clear()
        for contours, rgb, curves in ((disc, DISC_RGB, self.disc_curves), (cup, CUP_RGB, self.cup_curves)):
            polygons = [np.asarray(poly, np.float64) for poly in contours if len(poly) >= 3]
            for poly in polygons:
                closed = np.vstack([poly, poly[:1]])
                curve = pg.PlotCurveItem(closed[:, 1], closed[:, 0], pen=pen(rgb, 2.0))
                curve.setZValue(8)
                self.photo_box.addItem(curve)
                curves.append(curve)
            if polygons:
                xs, ys = height_bar(np.vstack(polygons))
                bar = pg.PlotCurveItem(xs, ys, connect="pairs", pen=pen(rgb, 1.5, style=QtCore.Qt.PenStyle.DashLine))
                bar.setZValue(8)
                self.photo_box.addItem(bar)
                curves.append(bar)
        if crop_box is None:
            self.crop_item.setData([], [])
        else:
            r0, c0, r1, c1 = crop_box
            self.crop_item.setData([c0, c1, c1, c0, c0], [r0, r0, r1, r1, r0])
        self._apply_visibility()

    def set_disc_placed(self, point: Optional[tuple[float, float]]) -> None:
        """Mark where the user placed the optic disc ((row, col) photo px), or nowhere (None)."""
        self._placed = None if point is None else (float(point[0]), float(point[1]))
        if self._placed is None:
            self.placed_item.setData([], [])
        else:
            self.placed_item.setData([self._placed[1]], [self._placed[0]])

    # ----------------------------------------------------------------------------------------------- outline editor
    def set_outline_vertices(self, vertices: dict[str, np.ndarray], drawn: Sequence[str],
                             can_draw: bool = False) -> None:
        """Where the editor starts for each outline ("disc", "cup" -> (K, 2) (row, col) px; none: nothing to
        correct), which outlines are drawn by hand, and whether both may be drawn anew (``can_draw``: the analysis
        shown found no disc). An open editor follows vertices that differ from its own (the automatic outline asked
        back, a change refused) and closes when its outline is gone."""
        self._editable = {k: np.asarray(v, np.float64) for k, v in vertices.items() if len(v) >= 3}
        self._drawn = tuple(drawn)
        self.drawing_enabled = bool(can_draw)
        self.disc_button.setEnabled(self.disc_region() is not None)
        if self.editing is None:
            return
        if self.editing not in self._editable:
            self.stop_editing()
            return
        want = self._editable[self.editing]
        have = self.outline_points()
        if have.shape != want.shape or not np.allclose(have, want, atol=1e-3):
            self._set_roi_points(want)

    def start_editing(self, part: str) -> None:
        """Open the editor on the "disc" or "cup" outline (its drawn line is hidden meanwhile)."""
        if part not in self._editable:
            return
        self.stop_editing()
        rgb = DISC_RGB if part == "disc" else CUP_RGB
        roi = pg.PolyLineROI([], closed=True, pen=pen(rgb, 2.0), hoverPen=pen(rgb, 3.0),
                             handlePen=pen(rgb, 2.0), handleHoverPen=pen((255, 255, 255), 2.0))
        roi.setZValue(13)
        self.photo_box.addItem(roi)
        self.outline_roi, self.editing = roi, part
        self._set_roi_points(self._editable[part])
        region, shown = self.disc_region(), self.photo_box.viewRange()
        if region is not None and shown[0][1] - shown[0][0] > 3 * (region[3] - region[1]):
            self.zoom_to_disc()  # points a few screen pixels apart cannot be dragged one by one
        roi.sigRegionChangeFinished.connect(self._outline_changed)
        self.edit_label.setText(f"Correcting the {part} outline: drag its points (click an edge to add one, "
                                "right-click a point to remove it, drag inside to move it all).")
        self.edit_bar.show()
        self._apply_visibility()

    def stop_editing(self) -> None:
        """Close the editor (the last change has already been sent)."""
        if self.outline_roi is not None:
            self.outline_roi.sigRegionChangeFinished.disconnect(self._outline_changed)
            self.photo_box.removeItem(self.outline_roi)
        self.outline_roi, self.editing = None, None
        self.edit_bar.hide()
        self._apply_visibility()

    def outline_points(self) -> np.ndarray:
        """(K, 2) float (row, col) photo px of the editor's points ((0, 2) when closed)."""
        if self.outline_roi is None:
            return np.zeros((0, 2))
        points = [self.outline_roi.mapToParent(h.pos()) for h in self.outline_roi.getHandles()]
        return np.array([[p.y(), p.x()] for p in points], np.float64).reshape(-1, 2)

    def disc_region(self) -> Optional[tuple[float, float, float, float]]:
        """(r0, c0, r1, c1) photo px of a square twice as wide as the disc outline shown (the one being corrected,
        else the segmenter's or the one drawn), centred on it; None without a disc outline."""
        disc = self.outline_points() if self.editing == "disc" else self._editable.get("disc")
        if disc is None or len(disc) < 3:
            return None
        (r0, c0), (r1, c1) = disc.min(axis=0), disc.max(axis=0)
        centre, half = ((r0 + r1) / 2, (c0 + c1) / 2), max(r1 - r0, c1 - c0, 1.0)
        return centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half

    def zoom_to_disc(self) -> bool:
        """Zoom the photo onto :meth:`disc_region`; False when there is no disc outline to zoom to."""
        region = self.disc_region()
        if region is None:
            return False
        r0, c0, r1, c1 = region
        self.photo_box.setRange(xRange=(c0, c1), yRange=(r0, r1), padding=0)
        return True

    def grab_photo(self) -> QtGui.QPixmap:
        """The photo pane as shown, but with an open outline editor drawn as a plain outline (for the report)."""
        editing = self.editing
        if self.outline_roi is not None:
            self.outline_roi.hide()
            self.editing = None
            self._apply_visibility()
        try:
            return self.photo_view.grab()
        finally:
            if self.outline_roi is not None:
                self.outline_roi.show()
                self.editing = editing
                self._apply_visibility()

    def _set_roi_points(self, vertices: np.ndarray) -> None:
        assert self.outline_roi is not None
        self.outline_roi.blockSignals(True)  # points set here are not the user's changes
        try:
            self.outline_roi.setPos(0, 0)
            self.outline_roi.setPoints([(float(c), float(r)) for r, c in vertices])
        finally:
            self.outline_roi.blockSignals(False)

    def _outline_changed(self, *_: object) -> None:
        if self.editing is not None:
            self.outlineEdited.emit(self.editing, self.outline_points())

    def set_cam(self, cam: Optional[np.ndarray]) -> None:
        """Grad-CAM heat map over the photo: (h, w) uint8 (0..255), stretched over the photo."""
        if cam is None or self._photo_shape is None:
            self.cam_item.clear()
            self.cam_toggle.setEnabled(False)
        else:
            self.cam_item.setImage(np.ascontiguousarray(cam), autoLevels=False, levels=LEVELS)
            self.cam_item.setRect(QtCore.QRectF(0, 0, self._photo_shape[1], self._photo_shape[0]))
            self.cam_toggle.setEnabled(True)
        self._apply_visibility()

    def set_current(self, index: int) -> None:
        """Move the B-scan line (photo or en-face) to B-scan ``index``."""
        self._current = int(index)
        if self._positions is not None and 0 <= index < len(self._positions):
            (r0, c0), (r1, c1) = self._positions[index]
            self.line_item.setData([c0, c1], [r0, r1])
        else:
            self.line_item.setData([], [])
        if self._enface_rows and 0 <= index < self._enface_rows:
            y = (index + 0.5) * self._enface_row_h
            width = self.enface_item.width() or 1
            self.enface_line.setData([0, width], [y, y])
        else:
            self.enface_line.setData([], [])

    # ----------------------------------------------------------------------------------------------- state
    def overlay_state(self) -> dict[str, object]:
        return {
            "disc": self.disc_toggle.isChecked(),
            "crop": self.crop_toggle.isChecked(),
            "cam": self.cam_toggle.isChecked(),
            "line": self.line_toggle.isChecked(),
            "cam_opacity": self.opacity.value(),
        }

    def restore_overlay_state(self, state: dict[str, object]) -> None:
        toggles = {"disc": self.disc_toggle, "crop": self.crop_toggle, "cam": self.cam_toggle, "line": self.line_toggle}
        for key, box in toggles.items():
            if key in state:
                box.setChecked(bool(state[key]))
        if "cam_opacity" in state:
            self.opacity.setValue(int(state["cam_opacity"]))  # type: ignore[arg-type]

    def fit(self) -> None:
        if self._photo_shape is not None:
            self.photo_box.autoRange(items=[self.photo_item], padding=0.01)
        if self._enface_rows:
            self.enface_box.autoRange(items=[self.enface_item], padding=0.02)

    def _apply_visibility(self, *_: object) -> None:
        for part, curves in (("disc", self.disc_curves), ("cup", self.cup_curves)):
            for curve in curves:
                curve.setVisible(self.disc_toggle.isChecked() and self.editing != part)
        self.crop_item.setVisible(self.crop_toggle.isChecked())
        self.cam_item.setVisible(self.cam_toggle.isChecked() and self.cam_toggle.isEnabled())
        self.cam_item.setOpacity(self.opacity.value() / 100.0)
        self.opacity.setEnabled(self.cam_toggle.isChecked() and self.cam_toggle.isEnabled())
        self.line_item.setVisible(self.line_toggle.isChecked())
        self.area_item.setVisible(self.line_toggle.isChecked())
        self.enface_line.setVisible(self.line_toggle.isChecked())
        self.overlaysChanged.emit()

    # ----------------------------------------------------------------------------------------------- clicks
    def bscan_at(self, row: float, col: float) -> Optional[int]:
        """The B-scan whose line passes nearest to (row, col) px on the photo, if within reach of one."""
        if self._positions is None or len(self._positions) == 0:
            return None
        starts, ends = self._positions[:, 0, :], self._positions[:, 1, :]
        d = ends - starts
        length2 = np.maximum((d**2).sum(axis=1), 1e-9)
        p = np.array([row, col], np.float32)
        t = np.clip(((p - starts) * d).sum(axis=1) / length2, 0.0, 1.0)
        nearest = starts + t[:, None] * d
        dist = np.sqrt(((nearest - p) ** 2).sum(axis=1))
        k = int(np.argmin(dist))
        spacing = float(np.median(np.linalg.norm(np.diff(starts, axis=0), axis=1))) if len(starts) > 1 else 0.0
        reach = max(8.0, 2.0 * spacing) if self._photo_shape is None else max(
            8.0, 2.0 * spacing, 0.01 * max(self._photo_shape)
        )
        return k if dist[k] <= reach else None

    def _photo_clicked(self, x: float, y: float) -> None:
        k = self.bscan_at(y, x)
        if k is not None:
            self.bscanSelected.emit(k)

    def disc_menu(self, row: float, col: float) -> QtWidgets.QMenu:
        """The photo's context menu at (row, col) px: place the optic disc there, or back to the automatic search."""
        menu = QtWidgets.QMenu(self)
        place = menu.addAction(f"Optic disc is here (x {col:.0f}, y {row:.0f})")
        place.setToolTip("Outline the disc and cup around this point, for a photo where the automatic search chose "
                         "another region or found none")
        place.triggered.connect(lambda: self.discPlaced.emit(float(row), float(col)))
        auto = menu.addAction("Find the optic disc automatically")
        auto.setEnabled(self._placed is not None)
        auto.triggered.connect(self.discPlacementCleared.emit)
        menu.addSeparator()
        for part in ("disc", "cup"):
            correct = menu.addAction(f"Correct the {part} outline…")
            correct.setToolTip(f"Drag the points of the {part} outline; the biomarkers are measured on it (the "
                               "graders keep the automatic outline)")
            correct.setEnabled(part in self._editable and self.editing != part)
            correct.triggered.connect(lambda _=False, p=part: self.start_editing(p))
        if self.drawing_enabled:
            draw = menu.addAction("Outline the disc and cup by hand here")
            draw.setToolTip("Where the segmenter found no disc: a disc and a cup outline to drag into place")
            draw.triggered.connect(lambda: self.outlinesDrawnAt.emit(float(row), float(col)))
        reset = menu.addAction("Use the automatic outlines")
        reset.setEnabled(bool(self._drawn))
        reset.triggered.connect(self.outlinesReset.emit)
        if self.editing is not None:
            done = menu.addAction(f"Done correcting the {self.editing} outline")
            done.triggered.connect(self.stop_editing)
        menu.setToolTipsVisible(True)
        return menu

    def _photo_context(self, x: float, y: float, screen: QtCore.QPoint) -> None:
        shape = self._photo_shape
        if not self.placing_enabled or shape is None or not (0 <= y < shape[0] and 0 <= x < shape[1]):
            return
        if self._menu is not None:
            self._menu.deleteLater()
        self._menu = self.disc_menu(y, x)
        self._menu.popup(screen)

    def _enface_clicked(self, x: float, y: float) -> None:
        if not self._enface_rows:
            return
        k = int(np.floor(y / self._enface_row_h))
        if 0 <= k < self._enface_rows:
            self.bscanSelected.emit(k)
