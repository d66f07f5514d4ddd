"""``bone-health [--model PATH]``: the JSON-lines bone-health service on stdin / stdout.

Reads one JSON object per line on stdin, ``{"img_path": ..., "destination_path": ...}``, and writes exactly
one JSON line per input line on stdout (see :mod:`engine.tasks.bone_service` for the protocol). Nothing but
those JSON lines ever reaches stdout: before the model is loaded, file descriptor 1 is pointed at stderr, so
a library that prints (Python or C) writes to stderr; the JSON goes to a private duplicate of the original
stdout. Logs go to stderr.

Exit codes: 0 at end of input (also when some lines failed: each has its ``fail`` line), 2 when the model
cannot be loaded (missing or tampered weights; nothing is read then), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

NAME = "bone-health"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="bone-health service: JSON lines in on stdin, JSON lines out on stdout",
        description="Classify panoramic dental radiographs (healthy / osteoporosis) and write Grad-CAM saliency "
        'and overlay PNGs. Input: one JSON object per line, {"img_path": ..., "destination_path": ...}. '
        "Output: exactly one JSON line per input line. Research use only; see the model card.",
    )
    p.add_argument("--model", type=Path, metavar="PATH", help="bone weights (.pt beside its .card.json); "
                   "default: the shipped resources/models/bone.pt")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    p.add_argument("--quiet", action="store_true", help="no per-line log on stderr")
    return p


def _private_stdout() -> Any:
    """A text stream on a duplicate of fd 1; then fd 1 and ``sys.stdout`` are pointed at stderr."""
    sys.stdout.flush()
    json_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(json_fd, "w", encoding="utf-8", buffering=1, newline="\n")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
        format="bone-health: %(message)s",
    )
    out = _private_stdout()
    from engine.models.checkpoint import CheckpointError
    from engine.tasks import bone_service

    try:
        model = bone_service.load(args.model, args.device)
    except CheckpointError as err:
        print(f"bone-health: {err}", file=sys.stderr)
        return 2
    logging.getLogger("engine.bone_health").info("model %s loaded; reading requests on stdin", model.name)
    try:
        bone_service.serve(sys.stdin.buffer, out, model)
    except BrokenPipeError:  # the client went away: nothing left to answer
        return 0
    finally:
        try:
            out.close()
        except BrokenPipeError:
            pass
    return 0
