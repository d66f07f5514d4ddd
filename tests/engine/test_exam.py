import numpy as np
import pytest

from engine.io.exam import Exam, Provenance, Spacing


def test_modalities_in_fixed_order():
    exam = Exam("P1", fundus=np.zeros((4, 5, 3), np.uint8), oct=np.zeros((2, 3, 4), np.uint8))
    assert exam.modalities == ("fundus", "oct")
    assert Exam("P2").modalities == ()
    assert exam.nbytes() == 4 * 5 * 3 + 2 * 3 * 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fundus": np.zeros((4, 5), np.uint8)},  # not RGB
        {"fundus": np.zeros((4, 5, 4), np.uint8)},  # RGBA must be converted by the reader
        {"fundus": np.zeros((4, 5, 3), np.float64)},  # pixels stay uint8
        {"oct": np.zeros((2, 3, 4), np.float32)},
        {"oct": np.zeros((3, 4), np.uint8)},
        {"eye": "left"},
        {"oct": np.zeros((2, 3, 4), np.uint8), "bscan_files": ["a.png"]},
        {"oct": np.zeros((2, 3, 4), np.uint8), "bscan_positions": np.zeros((3, 2, 2), np.float32)},
    ],
)
def test_invalid_exams_are_refused(kwargs):
    with pytest.raises(ValueError):
        Exam("P", **kwargs)


def test_spacing_source_and_validation():
    assert Spacing((0.01, 0.01), "file").is_physical
    assert Spacing((0.01, 0.01), "user").is_physical
    assert not Spacing((0.01, 0.01), "assumed").is_physical
    for bad in [(0.0, 1.0), (-1.0, 1.0), (float("nan"), 1.0)]:
        with pytest.raises(ValueError):
            Spacing(bad, "file")


def test_provenance_defaults_are_not_shared():
    a, b = Exam("A"), Exam("B")
    a.provenance.notes.append("x")
    assert b.provenance.notes == []
    assert not Exam("C", provenance=Provenance("r")).is_synthetic
