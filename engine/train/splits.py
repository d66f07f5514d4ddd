"""Train / validation splits: stratified K-fold grouped by patient, a hold-out split, leave-one-source-out.

All functions take per-sample ``labels`` (class index, or None), ``groups`` (patient id, or None) and return
lists of ``(train_indices, val_indices)`` as sorted ``list[int]``; they are deterministic for a given ``seed``.
Samples of one group (patient) always land on the same side. Augmentation belongs to the training fold only:
the task's ``datasets(cohort, train_idx, val_idx, config)`` builds the random transforms for ``train_idx``.

The scikit-learn splitters do the work (``StratifiedGroupKFold``, ``StratifiedKFold``, ``GroupKFold``,
``LeaveOneGroupOut``); this module picks the right one and explains, in one line, when a request cannot be
met (a class with fewer samples than folds, fewer groups than folds).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Optional, Sequence

import numpy as np

log = logging.getLogger(__name__)

Split = tuple[list[int], list[int]]


class SplitError(ValueError):
    """The data cannot be split as asked. ``str()`` is user-readable."""


def _groups_array(n: int, groups: Optional[Sequence[object]]) -> np.ndarray:
    if groups is None:
        return np.arange(n).astype(str)
    if len(groups) != n:
        raise SplitError(f"{len(groups)} group ids for {n} samples")
    return np.asarray([str(g) for g in groups])


def _labels_array(n: int, labels: Optional[Sequence[Optional[int]]]) -> Optional[np.ndarray]:
    if labels is None:
        return None
    if len(labels) != n:
        raise SplitError(f"{len(labels)} labels for {n} samples")
    if any(lab is None for lab in labels):
        return None
    return np.asarray(labels, dtype=np.int64)


def _as_lists(splits: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[Split]:
    return [(sorted(int(i) for i in tr), sorted(int(i) for i in va)) for tr, va in splits]


def kfold(
    n: int,
    k: int,
    *,
    labels: Optional[Sequence[Optional[int]]] = None,
    groups: Optional[Sequence[object]] = None,
    seed: int = 0,
) -> list[Split]:
    """``k`` folds over ``n`` samples, stratified by ``labels`` and grouped by ``groups`` where given.

    Stratification is dropped (with a log line) when the rarest class has fewer members (or groups) than ``k``.

    Raises:
        SplitError: ``k < 2``, or fewer samples / groups than folds.
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    if k < 2:
        raise SplitError(f"K-fold needs k >= 2 (got {k})")
    g = _groups_array(n, groups)
    y = _labels_array(n, labels)
    n_groups = len(set(g.tolist()))
    if n_groups < k:
        raise SplitError(f"{k} folds need at least {k} patients/samples, only {n_groups} found")
    grouped = n_groups < n
    if y is not None:
        # classes counted in groups (a patient counts once per class it carries)
        per_class = Counter(lab for lab, _ in set(zip(y.tolist(), g.tolist())))
        if min(per_class.values()) < k:
            rare = min(per_class, key=per_class.get)
            log.warning("class %s has %d %s < %d folds: folds are not stratified", rare, per_class[rare],
                        "patients" if grouped else "samples", k)
            y = None
    x = np.zeros((n, 1))
    if y is not None and grouped:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        return _as_lists(list(splitter.split(x, y, g)))
    if y is not None:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return _as_lists(list(splitter.split(x, y)))
    if grouped:
        # GroupKFold has no shuffle before sklearn 1.6; permute group ids to make the folds seed-dependent
        rng = np.random.default_rng(seed)
        unique = np.unique(g)
        mapping = dict(zip(unique.tolist(), rng.permutation(len(unique)).astype(str).tolist()))
        shuffled = np.asarray([mapping[v] for v in g.tolist()])
        return _as_lists(list(GroupKFold(n_splits=k).split(x, None, shuffled)))
    return _as_lists(list(KFold(n_splits=k, shuffle=True, random_state=seed).split(x)))


def holdout(
    n: int,
    val_fraction: float = 0.2,
    *,
    labels: Optional[Sequence[Optional[int]]] = None,
    groups: Optional[Sequence[object]] = None,
    seed: int = 0,
) -> Split:
    """One stratified, grouped train / validation split with about ``val_fraction`` of the samples held out.

    Implemented as the first fold of ``round(1 / val_fraction)`` folds, so it honours groups and classes.
    """
    if not 0 < val_fraction < 1:
        raise SplitError(f"val_fraction must be in (0, 1), got {val_fraction}")
    k = max(2, int(round(1.0 / val_fraction)))
    n_groups = len(set(_groups_array(n, groups).tolist()))
    if n_groups < 2:
        raise SplitError(f"a hold-out split needs at least 2 patients/samples, found {n_groups}")
    k = min(k, n_groups)
    return kfold(n, k, labels=labels, groups=groups, seed=seed)[0]


def leave_one_source_out(sources: Sequence[object]) -> list[tuple[str, Split]]:
    """One split per source (dataset / site / camera): validate on it, train on all the others.

    Returns ``[(source_name, (train_idx, val_idx)), ...]`` in sorted source order.

    Raises:
        SplitError: fewer than two sources.
    """
    from sklearn.model_selection import LeaveOneGroupOut

    s = np.asarray([str(v) for v in sources])
    names = sorted(set(s.tolist()))
    if len(names) < 2:
        raise SplitError(f"leave-one-source-out needs at least 2 sources, found {names}")
    out = []
    for tr, va in LeaveOneGroupOut().split(np.zeros((len(s), 1)), None, s):
        out.append((str(s[va[0]]), (sorted(int(i) for i in tr), sorted(int(i) for i in va))))
    return sorted(out, key=lambda item: item[0])


_SIDE = re.compile(r"(?i)(?:[_\-\s]+(?:left|right|od|os|l|r)|(?<=\d)(?:left|right|od|os))$")


def patient_id(sample_id: str) -> str:
    """Best-effort patient id from a sample id: drop an eye suffix (``"0_left"`` -> ``"0"``, ``"P12-OD"`` ->
    ``"P12"``). Ids without such a suffix are their own patient."""
    stem = str(sample_id).rsplit(".", 1)[0] if "." in str(sample_id) else str(sample_id)
    base = _SIDE.sub("", stem)
    return base or stem


def check_disjoint(splits: Sequence[Split], groups: Optional[Sequence[object]] = None) -> None:
    """Assert every split is disjoint in samples and groups (a guard for tests and task code)."""
    for tr, va in splits:
        if set(tr) & set(va):
            raise SplitError("a sample is in both training and validation")
        if groups is not None:
            gt = {str(groups[i]) for i in tr}
            gv = {str(groups[i]) for i in va}
            if gt & gv:
                raise SplitError(f"patient(s) {sorted(gt & gv)[:3]} are in both training and validation")
