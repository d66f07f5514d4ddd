"""Name / value pairs laid out in two columns of pairs when they fit whole, one column otherwise.

The results column is about 360 px wide in a 1280 px window: two pairs side by side there cut names such as
"DDLS by disc size" short. The grid never cuts a name: it measures what two columns need and falls back to one.
"""

from __future__ import annotations

from typing import Optional, Sequence

from PySide6 import QtCore, QtGui, QtWidgets

Pair = tuple[QtWidgets.QLabel, QtWidgets.QLabel]


class PairGrid(QtWidgets.QWidget):
    """``(name, value)`` labels, two pairs a row when the width holds every name and value whole, else one."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None, spacing: int = 10) -> None:
        super().__init__(parent)
        self._pairs: list[Pair] = []
        self._columns = 1
        self._grid = QtWidgets.QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(spacing)
        self._grid.setVerticalSpacing(2)

    @property
    def columns(self) -> int:
        """Pairs per row: 1 or 2."""
        return self._columns

    def set_pairs(self, pairs: Sequence[Pair]) -> None:
        """Show ``pairs`` (the grid takes them over), dropping the previous ones."""
        self.clear()
        self._pairs = list(pairs)
        for name, value in self._pairs:
            name.setParent(self)
            value.setParent(self)
        self._columns = 2 if self.width() >= self._width_for(2) else 1
        self._place()

    def clear(self) -> None:
        """Drop every pair."""
        for name, value in self._pairs:
            for label in (name, value):
                self._grid.removeWidget(label)
                label.setParent(None)
                label.deleteLater()
        self._pairs = []
        self.updateGeometry()

    def _width_for(self, columns: int) -> int:
        """Pixels that ``columns`` pairs a row need to show every name and value whole."""
        if not self._pairs:
            return 0
        gap = self._grid.horizontalSpacing()
        name = max(n.sizeHint().width() for n, _ in self._pairs)
        value = max(v.sizeHint().width() for _, v in self._pairs)
        return columns * (name + gap + value) + (columns - 1) * gap

    def _place(self) -> None:
        for k, (name, value) in enumerate(self._pairs):
            self._grid.removeWidget(name)
            self._grid.removeWidget(value)
            row, col = divmod(k, self._columns)
            self._grid.addWidget(name, row, 2 * col)
            self._grid.addWidget(value, row, 2 * col + 1)
        for col in range(4):  # values take the spare width; the second name column starts where it must
            self._grid.setColumnStretch(col, 1 if col % 2 and col // 2 < self._columns else 0)
        self.updateGeometry()

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt naming
        """One pair a row: the narrowest width that cuts no name."""
        return QtCore.QSize(self._width_for(1), super().minimumSizeHint().height())

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt naming
        columns = 2 if event.size().width() >= self._width_for(2) else 1
        if columns != self._columns:
            self._columns = columns
            self._place()
        super().resizeEvent(event)
