"""The pinned PySide6/shiboken6 must not leak references to None/True/False from Qt calls.

shiboken6 6.12.0 on Python 3.11 dropped one reference to ``None`` per void Qt call (``widget.update()``): after a
few thousand calls the interpreter aborted with "none_dealloc". This guards the pin in pyproject.toml.
"""

from __future__ import annotations

import sys

from PySide6 import QtWidgets


def test_void_and_bool_qt_calls_keep_singleton_refcounts(qtbot):
    widget = QtWidgets.QWidget()
    qtbot.addWidget(widget)
    widget.show()
    before = {name: sys.getrefcount(obj) for name, obj in (("None", None), ("True", True), ("False", False))}
    for _ in range(2_000):
        widget.update()
        widget.isVisible()
        widget.isHidden()
    after = {name: sys.getrefcount(obj) for name, obj in (("None", None), ("True", True), ("False", False))}
    for name in before:  # a leak drops thousands; other code may move the count by a few
        assert abs(after[name] - before[name]) < 500, (name, before[name], after[name])
