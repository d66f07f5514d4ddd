"""The centre column: the fundus title never loses the eye to its controls, and a photo without slices takes the
whole column."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtWidgets

from engine.io.exam import Exam
from glaucoma_viewer.views.fundus_view import FundusView

TITLE = "Fundus — OS left — A-LONG-EXAM-ID-0001"


def _title_whole(view: FundusView) -> bool:
    return view.title.width() >= view.title.fontMetrics().horizontalAdvance(view.title.text())


def test_the_controls_go_below_the_title_when_both_do_not_fit_on_one_row(qtbot):
    view = FundusView()
    qtbot.addWidget(view)
    view.set_photo(np.zeros((40, 50, 3), np.uint8), (400, 500), title=TITLE)
    view.show()
    view.resize(view.minimumSizeHint().width(), 400)  # as narrow as the column gets
    qtbot.waitUntil(lambda: view.controls_below)
    QtWidgets.QApplication.processEvents()
    assert _title_whole(view)
    assert all(w.width() >= w.minimumSizeHint().width() for w in (view.disc_toggle, view.line_toggle))
    view.resize(2000, 400)
    qtbot.waitUntil(lambda: not view.controls_below)
    QtWidgets.QApplication.processEvents()
    assert _title_whole(view) and view.fit_button.y() < view.title.y() + view.title.height()  # one row


def test_the_column_is_never_held_wider_by_a_title_beside_its_controls(qtbot):
    view = FundusView()
    qtbot.addWidget(view)
    view.set_photo(np.zeros((40, 50, 3), np.uint8), (400, 500), title="Fundus")
    view.show()
    view.resize(2000, 400)
    qtbot.waitUntil(lambda: not view.controls_below)
    assert view.minimumSizeHint().width() <= view._controls_width()  # what the controls need on a row of their own


def test_a_pane_with_nothing_to_show_gives_the_centre_column_to_the_other(qtbot, window, small_exam, wait_idle):
    from engine.tasks import phantoms

    photo_only = window.add_exam(Exam("PHOTO1", fundus=small_exam(seed=1).fundus))
    with_oct = window.add_exam(small_exam(seed=2))
    oct_only = small_exam(seed=3, exam_id="OCT3")
    oct_only.fundus = None
    oct_only = window.add_exam(oct_only)
    mri = window.add_exam(Exam("BRAIN1", mri=phantoms.phantom_brain_mri("HGG", (12, 48, 48), ("flair",), seed=1)))
    wait_idle(window)

    def shown():
        return not window.fundus_pane.isHidden(), not window.oct_pane.isHidden()

    window.show_exam(photo_only)
    assert shown() == (True, False)
    window.show_exam(with_oct)
    assert shown() == (True, True) and window.oct_view.count == 12
    window.show_exam(mri)
    assert shown() == (False, True)  # no photo, no en-face projection: the slices take the column
    window.show_exam(oct_only)  # B-scan positions known, but no photo to draw them on: the en-face stands in
    assert shown() == (True, True) and window.fundus_view.enface_pane.isVisibleTo(window)


def test_nothing_in_the_results_column_is_wider_than_the_column_of_a_1280_px_window(qtbot, window, small_exam,
                                                                                      wait_idle):
    window.resize(1280, 800)
    window.show()
    key = window.add_exam(small_exam(seed=4))
    wait_idle(window)
    window.show_exam(key)
    QtWidgets.QApplication.processEvents()
    results = window.results
    assert results.bio_grid.columns == 1 and results.bio_card.text()  # the narrow column, the card's link shown
    wide = [(type(w).__name__, w.minimumSizeHint().width()) for w in results.findChildren(QtWidgets.QWidget)
            if w.isVisible() and w.minimumSizeHint().width() > results.width()]
    assert wide == [] and results.minimumSizeHint().width() <= results.width()


def test_a_bold_highlighted_class_name_ends_before_its_bar(qtbot):
    from PySide6 import QtGui

    from glaucoma_viewer.panels.results_panel import ProbabilityBars

    bars = ProbabilityBars()
    qtbot.addWidget(bars)
    bars.resize(300, 50)
    bars.set_probabilities({"healthy": 0.02, "osteoporosis": 0.98}, highlight="osteoporosis")
    bold = QtGui.QFont(bars.font())
    bold.setBold(True)
    name_w, bar_w, value_w = bars.columns()
    assert name_w > QtGui.QFontMetrics(bold).horizontalAdvance("osteoporosis")
    assert name_w + bar_w + value_w <= 300


def test_the_photo_controls_follow_what_the_exam_holds(qtbot, window, small_exam, wait_idle):
    from engine.tasks import phantoms

    xray = window.add_exam(Exam("PANO1", xray=phantoms.phantom_panoramic("healthy", shape=(120, 240), seed=1)))
    photo_only = window.add_exam(Exam("PHOTO2", fundus=small_exam(seed=1).fundus))
    with_oct = window.add_exam(small_exam(seed=2))
    wait_idle(window)
    view = window.fundus_view

    def shown():
        return {name for name in ("disc_toggle", "crop_toggle", "disc_button", "line_toggle", "cam_toggle")
                if not getattr(view, name).isHidden()}

    window.show_exam(xray)  # a radiograph: no disc, no B-scans
    assert shown() == {"cam_toggle"}
    window.show_exam(photo_only)
    assert shown() == {"disc_toggle", "crop_toggle", "disc_button", "cam_toggle"}
    window.show_exam(with_oct)
    assert shown() == {"disc_toggle", "crop_toggle", "disc_button", "line_toggle", "cam_toggle"}


def test_each_outline_carries_the_bar_of_its_height_that_the_vertical_ratio_divides(qtbot):
    from glaucoma_viewer.views.fundus_view import height_bar

    angles = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    disc = np.stack([80 + 30 * np.sin(angles), 100 + 25 * np.cos(angles)], axis=1)  # rows 50-110, cols 75-125
    cup = np.stack([85 + 12 * np.sin(angles), 104 + 10 * np.cos(angles)], axis=1)
    xs, ys = height_bar(disc)
    assert (xs[0], ys[0], xs[1], ys[1]) == pytest.approx((100, 50, 100, 110), abs=0.1)  # the bar
    assert ys[2] == ys[3] == pytest.approx(50, abs=0.1) and xs[3] - xs[2] == pytest.approx(15, abs=0.1)  # a tick
    view = FundusView()
    qtbot.addWidget(view)
    view.set_photo(np.zeros((16, 20, 3), np.uint8), (160, 200))
    view.set_disc_overlay([disc], [cup], None)
    heights = sorted(float(np.ptp(c.getData()[1])) for c in view.disc_curves + view.cup_curves
                     if c.opts.get("connect") == "pairs")
    assert heights == pytest.approx([24, 60], abs=0.1)  # cup and disc heights: vertical CDR 0.40 drawn
    view.disc_toggle.setChecked(False)
    assert not any(c.isVisible() for c in view.disc_curves + view.cup_curves)
