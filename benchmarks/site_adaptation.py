"""How many expert-masked photos of a new site correct the disc/cup recipe's offset there.

    GV_SAMPLE_DATA=../shared/data .venv/bin/python benchmarks/site_adaptation.py --site drishti \\
        --train-sources odoc100 --pseudo PSEUDO_DIR --base BASE.pt --photos 5 10 20 --out runs/site_drishti
    GV_SAMPLE_DATA=../shared/data .venv/bin/python benchmarks/site_adaptation.py --site drishti \\
        --train-sources odoc100 --base BASE.pt --calibrate --no-training --out runs/site_drishti_cal

A network trained without the site ``--site`` (``--base``: trained with ``--train-sources`` and ``--pseudo``) is
compared with the same recipe trained with N photos of the site added (``data.include``; draws of a seeded
shuffle, nested: the 5 are among the 10), every network on the same photos of the site that none of them saw
(the site less the largest draw). The cheapest correction is measured beside it: the base network's vertical
CDRs shifted by their mean offset on the N drawn photos (masks, hence Dice, unchanged); and, with
``--calibrate``, the product's site calibration fitted on the N drawn photos
(:func:`engine.fundus.site_calibration.fit_calibration`: the cup outline scaled, mask and ratios together). With
``--calibrate --no-training`` only the base network is used (no ``--pseudo`` needed). One line per network:
disc Dice, cup Dice, vertical-CDR error, offset, error left once the offset is taken away, correlation
(:func:`engine.fundus.evaluate.summarise`). Single networks (``--seed``), so differences of about 0.01 are noise.
Writes ``OUT/site_adaptation.json`` (rows and summaries).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def draw(ids: list[str], sizes: list[int], seed: int) -> tuple[dict[int, list[str]], list[str]]:
    """Nested draws ``{N: the first N ids of a seeded shuffle}`` and the ids left for testing."""
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    return {n: sorted(order[:n]) for n in sizes}, sorted(order[max(sizes):])


def train(data: Path, out: Path, train_sources: list[str], pseudo: Optional[Path], include: list[str], seed: int,
          cache: Path) -> Path:
    """``python -m engine train disc-cup`` with the shipped recipe plus ``include``; returns best.pt."""
    cmd = [sys.executable, "-m", "engine", "train", "disc-cup", "--data", str(data), "--out", str(out),
           "--device", "cpu", "--set", f"seed={seed}", "--set", "val_fraction=0.02",
           "--set", f"data.sources={json.dumps(train_sources)}",
           "--set", f"data.include={json.dumps(include)}", "--set", f"data.cache_dir={cache}"]
    if pseudo is not None:
        cmd += ["--set", f"data.pseudo={pseudo}"]
    out.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".log"), "w", encoding="utf-8") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
    return out / "best.pt"


def shifted(rows: list[dict], offset: float) -> list[dict]:
    """Rows with the predicted vertical CDR moved by ``-offset`` (errors recomputed)."""
    out = []
    for r in rows:
        r = dict(r)
        if r["vcdr_pred"] is not None:
            r["vcdr_pred"] = float(np.clip(r["vcdr_pred"] - offset, 0.0, 1.0))
            r["vcdr_error"] = abs(r["vcdr_pred"] - r["vcdr_true"])
        out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--site", required=True, help="the held-out source the photos are drawn from")
    p.add_argument("--train-sources", nargs="+", required=True, help="data.sources of every network")
    p.add_argument("--pseudo", type=Path, help="data.pseudo of every network (labelled without the site)")
    p.add_argument("--calibrate", action="store_true", help="also fit a site calibration on each draw")
    p.add_argument("--no-training", action="store_true", help="do not train with the drawn photos (needs --base)")
    p.add_argument("--base", type=Path, help="the recipe's network without the site (trained here when not given)")
    p.add_argument("--photos", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=Path("runs/disc_cup_cache"))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if not os.environ.get("GV_SAMPLE_DATA"):
        print("GV_SAMPLE_DATA is not set: nothing to measure", file=sys.stderr)
        return 0
    data = Path(os.environ["GV_SAMPLE_DATA"])
    if args.no_training and args.base is None:
        print("error: --no-training needs --base", file=sys.stderr)
        return 1

    from engine.fundus.datasets import discover
    from engine.fundus.evaluate import evaluate_case, summarise
    from engine.fundus.segmenter import load_segmenter
    from engine.fundus.site_calibration import fit_calibration
    from engine.models.checkpoint import atomic_write_bytes

    site = {c.case_id: c for c in discover(data) if c.source == args.site}
    if len(site) <= max(args.photos):
        print(f"error: {len(site)} photos of {args.site}: too few for a draw of {max(args.photos)}", file=sys.stderr)
        return 1
    draws, test_ids = draw(sorted(site), sorted(args.photos), args.seed)
    base = args.base or train(data, args.out / "n0", args.train_sources, args.pseudo, [], args.seed, args.cache)
    base_seg = load_segmenter(base)
    base_rows = {i: evaluate_case(site[i], base_seg) for i in sorted(site)}
    test = [base_rows[i] for i in test_ids]
    results = {"site": args.site, "test_photos": test_ids, "draws": draws, "networks": {}}

    def record(name: str, rows: list[dict]) -> None:
        m = summarise(rows)["all"]
        results["networks"][name] = {"summary": m, "rows": rows}
        print(f"{name:34s} n={m['n']:3d} disc {m['dice_disc']:.3f} cup {m['dice_cup']:.3f} "
              f"vCDR err {m['vcdr_mae']:.3f} offset {m['vcdr_bias']:+.3f} left {m['vcdr_mae_offset_removed']:.3f} "
              f"r {m['vcdr_pearson']:.2f}", flush=True)

    record("without the site", test)
    for n, ids in draws.items():
        offset = float(np.mean([base_rows[i]["vcdr_pred"] - base_rows[i]["vcdr_true"] for i in ids
                                if base_rows[i]["vcdr_pred"] is not None]))
        record(f"without, vCDR shifted ({n} photos)", shifted(test, offset))
        if args.calibrate:
            cal = fit_calibration([site[i] for i in ids], f"{args.site} {n}", segmenter=base_seg)
            results.setdefault("calibrations", {})[n] = json.loads(cal.to_json())
            record(f"without, site calibration x{cal.cup_scale:.2f} ({n} photos)",
                   [evaluate_case(site[i], base_seg, calibration=cal) for i in test_ids])
        if args.no_training:
            continue
        seg = load_segmenter(train(data, args.out / f"n{n}", args.train_sources, args.pseudo, ids, args.seed,
                                   args.cache))
        record(f"trained with {n} photos of the site", [evaluate_case(site[i], seg) for i in test_ids])
    atomic_write_bytes(args.out / "site_adaptation.json", (json.dumps(results, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
