"""Glioma grader: attention gates, the network, focal loss, slice selection, patient grade, variants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.progress import CancelToken, Cancelled
from engine.tasks import glioma, phantoms
from engine.tasks._common import in_memory_model


@pytest.mark.parametrize("local_hw, gate_hw", [((16, 16), (4, 4)), ((12, 20), (3, 5)), ((8, 8), (1, 1))])
def test_attention_gate_shapes_and_range(local_hw, gate_hw):
    gate = glioma.AttentionGate(local_channels=6, gate_channels=10, inter_channels=4)
    local = torch.randn(3, 6, *local_hw)
    vector, attention = gate(local, torch.randn(3, 10, *gate_hw))
    assert vector.shape == (3, 6)
    assert attention.shape == (3, 1, *local_hw)
    assert float(attention.detach().min()) >= 0.0 and float(attention.detach().max()) <= 1.0


def test_attention_gate_vector_is_attention_weighted_mean():
    gate = glioma.AttentionGate(2, 2, 2)
    local = torch.randn(1, 2, 4, 4)
    vector, attention = gate(local, torch.randn(1, 2, 2, 2))
    expected = (attention * local).sum(dim=(2, 3)) / attention.sum(dim=(2, 3))
    assert torch.allclose(vector, expected)


def test_network_outputs_and_attention_map_sizes():
    spec = glioma.make_spec(("flair", "t1ce", "t2"), width=4, size=(64, 96))
    net = glioma.build_model(spec).eval()
    logits, att3, att4 = net.forward_with_attention(torch.randn(2, 3, 64, 96))
    assert logits.shape == (2, 2)
    assert att3.shape == (2, 1, 8, 12)  # pool-3: 1/8
    assert att4.shape == (2, 1, 4, 6)  # pool-4: 1/16
    # the classifier sees [global (8w), pool-3 attended (4w), pool-4 attended (8w)]
    assert net.classifier.in_features == 8 * 4 + 4 * 4 + 8 * 4


def test_vgg16_layout_at_full_width():
    net = glioma.build_model(glioma.make_spec(("flair", "t1ce", "t2"), width=64))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def test_focal_loss_matches_a_hand_computed_value():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    target = torch.tensor([0, 0])
    # p_t = softmax: sample 1 -> e^2 / (e^2 + 1); sample 2 -> 1 / (1 + e)
    p1 = math.exp(2) / (math.exp(2) + 1)
    p2 = 1 / (1 + math.e)
    gamma = 2.0
    hand = (-(1 - p1) ** gamma * math.log(p1) - (1 - p2) ** gamma * math.log(p2)) / 2
    assert glioma.focal_loss(logits, target, gamma=gamma).item() == pytest.approx(hand, rel=1e-6)
    # alpha weights each sample by its true class's weight
    hand_alpha = (0.25 * -(1 - p1) ** gamma * math.log(p1) + 0.25 * -(1 - p2) ** gamma * math.log(p2)) / 2
    assert glioma.focal_loss(logits, target, gamma=gamma, alpha=[0.25, 0.75]).item() == pytest.approx(hand_alpha, rel=1e-6)


def test_focal_loss_with_gamma_zero_is_cross_entropy():
    logits, target = torch.randn(5, 2), torch.tensor([0, 1, 1, 0, 1])
    assert glioma.focal_loss(logits, target, gamma=0.0).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, target).item(), rel=1e-6
    )


@pytest.mark.parametrize("background", [0.0, -3.6])
def test_brain_mask_finds_the_head_for_zero_and_constant_backgrounds(background):
    vol = np.full((6, 20, 20), background, np.float32)
    vol[2:4, 5:15, 5:15] = np.random.default_rng(0).normal(1.0, 0.2, (2, 10, 10))
    mask = glioma.brain_mask({"flair": vol})
    assert mask.sum() == 2 * 100
    assert mask[2:4, 5:15, 5:15].all()


def test_prepare_slices_skips_slices_without_brain_and_normalises():
    mri = phantoms.phantom_brain_mri("HGG", (24, 64, 64), ("flair", "t1ce"))
    stack = glioma.prepare_slices(mri, ("flair", "t1ce"), (32, 32), min_brain_fraction=0.05)
    assert stack.slices.shape[1:] == (2, 32, 32) and stack.slices.dtype == np.float32
    assert 0 < len(stack.indices) < 24
    assert (stack.brain_fraction[stack.indices] >= 0.05).all()
    skipped = np.setdiff1d(np.arange(24), stack.indices)
    assert (stack.brain_fraction[skipped] < 0.05).all()
    assert np.abs(stack.slices).max() <= glioma.CLIP


def test_missing_sequence_gives_a_clear_message():
    mri = phantoms.phantom_brain_mri("LGG", (8, 32, 32), ("flair",))
    with pytest.raises(glioma.GliomaInputError, match="missing MRI sequence.*T1ce.*the exam has FLAIR"):
        glioma.check_sequences(mri, ("flair", "t1ce"))


def test_no_brain_at_all_is_refused():
    with pytest.raises(glioma.GliomaInputError, match="no axial slice holds brain"):
        glioma.prepare_slices({"flair": np.zeros((4, 32, 32), np.float32)}, ("flair",))


def _tiny_model(sequences=("flair", "t1ce"), aggregation="mean"):
    torch.manual_seed(0)
    spec = glioma.make_spec(sequences, width=4, size=(32, 32), aggregation=aggregation)
    return in_memory_model(glioma.build_model(spec), spec, name="tiny")


def test_grade_returns_patient_probabilities_and_a_volume_attention_map():
    mri = phantoms.phantom_brain_mri("HGG", (20, 48, 40), ("flair", "t1ce"))
    result = glioma.grade_glioma(mri, _tiny_model(), batch_size=4)
    assert set(result.probabilities) == {"HGG", "LGG"}
    assert sum(result.probabilities.values()) == pytest.approx(1.0)
    assert result.grade in ("HGG", "LGG")
    assert result.attention.shape == (20, 48, 40) and result.attention.dtype == np.float32
    skipped = np.setdiff1d(np.arange(20), result.slice_indices)
    assert skipped.size and not result.attention[skipped].any()
    assert result.attention[result.slice_indices].max() > 0
    assert result.slice_probabilities.shape == (len(result.slice_indices), 2)
    assert np.allclose(result.slice_probabilities.mean(axis=0), [result.probabilities["HGG"], result.probabilities["LGG"]])


def test_missing_t2_runs_the_variant_for_what_is_present_and_says_so():
    mri = phantoms.phantom_brain_mri("HGG", (12, 32, 32), ("flair", "t1ce"))
    result = glioma.grade_glioma(mri, _tiny_model())
    assert result.sequences == ("flair", "t1ce")
    assert any("T2 not in the exam" in n and "FLAIR + T1ce" in n for n in result.notes)


def test_pick_variant_prefers_the_model_using_most_sequences():
    two, three = _tiny_model(("flair", "t1ce")), _tiny_model(("flair", "t1ce", "t2"))
    full = phantoms.phantom_brain_mri("LGG", (8, 32, 32), ("flair", "t1ce", "t2"))
    assert glioma.pick_variant(full, [two, three]) is three
    partial = {k: full[k] for k in ("flair", "t1ce")}
    assert glioma.pick_variant(partial, [two, three]) is two
    with pytest.raises(glioma.GliomaInputError, match="no glioma model fits"):
        glioma.pick_variant({"flair": full["flair"]}, [two, three])


def test_vote_aggregation_follows_the_majority_of_slices():
    mri = phantoms.phantom_brain_mri("LGG", (12, 32, 32), ("flair", "t1ce"))
    result = glioma.grade_glioma(mri, _tiny_model(aggregation="vote"))
    assert result.aggregation == "vote"
    if result.vote_share != 0.5:
        assert result.grade == ("HGG" if result.vote_share > 0.5 else "LGG")


def test_cancel_stops_between_batches():
    token = CancelToken()
    token.cancel()
    mri = phantoms.phantom_brain_mri("HGG", (12, 32, 32), ("flair", "t1ce"))
    with pytest.raises(Cancelled):
        glioma.grade_glioma(mri, _tiny_model(), cancel=token)


def test_spec_validation():
    with pytest.raises(ValueError, match="multiple of 32"):
        glioma.make_spec(("flair",), size=(100, 100))
    with pytest.raises(ValueError, match="sequences"):
        glioma.make_spec(("flair", "dwi"))
    assert glioma.canonical_sequences(["T2", "flair"]) == ("flair", "t2")
