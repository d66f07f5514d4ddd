"""Reproduce the shipped sibling-task weights: phantom cohorts -> ``engine.train`` -> synthetic test -> cards.

There are no labelled data here for ODIR-5K, glioma grade or bone density, so the shipped ``odir.pt``,
``glioma.pt`` and ``bone.pt`` are demonstration weights: trained by the project's own training code on the
phantoms of :mod:`engine.tasks.phantoms`, then tested through the inference path (``classify_fundus``,
``grade_glioma``, ``diagnose``) on a second phantom cohort drawn with other seeds, next to a simple baseline
(logistic regression on intensity histograms). The card says all of this; the metrics are synthetic.

    OMP_NUM_THREADS=1 nice -n 10 python -m engine.tasks.demo_weights --work /tmp/gv_sib --out resources/models \
        [--tasks odir glioma bone] [--real-fundus ../shared/data/fundus_glaucoma]

``--real-fundus`` adds a check of the ODIR model's glaucoma output on real photos (``labels.csv`` layout of
the shared sample folder; nothing is copied) to the ODIR card.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

log = logging.getLogger("engine.tasks.demo_weights")

DEMO_NOTICE = (
    "DEMO ONLY: trained and tested on synthetic phantoms (engine.tasks.phantoms), never on patients; no clinical "
    "validity; the metrics below are on synthetic held-out phantoms and say nothing about real images"
)

# name -> (task when not the name, train cohort, test cohort, TrainConfig fields); ``<name>.pt`` is written.
# Small enough for a 1-thread CPU run of a few minutes in all. Two glioma variants: FLAIR + T1ce (what the real
# BraTS samples here hold) and FLAIR + T1ce + T2; inference picks the one that fits the exam.
PLANS: dict[str, dict[str, Any]] = {
    "odir": {
        "train": {"n": 320, "shape": (192, 192), "seed": 0},
        "test": {"n": 120, "shape": (192, 192), "seed": 50_000},
        "config": {"epochs": 14, "batch_size": 16, "lr": 2e-3, "val_fraction": 0.2, "patience": 0,
                   "model": {"backbone": "small2d", "dropout": 0.1, "biomarkers": False},
                   "data": {"input_size": 128, "flip": 0.5, "rotate_deg": 10.0, "zoom": 0.05, "intensity": 0.1}},
    },
    "glioma": {
        "train": {"n_hgg": 24, "n_lgg": 12, "shape": (40, 96, 96), "seed": 0},
        "test": {"n_hgg": 10, "n_lgg": 10, "shape": (40, 96, 96), "seed": 50_000},
        "config": {"epochs": 8, "batch_size": 32, "lr": 1e-3, "val_fraction": 0.25, "patience": 0,
                   "model": {"width": 8, "dropout": 0.3, "gamma": 2.0},
                   "data": {"size": [64, 64], "slices_per_case": 12, "min_brain_fraction": 0.05}},
    },
    "glioma_flair_t1ce_t2": {
        "task": "glioma",
        "train": {"n_hgg": 24, "n_lgg": 12, "shape": (40, 96, 96), "seed": 0, "sequences": ("flair", "t1ce", "t2")},
        "test": {"n_hgg": 10, "n_lgg": 10, "shape": (40, 96, 96), "seed": 50_000, "sequences": ("flair", "t1ce", "t2")},
        "config": {"epochs": 8, "batch_size": 32, "lr": 1e-3, "val_fraction": 0.25, "patience": 0,
                   "model": {"width": 8, "dropout": 0.3, "gamma": 2.0},
                   "data": {"size": [64, 64], "slices_per_case": 12, "min_brain_fraction": 0.05}},
    },
    "bone": {
        "train": {"n": 30, "shape": (480, 960), "seed": 0},
        "test": {"n": 10, "shape": (480, 960), "seed": 50_000},
        "config": {"epochs": 12, "batch_size": 8, "lr": 3e-3, "folds": 5, "patience": 0,
                   "model": {"width_mult": 0.25, "depth_mult": 0.25, "dropout": 0.2},
                   "data": {"variant": "full", "size": [96, 192], "flip": 0.5, "rotate_deg": 5.0, "zoom": 0.05}},
    },
}


def _write_cohort(task: str, root: Path, plan: dict[str, Any]) -> Path:
    from engine.tasks import phantoms

    if (root / phantoms.PHANTOM_MARKER).is_file():
        return root
    if task == "odir":
        return phantoms.write_odir_cohort(root, plan["n"], shape=plan["shape"], seed=plan["seed"])
    if task == "glioma":
        return phantoms.write_brats_cohort(root, plan["n_hgg"], plan["n_lgg"], shape=plan["shape"],
                                           sequences=plan.get("sequences", ("flair", "t1ce")), seed=plan["seed"])
    return phantoms.write_panoramic_cohort(root, plan["n"], shape=plan["shape"], seed=plan["seed"])


# ----------------------------------------------------------------------------------------------- baseline


def _histogram(values: np.ndarray, lo: float, hi: float, bins: int = 32) -> np.ndarray:
    v = np.asarray(values, np.float32).ravel()
    hist = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))[0].astype(np.float32)
    return np.concatenate([hist / max(1, v.size), [v.mean() / hi, v.std() / hi]])


def _features(task: str, item: dict[str, Any]) -> np.ndarray:
    """Intensity-histogram features of one cohort item (the baseline's input)."""
    from engine.io.images import read_image
    from engine.io.nifti import read_volume

    if task == "odir":
        image = read_image(item["image"])
        return np.concatenate([_histogram(image[..., c], 0, 255) for c in range(3)])
    if task == "bone":
        return _histogram(read_image(item["image"], grey=True), 0, 255)
    from engine.tasks import glioma

    mri = {s: read_volume(item[s])[0] for s in item["sequences"]}
    mask = glioma.brain_mask(mri)
    return np.concatenate([_histogram(glioma.normalise_sequence(v, mask)[mask], -5, 5) for v in mri.values()])


def _baseline(task: str, train_items: Sequence[dict], test_items: Sequence[dict], targets: Callable) -> np.ndarray:
    """Probabilities of a logistic regression on intensity histograms (per label for ODIR)."""
    from sklearn.linear_model import LogisticRegression

    x_tr = np.stack([_features(task, it) for it in train_items])
    x_te = np.stack([_features(task, it) for it in test_items])
    y_tr = np.stack([targets(it) for it in train_items])
    if y_tr.ndim == 1:
        return LogisticRegression(max_iter=2000, C=1.0).fit(x_tr, y_tr).predict_proba(x_te)
    out = np.zeros((len(x_te), y_tr.shape[1]), np.float32)
    for j in range(y_tr.shape[1]):
        if 0 < y_tr[:, j].sum() < len(y_tr):
            out[:, j] = LogisticRegression(max_iter=2000, C=1.0).fit(x_tr, y_tr[:, j]).predict_proba(x_te)[:, 1]
        else:
            out[:, j] = float(y_tr[:, j].mean())
    return out


def _binary_metrics(p_positive: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score, roc_auc_score

    y = np.asarray(y).astype(bool)
    pred = np.asarray(p_positive) >= 0.5
    return {
        "accuracy": float((pred == y).mean()),
        "auc": float(roc_auc_score(y, p_positive)) if 0 < y.sum() < len(y) else float("nan"),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "n": int(len(y)),
    }


def _round(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _round(v) for k, v in d.items()}
    if isinstance(d, float):
        return round(d, 4) if np.isfinite(d) else None
    return d


# ----------------------------------------------------------------------------------------------- per task test


def _test(task: str, model: Any, train_items: list, test_items: list) -> dict[str, Any]:
    from engine.io.images import read_image
    from engine.io.nifti import read_volume

    if task == "odir":
        from engine.tasks import odir
        from engine.tasks.training import odir_metrics

        probs = np.stack([list(odir.classify_fundus(read_image(it["image"]), model).probabilities.values())
                          for it in test_items]).astype(np.float32)
        y = np.stack([it["labels"] for it in test_items])
        base = _baseline(task, train_items, test_items, lambda it: it["labels"])
        keep = [k for k in odir_metrics(probs, y) if k.startswith(("auc_", "f1_")) or k in ("odir_score",)]
        ours, theirs = odir_metrics(probs, y), odir_metrics(base, y)
        return {"model": {k: ours[k] for k in keep}, "baseline_histogram_logreg": {k: theirs[k] for k in keep},
                "n": len(test_items), "label_counts": {k: int(y[:, j].sum()) for j, k in enumerate(odir.LABELS)}}
    if task == "glioma":
        from engine.tasks import glioma

        p_hgg = np.array([glioma.grade_glioma({s: read_volume(it[s])[0] for s in it["sequences"]}, model)
                          .probabilities["HGG"] for it in test_items])
        y = np.array([it["label"] == 0 for it in test_items])
        base = _baseline(task, train_items, test_items, lambda it: int(it["label"] == 0))[:, 1]
        return {"level": "patient (mean HGG probability over informative slices)",
                "model": _binary_metrics(p_hgg, y), "baseline_histogram_logreg": _binary_metrics(base, y),
                "positive_class": "HGG", "counts": {"HGG": int(y.sum()), "LGG": int((~y).sum())}}
    from engine.tasks import bone

    p_osteo = np.array([bone.diagnose(read_image(it["image"], grey=True), model, cam=False)
                        .probabilities["osteoporosis"] for it in test_items])
    y = np.array([it["label"] == 1 for it in test_items])
    base = _baseline(task, train_items, test_items, lambda it: int(it["label"] == 1))[:, 1]
    return {"model": _binary_metrics(p_osteo, y), "baseline_histogram_logreg": _binary_metrics(base, y),
            "positive_class": "osteoporosis", "counts": {"healthy": int((~y).sum()), "osteoporosis": int(y.sum())}}


def real_fundus_check(model: Any, folder: Path) -> dict[str, Any]:
    """The ODIR model's glaucoma probability on real photos of ``folder`` (``labels.csv``: sample, label 0/1)."""
    from engine.io.images import read_image
    from engine.tasks import odir

    p, y, used = [], [], []
    with open(folder / "labels.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            case = folder / row["sample"]
            photos = sorted(f for f in case.iterdir() if f.stem.lower() == "fundus") if case.is_dir() else []
            if not photos:  # ACRIMA holds only the disc crop: not a fundus photo
                continue
            p.append(odir.classify_fundus(read_image(photos[0]), model).probabilities["G"])
            y.append(int(row["label"]) == 1)
            used.append(row["sample"])
    return {"data": f"{len(used)} real fundus photos of the SMDG sample ({folder.name}; glaucoma vs normal only)",
            "glaucoma_output": _binary_metrics(np.array(p), np.array(y))}


# ----------------------------------------------------------------------------------------------- driver


def build(name: str, work: Path, out: Path, real_fundus: Path | None = None) -> dict[str, Any]:
    """Train plan ``name`` on phantoms under ``work``, test it, write ``out/<name>.pt`` + card; return the card."""
    from engine.models.checkpoint import load_checkpoint, save_checkpoint
    from engine.tasks._common import load_task_model
    from engine.tasks import _builder
    from engine.train import tasks as registry
    from engine.train.config import TrainConfig
    from engine.train.run import train_task

    plan = PLANS[name]
    task = plan.get("task", name)
    train_root = _write_cohort(task, work / f"{name}_train", plan["train"])
    test_root = _write_cohort(task, work / f"{name}_test", plan["test"])
    adapter = registry.get_task(task)
    config = TrainConfig(device="cpu", amp=False, num_workers=0, **plan["config"]).validate()
    t0 = time.perf_counter()
    outcome = train_task(adapter, train_root, work / f"{name}_run", config, n_boot=200)
    train_s = time.perf_counter() - t0
    best = outcome.folds[0].checkpoint
    model = load_task_model(best, task, _builder(task), "cpu")
    train_items = adapter.read_cohort(train_root, config).items
    test_items = adapter.read_cohort(test_root, config).items
    ckpt = load_checkpoint(best, expected_task=task)
    card = dict(ckpt.card)
    card.update(
        name=f"{name}-phantom-demo",
        notice=DEMO_NOTICE,
        clinical_validity="none",
        test_data=f"{adapter.read_cohort(test_root, config).description} (other seeds than training)",
        synthetic_test=_round(_test(task, model, train_items, test_items)),
        training_time_s=round(train_s, 1),
        reproduce=f"OMP_NUM_THREADS=1 python -m engine.tasks.demo_weights --work DIR --out resources/models --tasks {name}",
    )
    if len(outcome.folds) > 1:
        card["cross_validation"] = _round({k: v for k, v in outcome.summary.items()})
        card["shipped_fold"] = "fold 1 of the stratified cross-validation"
    if task == "odir" and real_fundus is not None:
        card["real_image_check"] = _round(real_fundus_check(model, Path(real_fundus)))
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / f"{name}.pt", ckpt.spec, ckpt.state_dict, card)
    return card


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(prog="python -m engine.tasks.demo_weights", description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="scratch folder for phantom cohorts and runs")
    p.add_argument("--out", type=Path, required=True, help="where <task>.pt and its card go")
    p.add_argument("--tasks", nargs="+", choices=tuple(PLANS), default=list(PLANS))
    p.add_argument("--real-fundus", type=Path, help="fundus_glaucoma sample folder for the ODIR real-image check")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    for task in args.tasks:
        card = build(task, args.work, args.out, args.real_fundus)
        print(json.dumps({"task": task, "training_time_s": card["training_time_s"],
                          "synthetic_test": card["synthetic_test"], "real_image_check": card.get("real_image_check")},
                         indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
