"""Tiny task checkpoints written on the fly (a few kB each), so the tests never need the shipped weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.models.checkpoint import save_checkpoint


def write_tiny(path: Path, task: str, spec: dict, seed: int = 0) -> Path:
    from engine.tasks import _builder

    torch.manual_seed(seed)
    model = _builder(task)(spec)
    save_checkpoint(path, spec, model.state_dict(), {"name": f"tiny-{task}", "task": task})
    return path


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"odir" | "glioma" | "bone": path}`` of tiny random-weight checkpoints."""
    from engine.tasks import bone, glioma, odir

    root = tmp_path_factory.mktemp("tiny_weights")
    return {
        "odir": write_tiny(root / "odir.pt", "odir", odir.make_spec("tiny2d", size=(64, 64))),
        "glioma": write_tiny(root / "glioma.pt", "glioma", glioma.make_spec(("flair", "t1ce"), width=4, size=(64, 64))),
        "bone": write_tiny(root / "bone.pt", "bone", bone.make_spec("full", size=(64, 128), width_mult=0.25, depth_mult=0.25)),
    }


@pytest.fixture
def tiny_writer():
    """:func:`write_tiny`, for tests that lay out their own weights."""
    return write_tiny
