"""The exam list: every exam opened this session with its status, and the per-drop load report.

Statuses: ``loading`` -> ``analysing`` -> ``done``; or ``error`` (with the reason in the tooltip and the
details panel) or ``cancelled``. A ``done`` exam whose grade comes with a caution (no disc found, out of focus ...)
is marked "done ⚠" in amber, the caution first in its tooltip, so a folder's exams that need a look stand out. The
list never holds pixel data: rows are keyed by the exam key the main
window uses. ``unloaded``: the exam was dropped from memory (least recently used) and reloads when selected.
"""

from __future__ import annotations

from typing import Optional

from PySide6 import QtCore, QtGui, QtWidgets

STATUS_COLOURS = {
    "queued": "#9aa5b1",
    "loading": "#64b5f6",
    "analysing": "#ffb74d",
    "done": "#81c784",
    "error": "#e57373",
    "cancelled": "#b0bec5",
    "unloaded": "#78909c",
}
CAUTION_COLOUR = "#ffca28"
"""A ``done`` row whose grade comes with a caution."""
KEY_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1


class ExamList(QtWidgets.QWidget):
    """Left panel: drop hint, the exams with their status, the load report and recent exams.

    Signals:
        examSelected(str): the key of the exam the user picked.
        reportRequested(): "Load report…" clicked.
        reanalyseRequested(str): "Analyse again" on a failed or cancelled exam.
    """

    examSelected = QtCore.Signal(str)
    reportRequested = QtCore.Signal()
    reanalyseRequested = QtCore.Signal(str)

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        title = QtWidgets.QLabel("Exams")
        title.setObjectName("panelTitle")
        self.hint = QtWidgets.QLabel("Drop patient folders or files anywhere on the window.")
        self.hint.setObjectName("note")
        self.hint.setWordWrap(True)
        self.list = QtWidgets.QListWidget()
        self.list.setObjectName("examList")
        self.list.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setAcceptDrops(False)
        self.list.viewport().setAcceptDrops(False)
        self.list.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.setTextElideMode(QtCore.Qt.TextElideMode.ElideMiddle)  # long ids keep their status visible
        self.list.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setUniformItemSizes(True)
        self.detail = QtWidgets.QLabel("")
        self.detail.setObjectName("note")
        self.detail.setWordWrap(True)
        self.detail.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.detail.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.report_button = QtWidgets.QPushButton("Load report…")
        self.report_button.setToolTip("Every file that was read or skipped, and why")
        self.report_button.setEnabled(False)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.addWidget(title)
        layout.addWidget(self.hint)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.detail)
        layout.addWidget(self.report_button)

        self.list.currentItemChanged.connect(self._current_changed)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.report_button.clicked.connect(self.reportRequested)
        self._rows: dict[str, QtWidgets.QListWidgetItem] = {}
        self._messages: dict[str, str] = {}

    # ----------------------------------------------------------------------------------------------- rows
    def add_exam(self, key: str, label: str, status: str = "loading") -> None:
        """Add a row (or reuse the row with the same key) and show ``status``."""
        item = self._rows.get(key)
        if item is None:
            item = QtWidgets.QListWidgetItem()
            item.setData(KEY_ROLE, key)
            self.list.addItem(item)
            self._rows[key] = item
        item.setData(QtCore.Qt.ItemDataRole.UserRole, label)
        self.set_status(key, status)

    def set_status(self, key: str, status: str, message: str = "", progress: Optional[float] = None,
                   caution: str = "") -> None:
        """Show ``status`` (with ``progress`` 0..1 while analysing) and ``message`` as the row's tooltip;
        ``caution``: why a ``done`` exam's grade should not be read as it stands (marks the row)."""
        item = self._rows.get(key)
        if item is None:
            return
        label = item.data(QtCore.Qt.ItemDataRole.UserRole)
        shown = status
        if status == "analysing" and progress is not None:
            shown = f"analysing {int(round(100 * progress))}%"
        caution = caution if status == "done" else ""
        item.setText(f"{label}   {shown}" + (" ⚠" if caution else ""))
        item.setData(QtCore.Qt.ItemDataRole.UserRole + 2, status)
        colour = CAUTION_COLOUR if caution else STATUS_COLOURS.get(status, "#d0d6dc")
        item.setForeground(QtGui.QBrush(QtGui.QColor(colour)))
        if message or status not in ("error", "cancelled"):
            self._messages[key] = message
        item.setToolTip("\n".join(m for m in (caution, message) if m) or status)
        if self.current_key() == key:
            self._show_detail(key)

    def status(self, key: str) -> Optional[str]:
        item = self._rows.get(key)
        return None if item is None else item.data(QtCore.Qt.ItemDataRole.UserRole + 2)

    def keys(self) -> list[str]:
        return [self.list.item(i).data(KEY_ROLE) for i in range(self.list.count())]

    def select(self, key: str) -> None:
        item = self._rows.get(key)
        if item is not None:
            self.list.setCurrentItem(item)

    def current_key(self) -> Optional[str]:
        item = self.list.currentItem()
        return None if item is None else item.data(KEY_ROLE)

    def set_report_available(self, available: bool, summary: str = "") -> None:
        self.report_button.setEnabled(available)
        self.report_button.setText(f"Load report… {summary}".strip())

    # ----------------------------------------------------------------------------------------------- internals
    def _current_changed(self, current: Optional[QtWidgets.QListWidgetItem], _previous: object) -> None:
        if current is None:
            self.detail.setText("")
            return
        key = current.data(KEY_ROLE)
        self._show_detail(key)
        self.examSelected.emit(key)

    def _show_detail(self, key: str) -> None:
        status = self.status(key)
        message = self._messages.get(key, "")
        if status in ("error", "cancelled") and message:
            self.detail.setText(f"{status}: {message}")
            self.detail.show()
        else:
            self.detail.setText("")
            self.detail.hide()

    def _context_menu(self, pos: QtCore.QPoint) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        key = item.data(KEY_ROLE)
        menu = QtWidgets.QMenu(self)
        again = menu.addAction("Analyse again")
        again.setEnabled(self.status(key) in ("error", "cancelled", "done"))
        report = menu.addAction("Load report…")
        chosen = menu.exec(self.list.viewport().mapToGlobal(pos))
        if chosen is again:
            self.reanalyseRequested.emit(key)
        elif chosen is report:
            self.reportRequested.emit()


class LoadReportDialog(QtWidgets.QDialog):
    """The per-file load report: what was opened and every file skipped, with the reason."""

    def __init__(self, opened: list[tuple[str, str]], skipped: list[tuple[str, str]],
                 failed: list[tuple[str, str]], parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Load report")
        self.resize(760, 420)
        self.table = QtWidgets.QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["What", "Path", "Why"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        rows = [("opened", p, why) for p, why in opened] + [("failed", p, why) for p, why in failed]
        rows += [("skipped", p, why) for p, why in skipped]
        for what, path, why in rows:
            r = self.table.rowCount()
            self.table.insertRow(r)
            for c, text in enumerate((what, path, why)):
                cell = QtWidgets.QTableWidgetItem(text)
                cell.setToolTip(text)
                self.table.setItem(r, c, cell)
        self.table.resizeColumnsToContents()
        self.table.setColumnWidth(1, min(self.table.columnWidth(1), 380))
        summary = QtWidgets.QLabel(f"{len(opened)} exam(s) opened, {len(failed)} failed, {len(skipped)} file(s) skipped")
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
