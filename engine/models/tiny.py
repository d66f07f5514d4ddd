"""Tiny random graders for tests, demos of the plumbing and benchmarks of everything but the network.

They grade nothing meaningfully (random weights); every card says so. A tiny grader runs in milliseconds,
so test suites of the pipeline, CLI, viewer and reliability checks need no trained weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

from engine.models.preprocess import InputSpec

TINY_INPUTS = {
    "fundus": InputSpec((64, 64), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
    "disc": InputSpec((32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
    "oct": InputSpec((8, 16, 16), (0.3,), (0.2,)),
}
TINY_BACKBONES = {"fundus": "tiny2d", "disc": "tiny2d", "oct": "tiny3d"}


def tiny_grader(
    levels: Sequence[str] = ("fundus",),
    fusion: str = "concat",
    *,
    name: Optional[str] = None,
    seed: int = 0,
    inputs: Optional[Mapping[str, InputSpec]] = None,
    extra_features: Sequence[str] = (),
):
    """An in-memory :class:`engine.models.registry.Grader` with random tiny branches (CPU)."""
    import torch

    from engine.models.registry import build_model, grader_from_module, grader_spec

    spec = grader_spec(
        {lv: TINY_BACKBONES[lv] for lv in levels}, fusion, inputs={**TINY_INPUTS, **(inputs or {})},
        width=16, hidden=8, extra_features=extra_features,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = build_model(spec)
    card = {"name": name or "-".join(levels), "training_data": "none: random weights for tests"}
    return grader_from_module(module, spec, card["name"], card)


def save_tiny_grader(path: Path, levels: Sequence[str] = ("fundus",), fusion: str = "concat", seed: int = 0,
                     name: Optional[str] = None) -> Path:
    """Write a tiny grader checkpoint + card at ``path``; return ``path``."""
    from engine.models.checkpoint import save_checkpoint

    grader = tiny_grader(levels, fusion, name=name or Path(path).stem, seed=seed)
    save_checkpoint(Path(path), grader.spec, grader.module.state_dict(), grader.card)
    return Path(path)


def save_tiny_ensemble(folder: Path, method: str = "vote", tie: str = "prefer:fundus") -> Path:
    """Three tiny checkpoints (fundus; fundus+disc add; fundus+disc+OCT concat) and ``ensemble.json``."""
    from engine.models.ensemble import EnsembleDefinition, write_ensemble_file

    folder = Path(folder)
    members = [
        ("fundus", ("fundus",), "concat"),
        ("two_level", ("fundus", "disc"), "add"),
        ("three_level", ("fundus", "disc", "oct"), "concat"),
    ]
    paths = []
    for seed, (name, levels, fusion) in enumerate(members):
        paths.append((name, save_tiny_grader(folder / f"{name}.pt", levels, fusion, seed=seed, name=name)))
    out = folder / "ensemble.json"
    write_ensemble_file(out, EnsembleDefinition("tiny", method, tie, paths))
    return out
