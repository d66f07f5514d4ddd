"""Bone-health preprocessing: our rolling ball (background on a 4x block-minimum copy) against the exact one.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_bone_preprocess.py [IMAGE.png ...] [--repeat 1]

Both run ``skimage.restoration.rolling_ball`` with the ball of the reference (radius 180 px at full resolution,
i.e. 60 px after the 3x downscale, 180 grey levels high) on the downscaled radiograph:

- reference: the exact rolling ball on the downscaled image (``engine.tasks.bone.subtract_background`` with
  ``shrink=1``);
- ours: the background estimated on a copy reduced 4x more by block minimum, then resized back
  (``shrink=4``, what :func:`engine.tasks.bone.preprocess` uses).

Reports seconds per image for each, the speed-up, and how far ours is from the exact result (mean and 99th
percentile absolute difference in grey levels, on the 0-255 scale). Default images: the phantom radiograph
of :mod:`engine.tasks.phantoms` at the real samples' size (1435 x 2943); pass the real ones from
``$GV_SAMPLE_DATA/dental_panoramic/images`` to measure those.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np


def _time(fn, repeat: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    from engine.io.images import read_image
    from engine.tasks import bone, phantoms

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="*", type=Path)
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    images = [(str(f), read_image(f, grey=True)) for f in args.images] or [
        ("phantom 1435x2943", phantoms.phantom_panoramic("healthy", (1435, 2943), seed=1))
    ]
    radius = bone.ROLLING_BALL_RADIUS / bone.DOWNSCALE
    print(f"{'image':40s} {'exact s':>8s} {'ours s':>8s} {'speed-up':>8s} {'mean |d|':>9s} {'p99 |d|':>8s}")
    for name, image in images:
        h, w = image.shape[0] // bone.DOWNSCALE, image.shape[1] // bone.DOWNSCALE
        small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        t_ref, ref = _time(lambda: bone.subtract_background(small, radius, shrink=1), args.repeat)
        t_ours, ours = _time(lambda: bone.subtract_background(small, radius, shrink=bone.BACKGROUND_SHRINK), args.repeat)
        diff = np.abs(ref - ours)
        print(f"{name[-40:]:40s} {t_ref:8.2f} {t_ours:8.3f} {t_ref / t_ours:7.0f}x {diff.mean():9.2f} "
              f"{np.percentile(diff, 99):8.2f}")


if __name__ == "__main__":
    main()
