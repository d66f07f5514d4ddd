"""``segment IMAGE... --task disc-cup|layers --out DIR``: masks and measurements per input.

``--task disc-cup`` (:mod:`engine.fundus.segment_cli`): one GAMMA-convention mask PNG per fundus photo (0 cup,
128 rim, 255 background) and the cup-to-disc biomarkers. ``--task layers`` (:mod:`engine.oct.segment_cli`):
OCT retinal-layer labels and thickness tables. Exit codes: 0 all inputs done, 1 some failed (one stderr line
each), 2 bad usage or unusable weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "segment"
TASKS = ("disc-cup", "layers")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="segment optic disc/cup on fundus photos or retinal layers on OCT",
        description="Segment every input and write masks into DIR (atomically). Research use only.",
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE",
                   help="fundus photos or folders of exams (disc-cup: every exam's photo, named by its id) or OCT "
                   "exams/B-scans (layers)")
    p.add_argument("--task", required=True, choices=TASKS, help="what to segment")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--weights", type=Path, metavar="FILE", help="segmenter checkpoint (default: the shipped one)")
    p.add_argument("--eye", choices=("OD", "OS", "unknown"),
                   help="disc-cup: eye of every photo, for the nasal/temporal sectors and the ISNT rule (default: "
                   "from each photo's or its folder's name, e.g. P01_OD/fundus.jpg or 12_left.jpg, else the eye the "
                   "disc's side of the photo shows, when it shows one; 'unknown' measures without an eye)")
    p.add_argument("--eyes", type=Path, metavar="CSV",
                   help="disc-cup: which eye each photo shows, a CSV with columns exam,eye (the photo's stem or, in a "
                   "folder, its exam id; OD/OS, right/left): it wins over names and the disc's side of the photo")
    p.add_argument("--site-calibration", type=Path, metavar="FILE",
                   help="disc-cup: a site's cup-outline calibration (python -m engine.fundus.site_calibration)")
    p.add_argument("--disc-at", metavar="X,Y",
                   help="disc-cup, one IMAGE: the optic disc is at column X, row Y (photo px), for a photo where "
                   "the automatic search chose another region")
    p.add_argument("--disc-corrections", type=Path, metavar="FILE",
                   help="disc-cup: discs placed and outlines drawn by hand in the viewer (its disc_corrections.json; "
                   "matched by the photo's pixels): masks and biomarkers follow them (--disc-at wins)")
    p.add_argument("--photo-scale", type=float, metavar="UM_PER_PX",
                   help="disc-cup: micrometres per pixel of every photo given (one camera and resolution), typed in: "
                   "gives mm / mm² and the DDLS stage by disc size (a file's own scale is replaced)")
    p.add_argument("--photo-scale-for", action="append", default=[], metavar="WxH=UM_PER_PX",
                   help="disc-cup: micrometres per pixel of every photo of that size (W x H px: one camera), typed in, "
                   "for the photos without a scale of their own; repeat it for each camera of a cohort")
    p.add_argument("--overlays", action="store_true",
                   help="disc-cup: also write <stem>_overlay.jpg per photo (the photo and its disc region with the "
                   "outlines), to check a batch at a glance")
    p.add_argument("--method", choices=("graph", "network"), help="layers: boundary method")
    p.add_argument("--region", choices=("auto", "macula", "disc"), help="layers: scan region")
    return p


def run(args: argparse.Namespace) -> int:
    if args.task == "layers":
        from engine.oct.segment_cli import run_layers

        return int(run_layers(args))
    from engine.fundus.segment_cli import run_disc_cup

    return int(run_disc_cup(args))
