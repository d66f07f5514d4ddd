from __future__ import annotations

from collections import Counter

import pytest

from engine.train.splits import SplitError, check_disjoint, holdout, kfold, leave_one_source_out, patient_id


def test_kfold_groups_patients_and_stratifies() -> None:
    # 30 patients with two eyes each; labels per patient, 3 classes 12 / 10 / 8 patients
    labels, groups = [], []
    for p in range(30):
        label = 0 if p < 12 else 1 if p < 22 else 2
        labels += [label, label]
        groups += [f"P{p}", f"P{p}"]
    folds = kfold(len(labels), 5, labels=labels, groups=groups, seed=1)
    assert len(folds) == 5
    check_disjoint(folds, groups)
    seen = sorted(i for _, val in folds for i in val)
    assert seen == list(range(len(labels)))  # every sample validated exactly once
    for _, val in folds:
        counts = Counter(labels[i] for i in val)
        assert set(counts) == {0, 1, 2}  # every class in every fold
    assert folds == kfold(len(labels), 5, labels=labels, groups=groups, seed=1)  # deterministic
    assert folds != kfold(len(labels), 5, labels=labels, groups=groups, seed=2)


def test_kfold_without_groups_is_stratified() -> None:
    labels = [0] * 20 + [1] * 10
    for _, val in kfold(30, 5, labels=labels):
        assert Counter(labels[i] for i in val) == {0: 4, 1: 2}


def test_rare_class_falls_back_and_too_few_groups_fail() -> None:
    folds = kfold(10, 5, labels=[0] * 8 + [1] * 2, seed=0)  # class 1 has 2 < 5 members: unstratified
    check_disjoint(folds)
    with pytest.raises(SplitError, match="at least 4"):
        kfold(6, 4, groups=["a", "a", "b", "b", "c", "c"])


def test_holdout_and_leave_one_source_out() -> None:
    labels = [0, 1] * 10
    groups = [f"P{i // 2}" for i in range(20)]
    train, val = holdout(20, 0.2, labels=labels, groups=groups)
    check_disjoint([(train, val)], groups)
    assert 2 <= len(val) <= 6 and len(train) + len(val) == 20
    splits = leave_one_source_out(["refuge", "origa", "refuge", "drishti"])
    assert [name for name, _ in splits] == ["drishti", "origa", "refuge"]
    assert splits[2][1] == ([1, 3], [0, 2])


def test_patient_id() -> None:
    assert patient_id("0_left") == patient_id("0_right.jpg") == "0"
    assert patient_id("P12-OD") == "P12"
    assert patient_id("0001") == "0001"


@pytest.mark.parametrize("folds, by_source", [(1, False), (3, False), (1, True)])
def test_train_only_samples_join_every_training_side_and_are_never_validated(folds: int, by_source: bool) -> None:
    """Pseudo-labelled samples (``Cohort.train_only``) never validate and never make a source fold; the other
    samples split exactly as they would without them."""
    from pathlib import Path

    from engine.train.config import TrainConfig
    from engine.train.run import make_splits
    from engine.train.tasks import Cohort

    real = [{"id": f"r{i}"} for i in range(12)]
    sources = ["a"] * 6 + ["b"] * 6
    config = TrainConfig(folds=folds, val_fraction=0.25, seed=3)
    plain = Cohort(Path("."), list(real), ["x"], labels=[0] * 12, sources=list(sources))
    mixed = Cohort(Path("."), [{"id": "p0"}, *real[:6], {"id": "p1"}, *real[6:]], ["x"], labels=[0] * 14,
                   sources=["pseudo"] + sources[:6] + ["pseudo"] + sources[6:],
                   train_only=[True] + [False] * 6 + [True] + [False] * 6)
    want = make_splits(plain, config, by_source=by_source)
    got = make_splits(mixed, config, by_source=by_source)
    ids = [item["id"] for item in mixed.items]
    assert [name for name, _ in got] == [name for name, _ in want]
    for (_, (train, val)), (_, (want_train, want_val)) in zip(got, want):
        assert [ids[i] for i in val] == [real[i]["id"] for i in want_val]
        assert sorted(ids[i] for i in train) == sorted(["p0", "p1"] + [real[i]["id"] for i in want_train])
