"""The layers branch of ``segment``: label PNGs, thickness CSV, en-face map, error rows; real samples."""

from __future__ import annotations

import csv
import json
import types

import cv2
import numpy as np
import pytest

from engine.oct.segment_cli import CSV_NAME, run_layers
from engine.synthetic import synthetic_volume


def _args(inputs, out, **kw):
    return types.SimpleNamespace(inputs=[str(p) for p in inputs], out=str(out), json=kw.pop("json", False), **kw)


def _write_series(folder, n=3, shape=(200, 160)):
    folder.mkdir(parents=True)
    vol = synthetic_volume(n, shape, grade=1, seed=2)
    for k, scan in enumerate(vol.volume):
        cv2.imwrite(str(folder / f"bscan_{k}.png"), scan)
    return vol


def _check_outputs(out, exam_id, n, shape):
    labels = sorted((out / exam_id / "labels").glob("*.png"))
    assert len(labels) == n
    for path in labels:
        lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert lab.shape == shape and lab.dtype == np.uint8 and lab.max() <= 8
        assert (np.diff(lab.astype(np.int16), axis=0) >= 0).all()
    assert (out / exam_id / "rnfl_enface.png").is_file()
    summary = json.loads((out / exam_id / "summary.json").read_text())
    assert summary["method"] == "graph-search" and summary["unit"] == "px"
    return summary


def test_volume_folder(tmp_path, capsys):
    vol = _write_series(tmp_path / "scanA")
    rc = run_layers(_args([tmp_path / "scanA"], tmp_path / "out", json=True))
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exams"][0]["exam_id"] == "scanA"
    summary = _check_outputs(tmp_path / "out", "scanA", 3, (200, 160))
    assert summary["label_values"]["1"] == "NFL"
    with open(tmp_path / "out" / CSV_NAME, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["bscan"] for r in rows] == ["0", "1", "2"] and all(r["status"] == "ok" for r in rows)
    truth = (vol.boundaries[:, 1] - vol.boundaries[:, 0]).mean(axis=1)
    assert np.abs(np.array([float(r["NFL_mean"]) for r in rows]) - truth).max() < 2.0
    assert not list((tmp_path / "out").rglob("*.tmp"))  # atomic writes leave no temp files


def test_bad_input_gives_error_row(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    rc = run_layers(_args([bad], tmp_path / "out"))
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    with open(tmp_path / "out" / CSV_NAME, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and rows[0]["status"] == "error" and rows[0]["message"]


def test_network_without_weights_is_one_line(tmp_path, capsys):
    _write_series(tmp_path / "scanB", n=1)
    rc = run_layers(_args([tmp_path / "scanB"], tmp_path / "out", method="network", weights=str(tmp_path / "no.pt")))
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]


def test_every_real_oct_sample(sample_data, tmp_path):
    """Layers and RNFL thickness for every real OCT sample; boundaries ordered, ILM above NFL/GCL above RPE."""
    inputs = [sample_data / "oct_volumes", sample_data / "oct_dme_bscans", sample_data / "oct_layers_cirrus" / "images"]
    out = tmp_path / "out"
    assert run_layers(_args(inputs, out)) == 0
    with open(out / CSV_NAME, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 49 + 55 + 2 and all(r["status"] == "ok" for r in rows)
    assert all(float(r["NFL_mean"]) > 0 and float(r["total_retina_mean"]) > 0 for r in rows)
    for summary_path in out.glob("*/summary.json"):
        summary = json.loads(summary_path.read_text())
        assert summary["unit"] == "px" and summary["method"] == "graph-search"
        for lab_path in (summary_path.parent / "labels").glob("*.png"):
            lab = cv2.imread(str(lab_path), cv2.IMREAD_UNCHANGED)
            assert (np.diff(lab.astype(np.int16), axis=0) >= 0).all()
            assert set(np.unique(lab)) >= {0, 1, 7}
