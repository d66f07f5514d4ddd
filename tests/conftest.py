"""Suite-wide fixtures: offscreen Qt, the sample-data path, the opt-in slow marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Without a display Qt aborts the process: default to offscreen before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """Root of the real sample images (``GV_SAMPLE_DATA``); skips the test when unset or missing."""
    root = os.environ.get("GV_SAMPLE_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("GV_SAMPLE_DATA not set: real sample data unavailable")
    return Path(root).resolve()
