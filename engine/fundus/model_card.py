"""Ship a trained disc/cup checkpoint with a model card that carries its held-out evaluation.

    python -m engine.fundus.model_card --checkpoint runs/disc_cup/final/best.pt \\
        --held-out runs/disc_cup/eval_drishti.json runs/disc_cup/eval_odoc100.json \\
        --out resources/models/disc_cup.pt

``--held-out`` files are the JSON written by :mod:`engine.fundus.evaluate` for models trained *without* the
evaluated sources (leave-one-source-out); their per-source summaries (model and baseline) go into the card's
``held_out`` block as measured. The weights and spec are copied unchanged (several ``--checkpoint`` files of one
recipe are stored as one averaging model, :func:`engine.fundus.segmenter.combine_members`, with each member's
training record in ``members``); the card is rewritten through :func:`engine.models.checkpoint.save_checkpoint`,
which records the new file's SHA-256.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence


def held_out_block(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """One entry per evaluation file: held-out sources, what the evaluated checkpoint was trained on, its SHA-256,
    model and baseline summaries (recomputed from the file's per-photo rows, when it has them, so that every
    block carries the current :func:`engine.fundus.evaluate.summarise` fields).

    Raises:
        ValueError: a file cannot be read, is not an evaluation file, or evaluated sources its checkpoint was
            trained on (``in_sample_sources``).
    """
    from engine.fundus.evaluate import summarise

    out = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(doc, dict):
                raise KeyError("held_out_sources")
            entry = {
                "held_out_sources": doc["held_out_sources"],
                "held_out": doc.get("held_out", f"sources {doc['held_out_sources']}"),
                "trained_on": doc.get("trained_on", ""),
                "evaluated_checkpoint_sha256": doc["sha256"],
                "model": summarise(doc["rows"]) if doc.get("rows") else dict(doc["model"]),
                "baseline": doc["baseline"],
                "baseline_metrics": (summarise(doc["baseline_rows"]) if doc.get("baseline_rows")
                                     else doc["baseline_summary"]),
            }
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: cannot read it ({err})") from None
        except KeyError as err:
            raise ValueError(f"{path}: not an engine.fundus.evaluate file (no {err} field)") from None
        if doc.get("in_sample_sources"):
            raise ValueError(f"{path}: the evaluated checkpoint was trained on {', '.join(doc['in_sample_sources'])}"
                             ": not a held-out evaluation")
        out.append(entry)
    return out


def expert_agreement_block(path: Path) -> dict[str, Any]:
    """The summaries of an :mod:`engine.fundus.expert_agreement` file (no per-photo rows).

    Raises:
        ValueError: the file cannot be read, is not such a file, or compares a model evaluated on sources it was
            trained on.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        block = {"what": "inter-expert agreement on the Drishti-GS1 photos (4 experts each) and held-out models' "
                         "vertical CDRs in an expert's place (python -m engine.fundus.expert_agreement)",
                 "experts": doc["experts"], "models": doc["models"]}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read it ({err})") from None
    except (KeyError, TypeError):
        raise ValueError(f"{path}: not an engine.fundus.expert_agreement file") from None
    for model in block["models"]:
        if model.get("in_sample_sources"):
            raise ValueError(f"{path}: {model.get('file', 'a model')} was trained on "
                             f"{', '.join(model['in_sample_sources'])}: not a held-out comparison")
    return block


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.fundus.model_card", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                   help="trained weights; several = one model averaging their probabilities")
    p.add_argument("--held-out", type=Path, nargs="+", required=True, help="engine.fundus.evaluate JSON files")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--note", action="append", default=[], help="extra line for the card's evaluation notes")
    p.add_argument("--expert-agreement", type=Path,
                   help="engine.fundus.expert_agreement JSON: the experts' own disagreement and the held-out "
                        "models' ratios in an expert's place go into the card")
    args = p.parse_args(argv)

    from engine.fundus.segmenter import combine_members
    from engine.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    try:
        ckpts = [load_checkpoint(path, expected_task="disc-cup") for path in args.checkpoint]
        spec, state = combine_members([c.spec for c in ckpts], [c.state_dict for c in ckpts])
    except (CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    ckpt = ckpts[0]
    card = dict(ckpt.card)
    for key in ("format", "spec", "weights_file", "sha256"):
        card.pop(key, None)
    card["training_metrics"] = {"values": card.pop("metrics", {}), "split": card.pop("metrics_split", ""),
                                "what": "crop-level validation of the training run's own small hold-out split"}
    try:
        card["held_out"] = held_out_block(args.held_out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.expert_agreement:
        try:
            card["expert_agreement"] = expert_agreement_block(args.expert_agreement)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    if len(ckpts) > 1:
        card["members"] = [{"sha256": c.sha256, "training": c.card.get("training", {})} for c in ckpts]
    card["evaluation"] = [
        "Photo-level, as the product runs: engine.fundus.analyse_disc on the full-resolution photo (training-free "
        "localiser, coarse and fine network passes, masks mapped back), compared with the experts' masks "
        "(Drishti-GS1: pixels at least 2 of its 4 experts marked). Dice of disc and cup; vertical CDR = cup "
        "height / disc height from the masks; a photo with no disc found counts as Dice 0 and ratio error "
        "max(v, 1 - v).",
        "Leave-one-source-out: each held-out block's checkpoint was trained with the same recipe on the other "
        "sources only (python -m engine train disc-cup --set 'data.sources=[...]'); the shipped weights were then "
        "trained on every source (all photos but the training run's small hold-out).",
        *([f"The shipped model is the mean of the probabilities of {len(ckpts)} networks trained with the same "
           "recipe and different seeds (--set seed=0..); every held-out figure is for such a mean of networks "
           "that never saw the held-out block."] if len(ckpts) > 1 else []),
        *args.note,
    ]
    digest = save_checkpoint(args.out, spec, state, card)
    print(f"{args.out}: sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
