"""Pseudo-label unlabelled fundus photos for self-training of the disc/cup segmenter.

    python -m engine.fundus.pseudo_label PHOTO_OR_FOLDER... --out DIR [--checkpoint A.pt B.pt ...]
        [--pattern 'fundus.*'] [--skip-labelled DATA] [--min-confidence 0.85]

Runs the whole analysis (:func:`engine.fundus.analysis.analyse_disc`, as the product runs it) with the given
networks (several = the mean of their probabilities; default: the shipped ones) on every photo, and keeps the
photos whose disc was found with at least ``--min-confidence``. ``DIR`` gets the GAMMA/REFUGE layout that
:func:`engine.fundus.datasets.discover` reads:

- ``DIR/images/<id><suffix>``: a copy of the photo (the original is only read);
- ``DIR/Disc_Cup_Masks/<id>.png``: the predicted masks, 0 = cup, 128 = rim, 255 = background;
- ``DIR/pseudo_labels.json``: the labeller (SHA-256 and what it was trained on, including what the networks that
  labelled *its* pseudo-labelled photos were trained on, round after round), the threshold, and one entry per
  photo (its path, confidence, kept or why not).

Training reads it with ``--set data.pseudo=DIR``: its photos join every run as the source ``pseudo``. For a
held-out figure the labeller must not have seen the held-out sources either, and the unlabelled photos must not
come from them. Every file is written atomically; one unreadable photo is one stderr line and the rest go on.
Exit status: 0 done (even if no photo passed), 1 no photo to label, 2 no usable weights.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from engine.fundus.datasets import (
    IMAGE_SUFFIXES,
    DatasetLayoutError,
    DiscCupCase,
    discover,
    read_joint_mask_layout,
    read_rgb,
    read_shared_samples,
)
from engine.models.checkpoint import atomic_write_bytes

MANIFEST = "pseudo_labels.json"
MIN_CONFIDENCE = 0.85
"""Default confidence a photo's analysis needs to become a training example (the viewer flags < 0.8)."""


def find_photos(paths: Sequence[Path], patterns: Sequence[str] = ("*",), skip: Sequence[Path] = ()) -> list[Path]:
    """Image files given directly or found (recursively) in folders whose name matches one of ``patterns``;
    never a file in ``skip`` (compared resolved). Sorted, without repeats."""
    skipped = {p.resolve() for p in skip}
    found: dict[Path, Path] = {}
    for path in map(Path, paths):
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for p in candidates:
            if (p.suffix.lower() in IMAGE_SUFFIXES and p.resolve() not in skipped
                    and (p == path or any(fnmatch.fnmatch(p.name.lower(), pat.lower()) for pat in patterns))):
                found.setdefault(p.resolve(), p)
    return sorted(found.values())


def labelled_photos(data: Path) -> list[Path]:
    """The photos with expert masks under the dataset folder ``data``, with the shared samples' copies of the same
    photos that :func:`discover` leaves out (two SMDG Drishti-GS photos).

    Raises:
        DatasetLayoutError: no photo with masks under ``data``.
    """
    return [c.image for c in discover(data)] + [c.image for c in read_shared_samples(data, include_duplicates=True)]


def photo_id(path: Path, taken: set[str]) -> str:
    """A file-name-safe id from the photo's folder and stem (``gamma_fundus_grading-0001`` style), unique in
    ``taken`` (which it joins)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{path.parent.name}-{path.stem}").strip("._-") or "photo"
    name, k = base, 2
    while name.lower() in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name.lower())
    return name


def label_photos(photos: Sequence[Path], segmenter: Any, out: Path,
                 min_confidence: float = MIN_CONFIDENCE) -> list[dict[str, Any]]:
    """Analyse each photo and write the kept ones into ``out`` (layout in the module docstring).

    Returns:
        one entry per photo: ``{"photo", "id", "confidence", "kept", "reason"}``.
    """
    from engine.fundus.analysis import analyse_disc
    from engine.fundus.segment_cli import png_bytes

    taken: set[str] = set()
    entries: list[dict[str, Any]] = []
    for path in photos:
        entry: dict[str, Any] = {"photo": str(path), "id": None, "confidence": None, "kept": False, "reason": ""}
        entries.append(entry)
        try:
            image = read_rgb(path)
        except Exception as err:  # noqa: BLE001 - any undecodable file: one line, go on
            entry["reason"] = f"cannot read it ({type(err).__name__})"
            print(f"{path}: {entry['reason']}", file=sys.stderr)
            continue
        result = analyse_disc(image, segmenter=segmenter)
        entry["confidence"] = round(float(result.confidence), 4)
        if not result.found or result.disc_mask is None or result.cup_mask is None:
            entry["reason"] = result.message or "disc not found"
            continue
        if result.confidence < min_confidence:
            entry["reason"] = f"confidence {result.confidence:.2f} < {min_confidence:.2f}"
            continue
        entry["id"] = photo_id(path, taken)
        atomic_write_bytes(out / "images" / f"{entry['id']}{path.suffix.lower()}", path.read_bytes())
        atomic_write_bytes(out / "Disc_Cup_Masks" / f"{entry['id']}.png", png_bytes(result.label_mask()))
        entry["kept"] = True
    return entries


def read_pseudo_labels(folder: Path) -> tuple[list[DiscCupCase], dict[str, Any]]:
    """The cases (source ``pseudo``) and manifest of a folder written by this module.

    Raises:
        DatasetLayoutError: no readable ``pseudo_labels.json`` or no photo with its mask.
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        labeller = manifest["labeller"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetLayoutError(
            f"{folder}: not a pseudo-label folder (no readable {MANIFEST}: {type(err).__name__}); "
            "write one with python -m engine.fundus.pseudo_label") from None
    cases = read_joint_mask_layout(folder, "pseudo")
    if not cases:
        raise DatasetLayoutError(f"{folder}: {MANIFEST} lists no photo with its mask")
    return cases, {"labeller": labeller, "min_confidence": manifest.get("min_confidence"), "photos": len(cases)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.fundus.pseudo_label", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", type=Path, help="photos, or folders searched recursively")
    p.add_argument("--out", type=Path, required=True, help="output folder (GAMMA layout + pseudo_labels.json)")
    p.add_argument("--checkpoint", type=Path, nargs="+",
                   help="disc-cup weights (default: the shipped ones); several = the mean of their probabilities")
    p.add_argument("--fine-checkpoint", type=Path, nargs="+", default=[],
                   help="with --checkpoint: weights that draw the final masks (fine-pass networks)")
    p.add_argument("--pattern", action="append",
                   help="in folders, only files whose name matches this glob (repeatable; default: every image)")
    p.add_argument("--skip-labelled", type=Path, metavar="DATA",
                   help="a disc/cup dataset folder: its photos (which have expert masks) are not pseudo-labelled")
    p.add_argument("--min-confidence", type=float, default=MIN_CONFIDENCE)
    args = p.parse_args(argv)

    from engine.fundus.segmenter import load_cli_segmenter, training_data
    from engine.models.checkpoint import CheckpointError

    skip: list[Path] = []
    if args.skip_labelled is not None:
        try:
            skip = labelled_photos(args.skip_labelled)
        except DatasetLayoutError as err:
            print(f"error: --skip-labelled: {err}", file=sys.stderr)
            return 1
    missing = [str(x) for x in args.paths if not x.exists()]
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 1
    photos = find_photos(args.paths, args.pattern or ["*"], skip)
    if not photos:
        print("error: no photo to label (check the paths and --pattern)", file=sys.stderr)
        return 1
    try:
        seg, cards = load_cli_segmenter(args.checkpoint, args.fine_checkpoint)
        labeller = training_data(cards, with_labellers=True)
    except (CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    entries = label_photos(photos, seg, args.out, args.min_confidence)
    doc = {"labeller": {"checkpoint": [str(c) for c in args.checkpoint] if args.checkpoint else "shipped",
                        **({"fine_checkpoint": [str(c) for c in args.fine_checkpoint]} if args.fine_checkpoint
                           else {}),
                        "sha256": seg.sha256, "trained_on": labeller},
           "min_confidence": args.min_confidence, "photos": entries}
    atomic_write_bytes(args.out / MANIFEST, (json.dumps(doc, indent=1) + "\n").encode())
    kept = sum(e["kept"] for e in entries)
    print(f"{args.out}: {kept} of {len(entries)} photos pseudo-labelled (confidence >= {args.min_confidence:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
