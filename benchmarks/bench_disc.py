"""Time one fundus photo from pixels to cup-to-disc biomarkers, against a naive full-resolution pipeline.

    .venv/bin/python benchmarks/bench_disc.py [--photos N] [--threads 2] [--weights resources/models/disc_cup.pt]
    (several --weights: the mean of those networks, as engine.fundus.evaluate runs them; --fine-weights CKPT...:
    fine-pass networks that draw the final masks, their time in the stage "refine")

Photos: the first ``--photos`` real photos with disc/cup masks under ``GV_SAMPLE_DATA`` (Drishti-GS1 ~3.6 MP,
odoc100 ~1.9 MP, ...), else synthetic 2000 x 1800 fundi. Each photo is decoded before timing starts.

- ours: :func:`engine.fundus.analyse_disc` (training-free localiser on a ~320 px copy, coarse check of three
  candidate crops in one batch, two fine passes on a small crop, masks mapped back to the photo, biomarkers);
  per-stage times from ``DiscAnalysis.timings``.
- naive: the same network run fully convolutionally on the whole photo at full resolution (padded to a
  multiple of 16), argmax, largest components, biomarkers on the full-resolution masks: what one gets
  without localising and cropping. (Its masks are also much worse: the network never saw a whole photo.)

Both use the same weights, ``--threads`` torch/OpenCV threads and flip test-time augmentation off for the
naive run (it would double its time). Prints the median seconds per photo and the ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _photos(n: int) -> list:
    root = os.environ.get("GV_SAMPLE_DATA")
    if root and Path(root).is_dir():
        from engine.fundus.datasets import read_rgb, read_shared_samples

        cases = read_shared_samples(Path(root))
        step = max(1, len(cases) // n)
        return [(c.case_id, read_rgb(c.image)) for c in cases[::step][:n]]
    from engine.synthetic import synthetic_fundus

    return [(f"synthetic{k}", synthetic_fundus((1800, 2000), cdr=0.5, seed=k).image) for k in range(n)]


def naive(image, seg) -> float:
    """Whole photo through the network at full resolution, then biomarkers. Returns seconds."""
    import numpy as np
    import torch

    from engine.fundus.analysis import _fill_holes, _largest_component
    from engine.fundus.biomarkers import compute_biomarkers
    from engine.fundus.segmenter import normalise_crops

    t = time.perf_counter()
    h, w = image.shape[:2]
    ph, pw = -h % 16, -w % 16
    padded = np.pad(image, ((0, ph), (0, pw), (0, 0)))
    x = torch.from_numpy(normalise_crops(padded))
    with torch.inference_mode():
        label = seg.module(x)[0].argmax(0).numpy()[:h, :w]
    disc = _fill_holes(_largest_component(label >= 1))
    cup = _largest_component((label == 2) & disc)
    if disc.any():
        compute_biomarkers(disc, cup)
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights", type=Path, nargs="+", help="disc-cup checkpoint(s) (default: the shipped one); "
                   "several = the mean of their probabilities")
    p.add_argument("--fine-weights", type=Path, nargs="+", default=[],
                   help="fine-pass checkpoint(s) that draw the final masks (engine.fundus.segmenter.attach_fine)")
    p.add_argument("--naive-photos", type=int, default=3, help="photos for the (slow) naive pipeline")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from engine.fundus import analyse_disc
    from engine.fundus.segmenter import load_members, load_segmenter

    seg = load_members(args.weights) if args.weights else load_segmenter()
    if args.fine_weights:
        seg = dataclasses.replace(seg, fine=load_members(args.fine_weights))
    photos = _photos(args.photos)
    analyse_disc(photos[0][1], segmenter=seg)  # warm-up (first-call allocations)
    ours, stages = [], {}
    for name, image in photos:
        t = time.perf_counter()
        result = analyse_disc(image, segmenter=seg)
        ours.append(time.perf_counter() - t)
        for k, v in result.timings.items():
            stages.setdefault(k, []).append(v)
        mp = image.shape[0] * image.shape[1] / 1e6
        vcdr = f"{result.biomarkers.vcdr:.3f}" if result.found else "not found"
        print(f"ours   {name:28s} {mp:4.1f} MP  {ours[-1]:.3f} s  vCDR {vcdr}")
    naive_times = []
    for name, image in photos[: args.naive_photos]:
        naive_times.append(naive(image, seg))
        print(f"naive  {name:28s} {naive_times[-1]:.3f} s")
    m_ours, m_naive = statistics.median(ours), statistics.median(naive_times)
    print(f"\nmedian per photo, {args.threads} threads: ours {m_ours:.3f} s, naive full-resolution {m_naive:.3f} s, "
          f"ratio {m_naive / m_ours:.1f}x")
    print("ours by stage (median s): " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in stages.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
