"""``python -m engine`` / ``glaucoma-engine``: one parser, one module per sub-command.

Each command module exposes ``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``
and imports heavy libraries (torch, MONAI) inside ``run`` only, so ``--help`` stays instant.
Exit codes: 0 success, 1 some input failed (one clear stderr line each), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from engine import __version__
from engine.cli import bone_health_cmd, evaluate_cmd, grade_cmd, inspect_cmd, segment_cmd, train_cmd, tune_cmd

COMMANDS = [inspect_cmd, segment_cmd, grade_cmd, train_cmd, tune_cmd, evaluate_cmd, bone_health_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glaucoma-engine", description="Glaucoma Viewer engine (research use only).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.add_parser(sub).set_defaults(_run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on bad usage
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
