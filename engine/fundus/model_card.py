"""Ship a trained disc/cup checkpoint with a model card that carries its held-out evaluation.

    python -m engine.fundus.model_card --checkpoint runs/disc_cup/final/best.pt \\
        --held-out runs/disc_cup/eval_drishti.json runs/disc_cup/eval_odoc100.json \\
        --out resources/models/disc_cup.pt

``--held-out`` files are the JSON written by :mod:`engine.fundus.evaluate` for models trained *without* the
evaluated sources (leave-one-source-out); their per-source summaries (model and baseline) go into the card's
``held_out`` block as measured. ``--reference-baseline`` files (same rows, written by another method trained
without the same sources: issue 3's plain two-stage U-Net, ``benchmarks/disc_cup_plain_baseline.py``) join the
block of the same held-out sources as ``reference_baseline``; with ``--card`` instead of ``--checkpoint`` they are
added to an existing card in place (the weights and their SHA-256 are untouched); ``--reference-from OLD.card.json``
carries the reference baselines of the model a new one replaces (same held-out blocks).
``--grey-checkpoint`` / ``--grey-fine-checkpoint`` networks (trained with ``data.p_grey``) join as the model's
networks for photos without colour (:func:`engine.fundus.segmenter.attach_grey`) with their held-out figures on grey
copies (``--grey-held-out``: ``evaluate --without-colour`` files) in ``grey_networks``; ``--base SHIPPED.pt``
instead of ``--checkpoint`` adds them to a shipped model whose networks and card stay as they are. The weights and spec are
copied unchanged (several ``--checkpoint`` files of one recipe are stored as one averaging model,
:func:`engine.fundus.segmenter.combine_members`, with each member's training record in ``members``;
``--fine-checkpoint`` files join as the fine-pass networks, :func:`engine.fundus.segmenter.attach_fine`, with what
they were trained on in ``fine_pass``); the card is rewritten through
:func:`engine.models.checkpoint.save_checkpoint`, which records the new file's SHA-256.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence


def _count(checkpoints: Any) -> int:
    """How many networks an evaluation file's ``checkpoint`` / ``fine_checkpoint`` field names (0: none; 1: the
    shipped model or one file)."""
    if not checkpoints:
        return 0
    return len(checkpoints) if isinstance(checkpoints, list) else 1


def _block_of(blocks: Sequence[dict[str, Any]], sources: Sequence[str]) -> Optional[dict[str, Any]]:
    """The held-out block that holds out exactly ``sources`` (sorted), or None."""
    return next((b for b in blocks if sorted(b.get("held_out_sources") or []) == list(sources)), None)


def _member_records(ckpts: Sequence[Any]) -> list[dict[str, Any]]:
    """Each loaded checkpoint's SHA-256 and training record, for a card's ``members`` lists."""
    return [{"sha256": c.sha256, "training": c.card.get("training", {})} for c in ckpts]


CHECKPOINT_KEYS = ("format", "spec", "weights_file", "sha256")
"""Card fields :func:`engine.models.checkpoint.save_checkpoint` writes itself (not carried from a source card)."""


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
                "networks": _count(doc.get("checkpoint")), "fine_networks": _count(doc.get("fine_checkpoint")),
                **({"without_colour": doc["without_colour"]} if doc.get("without_colour") else {}),
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


def attach_reference_baselines(blocks: list[dict[str, Any]], paths: Sequence[Path], label: str = "reference"
                               ) -> None:
    """Add each reference baseline's evaluation file to the held-out block of the same sources (in place):
    ``reference_baseline = {"label", "what", "trained_on", "training", "metrics"}`` (``label``: its short name in
    tables), metrics recomputed from its rows with :func:`engine.fundus.evaluate.summarise`.

    Raises:
        ValueError: a file cannot be read, has no per-photo rows, or held out sources no block holds out.
    """
    from engine.fundus.evaluate import read_evaluation, summarise

    for path in paths:
        doc = read_evaluation(Path(path))
        sources = sorted(doc.get("held_out_sources") or [])
        block = _block_of(blocks, sources)
        if block is None:
            raise ValueError(f"{path}: no held-out block of the sources {', '.join(sources) or '(none)'} in the card")
        block["reference_baseline"] = {"label": label, "what": doc.get("baseline", ""),
                                       "trained_on": doc.get("trained_on", ""), "training": doc.get("training", {}),
                                       "metrics": summarise(doc["rows"])}


def reference_baselines_of(card_file: Path) -> list[dict[str, Any]]:
    """The held-out blocks' ``reference_baseline`` entries of an existing ``NAME.card.json``, each as
    ``{"held_out_sources": [...], "reference_baseline": {...}}`` (a reference method's figures do not depend on
    the model the card describes, so a new model of the same held-out blocks can carry them).

    Raises:
        ValueError: the card cannot be read or has no reference baseline.
    """
    try:
        card = json.loads(Path(card_file).read_text(encoding="utf-8"))
        found = [{"held_out_sources": sorted(b.get("held_out_sources") or []),
                  "reference_baseline": b["reference_baseline"]}
                 for b in card["held_out"] if isinstance(b, dict) and "reference_baseline" in b]
    except (OSError, ValueError) as err:
        raise ValueError(f"{card_file}: cannot read it ({err})") from None
    except (KeyError, TypeError):
        found = []
    if not found:
        raise ValueError(f"{card_file}: no held-out block with a reference baseline")
    return found


def carry_reference_baselines(blocks: list[dict[str, Any]], carried: Sequence[dict[str, Any]]) -> None:
    """Put each carried reference baseline (:func:`reference_baselines_of`) into the block of the same held-out
    sources (in place).

    Raises:
        ValueError: a reference baseline's sources are held out by no block.
    """
    for entry in carried:
        block = _block_of(blocks, entry["held_out_sources"])
        if block is None:
            raise ValueError(f"no held-out block of the sources {', '.join(entry['held_out_sources'])} for the "
                             "carried reference baseline")
        block["reference_baseline"] = dict(entry["reference_baseline"])


def update_card(card_file: Path, reference_baselines: Sequence[Path], label: str = "reference") -> None:
    """Add reference baselines to the held-out blocks of an existing ``NAME.card.json`` (atomic rewrite; the
    weights file and the ``sha256`` the card holds for it are unchanged).

    Raises:
        ValueError: the card cannot be read or has no held-out blocks; see :func:`attach_reference_baselines`.
    """
    from engine.models.checkpoint import atomic_write_bytes, finite_or_null

    try:
        card = json.loads(Path(card_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{card_file}: cannot read it ({err})") from None
    if not isinstance(card, dict) or not isinstance(card.get("held_out"), list):
        raise ValueError(f"{card_file}: not a disc/cup model card with held-out blocks")
    attach_reference_baselines(card["held_out"], reference_baselines, label)
    text = json.dumps(finite_or_null(card), indent=2, allow_nan=False, ensure_ascii=False)
    atomic_write_bytes(Path(card_file), (text + "\n").encode())


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


def grey_networks_block(grey: Sequence[Any], grey_fine: Sequence[Any], held_out: Sequence[Path]) -> dict[str, Any]:
    """The card block of a model's networks for photos without colour (loaded checkpoints ``grey`` and
    ``grey_fine``): what they are, what they saw, their held-out figures on grey copies (``held_out``:
    ``engine.fundus.evaluate --without-colour`` files) and each member's training record.

    Raises:
        ValueError: as :func:`held_out_block`, or a file that evaluated colour photos.
    """
    from engine.fundus.segmenter import training_data

    blocks = held_out_block(held_out)
    if not all(b.get("without_colour") for b in blocks):
        raise ValueError("--grey-held-out takes evaluations of photos without colour (evaluate --without-colour)")
    return {
        "what": f"{len(grey)} finding and {len(grey_fine)} fine-pass network(s) used in place of the networks above "
                "on a photo without colour (engine.fundus.localize.is_monochrome), trained with data.p_grey = "
                f"{_p_grey(grey[0].card)} (that share of training crops turned grey: luma or the green channel)",
        "data": training_data([c.card for c in [*grey, *grey_fine]]),
        "held_out": blocks,
        "members": _member_records([*grey, *grey_fine]),
    }


def add_grey_networks(base: Path, grey: Sequence[Path], grey_fine: Sequence[Path], held_out: Sequence[Path],
                      out: Path, notes: Sequence[str] = ()) -> str:
    """A shipped model (``base``, its networks and card kept as they are) with networks for photos without colour
    attached (:func:`engine.fundus.segmenter.attach_grey`), written to ``out`` (``notes`` join the card's evaluation
    notes); returns its SHA-256.

    Raises:
        engine.models.checkpoint.CheckpointError: a checkpoint cannot be read.
        ValueError: ``base`` has such networks already; see :func:`grey_networks_block`.
    """
    from engine.fundus.segmenter import GREY_NETWORKS, attach_grey, combine_checkpoints
    from engine.models.checkpoint import load_checkpoint, save_checkpoint

    model = load_checkpoint(base, expected_task="disc-cup")
    grey_ckpts = [load_checkpoint(p, expected_task="disc-cup") for p in grey]
    fine_ckpts = [load_checkpoint(p, expected_task="disc-cup") for p in grey_fine]
    spec, state = attach_grey(model.spec, model.state_dict, *combine_checkpoints(grey_ckpts, fine_ckpts))
    card = {k: v for k, v in model.card.items() if k not in CHECKPOINT_KEYS}
    card[GREY_NETWORKS] = grey_networks_block(grey_ckpts, fine_ckpts, held_out)
    card["evaluation"] = [*card.get("evaluation", []),
                          f"Photos without colour go to the networks of grey_networks, added to the model "
                          f"{model.sha256[:12]}... (whose networks and figures above are unchanged); their held-out "
                          "figures are on grey copies of the held-out photos, by networks trained without them.",
                          *notes]
    return save_checkpoint(out, spec, state, card)


def _p_grey(card: dict[str, Any]) -> Any:
    """The ``data.p_grey`` a network's training ran with ("?" when its card does not say)."""
    return ((card.get("training") or {}).get("config") or {}).get("data", {}).get("p_grey", "?")


def _counted(blocks: Sequence[dict[str, Any]], key: str, noun: str) -> str:
    """How many networks the blocks' evaluations averaged, in words: "5 such networks", "3 to 5 such networks", or
    "such networks" when an evaluation file did not say."""
    counts = sorted({int(b.get(key, 0)) for b in blocks})
    if not counts or counts[0] == 0:
        return f"such {noun}"
    return f"{counts[0]}{'' if len(counts) == 1 else f' to {counts[-1]}'} such {noun}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.fundus.model_card", description=__doc__.split("\n\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", type=Path, nargs="+",
                      help="trained weights; several = one model averaging their probabilities")
    p.add_argument("--fine-checkpoint", type=Path, nargs="+", default=[],
                   help="with --checkpoint: weights that draw the final masks (fine-pass networks, trained on "
                        "disc-centred crops only); several = their mean")
    what.add_argument("--base", type=Path,
                      help="a shipped disc/cup model to add --grey-checkpoint networks to (written to --out; its "
                           "own networks and card are kept)")
    what.add_argument("--card", type=Path,
                      help="an existing NAME.card.json to add --reference-baseline files to (in place)")
    p.add_argument("--held-out", type=Path, nargs="+", help="engine.fundus.evaluate JSON files")
    p.add_argument("--grey-checkpoint", type=Path, nargs="+", default=[],
                   help="with --checkpoint: the networks that find the disc on photos without colour (trained with "
                        "data.p_grey); several = their mean")
    p.add_argument("--grey-fine-checkpoint", type=Path, nargs="+", default=[],
                   help="with --grey-checkpoint: their fine-pass networks")
    p.add_argument("--grey-held-out", type=Path, nargs="+", default=[],
                   help="with --grey-checkpoint: engine.fundus.evaluate --without-colour files of such networks "
                        "trained without the evaluated sources")
    p.add_argument("--reference-baseline", type=Path, nargs="+", default=[],
                   help="evaluation files of a reference method trained without the same held-out sources")
    p.add_argument("--reference-label", default="reference", help="the reference method's short name in tables")
    p.add_argument("--reference-from", type=Path,
                   help="an existing NAME.card.json whose held-out blocks' reference baselines join the blocks of "
                        "the same sources (the model it describes is not used)")
    p.add_argument("--out", type=Path)
    p.add_argument("--note", action="append", default=[], help="extra line for the card's evaluation notes")
    p.add_argument("--expert-agreement", type=Path,
                   help="engine.fundus.expert_agreement JSON: the experts' own disagreement and the held-out "
                        "models' ratios in an expert's place go into the card")
    args = p.parse_args(argv)
    if args.card:
        if not args.reference_baseline:
            p.error("--card needs --reference-baseline")
        try:
            update_card(args.card, args.reference_baseline, args.reference_label)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{args.card}: {len(args.reference_baseline)} reference baseline(s) added")
        return 0
    from engine.models.checkpoint import CheckpointError

    if args.base:
        if not args.grey_checkpoint or not args.grey_held_out or args.out is None:
            p.error("--base needs --grey-checkpoint, --grey-held-out and --out")
        try:
            digest = add_grey_networks(args.base, args.grey_checkpoint, args.grey_fine_checkpoint,
                                       args.grey_held_out, args.out, args.note)
        except (CheckpointError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{args.out}: sha256 {digest}")
        return 0
    if not args.held_out or args.out is None:
        p.error("--checkpoint needs --held-out and --out")
    if bool(args.grey_checkpoint) != bool(args.grey_held_out):
        p.error("--grey-checkpoint and --grey-held-out go together")

    from engine.fundus.segmenter import FINE_PASS, GREY_NETWORKS, combine_checkpoints, training_data
    from engine.models.checkpoint import load_checkpoint, save_checkpoint

    try:
        ckpts = [load_checkpoint(path, expected_task="disc-cup") for path in args.checkpoint]
        fine = [load_checkpoint(path, expected_task="disc-cup") for path in args.fine_checkpoint]
        grey = [load_checkpoint(path, expected_task="disc-cup") for path in args.grey_checkpoint]
        grey_fine = [load_checkpoint(path, expected_task="disc-cup") for path in args.grey_fine_checkpoint]
        spec, state = combine_checkpoints(ckpts, fine, grey, grey_fine)
    except (CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    ckpt = ckpts[0]
    card = {k: v for k, v in ckpt.card.items() if k not in CHECKPOINT_KEYS}
    card["training_metrics"] = {"values": card.pop("metrics", {}), "split": card.pop("metrics_split", ""),
                                "what": "crop-level validation of the training run's own small hold-out split"}
    try:
        card["held_out"] = held_out_block(args.held_out)
        if args.reference_from:
            carry_reference_baselines(card["held_out"], reference_baselines_of(args.reference_from))
        attach_reference_baselines(card["held_out"], args.reference_baseline, args.reference_label)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if grey:
        try:
            card[GREY_NETWORKS] = grey_networks_block(grey, grey_fine, args.grey_held_out)
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
        card["members"] = _member_records(ckpts)
    if fine:
        card[FINE_PASS] = {
            "what": f"{len(fine)} network(s) that draw the final disc and cup masks on crops centred on the disc "
                    "the networks above found (their probabilities averaged)",
            "data": training_data([c.card for c in fine]),
            **({"pseudo_labels": fine[0].card["pseudo_labels"]} if fine[0].card.get("pseudo_labels") else {}),
            "members": _member_records(fine),
        }
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
           "recipe and different seeds (--set seed=0..); every held-out figure is for a mean of "
           f"{_counted(card['held_out'], 'networks', 'networks')} that never saw the held-out block."]
          if len(ckpts) > 1 else []),
        *([f"The final disc and cup masks are drawn by {len(fine)} fine-pass network(s) (fine_pass) on crops centred "
           "on the disc the networks above found; every held-out figure is for both sets trained without the "
           f"held-out block (a mean of {_counted(card['held_out'], 'fine_networks', 'fine-pass networks')})."]
          if fine else []),
        *args.note,
    ]
    digest = save_checkpoint(args.out, spec, state, card)
    print(f"{args.out}: sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
