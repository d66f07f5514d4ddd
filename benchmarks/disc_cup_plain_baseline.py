"""Issue 3's plain two-stage baseline, trained and evaluated under the project's held-out-source protocol.

    GV_SAMPLE_DATA=../shared/data .venv/bin/python benchmarks/disc_cup_plain_baseline.py --held-out drishti \\
        --out runs/plain/drishti
    python -m engine.fundus.evaluate --compare runs/plain/drishti/evaluation.json OURS.json

The issue quotes, for "a plain two-stage MONAI U-Net trained from scratch on these 122 photos for 18 minutes of
CPU (whole image at 256 px to find the disc, then a crop at 2x the disc diameter)", disc Dice 0.964, cup Dice
0.871 and vertical-CDR error 0.071 on held-out photos of three sources it does not name. This script builds that
baseline as described and measures it on held-out sources chosen here, so that it and the product's recipe are
compared on the same photos:

- **finder**: a MONAI ``UNet`` (16-256 channels, two residual units) on the whole photo resized to 256 x 256 px
  (each channel z-scored as the product's crops are), disc vs background, MONAI ``DiceCELoss``, Adam; flips,
  rotations, zoom and contrast (MONAI transforms);
- **segmenter**: the same network on a crop of 2 disc diameters around the experts' disc (centre jittered by
  5 % of the side, side by +-10 %) at 256 px, background / rim / cup;
- each trained from scratch, batches of 8, for a fixed number of steps (``--steps-find`` 780 + ``--steps-crop``
  1560 by default: 6 + 12 = 18 min on this project's 2-core CPU when nothing else runs; a step count rather than
  a clock, so that the baseline does not depend on the load) on the expert-masked photos of every source but the
  held-out ones (no pseudo labels, no ensembles);
- at test time, on the full-resolution photo: the finder's largest disc component gives the centre (bounding-box
  centre) and the diameter (its larger side), the segmenter's argmax on the 2-diameter crop gives the disc (its
  largest component) and the cup inside it, mapped back to the photo's pixels. Nothing else: no localiser, no
  candidate check, no shape priors.

Ablations (not the baseline; their files say so in ``baseline``): ``--localiser CKPT`` finds the disc as the
product does (:func:`engine.fundus.analyse_disc` with disc-cup weights that never saw the held-out sources) and
skips the finder, ``--crop-size`` changes the segmenter's input side, ``--channels`` / ``--res-units`` its U-Net
(``16 32 64 128`` / ``1`` is the product's), ``--product-colour`` adds the product recipe's colour and camera
augmentation (:func:`engine.fundus.train_task.augment_colour`) before the plain one, ``--weights`` evaluates an
earlier run's ``weights.pt`` instead of training, ``--checkpoint`` (with ``--localiser``) a checkpoint of ``python -m
engine train disc-cup`` as the segmenter, and ``--product-post`` segments as the product's fine pass does (mirrored
mean, :func:`engine.fundus.analysis.clean_masks`' shape priors) instead of argmax.

Rows and summaries are those of :mod:`engine.fundus.evaluate` (:func:`engine.fundus.evaluate.score_masks`,
:func:`engine.fundus.evaluate.summarise`), written to ``OUT/evaluation.json``; ``--compare`` pairs it with any
evaluation file of the same photos. Training and inference times are printed and stored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = 256
"""Side (px) of the finder's whole-photo input and of the segmenter's crop."""
CROP_SCALE = 2.0
"""Segmenter crop side / disc diameter."""
CHANNELS = (16, 32, 64, 128, 256)


def network(out_channels: int, channels: Sequence[int] = CHANNELS, res_units: int = 2) -> Any:
    """The plain MONAI U-Net of both stages (``channels``, ``res_units``: an ablation's other sizes)."""
    from monai.networks.nets import UNet

    return UNet(spatial_dims=2, in_channels=3, out_channels=out_channels, channels=tuple(channels),
                strides=(2,) * (len(channels) - 1), num_res_units=res_units, norm="batch")


def whole_photo(image: np.ndarray) -> np.ndarray:
    """(H, W[, 3]) uint8 -> (SIZE, SIZE[, 3]) uint8, the whole photo (or mask) resized (aspect ratio not kept)."""
    import cv2

    return cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def augmentations() -> Any:
    """MONAI dictionary transforms on ``{"image": (3, S, S), "label": (1, S, S)}`` float tensors."""
    from monai.transforms import Compose, RandAdjustContrastd, RandFlipd, RandRotated, RandZoomd

    keys = ["image", "label"]
    return Compose([
        RandFlipd(keys, prob=0.5, spatial_axis=1),
        RandRotated(keys, range_x=0.26, prob=0.5, mode=("bilinear", "nearest"), padding_mode="zeros"),
        RandZoomd(keys, min_zoom=0.9, max_zoom=1.1, prob=0.5, mode=("bilinear", "nearest"), padding_mode="constant"),
        RandAdjustContrastd(["image"], prob=0.5, gamma=(0.7, 1.5)),
    ])


def train_for(model: Any, sample: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]], steps: int,
              batch_size: int, seed: int, log: Callable[[str], None]) -> dict[str, float]:
    """Train ``model`` for ``steps`` batches of ``sample(rng) -> ((3, S, S) float32 image, (S, S) int label)``
    with DiceCE + Adam; returns steps, samples, wall seconds and the last 50 steps' mean loss."""
    import torch
    from monai.losses import DiceCELoss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start, losses = time.perf_counter(), []
    for step in range(1, steps + 1):
        pairs = [sample(rng) for _ in range(batch_size)]
        x = torch.from_numpy(np.stack([p[0] for p in pairs]))
        y = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None].astype(np.int64))
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0:
            log(f"  step {step}: loss {np.mean(losses[-50:]):.3f} ({time.perf_counter() - start:.0f} s)")
    model.eval()
    return {"steps": steps, "samples": steps * batch_size, "seconds": time.perf_counter() - start,
            "last_loss": float(np.mean(losses[-50:])) if losses else float("nan")}


def augmented(image: np.ndarray, label: np.ndarray, transforms: Any, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """(S, S, 3) uint8 and (S, S) int label -> normalised, augmented (3, S, S) float32 and (S, S) int64."""
    import torch
    from monai.data import set_track_meta

    from engine.fundus.segmenter import normalise_crops

    set_track_meta(False)
    transforms.set_random_state(seed=int(rng.integers(2**31)))
    out = transforms({"image": torch.from_numpy(normalise_crops(image)[0]),
                      "label": torch.from_numpy(label[None].astype(np.float32))})
    return np.asarray(out["image"], np.float32), np.asarray(out["label"][0]).round().astype(np.int64)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a (h, w) bool mask (empty stays empty)."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def predict(model: Any, image: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 -> (S, S) argmax class map."""
    import torch

    from engine.fundus.segmenter import normalise_crops

    with torch.inference_mode():
        return model(torch.from_numpy(normalise_crops(image))).argmax(dim=1)[0].numpy()


def disc_box_of(mask: np.ndarray, sy: float = 1.0, sx: float = 1.0) -> tuple[tuple[float, float], float]:
    """Bounding-box centre (row, col) and larger side of a non-empty (h, w) bool mask, scaled by ``sy``, ``sx``."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    centre = ((rows[0] + rows[-1] + 1) / 2.0 * sy, (cols[0] + cols[-1] + 1) / 2.0 * sx)
    return centre, max((rows[-1] - rows[0] + 1) * sy, (cols[-1] - cols[0] + 1) * sx)


def find_disc(finder: Any, image: np.ndarray) -> Optional[tuple[tuple[float, float], float]]:
    """Stage 1: the finder's largest disc component on the whole photo -> centre (row, col) and diameter in
    photo px, or None."""
    found = largest_component(predict(finder, whole_photo(image)) == 1)
    if not found.any():
        return None
    return disc_box_of(found, image.shape[0] / SIZE, image.shape[1] / SIZE)


def find_disc_as_the_product(segmenter: Any, image: np.ndarray) -> Optional[tuple[tuple[float, float], float]]:
    """``--localiser``: the disc :func:`engine.fundus.analyse_disc` finds with ``segmenter`` -> centre, diameter."""
    from engine.fundus.analysis import analyse_disc

    result = analyse_disc(image, segmenter=segmenter, infer_eye=False)
    return disc_box_of(result.disc_mask) if result.found and result.disc_mask is not None else None


def segment(segmenter: Any, image: np.ndarray, disc: Optional[tuple[tuple[float, float], float]], size: int,
            product_post: bool = False) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Stage 2 on a (H, W, 3) uint8 photo around ``disc`` (centre, diameter; None: not found) -> disc, cup
    (H, W) bool photo px, or (None, None). ``segmenter``: a network (argmax, largest component) or, with
    ``product_post``, an :class:`engine.fundus.segmenter.Segmenter` (the product's fine-pass post-processing:
    mirrored mean, :func:`engine.fundus.analysis.clean_masks`, :func:`engine.fundus.analysis.masks_on_photo`)."""
    from engine.fundus.analysis import clean_masks, masks_on_photo
    from engine.fundus.crop import crop_square, map_to_image, square_box

    if disc is None:
        return None, None
    box = square_box(disc[0], CROP_SCALE * disc[1])
    crop = crop_square(image, box, size)
    if product_post:
        disc_img, cup_img = masks_on_photo(*clean_masks(segmenter.predict(crop[None])[0])[:2], box, image.shape[:2])
    else:
        labels = predict(segmenter, crop)
        found = largest_component(labels >= 1)
        back = map_to_image(np.stack([found, (labels == 2) & found], axis=-1).astype(np.float32), box,
                            image.shape[:2])
        disc_img, cup_img = back[..., 0] >= 0.5, back[..., 1] >= 0.5
    if not disc_img.any():
        return None, None
    return disc_img, cup_img & disc_img


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("GV_SAMPLE_DATA", "")) or None,
                   help="folder of expert-masked photos (default: $GV_SAMPLE_DATA)")
    p.add_argument("--held-out", nargs="+", required=True, help="sources neither stage sees; evaluated")
    p.add_argument("--steps-find", type=int, default=780, help="finder batches of 8")
    p.add_argument("--steps-crop", type=int, default=1560, help="segmenter batches of 8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop-size", type=int, default=SIZE, help="segmenter input side (px); an ablation knob")
    p.add_argument("--channels", type=int, nargs="+", default=list(CHANNELS), help="segmenter U-Net channels")
    p.add_argument("--res-units", type=int, default=2, help="segmenter U-Net residual units per level")
    p.add_argument("--product-colour", action="store_true",
                   help="add the product recipe's colour / camera augmentation to both stages' samples")
    p.add_argument("--localiser", type=Path,
                   help="an ablation: find the disc as the product does (engine.fundus.analyse_disc with these "
                        "disc-cup weights, which must not have seen the held-out sources) instead of the finder")
    p.add_argument("--weights", type=Path, help="evaluate this script's earlier weights.pt instead of training")
    p.add_argument("--checkpoint", type=Path,
                   help="with --localiser: evaluate these disc-cup weights of `engine train disc-cup` (which must "
                        "not have seen the held-out sources) as the segmenter instead of training one")
    p.add_argument("--product-post", action="store_true",
                   help="segment as the product's fine pass does (mirrored mean, shape priors) instead of argmax")
    p.add_argument("--cache", type=Path, default=Path("runs/disc_cup_cache"), help="decoded photos (.npz)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.data is None or not args.data.is_dir():
        print("error: give --data or set GV_SAMPLE_DATA to the sample data folder", file=sys.stderr)
        return 2
    if args.checkpoint and not args.localiser:
        print("error: --checkpoint needs --localiser (a checkpoint has no whole-photo finder)", file=sys.stderr)
        return 2

    import torch

    from engine.fundus.datasets import discover, load_case
    from engine.fundus.evaluate import score_masks, summarise
    from engine.fundus.train_task import augment_colour, intensity_transforms, prepared, render
    from engine.models.checkpoint import atomic_write_bytes

    args.out.mkdir(parents=True, exist_ok=True)
    log_file = open(args.out / "log.txt", "w", encoding="utf-8")

    def log(line: str) -> None:
        print(line, flush=True)
        log_file.write(line + "\n")

    cases = discover(args.data)
    train = [c for c in cases if c.source not in args.held_out]
    test = [c for c in cases if c.source in args.held_out]
    if not train or not test:
        print(f"error: {len(train)} training and {len(test)} held-out photos under {args.data}", file=sys.stderr)
        return 2
    log(f"{len(train)} training photos, {len(test)} held out ({', '.join(args.held_out)}); "
        f"torch threads {torch.get_num_threads()}")
    photos = [prepared(c, args.cache) for c in train]
    # the whole-photo finder's inputs, only where a finder is trained (with --localiser the product finds the disc)
    whole = [] if args.localiser else [(whole_photo(q.image), (whole_photo(q.disc) >= 128).astype(np.int64))
                                       for q in photos]
    transforms, colour = augmentations(), intensity_transforms()

    def augmented_as_asked(image: np.ndarray, label: np.ndarray, rng: np.random.Generator
                           ) -> tuple[np.ndarray, np.ndarray]:
        if args.product_colour:
            image = augment_colour(image, rng, colour)
        return augmented(image, label, transforms, rng)

    def sample_whole(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        image, label = whole[int(rng.integers(len(whole)))]
        return augmented_as_asked(image, label, rng)

    def sample_crop(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        q = photos[int(rng.integers(len(photos)))]
        side = CROP_SCALE * q.diameter * rng.uniform(0.9, 1.1)
        centre = (q.center[0] + rng.uniform(-0.05, 0.05) * side, q.center[1] + rng.uniform(-0.05, 0.05) * side)
        image, label = render(q, centre, side, args.crop_size)
        return augmented_as_asked(image, label, rng)

    from engine.fundus.evaluate import seen_sources
    from engine.fundus.segmenter import Segmenter, default_spec, load_segmenter

    def held_out_checkpoint(path: Path) -> Optional[Segmenter]:
        """The disc-cup weights at ``path``, or None (said on stderr) when they saw a held-out source."""
        product = load_segmenter(path)
        seen = seen_sources([product.card])
        if seen is None or seen & set(args.held_out):
            print(f"error: {path} saw {'unknown sources' if seen is None else ', '.join(sorted(seen))}: "
                  "not held-out weights", file=sys.stderr)
            return None
        return product

    finder, segmenter = network(2), network(3, args.channels, args.res_units)
    trained: dict[str, Any] = {"seed": args.seed}
    if args.checkpoint:
        checkpoint = held_out_checkpoint(args.checkpoint)
        if checkpoint is None:
            return 2
        trained["checkpoint"] = str(args.checkpoint)
    elif args.weights:
        weights = torch.load(args.weights, weights_only=True)
        segmenter.load_state_dict(weights["segmenter"])
        if "finder" in weights:
            finder.load_state_dict(weights["finder"])
        finder.eval()
        segmenter.eval()
        trained["weights"] = str(args.weights)
    else:
        if not args.localiser:
            log("finder (whole photo, 256 px):")
            trained["finder"] = train_for(finder, sample_whole, args.steps_find, 8, args.seed, log)
        log(f"segmenter (2 disc diameters, {args.crop_size} px):")
        trained["segmenter"] = train_for(segmenter, sample_crop, args.steps_crop, 8, args.seed + 1, log)
        torch.save({"segmenter": segmenter.state_dict(), **({} if args.localiser else {"finder": finder.state_dict()})},
                   args.out / "weights.pt")
    crop_size, crop_net = args.crop_size, segmenter
    if args.checkpoint:
        crop_size, crop_net = checkpoint.size, (checkpoint if args.product_post else checkpoint.module)
    elif args.product_post:
        crop_net = Segmenter(segmenter, default_spec(args.crop_size, tuple(args.channels), args.res_units), {})
    if args.localiser:
        product = held_out_checkpoint(args.localiser)
        if product is None:
            return 2

        def locate(image: np.ndarray) -> Optional[tuple[tuple[float, float], float]]:
            return find_disc_as_the_product(product, image)
    else:

        def locate(image: np.ndarray) -> Optional[tuple[tuple[float, float], float]]:
            return find_disc(finder, image)

    rows, started = [], time.perf_counter()
    for case in test:
        image, disc, cup = load_case(case)
        rows.append(score_masks(case, disc, cup, *segment(crop_net, image, locate(image), crop_size,
                                                          args.product_post)))
    seconds = time.perf_counter() - started
    doc = {"checkpoint": str(args.checkpoint or args.weights or args.out / "weights.pt"),
           "held_out_sources": list(args.held_out),
           "held_out": f"sources {list(args.held_out)}",
           "trained_on": f"{len(train)} expert-masked photos of {', '.join(sorted({c.source for c in train}))}",
           "baseline": ("issue 3's plain two-stage MONAI U-Net (benchmarks/disc_cup_plain_baseline.py)"
                        + (f", disc found by analyse_disc with {args.localiser}" if args.localiser else "")
                        + (f", the segmenter {args.checkpoint}" if args.checkpoint else "")
                        + (", the product's fine-pass post-processing" if args.product_post else "")
                        + (f", {crop_size} px crops" if crop_size != SIZE else "")
                        + (f", U-Net {args.channels} x {args.res_units}"
                           if (tuple(args.channels), args.res_units) != (CHANNELS, 2) else "")
                        + (", the product's colour augmentation" if args.product_colour else "")),
           "training": trained,
           "inference_s_per_photo": seconds / len(test), "model": summarise(rows), "rows": rows}
    for name, m in doc["model"].items():
        log(f"{name:8s} n={m['n']:3d} found={m['found']:3d} disc Dice {m['dice_disc']:.3f} cup Dice "
            f"{m['dice_cup']:.3f} vCDR MAE {m['vcdr_mae']:.3f} bias {m['vcdr_bias']:+.3f} "
            f"disc area x{m['disc_area_ratio']:.2f}")
    for stage in ("finder", "segmenter"):
        if stage in trained:
            log(f"{stage} trained {trained[stage]['seconds'] / 60:.1f} min ({trained[stage]['samples']} samples)")
    log(f"{seconds / len(test):.2f} s per photo")
    atomic_write_bytes(args.out / "evaluation.json", (json.dumps(doc, indent=1) + "\n").encode())
    log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
