"""Patient data and faults: inputs never written, no names or birth dates in output, anonymized ids,
interrupted batches resume, CSV writes are atomic even under SIGKILL, tampered weights are refused."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corpus_kit import assert_no_secrets
from engine.cli import main
from engine.models.tiny import save_tiny_ensemble
from engine.results_csv import COLUMNS, anonymize_id, is_partial, read_csv, write_csv
from engine.synthetic import synthetic_exam, write_gamma_exam

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return save_tiny_ensemble(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    for seed in range(4):
        write_gamma_exam(root, synthetic_exam(seed % 3, n_bscans=4, fundus_shape=(96, 120), bscan_shape=(40, 48),
                                              seed=seed))
    return root


def _tree_state(root: Path) -> dict[str, tuple[int, str]]:
    """``{relative path: (mode, sha256 or link target)}`` of everything below ``root`` (links not followed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                digest = "-> " + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                digest = "dir"
            out[str(p.relative_to(root))] = (st.st_mode, digest)
    return out


def _chmod_tree(root: Path, file_mode: int, dir_mode: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
        for name in filenames:
            if not (Path(dirpath) / name).is_symlink():
                os.chmod(Path(dirpath) / name, file_mode)
        for name in dirnames:
            if not (Path(dirpath) / name).is_symlink():
                os.chmod(Path(dirpath) / name, dir_mode)
    os.chmod(root, dir_mode)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_grade_over_the_read_only_corpus(corpus, models, tmp_path, capsys):
    """Every corpus case becomes a row; failures are error rows with their message; inputs stay unchanged."""
    root, cases = corpus
    before = _tree_state(root)
    _chmod_tree(root, 0o444, 0o555)
    try:
        out = tmp_path / "grades.csv"
        rc = main(["grade", *(str(c.path) for c in cases), "--csv", str(out), "--models", str(models), "--quiet",
                   "--no-analyses"])
        captured = capsys.readouterr()
    finally:
        _chmod_tree(root, 0o644, 0o755)
    after = _tree_state(root)
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}, "grading changed the inputs"
    assert rc == 1 and "Traceback" not in captured.err
    rows = _rows(out)
    assert tuple(rows[0]) == COLUMNS
    errors = [r["message"] for r in rows if r["status"] == "error"]
    assert all(r["status"] in ("ok", "error") for r in rows)
    assert all(m and "\n" not in m for m in errors)
    for case in cases:
        if case.expect is not None:
            assert any(re.search(case.expect, m, re.IGNORECASE) for m in errors), (case.name, errors)
    assert sum(r["status"] == "ok" for r in rows) >= 3  # the valid fundus photos were graded
    assert_no_secrets(out.read_text(encoding="utf-8") + captured.err + captured.out)


def test_interrupted_batch_resumes_without_loss(cohort, models, tmp_path, monkeypatch, capsys):
    import engine.cli.grade_cmd as grade_cmd

    out = tmp_path / "r.csv"
    real = grade_cmd.grade_one
    calls = {"n": 0}

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(grade_cmd, "grade_one", crash_on_third)
    argv = ["grade", str(cohort), "--csv", str(out), "--models", str(models), "--quiet", "--no-analyses",
            "--anonymize", "--salt", "pepper"]
    assert main(argv) == 130
    assert "rerun with --resume" in capsys.readouterr().err
    assert is_partial(out)
    first = _rows(out)
    assert [r["status"] for r in first] == ["ok", "ok"]
    monkeypatch.setattr(grade_cmd, "grade_one", real)
    assert main([a for a in argv if a != "--quiet"] + ["--resume"]) == 0
    assert "2 exam(s) already graded, 2 to go" in capsys.readouterr().err
    rows = _rows(out)
    assert rows[:2] == first and len(rows) == 4 and len({r["data"] for r in rows}) == 4
    assert not is_partial(out)
    assert {r["data"] for r in rows} == {anonymize_id(f"SYNTH{k:04d}", "pepper") for k in range(4)}
    assert "SYNTH" not in out.read_text()


def test_a_failed_write_keeps_the_previous_csv(tmp_path, monkeypatch):
    out = tmp_path / "g.csv"
    write_csv(out, [{"data": "A", "status": "ok"}])
    before = out.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_csv(out, [{"data": "B", "status": "ok"}] * 100)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.csv"]  # no temp file left behind


WRITER = """
import sys
from engine.results_csv import write_csv
out = sys.argv[1]
k = 0
while True:
    k += 1
    write_csv(out, [{"data": f"exam{i}", "message": str(k) * 50, "status": "ok"} for i in range(k)])
"""


def test_sigkill_during_writes_leaves_a_complete_csv(tmp_path):
    """Kill a process that rewrites the CSV in a loop: the file is always a complete earlier version."""
    out = tmp_path / "k.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for delay in (0.4, 0.7):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], env=env, cwd=ROOT)
        deadline = time.monotonic() + 20
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rows = read_csv(out)  # raises on a torn header
        k = len(rows)
        assert k >= 1 and all(r["message"] == str(k) * 50 and r["status"] == "ok" for r in rows)
        assert [r["data"] for r in rows] == [f"exam{i}" for i in range(k)]


def test_tampered_checkpoint_is_refused(models, tmp_path, cohort, capsys):
    from engine.models.checkpoint import CheckpointError, load_checkpoint

    folder = tmp_path / "m"
    ensemble = save_tiny_ensemble(folder)
    weights = folder / "fundus.pt"
    load_checkpoint(weights)  # intact: loads
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(weights)
    out = tmp_path / "t.csv"
    assert main(["grade", str(cohort), "--csv", str(out), "--models", str(ensemble), "--quiet"]) == 2
    assert "does not match" in capsys.readouterr().err and not out.exists()


def test_pickled_code_in_a_checkpoint_never_runs(tmp_path):
    import json
    import pickle

    from engine.models.checkpoint import CheckpointError, card_path_for, load_checkpoint, sha256_file

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "x", "state_dict": Payload()}, protocol=2))
    card_path_for(evil).write_text(json.dumps({"sha256": sha256_file(evil), "spec": {}}))
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)
    assert not marker.exists()
