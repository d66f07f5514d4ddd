"""How a photo without colour changes the disc/cup analysis (engine.fundus.analyse_disc), on sample fundus photos.

Each colour photo is turned into two grey copies, as a camera without colour or a red-free filter gives them:
luma (0.299 R + 0.587 G + 0.114 B) and the green channel, each repeated over the three channels. Prints, per
copy, how many discs were missed, how many outlines landed elsewhere (disc Dice < 0.5 against the colour photo's
disc), the disc Dice against the colour photo's and the mean and largest change of the vertical CDR. The same
photos as ``disc_blur.py`` (seed 0). Needs ``GV_SAMPLE_DATA``; about 2 minutes on 2 cores for 40 photos.

    GV_SAMPLE_DATA=../shared/data python benchmarks/disc_grey.py --photos 40 [--weights CKPT]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from disc_blur import drawn_photos
from engine.fundus.analysis import analyse_disc
from engine.fundus.evaluate import dice
from engine.fundus.localize import GREY_KINDS, without_colour
from engine.fundus.segmenter import load_segmenter
from engine.io.images import load_image_exam


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40, help="photos drawn at random (seed 0)")
    parser.add_argument("--weights", type=Path, help="disc-cup checkpoint (default: the shipped one)")
    args = parser.parse_args()
    photos = drawn_photos(args.photos)
    if photos is None:
        return 2
    seg = load_segmenter(args.weights)
    moved: dict[str, list[float]] = {k: [] for k in GREY_KINDS}
    overlap: dict[str, list[float]] = {k: [] for k in GREY_KINDS}
    missed = dict.fromkeys(GREY_KINDS, 0)
    measured = 0
    for path in photos:
        image = load_image_exam(path, modality="fundus").fundus
        colour = analyse_disc(image, segmenter=seg)
        if not colour.found:
            continue
        measured += 1
        for kind in GREY_KINDS:
            result = analyse_disc(without_colour(image, kind), segmenter=seg)
            if not result.found:
                missed[kind] += 1
                continue
            overlap[kind].append(dice(result.disc_mask, colour.disc_mask))
            moved[kind].append(abs(result.biomarkers.vcdr - colour.biomarkers.vcdr))
    print(f"{measured} of {len(photos)} colour photos with a disc found; model {seg.sha256[:12]}")
    for kind in GREY_KINDS:
        d, o = np.asarray(moved[kind]), np.asarray(overlap[kind])
        print(f"{kind}: {missed[kind]} missed, {int((o < 0.5).sum())} outlined elsewhere (disc Dice < 0.5); disc "
              f"Dice with the colour photo's {np.median(o):.3f} median; vertical CDR moved {d.mean():.3f} on "
              f"average, at most {d.max():.3f}, > 0.05 on {int((d > 0.05).sum())} of {d.size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
