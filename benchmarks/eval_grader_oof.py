"""GAMMA out-of-fold kappa of the shipped grader folds through the product path, per disc/cup model.

    GV_SAMPLE_DATA=../shared/data .venv/bin/python benchmarks/eval_grader_oof.py [--disc-cup A.pt B.pt ...]

The disc-level graders see the disc/cup analysis (``engine.fundus.analyse_disc``): the disc+vCDR recipe takes
its vertical CDR as an input. This checks what a new disc/cup model does to the grade. For each ``--disc-cup``
checkpoint (default: the shipped one), every GAMMA photo of ``GV_SAMPLE_DATA/gamma_fundus_grading`` is graded
through ``engine.pipeline.grade`` by the shipped fold models (``default.ensemble.json``) that never saw it,
folds rebuilt from the recipe (the cards' split: K folds, seed); prints the quadratic kappa of the mean of
their probabilities and how many photos changed grade against the first checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def resources_with(disc_cup: Path, out: Path) -> Path:
    """A resources folder ``out`` that links every shipped file but puts ``disc_cup`` in place of
    ``models/disc_cup.pt`` (and its card)."""
    from engine.models.checkpoint import card_path_for
    from engine.resources import resources_dir

    (out / "models").mkdir(parents=True)
    for item in resources_dir().iterdir():
        if item.name != "models":
            (out / item.name).symlink_to(item.resolve())
    for item in (resources_dir() / "models").iterdir():
        if item.name not in ("disc_cup.pt", "disc_cup.card.json"):
            (out / "models" / item.name).symlink_to(item.resolve())
    (out / "models" / "disc_cup.pt").symlink_to(disc_cup.resolve())
    (out / "models" / "disc_cup.card.json").symlink_to(card_path_for(disc_cup).resolve())
    return out


def fold_members(ensemble: Path) -> dict[int, list[Path]]:
    """``{k: [checkpoint paths]}`` from an ensemble file whose members are named ``<recipe>-fold<k>``."""
    doc = json.loads(ensemble.read_text(encoding="utf-8"))
    folds: dict[int, list[Path]] = {}
    for member in doc["members"]:
        match = re.search(r"-fold(\d+)$", member["name"])
        if match:
            folds.setdefault(int(match.group(1)), []).append(ensemble.parent / member["path"])
    return folds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--disc-cup", type=Path, nargs="+", help="disc/cup checkpoints (default: the shipped one)")
    args = ap.parse_args()
    if not os.environ.get("GV_SAMPLE_DATA"):
        print("GV_SAMPLE_DATA is not set: nothing to evaluate", file=sys.stderr)
        return 1

    from sklearn.metrics import cohen_kappa_score

    from engine.io.discover import load_exam
    from engine.models.registry import load_grader
    from engine.pipeline import grade
    from engine.resources import models_dir
    from engine.train.config import load_config
    from engine.train.run import make_splits
    from engine.train.tasks import get_task

    data = Path(os.environ["GV_SAMPLE_DATA"]) / "gamma_fundus_grading"
    folds = fold_members(models_dir() / "default.ensemble.json")
    graders = {k: [load_grader(p) for p in paths] for k, paths in sorted(folds.items())}
    split = graders[min(graders)][0].card.get("split", {})
    config = load_config(overrides={"task": "grader", "folds": int(split.get("folds", len(folds))),
                                    "seed": int(split.get("seed", 0))})
    cohort = get_task("grader").read_cohort(data, config)
    truth = dict(zip(cohort.ids, cohort.labels))
    val = {int(name.removeprefix("fold")): [cohort.ids[i] for i in v] for name, (_, v) in make_splits(cohort, config)}
    photos = {p.stem: p for p in (data / "images").iterdir()}
    shipped = models_dir() / "disc_cup.pt"
    first: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, ckpt in enumerate(args.disc_cup or [shipped]):
            os.environ["GV_RESOURCES"] = str(resources_with(ckpt, Path(tmp) / str(n)))
            y, probs, vcdr, used = [], [], [], set()
            for k, members in graders.items():
                for case in val[k]:
                    result = grade(load_exam(photos[case]), models=members, cams=False, device="cpu")
                    y.append(truth[case])
                    probs.append(result.probabilities)
                    vcdr.append(result.biomarkers.get("vcdr", np.nan))
                    used.add(result.disc.weights_sha256[:12] if result.disc is not None else "none")
            run = {"grade": np.argmax(probs, axis=1), "p": np.asarray(probs), "vcdr": np.asarray(vcdr, float)}
            first = first or run
            kappa = cohen_kappa_score(y, run["grade"], weights="quadratic")
            print(f"{ckpt} (disc/cup weights {', '.join(sorted(used))}): {len(y)} GAMMA photos out of fold, "
                  f"quadratic kappa {kappa:.3f}; against the first checkpoint: "
                  f"{int((run['grade'] != first['grade']).sum())} grades differ, mean |vCDR change| "
                  f"{np.nanmean(np.abs(run['vcdr'] - first['vcdr'])):.3f}, largest probability change "
                  f"{np.abs(run['p'] - first['p']).max():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
