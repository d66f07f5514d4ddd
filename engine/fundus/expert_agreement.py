"""How far apart the experts themselves are: the scale against which disc/cup errors should be read.

Drishti-GS gives, for each photo, soft maps (0/64/128/191/255 = how many of its 4 experts marked the pixel)
and each expert's cup-to-disc ratio (``cdrValues.txt``). From them, per photo and over the collection:

- ``expert_vcdr_loo``: |one expert's ratio - the mean of the other three|, over experts and photos: how far a
  single expert lies from a 3-expert consensus;
- ``expert_vcdr_range``: largest - smallest of the experts' ratios;
- ``reference_vs_experts``: vertical CDR of the reference masks (at least 2 of 4 experts, what
  :mod:`engine.fundus.evaluate` compares with) - the mean of the experts' ratios;
- per agreement level k (the outline at least k of the 4 experts drew): Dice of disc and cup against the
  reference masks, the level's vertical CDR, and its rim / disc profile error against the reference's
  (``rim_profile_error``, ``rim_min_error``, ``ddls_error``, as :mod:`engine.fundus.evaluate` measures a model's).

Given :mod:`engine.fundus.evaluate` JSON files, each predicted vertical CDR is put in an expert's place:
``vcdr_loo`` = mean over experts i of |prediction - mean of the experts other than i| (the same 3-expert
references as ``expert_vcdr_loo``), ``in_expert_range`` = share of photos whose prediction lies between the
lowest and the highest expert, ``bias`` = mean of prediction - mean of the experts.

``python -m engine.fundus.expert_agreement --data DIR [--evaluation eval.json ...] [--out agreement.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from engine.fundus.biomarkers import rim_to_disc_profile
from engine.fundus.datasets import DatasetLayoutError, DiscCupCase, discover, read_gray
from engine.fundus.evaluate import dice, read_evaluation, rim_errors, vertical_ratio

LEVELS = (1, 2, 3, 4)
REFERENCE_LEVEL = 2
"""The reference outline: pixels at least this many of the 4 experts marked (soft map >= 128)."""
LEVEL_METRICS = ("vcdr", "dice_disc", "dice_cup", "rim_profile_error", "rim_min_error", "ddls_error")
"""What each agreement level is summarised by (the rim errors are missing from files written before them)."""


def expert_counts(soft: np.ndarray) -> np.ndarray:
    """(H, W) uint8 soft map (0/64/128/191/255) -> (H, W) int8 number of the 4 experts who marked each pixel."""
    return np.clip(np.rint(np.asarray(soft, np.float32) / 63.75), 0, 4).astype(np.int8)


def loo_errors(experts: Sequence[float], prediction: Optional[float] = None) -> list[float]:
    """For each expert i: |expert i - mean of the others|, or |``prediction`` - mean of the others| when given.

    Empty when there are fewer than 2 experts.
    """
    v = np.asarray(experts, float)
    if v.size < 2:
        return []
    others = (v.sum() - v) / (v.size - 1)
    return [float(e) for e in np.abs((v if prediction is None else prediction) - others)]


def case_agreement(case: DiscCupCase) -> dict[str, Any]:
    """One soft-map photo: per level vertical CDR and Dice against the reference, and its experts' ratios.

    Raises:
        ValueError: the case has no soft maps (``convention != "soft"``).
    """
    if case.convention != "soft":
        raise ValueError(f"{case.case_id}: no per-expert soft maps (convention {case.convention!r})")
    disc_n, cup_n = (expert_counts(read_gray(p)) for p in case.masks)
    masks = {}
    for k in LEVELS:
        cup = cup_n >= k
        masks[k] = (disc_n >= k) | cup, cup  # as engine.fundus.datasets.decode_masks: the cup is part of the disc
    ref_disc, ref_cup = masks[REFERENCE_LEVEL]
    ref_rim = rim_to_disc_profile(ref_disc, ref_cup)[1]
    experts = [float(v) for v in case.expert_vcdr]
    return {
        "case": case.case_id,
        "source": case.source,
        "expert_vcdr": experts,
        "reference_vcdr": vertical_ratio(ref_disc, ref_cup),
        "levels": {str(k): {"vcdr": vertical_ratio(d, c), "dice_disc": dice(d, ref_disc), "dice_cup": dice(c, ref_cup),
                            **rim_errors(d, c, ref_rim)}
                   for k, (d, c) in masks.items()},
    }


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def summarise_experts(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collection summary of :func:`case_agreement` rows (ratio figures over the photos with >= 2 expert ratios)."""
    rated = [r for r in rows if len(r["expert_vcdr"]) >= 2]
    loo = [e for r in rated for e in loo_errors(r["expert_vcdr"])]
    return {
        "photos": len(rows),
        "photos_with_expert_ratios": len(rated),
        "experts_per_photo": sorted({len(r["expert_vcdr"]) for r in rated}),
        "expert_vcdr_loo_mae": _mean(loo),
        "expert_vcdr_loo_median": float(np.median(loo)) if loo else float("nan"),
        "expert_vcdr_range": _mean([max(r["expert_vcdr"]) - min(r["expert_vcdr"]) for r in rated]),
        "reference_vs_experts_bias": _mean([r["reference_vcdr"] - np.mean(r["expert_vcdr"]) for r in rated]),
        "reference_vs_experts_mae": _mean([abs(r["reference_vcdr"] - np.mean(r["expert_vcdr"])) for r in rated]),
        "levels": {k: {m: _mean([r["levels"][k][m] for r in rows if m in r["levels"][k]]) for m in LEVEL_METRICS}
                   for k in map(str, LEVELS)},
    }


def model_agreement(rows: Sequence[dict[str, Any]], evaluation: dict[str, Any]) -> dict[str, Any]:
    """A model's predicted vertical CDRs (an :mod:`engine.fundus.evaluate` document) in an expert's place.

    Only photos with >= 2 expert ratios count; ``not_found`` of them had no disc (no prediction to compare).
    ``in_sample_sources``: copied from the evaluation (sources its checkpoint was trained on).
    """
    experts = {r["case"]: r["expert_vcdr"] for r in rows if len(r["expert_vcdr"]) >= 2}
    preds = {e["case"]: e.get("vcdr_pred") for e in evaluation.get("rows", []) if e.get("case") in experts}
    found = {c: float(v) for c, v in preds.items() if v is not None}
    loo = [_mean(loo_errors(experts[c], v)) for c, v in found.items()]
    return {
        "held_out": evaluation.get("held_out", ""),
        "trained_on": evaluation.get("trained_on", ""),
        "sha256": evaluation.get("sha256", ""),
        "in_sample_sources": list(evaluation.get("in_sample_sources") or []),
        "photos": len(found),
        "not_found": len(preds) - len(found),
        "vcdr_loo_mae": _mean(loo),
        "vcdr_error_vs_expert_mean": _mean([abs(v - np.mean(experts[c])) for c, v in found.items()]),
        "bias": _mean([v - np.mean(experts[c]) for c, v in found.items()]),
        "in_expert_range": _mean([float(min(experts[c]) <= v <= max(experts[c])) for c, v in found.items()]),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.fundus.expert_agreement", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a folder with Drishti-GS-style soft maps (any layout "
                   "engine.fundus.datasets.discover reads; other photos are ignored)")
    p.add_argument("--evaluation", type=Path, nargs="*", default=[],
                   help="engine.fundus.evaluate JSON files whose predicted ratios to compare with the experts")
    p.add_argument("--out", type=Path, help="write per-photo rows and summaries as JSON here")
    args = p.parse_args(argv)

    from engine.models.checkpoint import atomic_write_bytes

    try:
        cases = [c for c in discover(args.data) if c.convention == "soft"]
    except DatasetLayoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not cases:
        print(f"error: no photo with per-expert soft maps (Drishti-GS layout) under {args.data}", file=sys.stderr)
        return 1
    try:
        rows = [case_agreement(c) for c in cases]
        evaluations = [read_evaluation(path) for path in args.evaluation]
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    experts = summarise_experts(rows)
    models = [dict(model_agreement(rows, doc), file=str(path)) for path, doc in zip(args.evaluation, evaluations)]
    print(f"experts  photos={experts['photos']} with ratios={experts['photos_with_expert_ratios']}  one expert vs "
          f"the mean of the others: vCDR MAE {experts['expert_vcdr_loo_mae']:.3f} (median "
          f"{experts['expert_vcdr_loo_median']:.3f}), range {experts['expert_vcdr_range']:.3f}; reference masks vs "
          f"expert mean: MAE {experts['reference_vs_experts_mae']:.3f}")
    for k, m in experts["levels"].items():
        print(f"level >= {k} of 4 experts: vCDR {m['vcdr']:.3f}, Dice vs reference disc {m['dice_disc']:.3f} "
              f"cup {m['dice_cup']:.3f}, rim/disc profile {m['rim_profile_error']:.3f} (narrowest "
              f"{m['rim_min_error']:.3f}), DDLS stage {m['ddls_error']:.2f}")
    for m in models:
        print(f"model    {m['file']}: photos={m['photos']} not found={m['not_found']}  in an expert's place: vCDR MAE "
              f"{m['vcdr_loo_mae']:.3f}, bias {m['bias']:+.3f}, within the experts' range "
              f"{100 * m['in_expert_range']:.0f}%")
    if args.out:
        doc = {"data": str(args.data), "experts": experts, "models": models, "rows": rows}
        atomic_write_bytes(args.out, (json.dumps(doc, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
