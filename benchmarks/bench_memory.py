"""Peak memory of opening and grading a 256-B-scan exam (992 x 512 JPEGs), against a naive float64 load.

    nice -n 10 .venv/bin/python benchmarks/bench_memory.py [--bscans 256] [--shape 992 512] [--models FILE]

The exam is synthetic (:mod:`engine.synthetic`, GAMMA layout, a 1934 x 2576 fundus photo, JPEG q95) in a
temporary folder, written by a subprocess so that this parent stays small (Linux carries ``ru_maxrss`` over
fork + exec). Each variant runs in a fresh subprocess of this script and reports its own peak resident memory:
``VmHWM`` of ``/proc/self/status`` and ``resource.getrusage(RUSAGE_SELF).ru_maxrss``:

- ``imports``: only the imports of the grade command (torch, MONAI, OpenCV ...): the floor.
- ``naive-load``: ``cv2.imread`` of every B-scan in a loop, each converted to float64, then ``np.stack``
  (what a first script does; the stack doubles the float64 volume).
- ``load``: :func:`engine.io.discover.load_exam` (uint8 volume, fundus photo, hashes, checks).
- ``grade``: ``python -m engine grade EXAM --csv OUT --cams DIR`` run in that process (load, disc/cup and OCT
  layer analyses, every grader, ensemble, Grad-CAM overlays, sibling-task columns, atomic CSV). The resident
  memory at each pipeline stage is printed too, to show where memory goes.

Models: ``--models``, else the shipped defaults (``engine.pipeline.load_models(None)``); when none are shipped,
tiny random graders from :mod:`engine.models.tiny` stand in, and the output says so. The budget is 2 GB
(issue 10); the script exits 1 when ``grade`` goes over it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("imports", "naive-load", "load", "grade")
BUDGET_MB = 2048.0


def _status_mb(key: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_exam(root: Path, n: int, shape: tuple[int, int]) -> Path:
    from engine.synthetic import synthetic_exam, write_gamma_exam

    exam = synthetic_exam(1, n_bscans=n, fundus_shape=(1934, 2576), bscan_shape=shape, seed=7, exam_id="BENCH")
    return write_gamma_exam(root, exam)


def naive_load(folder: Path):
    """(N, H, W) float64: one ``cv2.imread`` per B-scan, converted, then stacked."""
    import cv2
    import numpy as np

    files = sorted((folder / folder.name).glob("*.jpg"), key=lambda p: int(p.name.split("_")[0]))
    slices = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.float64) for p in files]
    return np.stack(slices)


def child(variant: str, folder: Path, models: str, out: Path) -> dict:
    stages: list[tuple[str, float, float]] = []
    t = time.perf_counter()
    if variant == "make":  # models = number of B-scans, out = "HxW"
        h, w = map(int, out.name.split("x"))
        shape = [int(models), h, w]
        make_exam(folder, int(models), (h, w))
    elif variant == "naive-load":
        shape = list(naive_load(folder).shape)
    elif variant == "load":
        from engine.io.discover import load_exam

        shape = list(load_exam(folder).oct.shape)
    else:
        import torch  # noqa: F401  (what the grade command imports before any exam)

        import engine.cli.grade_cmd  # noqa: F401
        import engine.pipeline as pipeline
        from engine.cli import main

        shape = []
        if variant == "grade":
            real = pipeline.report

            def report(progress, fraction, message):  # type: ignore[no-untyped-def]
                stages.append((message, _status_mb("VmRSS"), _status_mb("VmHWM")))
                real(progress, fraction, message)

            pipeline.report = report
            argv = ["grade", str(folder), "--csv", str(out / "grades.csv"), "--cams", str(out / "cams"), "--quiet"]
            rc = main(argv + (["--models", models] if models else []))
            if rc != 0:
                raise SystemExit(f"grade exited {rc}")
    return {"variant": variant, "seconds": time.perf_counter() - t, "shape": shape, "peak_mb": _status_mb("VmHWM"),
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "stages": stages}


def pick_models(tmp: Path, given: str) -> tuple[str, str]:
    """(``--models`` argument or "" for the shipped defaults, a line saying which models graded)."""
    if given:
        return given, f"models: {given}"
    from engine.models.registry import default_ensemble_file, default_grader_paths

    shipped = default_ensemble_file() or default_grader_paths()
    if shipped:
        return "", f"models: the shipped defaults ({shipped})"
    from engine.models.tiny import save_tiny_ensemble

    path = save_tiny_ensemble(tmp / "tiny_models")
    return str(path), ("models: NO grader weights are shipped in resources/models, so tiny random graders "
                       "(engine.models.tiny: fundus, fundus+disc, fundus+disc+OCT) stand in; loader, analyses, "
                       "preprocessing, Grad-CAM and the shipped sibling models are the real ones")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bscans", type=int, default=256)
    parser.add_argument("--shape", type=int, nargs=2, default=(992, 512), metavar=("H", "W"))
    parser.add_argument("--models", default="", help="ensemble file or .pt grader (default: the shipped ones)")
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "FOLDER", "MODELS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, folder, models, out = args.child
        print(json.dumps(child(variant, Path(folder), models, Path(out))))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--child", "make", tmp, str(args.bscans),
                        f"{args.shape[0]}x{args.shape[1]}"], check=True, stdout=subprocess.DEVNULL)
        folder = Path(tmp) / "BENCH"
        size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
        print(f"wrote {args.bscans} B-scans {args.shape[0]} x {args.shape[1]} + fundus 1934 x 2576 (JPEG q95, "
              f"{size_mb:.0f} MB) in {time.perf_counter() - t0:.0f} s; uint8 volume = "
              f"{args.bscans * args.shape[0] * args.shape[1] / 2**20:.0f} MiB")
        models, note = pick_models(Path(tmp), args.models)
        print(note)
        results = {}
        for variant in VARIANTS:
            out = Path(tmp) / f"out_{variant}"
            out.mkdir()
            proc = subprocess.run([sys.executable, __file__, "--child", variant, str(folder), models or "", str(out)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{variant} failed:\n{proc.stderr[-3000:]}")
            results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{'variant':<11} {'peak RSS MiB':>12} {'ru_maxrss MiB':>14} {'seconds':>8}  volume")
    for variant in VARIANTS:
        r = results[variant]
        shape = "x".join(map(str, r["shape"])) or "-"
        print(f"{variant:<11} {r['peak_mb']:12.0f} {r['ru_maxrss_mb']:14.0f} {r['seconds']:8.1f}  {shape}")
    naive, load = results["naive-load"]["peak_mb"], results["load"]["peak_mb"]
    print(f"\nload: ours {load:.0f} MiB vs naive float64 {naive:.0f} MiB peak ({naive / load:.1f}x less)")
    print("grade, resident memory when each pipeline stage starts (MiB now / peak so far):")
    for message, now, peak in results["grade"]["stages"]:
        print(f"  {message:<22} {now:7.0f} / {peak:7.0f}")
    peak = results["grade"]["peak_mb"]
    verdict = "within" if peak <= BUDGET_MB else "OVER"
    print(f"\ngrade peak {peak:.0f} MiB: {verdict} the {BUDGET_MB:.0f} MiB budget")
    return 0 if peak <= BUDGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
