"""Dataset readers: GAMMA (xlsx / csv, multi-modality, fundus-only, test folders), ODIR-5K, class folders, BraTS;
layout errors name the missing file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.train.datasets.brats import read_brats, sequence_of
from engine.train.datasets.classfolders import read_classfolders
from engine.train.datasets.common import LayoutError, read_table
from engine.train.datasets.gamma import read_gamma
from engine.train.datasets.odir import LABELS, read_odir, stratification_label


def _png(path: Path, value: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))


def _xlsx(path: Path, rows: list[list[object]]) -> None:
    """A minimal one-sheet .xlsx: strings inline, numbers as numbers (as Excel stores GAMMA's ids)."""
    cells = []
    for r, row in enumerate(rows, start=1):
        out = []
        for c, value in enumerate(row):
            ref = f"{chr(65 + c)}{r}"
            if isinstance(value, str):
                out.append(f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>')
            else:
                out.append(f'<c r="{ref}"><v>{float(value)}</v></c>')
        cells.append(f'<row r="{r}">{"".join(out)}</row>')
    sheet = ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
             f'spreadsheetml/2006/main"><sheetData>{"".join(cells)}</sheetData></worksheet>')
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("xl/worksheets/sheet1.xml", sheet)


def _gamma(root: Path, cases: dict[int, int], oct_slices: int = 3) -> Path:
    rows: list[list[object]] = [["data", "non", "early", "mid_advanced"]]
    for case, grade in cases.items():
        rows.append([case, *[int(k == grade) for k in range(3)]])
        cid = f"{case:04d}"
        _png(root / "multi-modality_images" / cid / f"{cid}.jpg")
        for k in (*range(oct_slices - 1), 10):  # 0, 1, ..., 10: natural order, not text order
            _png(root / "multi-modality_images" / cid / cid / f"{k}_image.jpg")
        _png(root / "Disc_Cup_Mask" / f"{cid}.png", 128)
    root.mkdir(parents=True, exist_ok=True)
    _xlsx(root / "glaucoma_grading_training_GT.xlsx", rows)
    return root


def test_gamma_training_layout_from_xlsx(tmp_path: Path) -> None:
    items = read_gamma(_gamma(tmp_path / "training", {1: 0, 2: 2, 13: 1}), require_labels=True, require_oct=True)
    assert [it["id"] for it in items] == ["0001", "0002", "0013"]
    assert [it["label"] for it in items] == [0, 2, 1]
    assert [Path(p).name for p in items[0]["oct"]] == ["0_image.jpg", "1_image.jpg", "10_image.jpg"]
    assert items[1]["mask"].endswith("Disc_Cup_Mask/0002.png")


def test_gamma_errors_name_the_missing_file(tmp_path: Path) -> None:
    root = _gamma(tmp_path / "training", {1: 0, 2: 1})
    (root / "multi-modality_images" / "0002" / "0002.jpg").unlink()
    with pytest.raises(LayoutError, match="case 0002 is in glaucoma_grading_training_GT.xlsx but "
                                          "multi-modality_images/0002/0002.jpg is missing"):
        read_gamma(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no glaucoma_grading_training_GT.csv or .xlsx.*expected"):
        read_gamma(tmp_path / "empty", require_labels=True)
    bad = tmp_path / "bad"
    _png(bad / "images" / "0001.jpg")
    (bad / "glaucoma_grading_training_GT.csv").write_text("data,non,early,mid_advanced\n0001,1,1,0\n")
    with pytest.raises(LayoutError, match="exactly one 1"):
        read_gamma(bad)


def test_gamma_fundus_only_and_unlabelled_test_folder(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    for cid in ("0001", "0005"):
        _png(flat / "images" / f"{cid}.jpg")
    (flat / "glaucoma_grading_training_GT.csv").write_text("data,non,early,mid_advanced\n1,0,1,0\n0005,0,0,1\n")
    assert [(it["id"], it["label"], it["oct"]) for it in read_gamma(flat)] == [("0001", 1, []), ("0005", 2, [])]
    test = tmp_path / "test"
    for cid in ("0201", "0202"):
        _png(test / cid / f"{cid}.jpg")
    assert [(it["id"], it["label"]) for it in read_gamma(test)] == [("0201", -1), ("0202", -1)]


def test_gamma_shared_sample(sample_data: Path) -> None:
    items = read_gamma(sample_data / "gamma_fundus_grading", require_labels=True)
    assert len(items) == len(list((sample_data / "gamma_fundus_grading" / "images").glob("*.jpg")))
    assert {it["label"] for it in items} <= {0, 1, 2} and all(Path(it["fundus"]).is_file() for it in items)


def test_odir_release_layout(tmp_path: Path) -> None:
    root = tmp_path / "odir"
    header = ["ID", "Patient Age", "Left-Fundus", "Right-Fundus", *LABELS]
    _xlsx(root.parent / "x.xlsx", [header])  # a stray table elsewhere is not read
    rows = [header, [0, 69, "0_left.jpg", "0_right.jpg", 0, 0, 1, 0, 0, 0, 0, 0],
            [1, 57, "1_left.jpg", "1_right.jpg", 1, 0, 0, 0, 0, 0, 0, 0]]
    root.mkdir()
    _xlsx(root / "ODIR-5K_Training_Annotations(Updated)_V2.xlsx", rows)
    for name in ("0_left", "0_right", "1_left"):
        _png(root / "ODIR-5K_Training_Dataset" / f"{name}.jpg")
    with pytest.raises(LayoutError, match="row 3 names 1_right.jpg, which is not in the photo folders"):
        read_odir(root)
    _png(root / "ODIR-5K_Training_Dataset" / "1_right.jpg")
    items = read_odir(root)
    assert [(it["id"], it["patient"], it["eye"]) for it in items] == [
        ("0_left", "0", "OS"), ("0_right", "0", "OD"), ("1_left", "1", "OS"), ("1_right", "1", "OD")]
    assert items[0]["labels"] == [0, 0, 1, 0, 0, 0, 0, 0]
    assert stratification_label(items[0]["labels"]) == LABELS.index("G")


def test_odir_kaggle_full_df_and_missing_table(tmp_path: Path) -> None:
    root = tmp_path / "kaggle"
    _png(root / "preprocessed_images" / "7_left.jpg")
    (root / "full_df.csv").write_text("filename,N,D,G,C,A,H,M,O\n7_left.jpg,0,1,0,0,0,0,1,0\n")
    (item,) = read_odir(root)
    assert item["id"] == "7_left" and item["eye"] == "OS" and item["labels"] == [0, 1, 0, 0, 0, 0, 1, 0]
    (tmp_path / "none").mkdir()
    with pytest.raises(LayoutError, match="no labels table with the columns N,D,G,C,A,H,M,O"):
        read_odir(tmp_path / "none")


def test_class_folders_patients_and_order(tmp_path: Path) -> None:
    root = tmp_path / "set"
    _png(root / "healthy" / "pA" / "1.png")
    _png(root / "healthy" / "pA" / "2.png")
    _png(root / "osteoporosis" / "x.jpg")
    (root / "notes").mkdir()  # no images: not a class
    items, classes = read_classfolders(root)
    assert classes == ["healthy", "osteoporosis"]
    assert [(it["id"], it["label"], it["patient"]) for it in items] == [
        ("healthy/pA/1.png", 0, "pA"), ("healthy/pA/2.png", 0, "pA"), ("osteoporosis/x.jpg", 1, "osteoporosis/x")]
    (root / "classes.txt").write_text("osteoporosis\nhealthy\n")
    assert read_classfolders(root)[1] == ["osteoporosis", "healthy"]
    (root / "classes.txt").write_text("osteoporosis\nnormal\n")
    with pytest.raises(LayoutError, match="class folder\\(s\\) normal missing"):
        read_classfolders(root)


def test_brats_sequences_and_grades(tmp_path: Path) -> None:
    assert [sequence_of(n) for n in ("BraTS19_1_flair.nii.gz", "x_t1ce.nii.gz", "T1c_sub.nii.gz", "t1.nii",
                                     "OTMultiClass.nii.gz", "x_seg.nii.gz", "brainmask.nii.gz")] == [
        "flair", "t1ce", "t1ce", "t1", "seg", "seg", None]
    for grade, case in (("HGG", "c1"), ("LGG", "c2")):
        for seq in ("flair", "t2"):
            path = tmp_path / grade / case / f"{case}_{seq}.nii.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")  # the reader only looks at names
    items = read_brats(tmp_path, require=("flair",))
    assert [(it["id"], it["grade"], it["label"], it["t1"]) for it in items] == [("c1", "HGG", 0, None),
                                                                               ("c2", "LGG", 1, None)]
    with pytest.raises(LayoutError, match="no t1ce file in this case"):
        read_brats(tmp_path, require=("t1ce",))


def test_csv_table_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffdata,non\n0001,1\n".encode())
    assert read_table(path) == [{"data": "0001", "non": "1"}]
