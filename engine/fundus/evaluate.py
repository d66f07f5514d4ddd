"""Photo-level evaluation of the whole disc/cup analysis on held-out sources, against a simple baseline.

Unlike the training loop's validation (crops around the *true* disc), this runs :func:`analyse_disc` exactly as
the product does (localise, coarse and fine passes, masks mapped back to the full-resolution photo) and compares
its masks with the experts' on the photo's own pixels:

- ``dice_disc``, ``dice_cup``: Dice of the disc (rim + cup) and cup masks;
- ``vcdr_error``: |predicted - true| vertical cup-to-disc ratio (cup height / disc height, from the masks);
- ``rim_profile_error``: mean over 180 directions of |predicted - true| rim width / disc diameter around the disc
  (:func:`engine.fundus.biomarkers.rim_to_disc_profile`, the photo's own angles), ``rim_min_error``:
  |predicted - true| of its minimum (the ``rim_to_disc`` biomarker);
- ``ddls_error``: |predicted - true| Disc Damage Likelihood Scale stage (:mod:`engine.fundus.ddls`), both staged
  as average-size discs (these photos' mm scale is not known, and the disc's size is not what is compared).

A photo where no disc is found counts as Dice 0 and the worst possible ratio error ``max(v, 1 - v)``.

Baseline: the same training-free localiser plus two concentric circles: the disc with the radius the localiser
expects from the field of view, the cup at the mean vertical ratio of the *training* sources.

``python -m engine.fundus.evaluate --data DIR --checkpoint best.pt [more.pt ...] --sources drishti [--out r.json]``
(``--fine-checkpoint fine.pt [...]``: these draw the final masks, :func:`engine.fundus.segmenter.attach_fine`);
``--split split.json --fold fold1`` evaluates a k-fold run's held-out photos instead,
``--merge fold1.json ... fold5.json --out all.json`` combines the folds' files into one, and
``--compare A.json B.json`` pairs two files' photos (B - A per photo, bootstrap 95 % interval of the mean).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from engine.fundus.biomarkers import rim_to_disc_profile
from engine.fundus.datasets import DiscCupCase, discover, load_case, sources_in_description
from engine.fundus.ddls import rim_absent_degrees
from engine.fundus.ddls import stage as ddls_stage
from engine.fundus.localize import GREY_KINDS


def vertical_ratio(disc: np.ndarray, cup: np.ndarray) -> float:
    """Cup height / disc height of (H, W) bool masks (0 when the cup is empty)."""
    d = np.flatnonzero(disc.any(axis=1))
    c = np.flatnonzero((cup & disc).any(axis=1))
    if d.size == 0:
        return 0.0
    return float((c[-1] - c[0] + 1) / (d[-1] - d[0] + 1)) if c.size else 0.0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * float((a & b).sum()) / s


def baseline_masks(image: np.ndarray, cup_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Localiser centre + circles: disc radius from the FOV size, cup radius ``cup_ratio`` x disc radius."""
    from engine.fundus.localize import locate_disc

    loc = locate_disc(image)
    rows, cols = np.ogrid[0 : image.shape[0], 0 : image.shape[1]]
    r2 = (rows - loc.center[0]) ** 2 + (cols - loc.center[1]) ** 2
    return r2 <= loc.radius_px**2, r2 <= (cup_ratio * loc.radius_px) ** 2


def evaluate_case(case: DiscCupCase, segmenter: Any = None, baseline_ratio: Optional[float] = None,
                  calibration: Any = None, grey: Optional[str] = None) -> dict[str, Any]:
    """One photo's metrics (the analysis with ``segmenter`` and, when given, a
    :class:`engine.fundus.site_calibration.SiteCalibration`; or the baseline when ``baseline_ratio`` is given);
    ``grey`` ("luma" or "green"): on the photo's copy without colour
    (:func:`engine.fundus.localize.without_colour`)."""
    from engine.fundus.analysis import analyse_disc
    from engine.fundus.localize import without_colour
    from engine.fundus.site_calibration import apply_calibration

    image, disc, cup = load_case(case)
    if grey is not None:
        image = without_colour(image, grey)
    if baseline_ratio is not None:
        return score_masks(case, disc, cup, *baseline_masks(image, baseline_ratio))
    result = apply_calibration(analyse_disc(image, eye=case.eye, segmenter=segmenter), calibration)
    row = score_masks(case, disc, cup, result.disc_mask if result.found else None, result.cup_mask)
    row["confidence"] = result.confidence
    return row


def score_masks(case: DiscCupCase, disc: np.ndarray, cup: np.ndarray, pred_disc: Optional[np.ndarray],
                pred_cup: Optional[np.ndarray]) -> dict[str, Any]:
    """One photo's row: predicted (H, W) bool disc and cup (``pred_disc`` None: no disc found) against the
    experts' ``disc`` and ``cup`` on the photo's own pixels."""
    v_true = vertical_ratio(disc, cup)
    row: dict[str, Any] = {"case": case.case_id, "source": case.source, "vcdr_true": v_true,
                           "found": pred_disc is not None and pred_cup is not None}
    if pred_disc is None or pred_cup is None:
        row.update(dice_disc=0.0, dice_cup=0.0, vcdr_pred=None, vcdr_error=max(v_true, 1.0 - v_true))
        return row
    v_pred = vertical_ratio(pred_disc, pred_cup)
    row.update(dice_disc=dice(pred_disc, disc), dice_cup=dice(pred_cup & pred_disc, cup), vcdr_pred=v_pred,
               vcdr_error=abs(v_pred - v_true), disc_area_ratio=float(pred_disc.sum() / max(int(disc.sum()), 1)),
               **rim_errors(pred_disc, pred_cup, rim_to_disc_profile(disc, cup)[1]))
    return row


def rim_errors(disc: np.ndarray, cup: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """``rim_profile_error`` (mean |difference| over the directions), ``rim_min_error`` (of the minima) and
    ``ddls_error`` (of the DDLS stages, average-size disc) of an outline's rim / disc profile against a
    ``reference`` profile (``rim_to_disc_profile(...)[1]``, the photo's own angles); NaN for an empty disc."""
    if not disc.any():
        return {"rim_profile_error": float("nan"), "rim_min_error": float("nan"), "ddls_error": float("nan")}
    rim = rim_to_disc_profile(disc, cup)[1]
    return {"rim_profile_error": float(np.abs(rim - reference).mean()),
            "rim_min_error": float(abs(rim.min() - reference.min())),
            "ddls_error": float(abs(average_disc_stage(rim) - average_disc_stage(reference)))}


def average_disc_stage(profile: np.ndarray) -> int:
    """The DDLS stage of an average-size disc with this (n,) rim / disc profile."""
    return ddls_stage(float(profile.min()), rim_absent_degrees(profile), "average")


def seen_sources(cards: Sequence[dict[str, Any]]) -> Optional[set[str]]:
    """Sources any of these checkpoint cards was trained on, directly or through the networks that labelled its
    pseudo-labelled photos (card ``pseudo_labels``); None when a card does not say."""
    from engine.fundus.segmenter import training_data

    seen: set[str] = set()
    for card in cards:
        for line in training_data([card], with_labellers=True).split("; "):
            counts = sources_in_description(line)
            if counts is None:
                return None
            seen |= set(counts)
    return seen


MIN_PHOTOS_FOR_SPREAD = 10
"""Fewest photos for a statistic of their spread (a bootstrap interval, an offset-removed error, a correlation):
resampling or correlating a handful of photos says nothing."""


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean metrics per source and over all rows: ``{source|"all": {dice_disc, dice_cup, vcdr_mae, vcdr_bias,
    vcdr_mae_offset_removed, vcdr_pearson, n, found, disc_area_ratio, rim_profile_mae, rim_min_mae, ddls_mae,
    ddls_within1}}``. Over the photos with a disc found (NaN when none; the rim errors also NaN for rows written
    before they were measured): ``rim_profile_mae``, ``rim_min_mae``, ``ddls_mae`` = mean ``rim_profile_error``,
    ``rim_min_error``, ``ddls_error``; ``ddls_within1`` = fraction of them with the DDLS stage off by at most 1;
    ``vcdr_bias`` = mean signed error (predicted - expert vertical CDR), ``disc_area_ratio`` = median
    predicted / expert disc area. A large bias or a ratio far from 1 with a small spread is a difference of
    drawing convention (or case mix) between the training and held-out experts rather than noise.
    ``vcdr_mae_offset_removed`` = mean |signed error - vcdr_bias|, the error left once the block's own mean
    offset is taken away (a diagnostic of how much of ``vcdr_mae`` is one constant offset: it uses the held-out
    experts' ratios, so it is not a held-out figure); ``vcdr_pearson`` = correlation of predicted and expert
    ratios (how well the photos are ordered, whatever the offset; NaN without spread). Both are NaN below
    :data:`MIN_PHOTOS_FOR_SPREAD` photos with a disc found."""
    out: dict[str, dict[str, float]] = {}
    for name in sorted({r["source"] for r in rows}) + ["all"]:
        sel = [r for r in rows if name == "all" or r["source"] == name]
        found = [r for r in sel if r["vcdr_pred"] is not None]
        pred = np.array([r["vcdr_pred"] for r in found], float)
        true = np.array([r["vcdr_true"] for r in found], float)
        signed = pred - true
        ratios = [r["disc_area_ratio"] for r in sel if r.get("disc_area_ratio") is not None]
        enough = len(found) >= MIN_PHOTOS_FOR_SPREAD
        ordered = enough and np.ptp(pred) > 0 and np.ptp(true) > 0
        stage_errors = [r["ddls_error"] for r in found if r.get("ddls_error") is not None]
        out[name] = {
            "dice_disc": float(np.mean([r["dice_disc"] for r in sel])),
            "dice_cup": float(np.mean([r["dice_cup"] for r in sel])),
            "vcdr_mae": float(np.mean([r["vcdr_error"] for r in sel])),
            "vcdr_bias": float(signed.mean()) if found else float("nan"),
            "vcdr_mae_offset_removed": float(np.abs(signed - signed.mean()).mean()) if enough else float("nan"),
            "vcdr_pearson": float(np.corrcoef(pred, true)[0, 1]) if ordered else float("nan"),
            "disc_area_ratio": float(np.median(ratios)) if ratios else float("nan"),
            "n": len(sel),
            "found": int(sum(r["found"] for r in sel)),
            **{f"{key[:-6]}_mae": _mean_of(found, key) for key in ("rim_profile_error", "rim_min_error", "ddls_error")},
            "ddls_within1": float(np.mean([e <= 1 for e in stage_errors])) if stage_errors else float("nan"),
        }
    return out


def _mean_of(rows: Sequence[dict[str, Any]], key: str) -> float:
    """Mean of ``key`` over the rows that have it (NaN when none does)."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else float("nan")


def read_evaluation(path: Path) -> dict[str, Any]:
    """An evaluation file written by this module (``--out``).

    Raises:
        ValueError: it cannot be read or has no per-photo rows.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read it ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise ValueError(f"{path}: not an engine.fundus.evaluate file (no per-photo rows)")
    return doc


def merge_evaluations(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation documents (:func:`read_evaluation`) of the folds of one k-fold run (each photo held out
    once) as one document.

    Raises:
        ValueError: a photo is in two of them.
    """
    from collections import Counter

    rows = [r for doc in docs for r in doc["rows"]]
    base = [r for doc in docs for r in doc.get("baseline_rows", [])]
    twice = sorted(c for c, n in Counter(r["case"] for r in rows).items() if n > 1)
    if twice:
        raise ValueError(f"{len(twice)} photos are in more than one file (e.g. {twice[0]}): not folds of one split")
    folds = [re.fullmatch(r"photos of (\S+) in (.+)", str(d.get("held_out", ""))) for d in docs]
    splits = {m.group(2) for m in folds if m}
    if all(folds) and len(splits) == 1:
        held_out = (f"photos, not sources: {', '.join(m.group(1) for m in folds if m)} of {splits.pop()} (each photo "
                    "held out once, its source seen in training: comparable with a random hold-out, not with a new "
                    "camera)")
    else:
        held_out = "; ".join(dict.fromkeys(str(d.get("held_out", "")) for d in docs))
    return {"checkpoint": [d.get("checkpoint") for d in docs], "sha256": [d.get("sha256", "") for d in docs],
            "held_out_sources": [], "held_out": held_out,
            "trained_on": "; ".join(dict.fromkeys(str(d.get("trained_on", "")) for d in docs)),
            "in_sample_sources": sorted({s for d in docs for s in d.get("in_sample_sources") or []}),
            "baseline": "localiser + circles, cup ratio = mean of each file's training photos",
            "model": summarise(rows), "baseline_summary": summarise(base) if base else {},
            "rows": rows, "baseline_rows": base}


PAIRED_METRICS = ("dice_disc", "dice_cup", "vcdr_error")


def compare_evaluations(a: dict[str, Any], b: dict[str, Any], n_resamples: int = 2000,
                        seed: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    """B - A over the same photos, per source and ``"all"``: for each of :data:`PAIRED_METRICS` the mean
    difference, its percentile-bootstrap 95 % interval (photos resampled; NaN with fewer than
    :data:`MIN_PHOTOS_FOR_SPREAD` photos) and how many photos B has better (higher Dice, lower ratio error) and
    worse. A photo without a disc counts as in :func:`evaluate_case`.

    Raises:
        ValueError: the two documents (:func:`read_evaluation`) do not hold the same photos.
    """
    from scipy.stats import bootstrap

    rows_a, rows_b = ({r["case"]: r for r in doc["rows"]} for doc in (a, b))
    if rows_a.keys() != rows_b.keys():
        only = sorted(rows_a.keys() ^ rows_b.keys())
        raise ValueError(f"the files hold different photos ({len(only)} in only one of them, e.g. {only[0]}): "
                         "a paired comparison needs the same photos")
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in sorted({r["source"] for r in rows_a.values()}) + ["all"]:
        cases = [c for c, r in rows_a.items() if name == "all" or r["source"] == name]
        out[name] = {}
        for metric in PAIRED_METRICS:
            diff = np.array([rows_b[c][metric] - rows_a[c][metric] for c in cases], float)
            better = diff < 0 if metric == "vcdr_error" else diff > 0
            low = high = float("nan")
            if diff.size >= MIN_PHOTOS_FOR_SPREAD and np.ptp(diff) > 0:
                ci = bootstrap((diff,), np.mean, n_resamples=n_resamples, method="percentile", rng=rng)
                low, high = float(ci.confidence_interval.low), float(ci.confidence_interval.high)
            elif diff.size >= MIN_PHOTOS_FOR_SPREAD:
                low = high = float(diff[0])
            out[name][metric] = {"mean_difference": float(diff.mean()), "ci95_low": low, "ci95_high": high,
                                 "n": int(diff.size), "b_better": int(better.sum()),
                                 "b_worse": int(((diff != 0) & ~better).sum())}
    return out


def _print_comparison(comparison: dict[str, dict[str, dict[str, float]]]) -> None:
    print(f"B - A, paired over photos (bootstrap 95 % interval from {MIN_PHOTOS_FOR_SPREAD} photos on); "
          "better/worse = photos where B is better/worse")
    for src, metrics in comparison.items():
        parts = [f"{m} {d['mean_difference']:+.4f} "
                 + ("" if np.isnan(d["ci95_low"]) else f"[{d['ci95_low']:+.4f}, {d['ci95_high']:+.4f}] ")
                 + f"{d['b_better']}/{d['b_worse']}" for m, d in metrics.items()]
        print(f"{src:8s} n={next(iter(metrics.values()))['n']:3d}  " + "  ".join(parts))


def _print_summaries(doc: dict[str, Any]) -> None:
    nan = float("nan")  # files written before the rim errors were measured
    for name in ("model", "baseline_summary"):
        for src, m in doc[name].items():
            print(f"{name:16s} {src:8s} n={m['n']:3d} found={m['found']:3d} disc Dice {m['dice_disc']:.3f} "
                  f"cup Dice {m['dice_cup']:.3f} vCDR MAE {m['vcdr_mae']:.3f} bias {m['vcdr_bias']:+.3f} "
                  f"(without it {m['vcdr_mae_offset_removed']:.3f}, r {m['vcdr_pearson']:.2f}) "
                  f"disc area x{m['disc_area_ratio']:.2f} rim/disc profile MAE {m.get('rim_profile_mae', nan):.3f} "
                  f"(narrowest {m.get('rim_min_mae', nan):.3f}) DDLS stage MAE {m.get('ddls_mae', nan):.2f} "
                  f"(within 1: {m.get('ddls_within1', nan):.2f})")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.fundus.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path,
                   help="dataset folder (any layout discover() reads); not with --merge or --compare")
    p.add_argument("--checkpoint", type=Path, nargs="+",
                   help="disc-cup weights (default: the shipped ones); several = the mean of their probabilities")
    p.add_argument("--fine-checkpoint", type=Path, nargs="+", default=[],
                   help="with --checkpoint: disc-cup weights that draw the final masks (fine-pass networks, "
                        "trained on disc-centred crops only); several = the mean of their probabilities")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--sources", nargs="+", help="held-out sources to evaluate (the model never saw)")
    which.add_argument("--split", type=Path,
                       help="a training run's split.json: evaluate the photos of --fold's validation part "
                            "(photos held out, their sources seen in training)")
    which.add_argument("--merge", type=Path, nargs="+", metavar="EVAL_JSON",
                       help="combine the evaluation files of the folds of one k-fold run into one (--out)")
    which.add_argument("--compare", type=Path, nargs=2, metavar=("A_JSON", "B_JSON"),
                       help="two evaluation files of the same photos: B - A per photo with a bootstrap interval")
    p.add_argument("--fold", default="holdout", help="with --split: the fold (fold1, fold2, ... or holdout)")
    p.add_argument("--without-colour", choices=GREY_KINDS,
                   help="evaluate the photos' copies without colour: luma (a grey camera) or green (red-free)")
    p.add_argument("--out", type=Path, help="write rows and summaries as JSON here")
    args = p.parse_args(argv)

    from engine.fundus.segmenter import load_cli_segmenter, training_data
    from engine.models.checkpoint import CheckpointError, atomic_write_bytes

    if args.merge:
        try:
            doc = merge_evaluations([read_evaluation(path) for path in args.merge])
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        _print_summaries(doc)
        if args.out:
            atomic_write_bytes(args.out, (json.dumps(doc, indent=1) + "\n").encode())
        return 0
    if args.compare:
        try:
            docs = [read_evaluation(path) for path in args.compare]
            comparison = compare_evaluations(*docs)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        for label, path, doc in zip("AB", args.compare, docs):
            if doc.get("in_sample_sources"):
                print(f"warning: {label} ({path}) is in-sample for {', '.join(doc['in_sample_sources'])}",
                      file=sys.stderr)
        _print_comparison(comparison)
        if args.out:
            doc = {"a": str(args.compare[0]), "b": str(args.compare[1]), "paired": comparison}
            atomic_write_bytes(args.out, (json.dumps(doc, indent=1) + "\n").encode())
        return 0
    if args.data is None:
        p.error("--data is required with --sources or --split")
    cases = discover(args.data)
    if args.split:
        try:
            part = json.loads(args.split.read_text(encoding="utf-8"))[args.fold]
        except (OSError, ValueError, KeyError) as err:
            print(f"error: {args.split}: no fold {args.fold!r} ({type(err).__name__})", file=sys.stderr)
            return 1
        val_ids, train_ids = set(part["val"]), set(part["train"])
        test = [c for c in cases if c.case_id in val_ids]
        train = [c for c in cases if c.case_id in train_ids]
        held_out = f"photos of {args.fold} in {args.split}"
    else:
        test = [c for c in cases if c.source in args.sources]
        train = [c for c in cases if c.source not in args.sources]
        held_out = f"sources {args.sources}"
    if not test:
        print(f"error: no case of the {held_out} under {args.data}", file=sys.stderr)
        return 1
    ratios = [vertical_ratio(*load_case(c)[1:]) for c in train]
    mean_ratio = float(np.mean(ratios)) if ratios else 0.5
    try:
        seg, cards = load_cli_segmenter(args.checkpoint, args.fine_checkpoint)
    except (CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    seen = seen_sources(cards)
    in_sample = sorted(seen & set(args.sources)) if seen is not None and args.sources else []
    if in_sample:
        print(f"warning: the checkpoint was trained on photos of {', '.join(in_sample)}: these figures are "
              "in-sample, not held-out", file=sys.stderr)
    elif seen is None and args.sources:
        print("warning: the checkpoint's card does not say which sources it was trained on: check that it never "
              f"saw {', '.join(args.sources)}", file=sys.stderr)
    model_rows = [evaluate_case(c, seg, grey=args.without_colour) for c in test]
    base_rows = [evaluate_case(c, baseline_ratio=mean_ratio, grey=args.without_colour) for c in test]
    doc = {"checkpoint": [str(c) for c in args.checkpoint] if args.checkpoint else "shipped", "sha256": seg.sha256,
           **({"fine_checkpoint": [str(c) for c in args.fine_checkpoint]} if args.fine_checkpoint else {}),
           "held_out_sources": args.sources or [], "held_out": held_out,
           **({"without_colour": args.without_colour} if args.without_colour else {}),
           "trained_on": training_data(cards),
           "in_sample_sources": in_sample,
           "baseline": f"localiser + circles, cup ratio {mean_ratio:.3f} (mean of the training photos)",
           "model": summarise(model_rows), "baseline_summary": summarise(base_rows),
           "rows": model_rows, "baseline_rows": base_rows}
    _print_summaries(doc)
    if args.out:
        text = json.dumps(doc, indent=1)
        atomic_write_bytes(args.out, (text + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
