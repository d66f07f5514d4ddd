"""Viewer responsiveness: start-up to first window, B-scan switch time, UI heartbeat while an exam is analysed.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_viewer.py [--bscans 256] [--bscan-shape 496 512]

Three measurements, each against a naive baseline in the same run:

1. **Start-up** (fresh subprocesses, ``--startup-repeats`` each): ``python -m glaucoma_viewer --startup-probe``
   (window shown before torch is imported) against the same app started after ``import torch, monai`` (what a
   window that imports the engine eagerly costs). Time from process launch to the first shown window.
2. **Slice switch** on a ``--bscans`` x H x W uint8 volume: ours is ``SliceView.show_now`` (a view of the
   C-contiguous volume, explicit levels, window/level in a LUT we own) plus a repaint of the viewport; the
   naive one is ``ImageItem.setImage(volume[k].astype(float32), autoLevels=True)`` plus the same repaint.
3. **Heartbeat**: a 10 ms ``QTimer`` records the largest gap between its ticks while the main window loads and
   analyses the same exam (disc/cup, layers, grading, Grad-CAM: ``engine.pipeline.grade``) and a second timer
   scrolls the OCT every 40 ms. Ours runs the analysis in a child process (the app's mode); compared with a
   worker thread of the UI process (GIL contention) and with the naive baseline that runs it on the UI
   thread (``MainWindow(synchronous=True)``), whose largest gap is the whole analysis. Besides the
   wall-clock gaps (which also count the machine's load and GIL waits), the UI thread's own CPU time between
   two ticks is reported: the part of a stall that the viewer's code causes.

Grading uses the shipped ``resources/models`` ensemble when present, else tiny random graders with the same
interface (the heartbeat does not depend on the weights). Numbers go to stdout as a table and as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


# ------------------------------------------------------------------------------------------------ start-up
def _first_window_seconds(eager: bool) -> tuple[float, str]:
    """Seconds from process launch to the first shown window (``GV_FIRST_WINDOW`` line of the probe)."""
    if eager:
        code = ("import torch, monai; from glaucoma_viewer.app import main; "
                "raise SystemExit(main(['--startup-probe']))")
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, "-m", "glaucoma_viewer", "--startup-probe"]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    t0 = time.time()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("GV_FIRST_WINDOW")), "")
    if not line:
        raise RuntimeError(f"no probe line: {out.stdout[-500:]} {out.stderr[-500:]}")
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    return float(fields["wall"]) - t0, fields["heavy"]


def bench_startup(repeats: int) -> dict:
    ours, eager, heavy = [], [], set()
    for _ in range(repeats):  # interleaved, so a busy moment of the machine hits both alike
        seconds, loaded = _first_window_seconds(eager=False)
        ours.append(seconds)
        heavy.add(loaded)
        eager.append(_first_window_seconds(eager=True)[0])
    return {"ours_s": statistics.median(ours), "eager_import_s": statistics.median(eager),
            "ours_all_s": ours, "eager_all_s": eager, "heavy_modules_at_first_window": sorted(heavy)}


# ------------------------------------------------------------------------------------------------ slices
def bench_slices(volume, switches: int) -> dict:
    import numpy as np
    import pyqtgraph as pg
    from PySide6 import QtWidgets

    from glaucoma_viewer.views.oct_view import SliceView

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    view = SliceView(synchronous=True)
    view.resize(1000, 600)
    view.show()
    view.set_volume(volume, key="bench", auto_wl=(200.0, 110.0))
    app.processEvents()
    viewport = view.view.viewport()
    n = len(volume)
    order = [(k * 37) % n for k in range(switches)]  # jumps, not neighbours: no cache helps either side

    def ours(k: int) -> None:
        view.show_now(k)
        viewport.repaint()

    naive_item = pg.ImageItem()
    naive_box = pg.ViewBox(invertY=True)
    naive_box.addItem(naive_item)
    naive_view = pg.GraphicsView()
    naive_view.setCentralItem(naive_box)
    naive_view.resize(1000, 600)
    naive_view.show()
    naive_item.setImage(volume[0].astype(np.float32), autoLevels=True)
    naive_box.autoRange()
    app.processEvents()

    def naive(k: int) -> None:
        naive_item.setImage(volume[k].astype(np.float32), autoLevels=True)
        naive_view.viewport().repaint()

    image_view = pg.ImageView()  # the stock widget: whole volume in, histogram + levels per frame
    image_view.resize(1000, 600)
    image_view.show()
    image_view.setImage(volume, axes={"t": 0, "y": 1, "x": 2})
    app.processEvents()

    def stock(k: int) -> None:
        image_view.setCurrentIndex(k)
        image_view.ui.graphicsView.viewport().repaint()

    variants = (("ours", ours), ("naive_float_autolevels", naive), ("pg_ImageView", stock))
    wall: dict[str, list[float]] = {name: [] for name, _ in variants}
    cpu: dict[str, list[float]] = {name: [] for name, _ in variants}
    for k in order[:5]:  # warm-up
        for _, fn in variants:
            fn(k)
    for k in order:  # interleaved: machine load hits every variant alike
        for name, fn in variants:
            t, c = time.perf_counter(), time.thread_time()
            fn(k)
            cpu[name].append(time.thread_time() - c)
            wall[name].append(time.perf_counter() - t)
    view.shutdown()
    for widget in (view, naive_view, image_view):
        widget.close()
    out: dict = {}
    for name, _ in variants:
        w = sorted(wall[name])
        out[f"{name}_wall_median_ms"] = 1000 * statistics.median(w)
        out[f"{name}_wall_p95_ms"] = 1000 * w[int(0.95 * (len(w) - 1))]
        out[f"{name}_cpu_median_ms"] = 1000 * statistics.median(cpu[name])
    for name in ("naive_float_autolevels", "pg_ImageView"):
        out[f"ratio {name}/ours (cpu)"] = out[f"{name}_cpu_median_ms"] / out["ours_cpu_median_ms"]
        out[f"ratio {name}/ours (wall)"] = out[f"{name}_wall_median_ms"] / out["ours_wall_median_ms"]
    return out


# ------------------------------------------------------------------------------------------------ heartbeat
def bench_heartbeat(exams: list, models: str | None, synchronous: bool, timeout_s: float,
                    isolate: bool = False, warm_first: bool = False) -> list[dict]:
    """Open ``exams`` one after the other in one window; the heartbeat figures of each.

    ``isolate``: analyse in the child process (the app's mode); ``warm_first``: finish the warm-up imports
    before the first exam (else they overlap it, as at app start).
    """
    from PySide6 import QtCore, QtWidgets

    from glaucoma_viewer.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    settings_dir = tempfile.TemporaryDirectory(prefix="gv-bench-")
    settings = QtCore.QSettings(str(Path(settings_dir.name) / "s.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, models=models, synchronous=synchronous, isolate_analysis=isolate)
    window.resize(1600, 1000)
    window.show()
    app.processEvents()
    window.warm_up()  # as the app does right after its first paint
    while warm_first and window.is_busy():
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)
    results = [_heartbeat_one(app, window, exam, timeout_s) for exam in exams]
    window.shutdown()
    window.close()
    app.processEvents()
    settings_dir.cleanup()
    return results


def _heartbeat_one(app, window, exam, timeout_s: float) -> dict:
    from PySide6 import QtCore

    ticks: list[float] = []
    cpu_ticks: list[float] = []  # the UI thread's own CPU time at each tick: its work, not the machine's load

    def tick() -> None:
        ticks.append(time.perf_counter())
        cpu_ticks.append(time.thread_time())

    beat = QtCore.QTimer()
    beat.setInterval(10)
    beat.timeout.connect(tick)
    scroll = QtCore.QTimer()
    scroll.setInterval(40)
    scrolled = [0]

    def scroll_once() -> None:
        if window.oct_view.count:
            window.oct_view.step(1 if (scrolled[0] // 50) % 2 == 0 else -1)
            scrolled[0] += 1

    scroll.timeout.connect(scroll_once)
    beat.start()
    scroll.start()
    t0 = time.perf_counter()
    tick()
    key: list[str] = []
    QtCore.QTimer.singleShot(0, lambda: key.append(window.add_exam(exam)))
    while time.perf_counter() - t0 < timeout_s:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if key and not window.is_busy():
            break
        time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    beat.stop()
    scroll.stop()
    gaps = sorted(b - a for a, b in zip(ticks, ticks[1:]))
    return {
        "exam": exam.exam_id,
        "load_and_analysis_wall_s": elapsed,
        "status": window.entries[key[0]].status if key else "not started",
        "max_gap_ms": 1000 * gaps[-1] if gaps else float("nan"),
        "p99_gap_ms": 1000 * gaps[int(0.99 * (len(gaps) - 1))] if gaps else float("nan"),
        "gaps_over_100ms": sum(g > 0.1 for g in gaps),
        "max_ui_cpu_between_ticks_ms": 1000 * max((b - a for a, b in zip(cpu_ticks, cpu_ticks[1:])), default=0.0),
        "ticks": len(ticks),
        "scroll_steps": scrolled[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bscans", type=int, default=256)
    parser.add_argument("--bscan-shape", type=int, nargs=2, default=(496, 512), metavar=("H", "W"))
    parser.add_argument("--heartbeat-bscan-shape", type=int, nargs=2, default=(248, 256), metavar=("H", "W"),
                        help="B-scan size of the analysed exam (the analysis itself is benchmarked elsewhere)")
    parser.add_argument("--switches", type=int, default=200)
    parser.add_argument("--startup-repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["startup", "slices", "heartbeat", "thread-heartbeat", "naive-heartbeat"])
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="GIL switch interval (s) for this process; default: the viewer's own setting")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    from glaucoma_viewer.worker import favour_ui_thread

    favour_ui_thread(args.switch_interval)

    from engine.synthetic import synthetic_exam

    results: dict[str, dict] = {}
    if "startup" not in args.skip:
        results["startup"] = bench_startup(args.startup_repeats)
        print(f"startup: {results['startup']}", flush=True)
    if "slices" not in args.skip:
        exam = synthetic_exam(1, n_bscans=args.bscans, fundus_shape=(256, 256), bscan_shape=tuple(args.bscan_shape))
        results["slice_switch"] = bench_slices(exam.oct, args.switches)
        results["slice_switch"]["volume"] = list(exam.oct.shape)
        print(f"slice switch: {results['slice_switch']}", flush=True)
        del exam
    models = None
    from engine.models.registry import default_ensemble_file, default_grader_paths

    if default_ensemble_file() is None and not default_grader_paths():
        from engine.models.tiny import save_tiny_ensemble

        models = str(save_tiny_ensemble(Path(tempfile.mkdtemp(prefix="gv-bench-models-"))))
    exam_args = dict(n_bscans=args.bscans, fundus_shape=(1024, 1024), bscan_shape=tuple(args.heartbeat_bscan_shape))
    results["models"] = {"ensemble": models or "shipped resources/models"}
    if "heartbeat" not in args.skip:
        # Ours: the analysis runs in the child process; the first exam overlaps the warm-up imports there.
        cold, warm = bench_heartbeat([synthetic_exam(2, seed=s, exam_id=f"HB{s}", **exam_args) for s in (1, 2)],
                                     models, False, args.timeout, isolate=True)
        results["heartbeat_process_first_exam"], results["heartbeat_process_next_exam"] = cold, warm
        print(f"heartbeat (ours, analysis process): first {cold}\n  next {warm}", flush=True)
    if "thread-heartbeat" not in args.skip:
        # The same on a worker thread of the UI process (imports finished first): GIL contention only.
        (threaded,) = bench_heartbeat([synthetic_exam(2, seed=4, exam_id="HB4", **exam_args)], models, False,
                                      args.timeout, isolate=False, warm_first=True)
        results["heartbeat_worker_thread"] = threaded
        print(f"heartbeat (worker thread in the UI process): {threaded}", flush=True)
    if "naive-heartbeat" not in args.skip:
        (naive,) = bench_heartbeat([synthetic_exam(2, seed=3, exam_id="HB3", **exam_args)], models, True,
                                   args.timeout)
        results["heartbeat_ui_thread"] = naive
        print(f"heartbeat (naive, UI thread): {naive}", flush=True)
    results["load_average"] = {"1min": os.getloadavg()[0], "cpus": os.cpu_count(),
                               "gil_switch_interval_s": sys.getswitchinterval()}

    print(json.dumps(results, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
