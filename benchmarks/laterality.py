"""Which eye the disc's side of the photo shows (engine.fundus.laterality), on every sample fundus photo.

Prints the horizontal disc offsets (field-of-view radii) as a histogram, how many photos each rule decides, and,
for the photos whose eye their dataset states (``fundus_glaucoma/labels.csv`` and the CC0 left-eye photo), how
many were decided and how many of those were right. Needs ``GV_SAMPLE_DATA``; about 90 s on 2 cores.

    GV_SAMPLE_DATA=../shared/data python benchmarks/laterality.py
"""

from __future__ import annotations

import collections
import csv
import math
import os
import sys
from pathlib import Path

from engine.fundus.analysis import analyse_disc
from engine.fundus.laterality import MAX_ROW_OFFSET, SIDE_OFFSET, disc_offset, eye_from_disc
from engine.io.images import load_image_exam

SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def sample_photos(root: Path) -> list[tuple[Path, str]]:
    """(photo, eye stated by its dataset or "") for every full fundus photo of the samples."""
    eyes = {}
    with open(root / "fundus_glaucoma" / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            eyes[row["sample"]] = row.get("eye", "")
    found = sorted(p for p in (root / "fundus_glaucoma").glob("*/fundus.*") if p.suffix.lower() in SUFFIXES)
    out = [(p, eyes.get(p.parent.name, "")) for p in found]
    out += [(p, "") for p in sorted((root / "fundus_disc_cup").glob("*/*/fundus.jpg"))]
    out += [(p, "") for p in sorted((root / "gamma_fundus_grading" / "images").glob("*.jpg"))]
    out.append((root / "retina_cc0" / "retina.jpg", "OS"))  # "a normal left-eye fundus photo" (its README)
    return out


def main() -> int:
    root = os.environ.get("GV_SAMPLE_DATA")
    if not root:
        print("set GV_SAMPLE_DATA to the shared sample data folder", file=sys.stderr)
        return 2
    offsets, decided, labelled = [], collections.Counter(), collections.Counter()
    for path, truth in sample_photos(Path(root)):
        photo = load_image_exam(path, modality="fundus").fundus
        result = analyse_disc(photo, infer_eye=False)
        if not result.found:
            decided["no disc found"] += 1
            continue
        offset = disc_offset(result.center, result.localisation)
        eye = eye_from_disc(result.center, result.localisation)
        decided[eye] += 1
        if offset is not None:
            offsets.append(offset)
        if truth:
            labelled["right" if eye == truth else ("abstained" if eye == "unknown" else "wrong")] += 1
            print(f"{path.parent.name:28s} stated {truth}, inferred {eye}"
                  + ("" if offset is None else f" (offset row {offset[0]:+.2f}, col {offset[1]:+.2f})"))
    print(f"\nhorizontal disc offset / field-of-view radius, {len(offsets)} photos:")
    bins = collections.Counter(math.floor(col * 10) / 10 for _, col in offsets)
    for lo in sorted(bins):
        print(f"  {lo:+.1f} .. {lo + 0.1:+.1f} {bins[lo]:4d} {'#' * bins[lo]}")
    print(f"largest |row offset|: {max(abs(r) for r, _ in offsets):.2f} (rule: at most {MAX_ROW_OFFSET})")
    inside = [c for _, c in offsets if abs(c) < SIDE_OFFSET]
    outside = [c for _, c in offsets if abs(c) >= SIDE_OFFSET]
    print(f"|col offset| < {SIDE_OFFSET}: {len(inside)} (largest {max(map(abs, inside)):.2f}); >= {SIDE_OFFSET}: "
          f"{len(outside)} (smallest {min(map(abs, outside)):.2f})")
    print("decided: " + ", ".join(f"{k} {v}" for k, v in sorted(decided.items())))
    print("photos with a stated eye: " + ", ".join(f"{k} {v}" for k, v in sorted(labelled.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
