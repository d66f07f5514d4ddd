"""The look: Fusion with a dark palette (images read best on dark grey), one stylesheet for titles and notes."""

from __future__ import annotations

from PySide6 import QtGui, QtWidgets

STYLESHEET = """
QMainWindow, QDialog { background: #161b21; }
QWidget { color: #d7dde3; font-size: 10pt; }
QLabel#panelTitle { font-weight: 600; font-size: 11pt; color: #f1f4f7; padding: 2px 0; }
QLabel#subTitle { font-weight: 600; color: #cfd8dc; padding: 2px 4px; }
QLabel#sliceLabel { color: #a5d6a7; font-weight: 600; padding-left: 8px; font-size: 11pt; }
QLabel#note { color: #9aa7b3; }
QLabel#value { color: #f1f4f7; font-weight: 600; }
QLabel#warning { color: #ffcc80; }
QLabel#calibrationBadge { color: #ffcc80; border: 1px solid #8d6e3f; border-radius: 3px; padding: 0 6px; }
QLabel#gradeLabel { font-size: 15pt; font-weight: 700; padding: 2px 0 4px 0; }
QLabel#banner {
    background: #ffe082; color: #3e2723; font-weight: 700; padding: 5px 10px; border-bottom: 1px solid #c8a13a;
}
QLabel#banner:hover { background: #ffd54f; }
QFrame#section, QFrame#pane { background: #1c232b; border: 1px solid #2b3540; border-radius: 4px; }
QFrame#section QLabel, QFrame#pane QLabel { background: transparent; border: none; }
QListWidget#examList { background: #1a2027; border: 1px solid #2b3540; font-size: 10.5pt; }
QListWidget#examList::item { padding: 4px 2px; }
QListWidget#examList::item:selected { background: #2f4156; }
QStatusBar { background: #1c232b; border-top: 1px solid #2b3540; }
QProgressBar { background: #10151a; border: 1px solid #2b3540; border-radius: 3px; text-align: center; height: 14px; }
QProgressBar::chunk { background: #4f8fd6; border-radius: 2px; }
QSplitter::handle { background: #232b34; }
QToolButton, QPushButton { background: #26303a; border: 1px solid #37434f; border-radius: 3px; padding: 2px 8px; }
QToolButton:hover, QPushButton:hover { background: #30404f; }
QPushButton:disabled, QToolButton:disabled { color: #6b7682; }
QCheckBox:disabled { color: #6b7682; }
QMenuBar { background: #1c232b; }
QMenuBar::item:selected, QMenu::item:selected { background: #2f4156; }
QMenu { background: #1c232b; border: 1px solid #37434f; }
QTableWidget, QTextBrowser, QListWidget { background: #12171c; }
QHeaderView::section { background: #222a33; padding: 3px; border: none; }
"""


def apply_style(app: QtWidgets.QApplication) -> None:
    app.setStyle("Fusion")
    palette = QtGui.QPalette()
    c = QtGui.QColor
    roles = QtGui.QPalette.ColorRole
    palette.setColor(roles.Window, c("#161b21"))
    palette.setColor(roles.WindowText, c("#d7dde3"))
    palette.setColor(roles.Base, c("#12171c"))
    palette.setColor(roles.AlternateBase, c("#1c232b"))
    palette.setColor(roles.Text, c("#d7dde3"))
    palette.setColor(roles.Button, c("#26303a"))
    palette.setColor(roles.ButtonText, c("#d7dde3"))
    palette.setColor(roles.Highlight, c("#3d6fa8"))
    palette.setColor(roles.HighlightedText, c("#ffffff"))
    palette.setColor(roles.ToolTipBase, c("#26303a"))
    palette.setColor(roles.ToolTipText, c("#eceff1"))
    palette.setColor(roles.Link, c("#90caf9"))
    app.setPalette(palette)
    app.setStyleSheet(STYLESHEET)
