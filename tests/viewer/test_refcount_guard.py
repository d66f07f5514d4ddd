"""The shiboken6 6.12 / Python 3.11 reference-count guard keeps the interpreter alive through many Qt calls."""

from __future__ import annotations

import sys

import pytest
from PySide6 import QtWidgets

from glaucoma_viewer import refcount_guard


@pytest.mark.skipif(not refcount_guard.needed(), reason="None/True/False are immortal on this Python")
def test_many_void_qt_calls_do_not_exhaust_none(qtbot):
    widget = QtWidgets.QWidget()
    qtbot.addWidget(widget)
    widget.show()
    for _ in range(20_000):  # without the guard, a few thousand of these abort the interpreter
        widget.update()
    assert sys.getrefcount(None) > refcount_guard.BUMP // 2
    assert sys.getrefcount(True) > refcount_guard.BUMP // 2 and sys.getrefcount(False) > refcount_guard.BUMP // 2


def test_guard_runs_once():
    assert refcount_guard.guard() is False  # applied when glaucoma_viewer was imported
