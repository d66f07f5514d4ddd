"""Evaluate the grader recipes: GAMMA K-fold (out-of-fold) and external held-out sources, against baselines.

    python benchmarks/eval_grader.py --runs RUN_DIR [RUN_DIR ...] --gamma DATA/gamma_fundus_grading \
        --external DATA/fundus_glaucoma --out OUT_DIR

``RUN_DIR``: output of ``python -m engine train grader ... --folds K`` (``split.json``, ``foldK/predictions.csv``,
``foldK/best.pt``). All runs must share the split (same seed and folds) so their out-of-fold predictions
combine into an ensemble estimate.

1. GAMMA, out of fold: each photo is predicted by the fold model that did not train on it. Quadratic kappa
   with a 2000-sample bootstrap 95 % interval, accuracy, per-class F1, for each run and for the mean of runs.
2. External sources (``fundus_glaucoma``: 17 public datasets, none in GAMMA, labels normal / glaucoma): every
   fold model of a run grades every case with a full fundus photo through ``engine.pipeline.grade`` (the
   product's own path); the run's answer is the mean of its fold models (the shipped CV ensemble).
   P(glaucoma) = P(early) + P(mid_advanced). AUC with bootstrap interval, accuracy, sensitivity, specificity.
3. Baselines: majority class; a logistic regression on pixel statistics of the disc crop and the photo (the
   same localiser), trained on the same GAMMA folds (K-fold) and on all 60 GAMMA photos (external); with
   ``--vcdr`` also a logistic regression on the vertical cup-to-disc ratio of ``engine.fundus.analyse_disc``.

Writes ``OUT_DIR/evaluation.json`` and prints a table. ``--ship DIR`` then copies every fold model into ``DIR``
(``<run>-fold<k>.pt``, weights byte-identical so the SHA-256 still holds), writes into each card the recipe's
out-of-fold GAMMA figures and the external figures, and writes ``DIR/default.ensemble.json`` (mean of all).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLASSES = ("non", "early", "mid_advanced")
GAMMA_PRIOR = (0.5, 16 / 60, 14 / 60)
BASELINES = ("majority_class", "pixel_logistic_regression", "vcdr_logistic_regression")
LIMITATIONS = (
    "Trained from random weights (no ImageNet weights offline) on 48 of 60 real GAMMA photos at 192 px (disc crop "
    "128 px) on a shared CPU: far below the reference fundus model (quadratic kappa 0.855 with ImageNet weights "
    "and 100 training cases). Confidence intervals are wide (12 held-out photos per fold, 60 in all, 33 external "
    "cases). GAMMA figures of the shipped ensemble itself would be optimistic (each photo trained 4 of its 5 fold "
    "members): quote the out-of-fold and external figures. Probabilities are not calibrated across cameras. "
    "Research use only; not a medical device.")


# ----------------------------------------------------------------------------------------------- metrics


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count half)."""
    pos, neg = score[y == 1], score[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def bootstrap(fn: Any, n: int, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    vals = [fn(rng.integers(0, n, n)) for _ in range(n_boot)]
    vals = np.asarray([v for v in vals if np.isfinite(v)])
    return (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))) if vals.size else (np.nan, np.nan)


def grading_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    from engine.train.metrics import bootstrap_kappa_ci, quadratic_kappa

    pred = probs.argmax(1)
    out: dict[str, Any] = {"n": int(len(y)), "kappa": quadratic_kappa(y, pred, 3),
                           "kappa_ci95": bootstrap_kappa_ci(y, pred, 3, n_boot=2000, seed=0),
                           "accuracy": float((pred == y).mean())}
    for k, c in enumerate(CLASSES):
        tp, fp, fn = int(((pred == k) & (y == k)).sum()), int(((pred == k) & (y != k)).sum()), int(((pred != k) & (y == k)).sum())
        out[f"f1_{c}"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    out["f1_macro"] = float(np.nanmean([out[f"f1_{c}"] for c in CLASSES]))
    out["binary_auc_glaucoma"] = auc((y > 0).astype(int), 1 - probs[:, 0])
    return out


def binary_metrics(y: np.ndarray, p_glaucoma: np.ndarray) -> dict[str, Any]:
    pred = (p_glaucoma >= 0.5).astype(int)
    return {"n": int(len(y)), "n_glaucoma": int(y.sum()), "auc": auc(y, p_glaucoma),
            "auc_ci95": bootstrap(lambda i: auc(y[i], p_glaucoma[i]), len(y)),
            "accuracy": float((pred == y).mean()),
            "accuracy_ci95": bootstrap(lambda i: float((pred[i] == y[i]).mean()), len(y)),
            "sensitivity": float(pred[y == 1].mean()) if (y == 1).any() else float("nan"),
            "specificity": float(1 - pred[y == 0].mean()) if (y == 0).any() else float("nan")}


# ------------------------------------------------------------------------------------------------- data


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: unreadable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def gamma_cases(root: Path) -> tuple[list[str], np.ndarray, list[Path]]:
    from engine.train.datasets.gamma import read_gamma

    items = read_gamma(root, require_labels=True)
    return [it["id"] for it in items], np.array([it["label"] for it in items]), [Path(it["fundus"]) for it in items]


def external_cases(root: Path) -> list[dict[str, Any]]:
    """Cases of ``fundus_glaucoma`` with a full fundus photo: ``{"id", "source", "label", "fundus"}``."""
    cases = []
    with open(root / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            folder = root / row["sample"]
            photo = next((p for p in sorted(folder.iterdir()) if p.stem.lower() == "fundus"), None)
            cases.append({"id": row["sample"], "source": row["database"], "label": int(row["label"]), "fundus": photo})
    return cases


# ----------------------------------------------------------------------------------------------- models


def oof_predictions(run: Path, ids: Sequence[str]) -> np.ndarray:
    """``(n, 3)`` out-of-fold probabilities of a K-fold run, in ``ids`` order."""
    probs: dict[str, list[float]] = {}
    for pred in sorted(run.glob("fold*/predictions.csv")):
        with open(pred, newline="") as f:
            for row in csv.DictReader(f):
                probs[row["id"]] = [float(row[f"p_{c}"]) for c in CLASSES]
    missing = [i for i in ids if i not in probs]
    if missing:
        raise SystemExit(f"{run}: no out-of-fold prediction for {len(missing)} case(s), e.g. {missing[0]}")
    return np.array([probs[i] for i in ids])


def fold_checkpoints(run: Path) -> list[Path]:
    return sorted(run.glob("fold*/best.pt"), key=lambda p: int(p.parent.name[4:]))


def grade_external(checkpoints: Sequence[Path], cases: Sequence[dict[str, Any]]) -> np.ndarray:
    """Mean probabilities ``(n, 3)`` of the checkpoints on every case, through engine.pipeline.grade."""
    from engine.io.exam import Exam
    from engine.models.ensemble import Ensemble
    from engine.models.registry import load_grader
    from engine.pipeline import grade

    ensemble = Ensemble("eval", [load_grader(p, "cpu", name=f"m{k}") for k, p in enumerate(checkpoints)])
    from engine.pipeline import GradingError

    analyses = any(g.extra_features for g in ensemble.members)  # biomarker features need the disc/cup analysis
    out = []
    for case in cases:
        exam = Exam(exam_id=case["id"], fundus=read_rgb(case["fundus"]))
        try:
            out.append(grade(exam, ensemble, device="cpu", cams=False, analyses=analyses).probabilities)
        except GradingError:  # e.g. no disc found for a biomarker grader: an uninformative answer (GAMMA prior)
            print(f"  {case['id']}: not graded by {checkpoints[0].parent.parent.name}; counted as the GAMMA prior")
            out.append(np.array(GAMMA_PRIOR))
    return np.array(out)


# -------------------------------------------------------------------------------------------- baseline


def pixel_features(rgb: np.ndarray) -> np.ndarray:
    """Pixel statistics of the photo and of its disc crop (same localiser as the graders): 16 numbers."""
    import cv2

    from engine.models.preprocess import crop_box_around, cut_box, locate_disc

    center, diameter, _ = locate_disc(rgb)
    crop = cv2.resize(cut_box(rgb, crop_box_around(rgb.shape[:2], center, diameter, 2.5)), (128, 128),
                      interpolation=cv2.INTER_AREA).astype(np.float32)
    yy, xx = np.mgrid[:128, :128]
    r = np.hypot(yy - 63.5, xx - 63.5) / (128 / 2.5)  # in disc diameters
    disc, inner, ring = r < 0.5, r < 0.25, (r > 0.6) & (r < 1.0)
    g = crop[..., 1]
    small = cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32)
    fov = small.mean(2) > 15
    feats = [*crop[disc].mean(0), *crop[ring].mean(0), g[inner].mean() / (g[disc].mean() + 1),
             g[disc].mean() / (g[ring].mean() + 1), float((g[disc] > np.percentile(g[disc], 50) * 1.15).mean()),
             g[disc].std(), *small[fov].mean(0), small[fov].std()]
    return np.asarray(feats, np.float64)


def vcdr_of(rgb: np.ndarray) -> float:
    """Vertical cup-to-disc ratio from the shipped disc/cup analysis (``engine.fundus``); NaN when not found."""
    from engine.fundus.analysis import analyse_disc

    result = analyse_disc(rgb)
    return float(result.biomarkers.vcdr) if result.found and result.biomarkers is not None else float("nan")


def vcdr_probs(v_train: np.ndarray, y_train: np.ndarray, v_test: np.ndarray) -> np.ndarray:
    """Logistic regression on the vCDR alone (missing -> the training median)."""
    fill = float(np.nanmedian(v_train))
    clean = lambda v: np.where(np.isfinite(v), v, fill)[:, None]  # noqa: E731
    return logistic(clean(v_train), y_train, clean(v_test))


def logistic(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000, class_weight="balanced"))
    model.fit(x_train, y_train)
    return model.predict_proba(x_test)


# ------------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", type=Path, required=True)
    ap.add_argument("--gamma", type=Path, required=True)
    ap.add_argument("--external", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--vcdr", action="store_true", help="add the vertical-CDR baseline (engine.fundus disc/cup analysis)")
    ap.add_argument("--ship", type=Path, metavar="DIR", help="copy the fold models + cards + default.ensemble.json here")
    ap.add_argument("--synthetic-run", type=Path, metavar="DIR", help="with --ship: a single-split three-level run "
                    "on synthetic exams, shipped beside (not in) the default ensemble")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"gamma_kfold": {}, "external": {}}

    ids, y, photos = gamma_cases(args.gamma)
    splits = [json.loads((r / "split.json").read_text()) for r in args.runs]
    same_split = all(s == splits[0] for s in splits)
    oof = {r.name: oof_predictions(r, ids) for r in args.runs}
    for name, probs in oof.items():
        report["gamma_kfold"][name] = grading_metrics(y, probs)
    if len(oof) > 1 and same_split:
        report["gamma_kfold"]["mean_of_runs"] = grading_metrics(y, np.mean(list(oof.values()), axis=0))
    report["gamma_kfold"]["majority_class"] = grading_metrics(y, np.tile([1.0, 0.0, 0.0], (len(y), 1)))
    gamma_x = np.stack([pixel_features(read_rgb(p)) for p in photos])
    lr_oof = np.zeros((len(y), 3))
    index = {c: i for i, c in enumerate(ids)}
    for fold in splits[0].values():
        tr, va = [index[i] for i in fold["train"]], [index[i] for i in fold["val"]]
        lr_oof[va] = logistic(gamma_x[tr], y[tr], gamma_x[va])
    report["gamma_kfold"]["pixel_logistic_regression"] = grading_metrics(y, lr_oof)
    gamma_v = None
    if args.vcdr:
        gamma_v = np.array([vcdr_of(read_rgb(p)) for p in photos])
        v_oof = np.zeros((len(y), 3))
        for fold in splits[0].values():
            tr, va = [index[i] for i in fold["train"]], [index[i] for i in fold["val"]]
            v_oof[va] = vcdr_probs(gamma_v[tr], y[tr], gamma_v[va])
        report["gamma_kfold"]["vcdr_logistic_regression"] = grading_metrics(y, v_oof)
        report["vcdr_found_gamma"] = int(np.isfinite(gamma_v).sum())

    if args.external:
        cases = [c for c in external_cases(args.external) if c["fundus"] is not None]
        report["external_cases"] = {"n": len(cases), "sources": sorted({c["source"] for c in cases}),
                                    "excluded": "cases without a full fundus photo (ACRIMA, KEH: disc crops only)"}
        ye = np.array([c["label"] for c in cases])
        ext = {}
        for run in args.runs:
            probs = grade_external(fold_checkpoints(run), cases)
            ext[run.name] = probs
            report["external"][run.name] = binary_metrics(ye, 1 - probs[:, 0])
        if len(ext) > 1:
            report["external"]["mean_of_runs"] = binary_metrics(ye, 1 - np.mean(list(ext.values()), axis=0)[:, 0])
        report["external"]["majority_class"] = binary_metrics(ye, np.zeros(len(ye)))
        ext_x = np.stack([pixel_features(read_rgb(c["fundus"])) for c in cases])
        report["external"]["pixel_logistic_regression"] = binary_metrics(ye, logistic(gamma_x, (y > 0).astype(int), ext_x)[:, 1])
        if gamma_v is not None:
            ext_v = np.array([vcdr_of(read_rgb(c["fundus"])) for c in cases])
            report["external"]["vcdr_logistic_regression"] = binary_metrics(ye, vcdr_probs(gamma_v, (y > 0).astype(int), ext_v)[:, 1])
            report["vcdr_found_external"] = int(np.isfinite(ext_v).sum())
            report["vcdr_note"] = ("vCDR from the shipped disc/cup segmenter (resources/models/disc_cup.pt), whose training "
                                   "masks include ~10 of these external photos (G1020, ORIGA, PAPILA, REFUGE): optimistic there")
        per_case = [{"id": c["id"], "label": int(c["label"]), **{k: float(1 - v[i, 0]) for k, v in ext.items()}}
                    for i, c in enumerate(cases)]
        report["external_per_case_p_glaucoma"] = per_case

    (args.out / "evaluation.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    print("GAMMA K-fold (out of fold, n=%d)" % len(y))
    for name, m in report["gamma_kfold"].items():
        lo, hi = m["kappa_ci95"]
        print(f"  {name:28s} kappa {m['kappa']:.3f} [{lo:.3f}, {hi:.3f}]  acc {m['accuracy']:.3f}  "
              f"F1 non/early/mid {m['f1_non']:.2f}/{m['f1_early']:.2f}/{m['f1_mid_advanced']:.2f}  "
              f"AUC(glaucoma) {m['binary_auc_glaucoma']:.3f}")
    if report["external"]:
        print("External sources (normal / glaucoma, n=%d)" % report["external_cases"]["n"])
        for name, m in report["external"].items():
            lo, hi = m["auc_ci95"]
            print(f"  {name:28s} AUC {m['auc']:.3f} [{lo:.3f}, {hi:.3f}]  acc {m['accuracy']:.3f}  "
                  f"sens {m['sensitivity']:.2f} spec {m['specificity']:.2f}")
    if args.ship:
        cases = [c for c in external_cases(args.external) if c["fundus"] is not None] if args.external else []
        ship(args.runs, args.ship, report, args.synthetic_run, cases)
    return 0


def ship(runs: Sequence[Path], folder: Path, report: dict[str, Any], synthetic_run: Path | None = None,
         external_cases_list: Sequence[dict[str, Any]] = ()) -> None:
    """Copy the fold models of ``runs`` into ``folder`` with completed cards, and the mean ensemble file."""
    from engine.models.checkpoint import read_card
    from engine.models.ensemble import EnsembleDefinition, write_ensemble_file

    folder.mkdir(parents=True, exist_ok=True)
    members = []
    for run in runs:
        for ckpt in fold_checkpoints(run):
            card = read_card(ckpt)
            name = f"{card['name']}-{ckpt.parent.name}"
            target = folder / f"{name}.pt"
            card.update({
                "name": name, "source_checkpoint_sha256_float32": card["sha256"],
                "cv_member": f"{ckpt.parent.name} of a {len(fold_checkpoints(run))}-fold run; its 'evaluation' is on "
                             "the GAMMA photos of that fold, which it never saw",
                "recipe_gamma_kfold_out_of_fold": report["gamma_kfold"].get(run.name),
                "recipe_external_cv_ensemble": report["external"].get(run.name),
                "external_data": report.get("external_cases"),
                "baselines": {"gamma_kfold": {k: v for k, v in report["gamma_kfold"].items() if k in BASELINES},
                              "external": {k: v for k, v in report["external"].items() if k in BASELINES},
                              "note": report.get("vcdr_note", "")},
                "recipe_mean_of_all_shipped_recipes": {"gamma_kfold_out_of_fold": report["gamma_kfold"].get("mean_of_runs"),
                                                        "external": report["external"].get("mean_of_runs")},
                "evaluated_with": "python benchmarks/eval_grader.py --runs ... (out-of-fold GAMMA; external sources "
                                  "through engine.pipeline.grade, mean of the run's fold models)",
                "limitations": LIMITATIONS,
            })
            save_half(ckpt, target, card)
            members.append((name, target))
    write_ensemble_file(folder / "default.ensemble.json", EnsembleDefinition("gamma-default", "mean", "mean", members))
    print(f"shipped {len(members)} models + default.ensemble.json to {folder}")
    if external_cases_list:
        full = np.concatenate([grade_external(fold_checkpoints(r), external_cases_list) for r in runs])
        half = np.concatenate([grade_external([p for n, p in members if n.startswith(read_card(fold_checkpoints(r)[0])["name"] + "-fold")],
                                              external_cases_list) for r in runs])
        print(f"float16 storage: max |p(float16) - p(float32)| on the external cases = {np.abs(full - half).max():.2e}")
    if synthetic_run is not None:
        ship_synthetic(synthetic_run, folder, [members[0], members[-1]])


def save_half(source: Path, target: Path, card: dict[str, Any]) -> None:
    """Re-save ``source`` at ``target`` with float16 weights (half the bytes; the model still computes in
    float32: ``load_state_dict`` casts), through ``save_checkpoint`` so the card gets the new SHA-256."""
    from engine.models.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(source, expected_task="grader")
    state = {k: v.half() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    card = {k: v for k, v in card.items() if k not in ("format", "spec", "weights_file", "sha256")}
    card["weights_storage"] = "float16 (computed in float32)"
    save_checkpoint(target, ckpt.spec, state, json.loads(json.dumps(card, default=float)))


def ship_synthetic(run: Path, folder: Path, real: Sequence[tuple[str, Path]]) -> None:
    """Ship the single-split three-level model trained on synthetic exams, and an ensemble file that adds it
    (vote, ties kept by the fundus member) for synthetic-OCT exams such as the demo. Not in the default."""
    from engine.models.checkpoint import read_card
    from engine.models.ensemble import EnsembleDefinition, write_ensemble_file

    ckpt = run / "best.pt"
    card = read_card(ckpt)
    if not str(card.get("data", "")).startswith("SYNTHETIC"):
        raise SystemExit(f"{ckpt}: its card does not say the data was synthetic")
    target = folder / f"{card['name']}.pt"
    card.update({"source_checkpoint_sha256_float32": card["sha256"], "warning": (
        "Every branch, the OCT branch included, saw ONLY synthetic exams (engine.synthetic); there is no real "
        "graded OCT here. Its held-out figures are on synthetic exams and say nothing about real eyes. Shipped to "
        "exercise the three-level path and the OCT Grad-CAM (e.g. on the synthetic demo exam); it is not in "
        "default.ensemble.json.")})
    save_half(ckpt, target, card)
    members = [*real, (card["name"], target)]
    write_ensemble_file(folder / "with-synthetic-oct.ensemble.json",
                        EnsembleDefinition("with-synthetic-oct", "vote", f"prefer:{real[0][0]}", members))
    print(f"shipped {target.name} + with-synthetic-oct.ensemble.json")


if __name__ == "__main__":
    raise SystemExit(main())
