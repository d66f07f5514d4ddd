"""``main()``: ``python -m glaucoma_viewer [PATH...] [--screenshot OUT.png] [--timeout S]``.

With no PATH the bundled demo exam opens (``resources/demo/DEMO01``); without it, the window opens empty and
says how to open an exam. The window is shown before anything heavy is imported: torch and MONAI are
imported by the first analysis job, on a worker thread.

``--screenshot OUT.png`` opens the paths, waits until every exam is analysed (or ``--timeout`` seconds),
saves the whole window as PNG and exits: 0 when every exam was analysed, 1 when any failed or timed out.
It uses throw-away settings, so the picture never depends on what a user saved.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional, Sequence

_T0 = time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glaucoma-viewer",
        description="Glaucoma Viewer (research use only): fundus + OCT with disc/cup, layers and grading.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="patient folders or image/DICOM files to open")
    parser.add_argument("--screenshot", metavar="OUT.png", help="save the window once every exam is analysed, then exit")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="with --screenshot: give up waiting after S seconds (exit 1), default 300")
    parser.add_argument("--size", default="1600x1000", metavar="WxH", help="window size for --screenshot")
    parser.add_argument("--models", metavar="FILE",
                        help="grade with this ensemble file (.json/.toml) or .pt grader instead of the bundled weights")
    parser.add_argument("--no-demo", action="store_true", help="open no exam when no PATH is given")
    parser.add_argument("--in-process", action="store_true",
                        help="analyse on a thread of this process instead of a child process (debugging)")
    parser.add_argument("--startup-probe", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    multiprocessing.freeze_support()  # first: frozen multiprocessing children re-enter here
    args = build_parser().parse_args(argv)
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and sys.platform.startswith("linux")
    if (args.screenshot or args.startup_probe) and headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6 import QtCore, QtGui, QtWidgets

    from glaucoma_viewer import __version__
    from glaucoma_viewer.style import apply_style

    QtCore.QCoreApplication.setOrganizationName("GlaucomaViewer")
    QtCore.QCoreApplication.setApplicationName("Glaucoma Viewer")
    QtCore.QCoreApplication.setApplicationVersion(__version__)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    apply_style(app)

    from engine.resources import demo_exam_dir, icon_path

    if icon_path().is_file():
        app.setWindowIcon(QtGui.QIcon(str(icon_path())))

    from glaucoma_viewer.main_window import MainWindow
    from glaucoma_viewer.worker import favour_ui_thread

    settings_dir = None
    if args.screenshot or args.startup_probe:
        settings_dir = tempfile.TemporaryDirectory(prefix="gv-settings-")
        settings = QtCore.QSettings(str(Path(settings_dir.name) / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    else:
        settings = QtCore.QSettings()
    favour_ui_thread()
    window = MainWindow(settings=settings, models=args.models, isolate_analysis=not args.in_process)
    _install_excepthook(window)
    if args.screenshot:
        w, h = (int(v) for v in args.size.lower().split("x"))
        window.resize(w, h)
    window.show()

    if args.startup_probe:
        def probe() -> None:
            app.processEvents()
            heavy = sorted(m for m in ("torch", "monai") if m in sys.modules)
            print(f"GV_FIRST_WINDOW wall={time.time():.6f} in_main={time.perf_counter() - _T0:.4f} "
                  f"heavy={','.join(heavy) or 'none'}", flush=True)
            window.close()
            app.quit()

        QtCore.QTimer.singleShot(0, probe)
        return int(app.exec())

    paths = list(args.paths)
    remember = bool(paths)
    if not paths and not args.no_demo:
        demo = demo_exam_dir()
        if demo.is_dir():
            paths = [str(demo)]
        else:
            window.fundus_view.clear("The demo exam is not installed: drop a patient folder here, or use File > Open folder…")
    QtCore.QTimer.singleShot(0, window.warm_up)  # heavy imports on the worker, after the first paint
    if paths:
        QtCore.QTimer.singleShot(0, lambda: window.open_paths(paths, remember=remember))

    controller = None
    if args.screenshot:
        controller = ScreenshotController(window, Path(args.screenshot), args.timeout, expect_exams=bool(paths))
        controller.start()
    code = int(app.exec())
    if controller is not None:
        code = controller.exit_code
    window.shutdown()
    if settings_dir is not None:
        settings_dir.cleanup()
    return code


class ScreenshotController:
    """Waits for every job to finish (or the timeout), lets the window settle, saves it, quits."""

    def __init__(self, window, out: Path, timeout: float, expect_exams: bool = True) -> None:
        from PySide6 import QtCore

        self.window = window
        self.out = out
        self.timeout = timeout
        self.expect_exams = expect_exams
        self.exit_code = 1
        self._t0 = time.perf_counter()
        self._idle_since: Optional[float] = None
        self._timer = QtCore.QTimer()
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._poll)
        self._done = False
        self._analysed: set[str] = set()  # keys analysed at least once (an exam dropped from memory after is fine)
        window.examAnalysed.connect(self._analysed.add)

    def start(self) -> None:
        self._timer.start()

    def failed(self) -> list[str]:
        """Keys of the exams not analysed (an exam dropped from memory after its analysis is not one of them)."""
        return [k for k, e in self.window.entries.items()
                if e.status != "done" and not (e.status == "unloaded" and k in self._analysed)]

    def _poll(self) -> None:
        if self._done:
            return
        waited = time.perf_counter() - self._t0
        ready = not self.window.is_busy() and (self.window.entries or not self.expect_exams or waited > 5.0)
        if ready:
            self._idle_since = self._idle_since or time.perf_counter()
            if time.perf_counter() - self._idle_since >= 0.4:  # let the last results paint
                self._finish(timed_out=False)
        else:
            self._idle_since = None
            if waited > self.timeout:
                self._finish(timed_out=True)

    def _finish(self, timed_out: bool) -> None:
        from PySide6 import QtWidgets

        self._done = True
        self._timer.stop()
        statuses = {k: e.status for k, e in self.window.entries.items()}
        failed = self.failed()
        if timed_out:
            self.window.cancel_running()
            print(f"screenshot: timed out after {self.timeout:.0f} s waiting for analyses", file=sys.stderr)
        for key in failed:
            entry = self.window.entries[key]
            print(f"screenshot: {entry.label}: {entry.status} {entry.message}".rstrip(), file=sys.stderr)
        QtWidgets.QApplication.processEvents()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        ok = self.window.grab().save(str(self.out), "PNG")
        if not ok:
            print(f"screenshot: could not write {self.out}", file=sys.stderr)
        self.exit_code = 0 if ok and not timed_out and not failed and (statuses or not self.expect_exams) else 1
        print(f"screenshot: saved {self.out} ({len(statuses)} exam(s), exit {self.exit_code})", file=sys.stderr)
        self.window.close()
        QtWidgets.QApplication.instance().exit(self.exit_code)


def _install_excepthook(window) -> None:
    """An exception in a slot goes to the status bar and stderr, never takes the window down."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        print(text, file=sys.stderr)
        try:
            window.status_label.setText(f"Internal error: {exc_type.__name__}: {exc} (details on stderr)")
        except Exception:  # noqa: BLE001 - the window may be gone
            pass

    sys.excepthook = hook


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
