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


def test_a_scale_typed_for_a_photo_size_applies_only_to_that_size_and_never_over_a_files_own():
    from engine.io.exam import photo_size, scale_for_size

    photo = np.zeros((160, 200, 3), np.uint8)
    assert photo_size(photo) == "200x160"  # width first, as cameras give it
    rules = {"200x160": 20.0}
    assert scale_for_size(photo, None, rules) == Spacing((0.02, 0.02), "user")
    assumed = Spacing((0.01, 0.01), "assumed")
    assert scale_for_size(photo, assumed, rules) == Spacing((0.02, 0.02), "user")
    own = Spacing((0.012, 0.012), "file")
    assert scale_for_size(photo, own, rules) is own
    assert scale_for_size(np.zeros((200, 160, 3), np.uint8), assumed, rules) is assumed  # another size
    with pytest.raises(ValueError, match="0.5 to 100"):
        scale_for_size(photo, None, {"200x160": 500.0})
