"""The PDF report's line plot: where no rim is left it is filled behind the line, nowhere else."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui

from glaucoma_viewer import report


def test_the_rim_plot_fills_the_stretch_without_rim_and_only_that(qtbot):
    writer = QtGui.QPdfWriter(QtCore.QBuffer())
    writer.setResolution(150)
    image = QtGui.QImage(writer.width(), writer.height(), QtGui.QImage.Format.Format_RGB32)
    image.fill(0xFFFFFF)
    painter = QtGui.QPainter(image)
    box = QtCore.QRectF(0, 0, 720, 120)
    profile = np.full(361, 0.3)
    shaded = np.zeros(361, bool)
    shaded[90:150] = True  # 60 degrees without rim
    report._plot(report._Page(painter, writer), box, profile, "caption", hi=0.5, shaded=shaded)
    painter.end()
    area_x, width = 0.07 * 720, 720 * 0.93
    fill = QtGui.QColor(report.RIM_ABSENT_FILL).rgb()

    def colour(degree: float) -> int:
        return image.pixel(int(area_x + width * degree / 360), 20)  # above the line, inside the plot

    assert colour(120) == fill and colour(95) == fill
    assert colour(60) != fill and colour(200) != fill and colour(85) != fill
