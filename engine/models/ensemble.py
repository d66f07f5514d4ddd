"""Ensembles of graders: average of probabilities, or majority vote with an explicit tie rule.

An ensemble definition is a small JSON or TOML file listing member checkpoints (paths relative to the file)::

    {"name": "gamma-default", "method": "vote", "tie": "prefer:fundus",
     "members": [{"name": "fundus", "path": "fundus.pt"}, {"name": "disc", "path": "disc.pt"},
                 {"name": "three", "path": "three_level.pt"}]}

``method``: ``"mean"`` (average the members' probabilities; grade = argmax) or ``"vote"`` (each member votes
its argmax; the class with most votes wins). Tie rules for ``vote`` (``tie``):

- ``"prefer:<member>"``: that member's answer (the reference kept the fundus model's answer when all three
  disagreed); when its class is not among the tied ones, fall back to ``"mean"``.
- ``"mean"``: the tied class with the highest mean probability.
- ``"higher"`` / ``"lower"``: the more / less severe tied class.

Only members that ran on an exam (their modalities present) take part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

METHODS = ("mean", "vote")
TIE_RULES = ("mean", "higher", "lower")  # plus "prefer:<member>"


class EnsembleError(ValueError):
    """A bad ensemble definition; ``str()`` is user-readable."""


@dataclass(frozen=True)
class Combined:
    """An ensemble decision.

    Attributes:
        probabilities: ``(K,)`` float64 summing to 1. For ``mean``: the mean of members. For ``vote``: vote
            shares with half a vote added to the winner, ``(votes + 0.5 * onehot) / (n + 0.5)``, so the
            argmax is always the decided grade (a GAMMA submission row must agree with the grade).
        grade: index of the decided class.
        method: ``mean`` or ``vote``.
        votes: ``(K,)`` vote counts (``vote`` only, else None).
        tie_broken_by: which rule settled a tie, else None.
        members: names that took part.
    """

    probabilities: np.ndarray
    grade: int
    method: str
    votes: Optional[np.ndarray] = None
    tie_broken_by: Optional[str] = None
    members: tuple[str, ...] = ()


def check_rule(method: str, tie: str) -> None:
    if method not in METHODS:
        raise EnsembleError(f"ensemble method must be one of {METHODS}, got {method!r}")
    if tie not in TIE_RULES and not (tie.startswith("prefer:") and len(tie) > len("prefer:")):
        raise EnsembleError(f"tie rule must be one of {TIE_RULES} or 'prefer:<member>', got {tie!r}")


def combine(
    member_probs: Mapping[str, Sequence[float]], method: str = "mean", tie: str = "mean"
) -> Combined:
    """Combine ``{member: (K,) probabilities}`` (insertion order kept) into one decision.

    Raises:
        EnsembleError: no members, mismatched class counts, or a bad method / tie rule.
    """
    check_rule(method, tie)
    if not member_probs:
        raise EnsembleError("no ensemble member could run on this exam")
    names = tuple(member_probs)
    probs = np.stack([np.asarray(member_probs[n], np.float64) for n in names])
    if probs.ndim != 2:
        raise EnsembleError("every member must give one probability per class")
    mean = probs.mean(axis=0)
    mean = mean / mean.sum()
    if method == "mean" or len(names) == 1:
        return Combined(mean, int(np.argmax(mean)), method, members=names)

    k = probs.shape[1]
    choices = probs.argmax(axis=1)
    votes = np.bincount(choices, minlength=k).astype(np.int64)
    tied = np.flatnonzero(votes == votes.max())
    rule = None
    if len(tied) == 1:
        winner = int(tied[0])
    else:
        rule = tie
        if tie.startswith("prefer:"):
            preferred = tie.split(":", 1)[1]
            if preferred in names and int(choices[names.index(preferred)]) in tied:
                winner = int(choices[names.index(preferred)])
            else:
                rule, winner = "mean", int(tied[np.argmax(mean[tied])])
        elif tie == "higher":
            winner = int(tied.max())
        elif tie == "lower":
            winner = int(tied.min())
        else:
            winner = int(tied[np.argmax(mean[tied])])
    onehot = np.zeros(k)
    onehot[winner] = 0.5
    shares = (votes + onehot) / (len(names) + 0.5)
    return Combined(shares, winner, method, votes, rule, names)


@dataclass
class EnsembleDefinition:
    """A parsed ensemble file: members as ``(name, absolute path)`` plus the rule."""

    name: str
    method: str = "mean"
    tie: str = "mean"
    members: list[tuple[str, Path]] = field(default_factory=list)
    source: Optional[Path] = None

    def to_dict(self) -> dict[str, Any]:
        base = self.source.parent if self.source else None
        rel = [(n, p.relative_to(base) if base and p.is_relative_to(base) else p) for n, p in self.members]
        return {
            "name": self.name, "method": self.method, "tie": self.tie,
            "members": [{"name": n, "path": str(p)} for n, p in rel],
        }


def read_ensemble_file(path: Path) -> EnsembleDefinition:
    """Parse a ``.json`` or ``.toml`` ensemble definition; member paths are relative to the file.

    Raises:
        EnsembleError: unreadable file, unknown keys' types, no members, duplicate names, bad rule.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise EnsembleError(f"{path}: cannot read ensemble file ({err.strerror or err})") from None
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as err:
        raise EnsembleError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'} ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("members"), list) or not data["members"]:
        raise EnsembleError(f"{path}: expected a 'members' list of {{name, path}} entries")
    members: list[tuple[str, Path]] = []
    for i, entry in enumerate(data["members"]):
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise EnsembleError(f"{path}: member {i + 1} needs a 'path'")
        member_path = Path(entry["path"])
        if not member_path.is_absolute():
            member_path = (path.parent / member_path).resolve()
        name = str(entry.get("name") or member_path.stem)
        if any(name == n for n, _ in members):
            raise EnsembleError(f"{path}: member name {name!r} used twice")
        members.append((name, member_path))
    method, tie = str(data.get("method", "mean")), str(data.get("tie", "mean"))
    try:
        check_rule(method, tie)
    except EnsembleError as err:
        raise EnsembleError(f"{path}: {err}") from None
    return EnsembleDefinition(str(data.get("name", path.stem)), method, tie, members, path)


def write_ensemble_file(path: Path, definition: EnsembleDefinition) -> None:
    """Write ``definition`` as JSON (atomically); member paths relative to ``path``'s folder when possible."""
    from engine.models.checkpoint import atomic_write_bytes

    path = Path(path)
    definition = EnsembleDefinition(definition.name, definition.method, definition.tie, definition.members, path)
    atomic_write_bytes(path, (json.dumps(definition.to_dict(), indent=2) + "\n").encode())


@dataclass
class Ensemble:
    """Loaded member graders plus the combination rule."""

    name: str
    members: list[Any]  # list[engine.models.registry.Grader]
    method: str = "mean"
    tie: str = "mean"

    def __post_init__(self) -> None:
        check_rule(self.method, self.tie)
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise EnsembleError(f"ensemble {self.name!r}: member names must be unique, got {names}")

    def combine(self, member_probs: Mapping[str, Sequence[float]]) -> Combined:
        return combine(member_probs, self.method, self.tie)


def load_ensemble(path: Path, device: str = "cpu") -> Ensemble:
    """Read an ensemble file and load every member checkpoint (hash-checked)."""
    from engine.models.registry import load_grader

    definition = read_ensemble_file(path)
    members = [load_grader(p, device, name=n) for n, p in definition.members]
    return Ensemble(definition.name, members, definition.method, definition.tie)
