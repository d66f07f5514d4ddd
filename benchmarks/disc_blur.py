"""How far an out-of-focus photo moves the vertical CDR (engine.fundus.analyse_disc), on sample fundus photos.

Each photo is blurred with a Gaussian of sigma = a share of its field of view's diameter (0.2 % to 1.6 %) and
analysed again; prints, per blur, the mean and largest change of the vertical CDR from the sharp photo's, how many
moved by more than 0.05, and how many fell under the analysis's low-confidence line. Needs ``GV_SAMPLE_DATA``;
about 2 minutes on 2 cores for 24 photos.

    GV_SAMPLE_DATA=../shared/data python benchmarks/disc_blur.py --photos 24
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from engine.fundus.analysis import LOW_CONFIDENCE, analyse_disc
from engine.fundus.segmenter import load_segmenter
from engine.io.images import load_image_exam

BLURS = (0.002, 0.004, 0.008, 0.016)
"""Gaussian sigma / field-of-view diameter."""
SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


def sample_photos(root: Path) -> list[Path]:
    found = sorted(p for p in (root / "fundus_glaucoma").glob("*/fundus.*") if p.suffix.lower() in SUFFIXES)
    found += sorted((root / "fundus_disc_cup").glob("*/*/fundus.jpg"))
    return found + sorted((root / "gamma_fundus_grading" / "images").glob("*.jpg"))


def drawn_photos(count: int) -> Optional[list[Path]]:
    """``count`` of :func:`sample_photos` under ``GV_SAMPLE_DATA``, drawn at random (seed 0); None, with a line on
    stderr, when ``GV_SAMPLE_DATA`` is not set."""
    root = os.environ.get("GV_SAMPLE_DATA")
    if not root:
        print("set GV_SAMPLE_DATA to the shared sample data folder", file=sys.stderr)
        return None
    photos = sample_photos(Path(root))
    rng = np.random.default_rng(0)
    return [photos[i] for i in rng.choice(len(photos), min(count, len(photos)), replace=False)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24, help="photos drawn at random (seed 0)")
    args = parser.parse_args()
    photos = drawn_photos(args.photos)
    if photos is None:
        return 2
    seg = load_segmenter()
    moved: dict[float, list[float]] = {b: [] for b in BLURS}
    unsure = dict.fromkeys(BLURS, 0)
    for path in photos:
        image = load_image_exam(path, modality="fundus").fundus
        sharp = analyse_disc(image, segmenter=seg)
        if not sharp.found:
            continue
        diameter = 2 * sharp.localisation.fov_radius_px
        for blur in BLURS:
            result = analyse_disc(cv2.GaussianBlur(image, (0, 0), blur * diameter), segmenter=seg)
            moved[blur].append(abs(result.biomarkers.vcdr - sharp.biomarkers.vcdr) if result.found else 1.0)
            unsure[blur] += result.confidence < LOW_CONFIDENCE
    for blur in BLURS:
        d = np.asarray(moved[blur])
        print(f"blur {100 * blur:.1f} % of the field of view: vertical CDR moved {d.mean():.3f} on average, at most "
              f"{d.max():.3f}; > 0.05 on {int((d > 0.05).sum())} of {d.size}; low confidence on {unsure[blur]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
