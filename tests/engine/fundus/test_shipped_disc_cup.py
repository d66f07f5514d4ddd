"""The shipped disc/cup model on the bundled real CC0 photo (no sample data needed): the same disc and ratio come
back from 1 to 12 megapixels, with another aspect ratio or a black border, out of focus, for the mirrored (other)
eye, from a crop centred on the disc (an optic-nerve-head photo), and without colour."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.fundus import analyse_disc
from engine.fundus.analysis import FOCUS_MESSAGE
from engine.fundus.evaluate import dice
from engine.fundus.segmenter import default_weights_path

PHOTO = Path(__file__).resolve().parents[3] / "resources" / "demo" / "DEMO01" / "DEMO01.jpg"  # 1411 x 1411, OS


@pytest.fixture(scope="module")
def shipped():
    if not default_weights_path().is_file() or not PHOTO.is_file():
        pytest.skip("no shipped disc/cup weights or demo photo")
    from engine.fundus.segmenter import load_segmenter

    seg = load_segmenter()
    image = np.ascontiguousarray(cv2.imread(str(PHOTO))[:, :, ::-1])
    return seg, image, analyse_disc(image, eye="OS", segmenter=seg)


def _resized(image: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA if side < image.shape[0] else cv2.INTER_CUBIC)


def _padded_16_9(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    out = np.zeros((h, h * 16 // 9, 3), np.uint8)
    out[:, (out.shape[1] - w) // 2 : (out.shape[1] - w) // 2 + w] = image
    return out


def _cropped_4_3(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    top = (h - w * 3 // 4) // 2
    return image[top : top + w * 3 // 4]


def _back(mask: np.ndarray, variant: str, shape: tuple[int, int]) -> np.ndarray:
    """A variant's (H', W') disc mask in the original photo's (H, W) pixels."""
    h, w = shape
    if variant.endswith("MP"):
        return cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    if variant == "16:9 black border":
        left = (mask.shape[1] - w) // 2
        return mask[:, left : left + w]
    out = np.zeros((h, w), bool)
    top = (h - w * 3 // 4) // 2
    out[top : top + mask.shape[0]] = mask
    return out


def _blurred(image: np.ndarray, share: float) -> np.ndarray:
    """Out of focus: a Gaussian blur of sigma ``share`` of the field of view's diameter."""
    return cv2.GaussianBlur(image, (0, 0), share * image.shape[0])


@pytest.mark.parametrize("variant,make", [("12 MP", lambda im: _resized(im, 3464)),
                                          ("1 MP", lambda im: _resized(im, 1000)),
                                          ("16:9 black border", _padded_16_9), ("4:3 crop", _cropped_4_3)])
def test_same_disc_and_ratio_at_any_size_and_aspect(shipped, variant, make):
    seg, image, base = shipped
    result = analyse_disc(make(image), eye="OS", segmenter=seg)
    assert base.found and result.found and result.message == ""
    assert result.biomarkers.vcdr == pytest.approx(base.biomarkers.vcdr, abs=0.03)
    assert result.biomarkers.area_cdr == pytest.approx(base.biomarkers.area_cdr, abs=0.03)
    disc = _back(result.disc_mask, variant, image.shape[:2])
    assert dice(disc, base.disc_mask) > 0.95


def test_an_out_of_focus_photo_is_said_to_be_one_and_a_light_blur_keeps_the_disc_and_ratio(shipped):
    """Blurred by 0.4 % of the field of view: the same disc and ratio (measured: 0.011 off, disc Dice 0.975). By
    0.8 %: said to be out of focus, the cup moves (measured: 0.086 off, disc Dice 0.91; the model before the fine
    pass moved 0.031; on 40 sample photos 0.026 on average, 5 over 0.05: benchmarks/disc_blur.py)."""
    seg, image, base = shipped
    light = analyse_disc(_blurred(image, 0.004), eye="OS", segmenter=seg)
    assert light.found and light.message == "" and base.message == ""
    assert light.biomarkers.vcdr == pytest.approx(base.biomarkers.vcdr, abs=0.03)
    assert dice(light.disc_mask, base.disc_mask) > 0.95
    result = analyse_disc(_blurred(image, 0.008), eye="OS", segmenter=seg)
    assert result.found and result.confidence > 0.8 and result.message == FOCUS_MESSAGE  # said, not hidden
    assert result.biomarkers.vcdr == pytest.approx(base.biomarkers.vcdr, abs=0.1)
    assert dice(result.disc_mask, base.disc_mask) > 0.9


def test_the_mirrored_photo_of_the_other_eye_gives_the_same_rim(shipped):
    seg, image, base = shipped
    mirrored = analyse_disc(np.ascontiguousarray(image[:, ::-1]), eye="OD", segmenter=seg)
    assert mirrored.found
    back = mirrored.disc_mask[:, ::-1]
    assert dice(back, base.disc_mask) > 0.98
    a, b = base.biomarkers, mirrored.biomarkers
    assert b.vcdr == pytest.approx(a.vcdr, abs=0.03)
    for side in ("rim_nasal_px", "rim_temporal_px", "rim_inferior_px", "rim_superior_px"):
        assert getattr(b, side) == pytest.approx(getattr(a, side), rel=0.08), side
    # named, not swapped: the nasal rim stays nearer the original nasal rim than the original temporal one
    assert abs(b.rim_nasal_px - a.rim_nasal_px) < abs(b.rim_nasal_px - a.rim_temporal_px)
    assert b.isnt == a.isnt


def test_the_eye_comes_from_the_discs_side_when_not_given(shipped):
    seg, image, base = shipped
    left = analyse_disc(image, segmenter=seg)  # the CC0 photo of a left eye: its disc on the photo's left
    assert left.eye_inferred and left.biomarkers.eye == "OS" and left.biomarkers.isnt == base.biomarkers.isnt
    right = analyse_disc(np.ascontiguousarray(image[:, ::-1]), segmenter=seg)
    assert right.eye_inferred and right.biomarkers.eye == "OD"
    assert not base.eye_inferred and base.message == ""  # given, and the side agrees
    named = analyse_disc(image, eye="OD", segmenter=seg)  # a photo filed as the other eye
    assert named.biomarkers.eye == "OD" and not named.eye_inferred and "check the eye" in named.message
    unknown = analyse_disc(image, segmenter=seg, infer_eye=False)
    assert unknown.biomarkers.eye == "unknown" and unknown.biomarkers.isnt is None


def _centred_crop(image: np.ndarray, base, fill: float) -> tuple[np.ndarray, tuple[slice, slice]]:
    """A square crop centred on ``base``'s disc, the disc ``fill`` of its side (an optic-nerve-head photo)."""
    rows, cols = np.flatnonzero(base.disc_mask.any(axis=1)), np.flatnonzero(base.disc_mask.any(axis=0))
    half = int((max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1) / fill / 2)
    r, c = int(base.center[0]), int(base.center[1])
    where = (slice(max(r - half, 0), r + half), slice(max(c - half, 0), c + half))  # cut at the photo's edge
    return np.ascontiguousarray(image[where]), where


@pytest.mark.parametrize("fill, within", [(0.6, 0.03), (0.65, 0.03), (0.75, 0.04)])
def test_a_crop_centred_on_the_disc_gives_the_same_disc_and_ratio(shipped, fill, within):
    """An optic-nerve-head photo (the disc ``fill`` of the frame, no black border) is read as one (the disc three
    quarters of the frame: measured 0.036 off)."""
    seg, image, base = shipped
    crop, where = _centred_crop(image, base, fill)
    result = analyse_disc(crop, eye="OS", segmenter=seg)
    assert result.found and result.centred and result.message == ""
    assert result.biomarkers.vcdr == pytest.approx(base.biomarkers.vcdr, abs=within)
    assert dice(result.disc_mask, base.disc_mask[where]) > 0.93


def test_a_crop_that_shows_the_black_edge_of_the_field_of_view_is_read_as_a_full_photo(shipped):
    seg, image, base = shipped
    crop, _ = _centred_crop(image, base, 0.5)  # this disc lies near the field of view's edge
    assert not analyse_disc(crop, eye="OS", segmenter=seg).centred


def test_a_disc_placed_by_hand_on_a_crop_round_the_disc_is_measured_at_its_size(shipped):
    """On a photo without a black border the place given is looked at with both size priors: a disc two thirds
    of the frame off the middle is found where the user put it."""
    seg, image, base = shipped
    crop, where = _centred_crop(image, base, 0.65)
    shift = crop.shape[0] // 8  # the disc off the middle of the frame
    crop = np.ascontiguousarray(crop[:, shift:])
    disc_at = (base.center[0] - where[0].start, base.center[1] - where[1].start - shift)
    result = analyse_disc(crop, eye="OS", segmenter=seg, disc_at=disc_at)
    assert result.found and result.centred and result.placed_at == pytest.approx(disc_at)
    assert result.biomarkers.vcdr == pytest.approx(base.biomarkers.vcdr, abs=0.03)
    assert dice(result.disc_mask, base.disc_mask[where][:, shift:]) > 0.93


def test_a_photo_without_colour_goes_to_the_networks_trained_with_grey_copies(shipped):
    from engine.fundus.analysis import GREY_MODEL_MESSAGE
    from engine.fundus.localize import without_colour

    seg, image, base = shipped
    assert base.message == "" and seg.grey is not None
    grey = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    for copy in (grey, without_colour(image, "green")):  # a grey camera, a red-free photo
        result = analyse_disc(copy, eye="OS", segmenter=seg)
        # measured: disc Dice 0.984 / 0.965 against the colour photo's disc, vertical CDR 0.523 / 0.500 against
        # 0.498 (the colour networks alone outlined a region beside the disc, Dice 0.56); still said to be checked
        assert result.found and result.message == GREY_MODEL_MESSAGE
        assert dice(result.disc_mask, base.disc_mask) > 0.93
        assert result.biomarkers.vcdr == pytest.approx(base.biomarkers.vcdr, abs=0.05)
    from engine.synthetic import synthetic_fundus

    synthetic = synthetic_fundus((480, 560), cdr=0.5, seed=3).image
    found = analyse_disc(np.repeat(synthetic.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2), segmenter=seg)
    assert found.found and found.message == GREY_MODEL_MESSAGE  # found, and said not to be as sure as on colour
    assert analyse_disc(synthetic, segmenter=seg).message == ""


def test_the_card_sets_issue_3s_plain_baseline_beside_every_held_out_source_block():
    """Measured by benchmarks/disc_cup_plain_baseline.py on the same photos; a card rebuilt without it fails here."""
    from engine.models.checkpoint import read_card

    if not default_weights_path().is_file():
        pytest.skip("no shipped disc/cup weights")
    blocks = [b for b in read_card(default_weights_path())["held_out"] if b["held_out_sources"]]
    assert len(blocks) == 3
    for block in blocks:
        reference = block["reference_baseline"]
        assert reference["label"] == "plain U-Net" and "issue 3" in reference["what"]
        assert set(reference["metrics"]) == set(block["model"])  # the same sources, photo for photo
        assert all(reference["metrics"][s]["n"] == block["model"][s]["n"] for s in block["model"])
