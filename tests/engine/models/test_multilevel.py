"""1/2/3-level graders with concat/add fusion: shapes, transfer from one-level checkpoints, freezing."""

import pytest
import torch

from engine.models.multilevel import MultiLevelGrader
from engine.models.tiny import TINY_BACKBONES

LEVEL_SETS = [("fundus",), ("disc",), ("oct",), ("fundus", "disc"), ("fundus", "oct"), ("fundus", "disc", "oct")]


def _inputs(batch=2):
    return {
        "fundus": torch.randn(batch, 3, 48, 64),
        "disc": torch.randn(batch, 3, 32, 32),
        "oct": torch.randn(batch, 1, 8, 16, 20),
    }


@pytest.mark.parametrize("fusion", ["concat", "add"])
@pytest.mark.parametrize("levels", LEVEL_SETS, ids=["+".join(s) for s in LEVEL_SETS])
def test_forward_shapes_and_cache(levels, fusion):
    torch.manual_seed(0)
    model = MultiLevelGrader({lv: TINY_BACKBONES[lv] for lv in levels}, fusion, width=16, hidden=8).eval()
    inputs = _inputs()
    logits = model(inputs)
    assert logits.shape == (2, 3)
    cache = model.forward_cached(inputs)
    assert torch.allclose(cache.logits, logits.detach(), atol=1e-6)
    assert set(cache.feature_maps) == set(levels)
    assert not cache.logits.requires_grad


def test_missing_input_and_bad_arguments_are_clear():
    model = MultiLevelGrader({"fundus": "tiny2d", "oct": "tiny3d"})
    with pytest.raises(ValueError, match="oct"):
        model({"fundus": torch.zeros(1, 3, 32, 32)})
    with pytest.raises(ValueError, match="fusion"):
        MultiLevelGrader({"fundus": "tiny2d"}, fusion="multiply")
    with pytest.raises(ValueError, match="levels"):
        MultiLevelGrader({"retina": "tiny2d"})


def test_extra_features_are_appended():
    model = MultiLevelGrader({"fundus": "tiny2d"}, extra_features=("vcdr",)).eval()
    out = model({"fundus": torch.zeros(1, 3, 32, 32), "extra": torch.tensor([[0.7]])})
    assert out.shape == (1, 3)
    with pytest.raises(ValueError, match="vcdr"):
        model({"fundus": torch.zeros(1, 3, 32, 32)})


def test_branch_from_one_level_checkpoint_then_frozen():
    torch.manual_seed(0)
    one = MultiLevelGrader({"fundus": "tiny2d"})
    two = MultiLevelGrader({"fundus": "tiny2d", "disc": "tiny2d"}, "add", width=16)
    two.load_branch("fundus", one.state_dict())
    two.load_branch("disc", one.state_dict(), source_level="fundus")
    for a, b in zip(one.branches["fundus"].parameters(), two.branches["disc"].parameters()):
        assert torch.equal(a, b)
    two.freeze(["fundus"])
    two.train()
    assert not two.branches["fundus"].training and two.branches["disc"].training
    before = {k: v.clone() for k, v in two.state_dict().items()}
    opt = torch.optim.SGD([p for p in two.parameters() if p.requires_grad], lr=0.1)
    inputs = _inputs()
    torch.nn.functional.cross_entropy(two(inputs), torch.tensor([0, 2])).backward()
    opt.step()
    after = two.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("branches.fundus."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("branches.disc."))
    with pytest.raises(ValueError, match="oct"):
        two.load_branch("disc", one.state_dict(), source_level="oct")
    with pytest.raises(RuntimeError):
        MultiLevelGrader({"fundus": "small2d"}).load_branch("fundus", one.state_dict())
