"""Progress reporting and cooperative cancellation, shared by every slow engine function.

Convention: a slow function takes ``progress: ProgressCallback | None`` and ``cancel: CancelToken | None``.
It calls ``report(progress, fraction, message)`` now and then and ``check(cancel)`` between units of work;
``check`` raises :class:`Cancelled`, which callers treat as a clean stop (no partial output written).
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

ProgressCallback = Callable[[float, str], None]
"""Called with (fraction done in [0, 1], short human-readable message)."""


class Cancelled(Exception):
    """Raised inside engine code when its :class:`CancelToken` was cancelled."""


class CancelToken:
    """A thread-safe flag: the GUI (or a signal handler) sets it, the engine polls it between stages."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")


def check(cancel: Optional[CancelToken]) -> None:
    """Raise :class:`Cancelled` if ``cancel`` was cancelled; no-op for ``None``."""
    if cancel is not None:
        cancel.raise_if_cancelled()


def report(progress: Optional[ProgressCallback], fraction: float, message: str) -> None:
    """Forward to ``progress`` (if any) with the fraction clamped to [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def sub_progress(progress: Optional[ProgressCallback], start: float, stop: float) -> Optional[ProgressCallback]:
    """A callback mapping a sub-task's [0, 1] onto [start, stop] of ``progress``."""
    if progress is None:
        return None

    def _sub(fraction: float, message: str) -> None:
        progress(start + (stop - start) * min(1.0, max(0.0, fraction)), message)

    return _sub
