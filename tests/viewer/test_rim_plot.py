"""The rim plot under the biomarkers: a narrow column wraps its title instead of cutting both ends off."""

from __future__ import annotations

import numpy as np
from glaucoma_viewer.panels.rim_profile import PLOT_HEIGHT, RimProfilePlot

TITLE = "Rim width / disc diameter around the disc: narrowest 0.19, temporal"


def test_a_narrow_plot_wraps_its_title_and_grows_to_hold_it(qtbot):
    plot = RimProfilePlot((0, 220, 255))
    qtbot.addWidget(plot)
    angles = np.arange(0.0, 360.0, 2.0)
    plot.set_profile(angles, np.full(180, 0.2), "TSNIT", TITLE)
    plot.show()
    one_line = plot.fontMetrics().height()
    plot.resize(2000, plot.height())
    qtbot.waitUntil(lambda: plot.height() == PLOT_HEIGHT + one_line)
    plot.resize(plot.fontMetrics().horizontalAdvance(TITLE) * 2 // 3, plot.height())
    qtbot.waitUntil(lambda: plot.height() >= PLOT_HEIGHT + 2 * one_line)  # two lines, the whole title
    plot.clear()
    assert plot.height() == PLOT_HEIGHT + one_line
