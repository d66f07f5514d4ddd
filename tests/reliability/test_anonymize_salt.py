"""``grade --anonymize`` without a salt: a random salt, printed once; ``--resume`` needs the first run's salt."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.cli import main
from engine.models.tiny import save_tiny_ensemble
from engine.results_csv import anonymize_id, read_csv
from engine.synthetic import synthetic_exam, write_gamma_exam

SALT_LINE = re.compile(r"^anonymize salt: ([0-9a-f]{32}) \(keep it to link ids later", re.M)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("anon_cohort")
    for seed in range(2):
        write_gamma_exam(root, synthetic_exam(seed, n_bscans=0, fundus_shape=(96, 120), seed=seed))
    return root, save_tiny_ensemble(tmp_path_factory.mktemp("anon_models"))


@pytest.fixture(autouse=True)
def no_env_salt(monkeypatch):
    monkeypatch.delenv("GV_ANON_SALT", raising=False)


def _argv(setup, out: Path, *extra: str) -> list[str]:
    root, models = setup
    return ["grade", str(root), "--csv", str(out), "--models", str(models), "--no-analyses", "--quiet", *extra]


def test_a_random_salt_is_made_and_printed_once(setup, tmp_path, capsys):
    salts = []
    for k in range(2):
        out = tmp_path / f"a{k}.csv"
        assert main(_argv(setup, out, "--anonymize")) == 0
        err = capsys.readouterr().err
        found = SALT_LINE.findall(err)
        assert len(found) == 1 and err.count(found[0]) == 1, err
        salt = found[0]
        text = out.read_text()
        assert salt not in text and "SYNTH" not in text
        assert sorted(r["data"] for r in read_csv(out)) == sorted(anonymize_id(f"SYNTH{i:04d}", salt) for i in range(2))
        salts.append(salt)
    assert salts[0] != salts[1]


def test_resume_anonymize_without_a_salt_is_refused(setup, tmp_path, capsys):
    out = tmp_path / "r.csv"
    root, _ = setup
    assert main(_argv(setup, out, "--anonymize", "--shard", "0/2")) == 0
    salt = SALT_LINE.findall(capsys.readouterr().err)[0]
    before = out.read_bytes()
    assert main(_argv(setup, out, "--anonymize", "--resume")) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "--salt" in err and "Traceback" not in err
    assert out.read_bytes() == before
    # With the printed salt the resume links up: the first exam is kept, the second is added.
    assert main(_argv(setup, out, "--anonymize", "--resume", "--salt", salt)) == 0
    ids = [r["data"] for r in read_csv(out)]
    assert sorted(ids) == sorted(anonymize_id(f"SYNTH{i:04d}", salt) for i in range(2))
