"""Epoch time of ``train classfolders`` on CPU, and the DDP speed-up of 2 gloo processes (torchrun) over 1.

    .venv/bin/python benchmarks/bench_train.py [--per-class 64] [--size 96] [--epochs 3] [--repeats 2]

Writes a synthetic class-per-folder set (3 classes of drawn discs, ``--per-class`` PNGs each, 128 px) into a
temporary folder, then runs the real command line twice per repeat, in alternating order (1, 2, 2, 1 ...):

- 1 process:  ``python -m engine train classfolders --data D --out O --device cpu ...``
- 2 processes: ``python -m torch.distributed.run --standalone --nproc_per_node=2 -m engine train classfolders ...``

Both with ``OMP_NUM_THREADS=1`` (one thread per process), the same per-process batch size and the same data;
with 2 processes each rank trains on half of every epoch (DistributedSampler) and the gradients are averaged
(gloo all-reduce). Reported: the median epoch time (``epoch_time_s`` in metrics.csv: train + validation) and
training samples/s over epochs 2.. (epoch 1 warms up), the command's wall time, and their ratios.
On a machine whose cores are busy with other work the ratio is lower than on an idle one: the load average is
printed with the result.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_set(root: Path, per_class: int, size: int = 128) -> Path:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for c, name in enumerate(("small", "medium", "large")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = (rng.random((size, size, 3)) * 80).astype(np.uint8)
            radius = int(size * (0.12 + 0.1 * c) + rng.integers(-3, 4))
            centre = tuple(int(v) for v in rng.integers(size // 3, 2 * size // 3, 2))
            cv2.circle(image, centre, radius, (200, 170, 90), -1)
            cv2.imwrite(str(root / name / f"{i:04d}.png"), image)
    return root


def run(nproc: int, data: Path, out: Path, args: argparse.Namespace) -> dict[str, float]:
    train = ["-m", "engine", "train", "classfolders", "--data", str(data), "--out", str(out), "--device", "cpu",
             "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--set", f"data.input_size={args.size}",
             "--no-resume", "--bootstrap", "100"]
    prefix = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                  f"--nproc_per_node={nproc}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run(prefix + train, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{nproc}-process run failed:\n{proc.stderr[-3000:]}")
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[1:]  # epoch 1 warms up
    return {"epoch_s": statistics.median(float(r["epoch_time_s"]) for r in rows),
            "samples_per_s": statistics.median(float(r["train_samples_per_s"]) for r in rows), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=64)
    parser.add_argument("--size", type=int, default=96, help="network input side (px)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="per process")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = write_set(Path(tmp) / "classes", args.per_class)
        results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        for r in range(args.repeats):
            for nproc in ((1, 2) if r % 2 == 0 else (2, 1)):
                res = run(nproc, data, Path(tmp) / f"run{r}_{nproc}", args)
                results[nproc].append(res)
                print(f"repeat {r + 1}, {nproc} process(es): epoch {res['epoch_s']:.2f} s, "
                      f"{res['samples_per_s']:.1f} train samples/s, command {res['wall_s']:.1f} s", flush=True)
    n = 3 * args.per_class
    print(f"\n{n} images ({int(n * 0.8)} train / {n - int(n * 0.8)} val), input {args.size} px, small2d, batch "
          f"{args.batch_size}/process, {args.epochs} epochs, OMP_NUM_THREADS=1, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    for key, label in (("epoch_s", "median epoch time (s)"), ("samples_per_s", "train samples/s"),
                       ("wall_s", "command wall time (s)")):
        one = statistics.median(x[key] for x in results[1])
        two = statistics.median(x[key] for x in results[2])
        ratio = one / two if key != "samples_per_s" else two / one
        print(f"{label:24s} 1 process {one:8.2f} | 2 processes {two:8.2f} | speed-up x{ratio:.2f}")


if __name__ == "__main__":
    main()
