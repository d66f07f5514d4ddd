"""Fixtures for the reader tests: read-only input trees and small image writers.

Inputs are never written: every test that loads from disk first freezes its tree (files 0444, folders 0555)
and checks afterwards that no file appeared, vanished or changed (root ignores permissions, so the snapshot
comparison is what really guards that case).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

from io_helpers import _chmod_tree, snapshot


@pytest.fixture
def frozen() -> Iterator[Callable[[Path], Callable[[], None]]]:
    """``check = frozen(root)`` makes ``root`` read-only; ``check()`` asserts nothing below it changed."""
    roots: list[Path] = []

    def freeze(root: Path) -> Callable[[], None]:
        before = snapshot(root)
        _chmod_tree(root, 0o444, 0o555)
        roots.append(root)

        def check() -> None:
            assert snapshot(root) == before, "loading changed the input tree"

        return check

    yield freeze
    for root in roots:  # let pytest clean tmp_path up
        for dirpath, dirnames, _ in os.walk(root, followlinks=False):
            os.chmod(dirpath, 0o755)
            for name in dirnames:
                p = Path(dirpath) / name
                if not p.is_symlink():
                    os.chmod(p, 0o755)


@pytest.fixture
def as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
