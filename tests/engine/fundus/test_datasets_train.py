import numpy as np
import pytest

from engine.fundus.datasets import DatasetLayoutError, decode_masks, discover, load_case, source_folds
from fundus_helpers import write_gamma_tree


def test_gamma_and_odoc_conventions_are_opposite():
    gamma = np.array([[0, 128, 255]], np.uint8)
    odoc = 255 - gamma
    for m, conv in ((gamma, "gamma"), (odoc, "odoc")):
        disc, cup = decode_masks([m], conv)
        assert disc.tolist() == [[True, True, False]] and cup.tolist() == [[True, False, False]]
    soft_disc = np.array([[64, 128, 191]], np.uint8)  # 1, 2, 3 of 4 experts
    disc, cup = decode_masks([soft_disc, np.zeros_like(soft_disc)], "soft")
    assert disc.tolist() == [[False, True, True]] and not cup.any()
    with pytest.raises(ValueError):
        decode_masks([gamma], "white")


def test_discover_gamma_layout_and_folds(tmp_path):
    truths = write_gamma_tree(tmp_path / "gamma")
    cases = discover(tmp_path / "gamma")
    assert [c.case_id for c in cases] == [f"gamma/{k:04d}" for k in range(4)]
    image, disc, cup = load_case(cases[1])
    assert (disc == truths[1].disc_mask).all() and (cup == truths[1].cup_mask).all()
    assert source_folds(cases) == []  # one source: nothing to hold out
    with pytest.raises(DatasetLayoutError, match="Disc_Cup_Mask"):
        discover(tmp_path / "gamma" / "0000")


def test_train_samples_and_metrics(tmp_path):
    import torch

    from engine.fundus import train_task as T

    write_gamma_tree(tmp_path / "g", n=2)
    prepared = [T.prepare(c) for c in discover(tmp_path / "g")]
    ds = T.DiscCupTrainSet(prepared, 64, samples_per_case=4)
    rng = np.random.default_rng(0)
    for i in range(12):
        img, label = ds.sample(i, rng)
        assert img.shape == (64, 64, 3) and set(np.unique(label)) <= {0, 1, 2}
    item = T.DiscCupEvalSet(prepared, 64, 2.0)[0]
    assert item["image"].shape == (3, 64, 64) and (item["mask"] == 2).any()
    onehot = torch.nn.functional.one_hot(item["mask"][None], 3).permute(0, 3, 1, 2).float() * 10
    m = T.crop_metrics(onehot, {"mask": item["mask"][None]})
    assert m["dice_disc"] == 1.0 and m["dice_cup"] == 1.0 and m["vcdr_mae"] == 0.0
    loss = T.make_loss()
    assert float(loss(onehot, {"mask": item["mask"][None]})) < float(loss(-onehot, {"mask": item["mask"][None]}))


@pytest.mark.parametrize("kind", ["nested", "classes"])
def test_both_dice_kinds_reward_the_truth(tmp_path, kind):
    import torch

    from engine.fundus import train_task as T

    write_gamma_tree(tmp_path / "g", n=1)
    item = T.DiscCupEvalSet([T.prepare(c) for c in discover(tmp_path / "g")], 64, 2.0)[0]
    batch = {"mask": item["mask"][None]}
    truth = torch.nn.functional.one_hot(batch["mask"], 3).permute(0, 3, 1, 2).float() * 10
    rim_for_cup = truth[:, [0, 2, 1]]  # the cup called rim and the rim cup
    loss = T.make_loss(kind=kind)
    assert float(loss(truth, batch)) < 0.05 < float(loss(rim_for_cup, batch))
    with pytest.raises(ValueError, match="model.dice"):
        T.make_loss(kind="jaccard")


def test_fine_crops_follow_fine_scale(tmp_path):
    """With no coarse or empty crops, every crop is ``fine_scale`` disc diameters across: the disc's share of it."""
    from engine.fundus import train_task as T

    write_gamma_tree(tmp_path / "g", n=1, size=(400, 400))
    prepared = [T.prepare(c) for c in discover(tmp_path / "g")]
    rng = np.random.default_rng(0)
    for scale in (1.5, 3.0):
        ds = T.DiscCupTrainSet(prepared, 96, p_coarse=0.0, p_negative=0.0, fine_scale=(scale, scale), fine_jitter=0.0)
        rows = [np.flatnonzero((ds.sample(0, rng)[1] >= 1).any(axis=1)) for _ in range(4)]
        heights = [r[-1] - r[0] + 1 for r in rows]
        assert all(abs(h - 96 / scale) < 0.2 * 96 / scale for h in heights), (scale, heights)


def test_blur_sigma_sets_how_out_of_focus_the_training_crops_get():
    """A one-pixel checkerboard survives the augmentation's light blur but not a blur of sigma 4 px (30 draws: the
    blur is drawn for 30 % of crops)."""
    from engine.fundus import train_task as T

    board = np.indices((64, 64)).sum(axis=0) % 2 * 0.6 + 0.2
    chw = np.repeat(board[None].astype(np.float32), 3, axis=0)

    def least_contrast(sigma: tuple[float, float]) -> float:
        transforms = T.intensity_transforms(sigma)
        left = []
        for seed in range(30):
            transforms.set_random_state(seed=seed)
            out = np.asarray(transforms(chw.copy()))[0]
            left.append(float(np.abs(np.diff(out, axis=1)).mean()))
        return min(left)

    assert least_contrast((0.3, 0.3)) > 0.3 and least_contrast((4.0, 4.0)) < 0.1


def test_p_grey_sets_the_share_of_crops_without_colour():
    """``p_grey`` 1: every crop has three equal channels (luma or green), and black outside the field of view stays
    black; ``p_grey`` 0: the colour augmentation as before (same random draws), colour kept."""
    from engine.fundus import train_task as T

    rng = np.random.default_rng(0)
    crop = rng.integers(20, 250, (32, 32, 3)).astype(np.uint8)
    crop[:4] = 0
    transforms = T.intensity_transforms()
    for seed in range(8):
        grey = T.augment_colour(crop, np.random.default_rng(seed), transforms, p_grey=1.0)
        assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
        assert not grey[:4].any() and grey[4:].any()
        before = T.augment_colour(crop, np.random.default_rng(seed), transforms)
        assert np.array_equal(T.augment_colour(crop, np.random.default_rng(seed), transforms, p_grey=0.0), before)
        assert np.abs(before[4:, :, 0].astype(int) - before[4:, :, 1]).mean() > 10


@pytest.mark.parametrize("setting, says", [
    ("model.dice=jaccard", "model.dice must be one of nested, classes"),
    ("data.fine_scale=2.0", "data.fine_scale must be [low, high]"),
    ("data.fine_scale=[2.2, 1.8]", "data.fine_scale must be [low, high]"),
    ("data.fine_jitter=0.7", "data.fine_jitter a share of the side"),
    ("data.blur_sigma=[3.0, 1.0]", "data.blur_sigma must be [low, high]"),
    ("data.blur_sigma=0", "data.blur_sigma must be [low, high]"),
    ("data.p_grey=1.5", "data.p_grey must be a share"),
    ("data.p_grey=grey", "data.p_grey must be a share"),
])
def test_a_bad_fine_crop_or_loss_setting_is_one_error_line(tmp_path, capsys, setting, says):
    from engine.cli import main

    write_gamma_tree(tmp_path / "g", n=3, size=(160, 160))
    code = main(["train", "disc-cup", "--data", str(tmp_path / "g"), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--device", "cpu", "--set", "data.input_size=48", "--set", "model.channels=[4,8]",
                 "--set", "batch_size=4", "--set", setting])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [next(
        line for line in err.splitlines() if says in line)]


def test_train_command_writes_a_hashed_checkpoint(tmp_path, capsys):
    from engine.cli import main
    from engine.fundus.segmenter import load_segmenter

    write_gamma_tree(tmp_path / "g", n=5, size=(200, 200))
    out = tmp_path / "run"
    code = main(["train", "disc-cup", "--data", str(tmp_path / "g"), "--out", str(out), "--epochs", "1",
                 "--device", "cpu", "--set", "data.input_size=48", "--set", "model.channels=[4,8]",
                 "--set", "data.samples_per_case=2", "--set", "batch_size=4"])
    assert code == 0, capsys.readouterr().err
    seg = load_segmenter(out / "best.pt")
    assert seg.size == 48 and len(seg.sha256) == 64
    assert seg.predict(np.zeros((1, 48, 48, 3), np.uint8)).shape == (1, 3, 48, 48)


def test_a_few_photos_of_another_source_join_training_only(tmp_path, monkeypatch):
    """``data.include`` adds named photos of a source left out by ``data.sources``; they train, never validate."""
    from dataclasses import replace
    from types import SimpleNamespace

    from engine.fundus import train_task as T
    from engine.train.datasets.common import LayoutError

    write_gamma_tree(tmp_path / "g", n=4, size=(160, 160))
    cases = discover(tmp_path / "g")
    mixed = cases[:2] + [replace(c, source="site") for c in cases[2:]]
    monkeypatch.setattr(T, "discover", lambda *a, **k: list(mixed))
    cohort = T.read_cohort(tmp_path / "g", SimpleNamespace(data={"sources": ["gamma"], "include": ["gamma/0003"]}))
    assert [(it["id"], it["source"]) for it in cohort.items] == [("gamma/0000", "gamma"), ("gamma/0001", "gamma"),
                                                                  ("gamma/0003", "site")]
    assert cohort.train_only == [False, False, True] and cohort.description.endswith("gamma 2, site 1")
    with pytest.raises(LayoutError, match="'gamma/0009' \\(1 of data.include not found\\)"):
        T.read_cohort(tmp_path / "g", SimpleNamespace(data={"sources": ["gamma"], "include": ["gamma/0009"]}))
