"""The biomarker grid: two pairs a row only when every name and value fits whole, one pair a row otherwise."""

from __future__ import annotations

from PySide6 import QtWidgets

from glaucoma_viewer.panels.pair_grid import PairGrid

PAIRS = [("vertical CDR", "0.51"), ("DDLS by disc size", "3–5"), ("disc area", "30424 px²"),
         ("cup–disc centroid shift", "0.05"), ("rim temporal", "39.1 px")]


def _grid(qtbot) -> PairGrid:
    grid = PairGrid()
    qtbot.addWidget(grid)
    grid.set_pairs([(QtWidgets.QLabel(n), QtWidgets.QLabel(v)) for n, v in PAIRS])
    grid.show()
    return grid


def _cut(grid: PairGrid) -> list[str]:
    """The labels shown narrower than their text."""
    return [w.text() for w in grid.findChildren(QtWidgets.QLabel) if w.width() < w.sizeHint().width()]


def test_a_narrow_grid_puts_one_pair_a_row_and_cuts_no_name(qtbot):
    grid = _grid(qtbot)
    one = grid.minimumSizeHint().width()
    grid.resize(one, 400)
    qtbot.waitUntil(lambda: grid.columns == 1)
    QtWidgets.QApplication.processEvents()
    assert _cut(grid) == []
    names = [grid.layout().itemAtPosition(row, 0).widget().text() for row in range(len(PAIRS))]
    assert names == [n for n, _ in PAIRS]  # in their order, down one column


def test_a_wide_grid_puts_two_pairs_a_row_and_goes_back_to_one_when_narrowed(qtbot):
    grid = _grid(qtbot)
    one = grid.minimumSizeHint().width()
    grid.resize(3 * one, 400)
    qtbot.waitUntil(lambda: grid.columns == 2)
    QtWidgets.QApplication.processEvents()
    assert _cut(grid) == []
    assert grid.layout().itemAtPosition(0, 2).widget().text() == PAIRS[1][0]
    grid.resize(one + 20, 400)  # wider than one pair a row needs, narrower than two
    qtbot.waitUntil(lambda: grid.columns == 1)
    QtWidgets.QApplication.processEvents()
    assert _cut(grid) == []


def test_new_pairs_replace_the_old_ones(qtbot):
    grid = _grid(qtbot)
    grid.set_pairs([(QtWidgets.QLabel("vertical CDR"), QtWidgets.QLabel("0.7"))])
    QtWidgets.QApplication.processEvents()
    assert sorted(w.text() for w in grid.findChildren(QtWidgets.QLabel) if not w.isHidden()) == ["0.7", "vertical CDR"]
    grid.clear()
    assert grid.minimumSizeHint().width() == 0
