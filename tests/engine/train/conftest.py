"""Tiny synthetic data for the training-framework tests (seconds on a shared CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from train_helpers import write_class_folders


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "classes")


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)
