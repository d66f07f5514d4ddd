"""Run the heavy analysis in one long-lived child process, so it never competes with the UI thread for the GIL.

Threads share one interpreter lock: while a pool thread runs NumPy / PyTorch code that holds it (array
indexing, small ops, module initialisation), the UI thread cannot paint or scroll. A spawned child process has
its own interpreter, so the window stays responsive however the engine code is written.

:class:`ProcessRunner.call` is a drop-in job function for :class:`glaucoma_viewer.worker.Worker`:
``runner.call(fn, *args, progress=cb, cancel=token)`` runs the picklable module-level ``fn`` in the child,
forwards its progress, passes Cancel on through a shared event and returns its (pickled) result. One job runs
at a time. Errors come back as :class:`RemoteError` (one-line message + the child's traceback); a crashed child
(killed, out of memory) is replaced on the next call.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Optional

from engine.progress import Cancelled, CancelToken, report

CHILD_NICE = 5
"""How much lower than the window the child process is scheduled (on a busy machine the UI goes first)."""


class RemoteError(Exception):
    """A job failed in the child process. ``str()`` is the one-line message; ``detail`` the child's traceback."""

    def __init__(self, message: str, detail: str = "", expected: bool = False) -> None:
        super().__init__(message)
        self.detail = detail
        self.expected = expected


class _EventToken(CancelToken):
    """A CancelToken backed by the runner's shared ``multiprocessing`` event (child side)."""

    def __init__(self, event: Any) -> None:  # noqa: D107 - no super(): the event replaces the thread one
        self._event = event


_CHILD: dict[str, Any] = {}


def _child_init(progress_queue: Any, cancel_event: Any) -> None:
    _CHILD["queue"], _CHILD["cancel"] = progress_queue, cancel_event
    try:
        os.nice(CHILD_NICE)
    except (AttributeError, OSError):
        pass


def _child_run(fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[str, Any]:
    """Child side: run ``fn`` with a queue-backed progress callback; never raise (exceptions may not pickle)."""
    from glaucoma_viewer.worker import user_message, _expected_error_types

    sink, last = _CHILD["queue"], [0.0, ""]

    def progress(fraction: float, message: str) -> None:
        now = time.perf_counter()
        if fraction < 1.0 and message == last[1] and now - last[0] < 0.05:
            return
        last[0], last[1] = now, message
        sink.put((float(fraction), str(message)))

    try:
        return "ok", fn(*args, progress=progress, cancel=_EventToken(_CHILD["cancel"]), **kwargs)
    except Cancelled:
        return "cancelled", None
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as a RemoteError
        expected = isinstance(exc, _expected_error_types())
        return "error", (user_message(exc), "" if expected else traceback.format_exc(), expected)


def _child_pid() -> int:
    return os.getpid()


class ProcessRunner:
    """One spawned child process (started on first use) that runs one job at a time."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._pool: Optional[ProcessPoolExecutor] = None
        self._queue: Any = None
        self._cancel: Any = None
        self._lock = threading.Lock()
        self._closed = False

    def _ensure(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._queue = self._ctx.Queue()
            self._cancel = self._ctx.Event()
            self._pool = ProcessPoolExecutor(1, mp_context=self._ctx, initializer=_child_init,
                                             initargs=(self._queue, self._cancel))
        return self._pool

    def start(self) -> None:
        """Spawn the child now, from the UI thread, before any job runs.

        The child gets a snapshot of ``sys.path``; OpenCV's import puts its own folder on ``sys.path`` for a
        moment, so a child spawned while a pool thread imports cv2 would find ``cv2/typing`` as ``typing``.
        """
        with self._lock:
            if not self._closed:
                self._ensure().submit(_child_pid)

    def call(self, fn: Callable[..., Any], *args: Any, progress=None, cancel: Optional[CancelToken] = None,
             **kwargs: Any) -> Any:
        """Run ``fn(*args, progress=..., cancel=..., **kwargs)`` in the child; block until it returns."""
        with self._lock:
            if self._closed:
                raise Cancelled("the window is closing")
            if cancel is not None and cancel.cancelled:
                raise Cancelled("cancelled")
            pool = self._ensure()
            self._cancel.clear()
            self._drain(None)
            try:
                future = pool.submit(_child_run, fn, args, kwargs)
                while not future.done():
                    if cancel is not None and cancel.cancelled:
                        self._cancel.set()
                    try:
                        report(progress, *self._queue.get(timeout=0.05))
                    except queue.Empty:
                        pass
                self._drain(progress)
                status, value = future.result()
            except BrokenProcessPool:
                self._discard()
                raise RemoteError("the analysis process stopped unexpectedly (out of memory?)") from None
        if status == "cancelled":
            raise Cancelled("cancelled")
        if status == "error":
            message, detail, expected = value
            raise RemoteError(message, detail, expected)
        return value

    def child_pid(self) -> int:
        """The child's process id (starts the child if needed)."""
        return int(self.call(_call_plain, _child_pid))

    def _drain(self, progress) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            report(progress, *item)

    def _discard(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Cancel the running job, stop the child (terminated if it does not stop within ``timeout_s``)."""
        self._closed = True
        if self._cancel is not None:
            self._cancel.set()
        pool = self._pool
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())
        done = threading.Event()
        stopper = threading.Thread(target=lambda: (pool.shutdown(wait=True, cancel_futures=True), done.set()))
        stopper.start()
        if not done.wait(timeout_s):
            for proc in processes:
                proc.terminate()
        stopper.join()
        self._pool = None
        if self._queue is not None:
            self._queue.close()
            self._queue.join_thread()


def _call_plain(fn: Callable[[], Any], progress=None, cancel=None) -> Any:
    return fn()
