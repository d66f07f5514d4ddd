"""`inspect` over every folder of the real sample data (GV_SAMPLE_DATA): exams, shapes, B-scan order, skips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import inspect_cmd

pytestmark = pytest.mark.sample_data

FOLDERS = ("fundus_glaucoma", "fundus_disc_cup", "gamma_fundus_grading", "oct_volumes", "oct_dme_bscans",
           "oct_layers_cirrus", "brain_mri_brats", "dental_panoramic", "retina_cc0")


def _inspect(capsys, *argv: str) -> dict:
    import argparse

    parser = argparse.ArgumentParser()
    inspect_cmd.add_parser(parser.add_subparsers())
    rc = inspect_cmd.run(parser.parse_args(["inspect", *argv, "--json"]))
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.err == ""
    return json.loads(captured.out)




def test_every_sample_folder_loads(sample_data, capsys):
    docs = {name: _inspect(capsys, str(sample_data / name)) for name in FOLDERS}
    by_id = {name: {e["id"]: e for e in doc["exams"]} for name, doc in docs.items()}

    glaucoma = by_id["fundus_glaucoma"]
    assert len(glaucoma) == 37 and all("fundus" in e["modalities"] for e in glaucoma.values())
    assert glaucoma["CRFO-v4-59"]["modalities"] == ["fundus", "oct"]
    assert glaucoma["CRFO-v4-59"]["oct_shape"][0] == 1
    assert len(by_id["fundus_disc_cup"]) == 108
    assert len(by_id["gamma_fundus_grading"]) == 60
    assert all(e["fundus_shape"][2] == 3 for d in ("fundus_disc_cup", "gamma_fundus_grading")
               for e in by_id[d].values())

    (vol,) = by_id["oct_volumes"].values()
    assert vol["oct_shape"] == [49, 382, 1009] and vol["eye"] == "OD"
    assert [Path(p).name[-13:] for p in vol["bscan_files"]] == [f"frame_{k:03d}.png" for k in range(1, 50)]

    (dme,) = by_id["oct_dme_bscans"].values()  # one folder, 55 B-scans, no patient boundary in the names
    assert dme["oct_shape"] == [55, 496, 768]
    assert [Path(p).name for p in dme["bscan_files"]] == [f"img_{k}.png" for k in range(55)]
    masks = [s for s in docs["oct_dme_bscans"]["skipped"] if "fluid_masks" in s["path"]]
    assert len(masks) == 55 and all("annotation folder" in s["reason"] for s in masks)

    cirrus = by_id["oct_layers_cirrus"]
    assert len(cirrus) == 2 and all(e["modalities"] == ["oct"] and e["oct_shape"][0] == 1 for e in cirrus.values())

    brats = by_id["brain_mri_brats"]
    assert sorted(brats) == ["brats_2013_pat0001_1", "brats_2013_pat0005_1"]
    for case in brats.values():
        assert case["mri_shapes"] == {"flair": [155, 240, 240], "t1ce": [155, 240, 240]}
        assert case["scale"]["mri"]["source"] == "file"
    labels = [s for s in docs["brain_mri_brats"]["skipped"] if s["path"].endswith(".nii.gz")]
    assert len(labels) == 4 and all("label map or mask" in s["reason"] for s in labels)

    dental = by_id["dental_panoramic"]
    assert len(dental) == 2 and all(e["xray_shape"] == [1435, 2943] for e in dental.values())

    retina = by_id["retina_cc0"]
    assert retina["retina"]["fundus_shape"] == [1411, 1411, 3]


def test_dme_split_into_five_patients(sample_data, capsys):
    doc = _inspect(capsys, str(sample_data / "oct_dme_bscans" / "images"), "--bscans-per-exam", "11")
    assert [e["id"] for e in doc["exams"]] == [f"images_{k}-{k + 10}" for k in range(0, 55, 11)]
    assert all(e["oct_shape"] == [11, 496, 768] for e in doc["exams"])
    assert [Path(p).name for p in doc["exams"][2]["bscan_files"]] == [f"img_{k}.png" for k in range(22, 33)]
