"""python -m engine inspect: text and JSON output, skipped files, exit codes 0/1/2, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli import main
from engine.synthetic import synthetic_exam, write_gamma_exam

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    exam = synthetic_exam(2, n_bscans=12, fundus_shape=(90, 120), bscan_shape=(40, 48), seed=5)
    exam.exam_id = "G01"
    write_gamma_exam(root / "data", exam)
    (root / "data" / "README.txt").write_text("about this data")
    cv2.imwrite(str(root / "data" / "G01" / "G01_mask.png"), np.zeros((90, 120), np.uint8))
    bad = root / "bad"
    bad.mkdir()
    (bad / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    return root


def test_text_lists_exam_order_scale_and_skips(dataset, capsys):
    assert main(["inspect", str(dataset / "data")]) == 0
    out = capsys.readouterr().out
    assert "exam G01  (gamma:" in out
    assert "fundus: 90 x 120 x 3 uint8" in out
    assert "oct: 12 x 40 x 48 uint8 (N, H, W)" in out and "[assumed]" in out
    assert "0_image.jpg, 1_image.jpg, 2_image.jpg" in out and "9_image.jpg, 10_image.jpg, 11_image.jpg" in out
    assert "skipped" in out and "README.txt: not an image file (a text file, .txt)" in out
    assert "G01_mask.png: annotation mask" in out


def test_json_document_keys(dataset, capsys):
    assert main(["inspect", str(dataset / "data"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"exams", "skipped"} <= set(doc)
    (exam,) = doc["exams"]
    assert {"id", "modalities", "fundus_shape", "oct_shape", "bscan_files"} <= set(exam)
    assert exam["id"] == "G01" and exam["modalities"] == ["fundus", "oct"]
    assert exam["fundus_shape"] == [90, 120, 3] and exam["oct_shape"] == [12, 40, 48]
    assert [Path(p).name for p in exam["bscan_files"]] == [f"{k}_image.jpg" for k in range(12)]
    assert all(set(s) == {"path", "reason"} for s in doc["skipped"])
    assert {Path(s["path"]).name for s in doc["skipped"]} == {"README.txt", "G01_mask.png"}


def test_a_failed_path_exits_one_with_one_line_each(dataset, capsys):
    rc = main(["inspect", str(dataset / "data"), str(dataset / "bad"), str(dataset / "nope"), "--json"])
    assert rc == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert [e["id"] for e in doc["exams"]] == ["G01"]
    lines = captured.err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)
    assert "cut.jpg" in lines[0] and "does not exist" in lines[1]
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("argv", [["inspect"], ["inspect", "x", "--bscans-per-exam", "0"], ["inspect", "--nope", "x"]])
def test_bad_usage_exits_two(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_as_a_process_no_traceback(dataset):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "engine", "inspect", str(dataset / "bad")], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "0 exam(s) loaded" in proc.stdout


def test_demo_shows_the_synthetic_oct(capsys):
    from engine.resources import demo_exam_dir

    assert main(["inspect", str(demo_exam_dir())]) == 0
    out = capsys.readouterr().out
    assert "eye: OS" in out and "oct (SYNTHETIC)" in out and "fundus, " in out
