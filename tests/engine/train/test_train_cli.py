"""train / evaluate / tune from the command line on a tiny class-per-folder set; the task registry."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.train.tasks import TASK_NAMES, TASK_SUMMARIES, TaskUnavailable, get_task

TINY = ["--epochs", "2", "--batch-size", "8", "--device", "cpu", "--set", "data.input_size=32", "--bootstrap", "200"]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_task_resolves_or_says_which_module_is_missing() -> None:
    assert set(TASK_SUMMARIES) == set(TASK_NAMES)
    for name in TASK_NAMES:
        try:
            task = get_task(name)
        except TaskUnavailable as err:
            assert name in str(err) and "TRAIN_TASK" in str(err) and "available now" in str(err)
            continue
        assert task.kind in ("classification", "multilabel", "segmentation") and task.mode in ("min", "max")
    with pytest.raises(TaskUnavailable, match="unknown task 'nope'; known tasks: .*classfolders"):
        get_task("nope")


def test_a_task_whose_module_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.train import tasks

    def not_landed():
        from engine.oct import no_such_train_task  # noqa: F401

    monkeypatch.setitem(tasks._LOADERS, "layers", ("engine.oct.no_such_train_task", not_landed))
    with pytest.raises(TaskUnavailable, match=r"'layers' is not available: its module engine.oct.no_such_train_task"):
        get_task("layers")

    def broken():
        raise ImportError("No module named 'nibabel'")

    monkeypatch.setitem(tasks._LOADERS, "layers", ("engine.oct.train_task", broken))
    with pytest.raises(TaskUnavailable, match=r"importing engine.oct.train_task failed \(ImportError: No module named"):
        get_task("layers")


def test_help_lists_the_tasks_without_importing_torch() -> None:
    code = ("import sys\nfrom engine.cli import main\ntry:\n    main(['train', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip().endswith("NO-TORCH")
    for name in TASK_NAMES:
        assert f"\n  {name} " in out


def test_train_one_fold_of_a_kfold_split(class_folders: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cv"
    assert main(["train", "classfolders", "--data", str(class_folders), "--out", str(out), "--folds", "2",
                 "--set", "fold=2", *TINY]) == 0
    assert sorted(json.loads((out / "split.json").read_text())) == ["fold1", "fold2"]  # the whole split, recorded
    assert (out / "fold2" / "best.pt").is_file() and not (out / "fold1").exists()
    assert not (out / "cv_summary.csv").exists()
    capsys.readouterr()
    assert main(["train", "classfolders", "--data", str(class_folders), "--out", str(out), "--folds", "2",
                 "--set", "fold=3", *TINY]) == 1
    assert "fold must be 0 (every fold) or 1..folds" in capsys.readouterr().err


def test_train_kfold_then_evaluate_with_submission(class_folders: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cv"
    assert main(["train", "classfolders", "--data", str(class_folders), "--out", str(out), "--folds", "2", *TINY]) == 0
    split = json.loads((out / "split.json").read_text())
    assert sorted(split) == ["fold1", "fold2"]
    val1, val2 = set(split["fold1"]["val"]), set(split["fold2"]["val"])
    assert not val1 & val2 and len(val1 | val2) == 24  # every image held out exactly once
    for fold in ("fold1", "fold2"):
        for name in ("metrics.csv", "learning_curves.png", "config.toml", "best.pt", "best.card.json",
                     "evaluation.json", "predictions.csv", "confusion_matrix.png"):
            assert (out / fold / name).is_file(), f"{fold}/{name}"
        card = json.loads((out / fold / "best.card.json").read_text())
        assert card["evaluation"]["n"] == len(split[fold]["val"]) and "kappa" in card["evaluation"]["metrics"]
    summary = {r["metric"]: r for r in _rows(out / "cv_summary.csv")}
    assert summary["kappa"]["n"] == "2"
    assert "kappa over 2 folds" in capsys.readouterr().out

    ev = tmp_path / "ev"
    assert main(["evaluate", "classfolders", "--data", str(class_folders), "--checkpoint", str(out / "fold1" / "best.pt"),
                 "--out", str(ev), "--bootstrap", "300", "--submission"]) == 0
    doc = json.loads((ev / "evaluation.json").read_text())
    m = doc["metrics"]
    assert doc["n"] == 24 and doc["n_boot"] == 300 and len(doc["sha256"]) == 64
    assert m["kappa_ci_low"] <= m["kappa"] <= m["kappa_ci_high"]
    assert {"accuracy", "f1_macro", "f1_small", "f1_medium", "f1_large", "auc_macro"} <= set(m)
    assert sum(map(sum, doc["confusion_matrix"])) == 24
    assert (ev / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    predictions = _rows(ev / "predictions.csv")
    assert len(predictions) == 24 and {"id", "true", "predicted", "p_small"} <= set(predictions[0])
    submission = (ev / "submission.csv").read_text().splitlines()
    assert submission[0] == "data,non,early,mid_advanced" and len(submission) == 25
    assert all(sum(map(int, line.split(",")[1:])) == 1 for line in submission[1:])


def test_bad_inputs_give_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "only").mkdir()
    assert main(["train", "classfolders", "--data", str(tmp_path / "only"), "--out", str(tmp_path / "o"), *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "one sub-folder per class" in err and "\n" not in err
    assert main(["train", "nope", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert main(["train", "classfolders", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--set", "epochz=3"]) == 1
    assert "unknown key(s) epochz" in capsys.readouterr().err
    assert main(["evaluate", "classfolders", "--data", str(tmp_path), "--checkpoint", str(tmp_path / "x.pt")]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_tune_is_stored_and_resumes(class_folders: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "tune.toml"
    config.write_text('[tune]\nepochs = 2\nstartup_trials = 1\nwarmup_epochs = 0\n'
                      '[tune.space]\nlr = { low = 1e-4, high = 1e-2, log = true }\n"model.dropout" = [0.0, 0.3]\n')
    args = ["tune", "classfolders", "--data", str(class_folders), "--out", str(tmp_path / "study"), "--config",
            str(config), *TINY[2:-2]]
    assert main([*args, "--trials", "2"]) == 0
    assert len(_rows(tmp_path / "study" / "trials.csv")) == 2
    assert main([*args, "--trials", "3"]) == 0  # same study: one more trial, not three
    rows = _rows(tmp_path / "study" / "trials.csv")
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    assert (tmp_path / "study" / "study.db").is_file()
    best = (tmp_path / "study" / "best_config.toml").read_text()
    assert best.startswith("# best of study classfolders") and "lr = " in best
    out = capsys.readouterr().out
    assert "best kappa" in out and "train classfolders --config" in out
