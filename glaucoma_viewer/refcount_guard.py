"""Keep ``None``, ``True`` and ``False`` alive under shiboken6 6.12 on Python 3.11.

The pinned PySide6/shiboken6 6.12.0 bindings drop one reference to the returned singleton on every call of
a ``void`` Qt method (``widget.update()``, ``app.processEvents()``, a Python slot run by a signal) and of some
``bool`` virtuals: measured here, 1,000 ``QWidget.update()`` calls take 1,000 off ``sys.getrefcount(None)``.
Python 3.12 makes these singletons immortal, so the bindings no longer count them; on 3.11 the count reaches
zero after a few thousand calls and the interpreter aborts ("none_dealloc: deallocating None").

CPython 3.11 already gives its other statically allocated singletons (small ints, the empty string) a
reference count of about 10^9 for this reason; :func:`guard` does the same for ``None``, ``True`` and
``False`` once per process, before Qt runs. The proper fix is a PySide6 release without the bug.
"""

from __future__ import annotations

import sys

BUMP = 1_000_000_000
_done = False


def needed() -> bool:
    """True on interpreters where ``None`` / ``True`` / ``False`` are not immortal (before 3.12)."""
    return sys.version_info < (3, 12) and sys.implementation.name == "cpython"


def guard() -> bool:
    """Raise the reference counts of ``None``, ``True`` and ``False`` by ``BUMP`` (once); True if applied."""
    global _done
    if _done or not needed():
        return False
    import ctypes

    for obj in (None, True, False):
        # ob_refcnt is the first field of every object in a release build of CPython.
        ctypes.c_ssize_t.from_address(id(obj)).value += BUMP
    _done = True
    return True
