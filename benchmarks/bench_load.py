"""Load a 256-B-scan GAMMA-layout volume (992 x 512 JPEGs): our loader against the naive sequential loop.

    nice .venv/bin/python benchmarks/bench_load.py [--bscans 256] [--shape 992 512] [--repeats 3] [--template DIR]

Inputs: one synthetic exam from :mod:`engine.synthetic` written in the GAMMA layout (``<ID>/<ID>.jpg`` plus
``<ID>/<ID>/<k>_image.jpg``, JPEG quality 95) to a temporary folder, read once before timing so every variant
reads from the page cache. Synthetic speckle is close to incompressible (about 330 kB per slice at q95), so
entropy decoding dominates and DCT-scaled decoding gains little; ``--template DIR`` writes real B-scans
(resized and cycled; e.g. the Duke DME sample) instead, whose JPEGs are smaller, as real OCT files are. Each variant runs ``--repeats`` times in its own fresh subprocess (so its peak
RSS is its own); the best and the median wall time are reported, the ratio uses the best.

- ``naive``: ``sorted(glob)`` by the number in the name, then ``cv2.imread(path, IMREAD_GRAYSCALE)`` one file
  after another and ``np.stack`` (the loop the issue names as the baseline).
- ``ours``: :func:`engine.io.bscans.read_bscans` (threaded decode, SHA-256 of every file, size checks).
- ``ours-exam``: the whole :func:`engine.io.discover.load_exam` (discovery, fundus photo, hashes, checks).
- ``naive/N`` and ``ours/N`` (N = 2, 4): a volume at 1/N resolution, naive = full decode then
  ``cv2.resize(INTER_AREA)``, ours = libjpeg DCT-scaled decode (``IMREAD_REDUCED_GRAYSCALE_N``) in threads.

The full-resolution volumes of ``naive`` and ``ours`` are checked to be identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("naive", "ours", "ours-exam", "naive/2", "ours/2", "naive/4", "ours/4")


def make_exam(root: Path, n: int, shape: tuple[int, int], template: Optional[Path] = None) -> Path:
    """Write the exam; with ``template`` (a folder of real B-scans) its images, resized and cycled, are the slices."""
    import cv2
    import numpy as np

    from engine.synthetic import synthetic_exam, write_gamma_exam

    exam = synthetic_exam(1, n_bscans=0 if template else n, fundus_shape=(1934, 2576), bscan_shape=shape, seed=7,
                          exam_id="BENCH")
    if template is not None:
        from engine.io.bscans import natural_key

        files = sorted((p for p in template.iterdir() if p.suffix.lower() in (".png", ".jpg", ".tif")),
                       key=lambda p: natural_key(p.name))
        real = [cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), shape[::-1], interpolation=cv2.INTER_AREA)
                for p in files]
        exam.oct = np.stack([real[k % len(real)] for k in range(n)])
    return write_gamma_exam(root, exam)


def _naive_paths(folder: Path) -> list[str]:
    files = [str(p) for p in (folder / folder.name).glob("*.jpg")]
    return sorted(files, key=lambda p: int(re.match(r"\d+", os.path.basename(p)).group()))


def run_variant(name: str, folder: Path):
    """Load once with ``name``; return the volume (N, H, W) uint8."""
    import cv2
    import numpy as np

    base, _, factor = name.partition("/")
    reduce = int(factor or 1)
    if base == "naive":
        slices = []
        for path in _naive_paths(folder):
            image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
            if reduce > 1:
                h, w = image.shape
                image = cv2.resize(image, (-(-w // reduce), -(-h // reduce)), interpolation=cv2.INTER_AREA)
            slices.append(image)
        return np.stack(slices)
    if base == "ours":
        from engine.io import bscans

        paths = bscans.order_bscans(list((folder / folder.name).iterdir()))
        return bscans.read_bscans(paths, reduce=reduce)[0]
    if base == "ours-exam":
        from engine.io.discover import load_exam

        return load_exam(folder).oct
    raise ValueError(name)


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(name: str, folder: Path, repeats: int) -> None:
    import numpy as np

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        volume = run_variant(name, folder)
        times.append(time.perf_counter() - start)
        checksum = hashlib.sha256(memoryview(np.ascontiguousarray(volume)).cast("B")).hexdigest()  # no copy
        shape = list(volume.shape)
        del volume
    peak_mb = _peak_rss_mb()
    print(json.dumps({"variant": name, "times": times, "shape": shape, "checksum": checksum, "peak_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bscans", type=int, default=256)
    parser.add_argument("--shape", type=int, nargs=2, default=(992, 512), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--template", type=Path, default=None,
                        help="folder of real B-scan images used (resized, cycled) instead of synthetic slices")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.repeats)
        return
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        t0 = time.perf_counter()
        folder = make_exam(Path(tmp), args.bscans, tuple(args.shape), args.template)
        size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
        kind = f"from {args.template}" if args.template else "synthetic"
        print(f"wrote {args.bscans} {kind} B-scans {args.shape[0]} x {args.shape[1]} (JPEG q95, {size_mb:.1f} MB with "
              f"the fundus) in {time.perf_counter() - t0:.1f} s; CPUs visible: {os.cpu_count()}")
        for p in folder.rglob("*.jpg"):  # warm the page cache so no variant pays for the disk
            p.read_bytes()
        results = {}
        for name in VARIANTS:
            proc = subprocess.run(
                [sys.executable, __file__, "--repeats", str(args.repeats), "--child", name, str(folder)],
                capture_output=True, text=True, check=True,
            )
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    if results["naive"]["checksum"] != results["ours"]["checksum"]:
        raise SystemExit("ours and naive volumes differ at full resolution")
    print(f"\n{'variant':<10} {'shape':<16} {'min s':>7} {'median s':>9} {'x naive':>8} {'peak RSS MB':>12}")
    for name in VARIANTS:
        r = results[name]
        base = "naive" + (name[name.index("/"):] if "/" in name else "")
        best = min(r["times"])
        ratio = min(results[base]["times"]) / best
        shape = "x".join(str(s) for s in r["shape"])
        print(f"{name:<10} {shape:<16} {best:7.3f} {statistics.median(r['times']):9.3f} {ratio:7.2f}x "
              f"{r['peak_mb']:12.0f}")
    print("\nx naive = naive best time / this best time at the same resolution (>1: faster than naive). The best of "
          "the repeats is compared because other processes share the CPUs; the median shows the spread.")


if __name__ == "__main__":
    main()
