"""Layer segmentation: graph-search speed against naive baselines, boundary error, graph vs network vs experts.

    .venv/bin/python benchmarks/bench_layers.py [--bscans 256] [--bscan-shape 992 512] [--threads 2]
        [--naive-bscans 2] [--data ../shared/data] [--weights resources/models/oct_layers.pt] [--json OUT]

Parts (each printed as it finishes, everything in one run):

1. **Speed** on a synthetic volume (``engine.synthetic``, ground truth known) with ``--threads`` CPU threads:
   ours = :func:`engine.oct.graph_boundaries.find_boundaries` (all 9 boundaries, B-scans chunked and
   vectorised, ``--threads`` worker threads) on the whole volume; per-B-scan baseline = the same function called
   once per B-scan with one worker (no chunking); naive baseline = a pure-Python column-by-column dynamic
   programme (the textbook loop over columns, rows and jumps) for the same shortest paths, timed on
   ``--naive-bscans`` B-scans and scaled to the volume (its paths are checked to have the same cost as ours).
   The network's time on the same volume is reported when weights are available.
2. **Boundary error** (mean absolute, px) of the graph search against the synthetic ground truth.
3. **Real data** (``--data``, skipped when missing): on the 2 Cirrus B-scans with expert masks (a device the
   network never saw), the mean absolute boundary error of the graph search and of the network against the
   expert boundaries (ILM .. Bruch's membrane); on the Spectralis volume and the DME B-scans, the agreement
   between the network and the graph search (the network was trained on graph-search pseudo-labels of those
   same B-scans, so that agreement measures how well it learnt its teacher, not accuracy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _limit_threads(n: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(n)
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(n)


def naive_shortest_path(cost: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_jump: int, penalty: float) -> tuple[list[int], float]:
    """Pure-Python minimum-cost left-to-right path of one (H, W) cost image (the naive baseline).

    Same graph as :func:`engine.oct.graph_boundaries.shortest_paths` (rows relative to ``lo`` move at most
    ``max_jump`` between columns, ``penalty`` per px of move); returns (rows, total cost).
    """
    h, w = cost.shape
    band = [int(hi[c] - lo[c]) + 1 for c in range(w)]
    hb = max(band)
    inf = float("inf")
    acc = [[inf] * hb for _ in range(w)]
    back = [[0] * hb for _ in range(w)]
    for k in range(band[0]):
        acc[0][k] = float(cost[lo[0] + k, 0])
    for c in range(1, w):
        for k in range(band[c]):
            best, arg = inf, 0
            for s in range(-max_jump, max_jump + 1):
                j = k + s
                if 0 <= j < hb and acc[c - 1][j] + penalty * abs(s) < best:
                    best, arg = acc[c - 1][j] + penalty * abs(s), j
            acc[c][k] = best + float(cost[lo[c] + k, c])
            back[c][k] = arg
    k = min(range(hb), key=lambda i: acc[w - 1][i])
    total = acc[w - 1][k]
    rows = [0] * w
    for c in range(w - 1, -1, -1):
        rows[c] = int(lo[c]) + k
        k = back[c][k]
    return rows, total


def path_cost(cost: np.ndarray, rows: np.ndarray, penalty: float) -> float:
    cols = np.arange(cost.shape[1])
    return float(cost[rows, cols].sum() + penalty * np.abs(np.diff(rows)).sum())


def bench_speed(n: int, shape: tuple[int, int], threads: int, naive_n: int, weights: Path | None) -> dict:
    from engine.oct.graph_boundaries import box_edge, edge_cost, find_boundaries, shortest_paths
    from engine.synthetic import synthetic_volume

    t = time.perf_counter()
    vol = synthetic_volume(n, shape, grade=1, seed=0)
    print(f"synthetic volume {vol.volume.shape} made in {time.perf_counter() - t:.1f} s", flush=True)
    out: dict = {"volume_shape": list(vol.volume.shape), "threads": threads}

    find_boundaries(vol.volume[:4], workers=threads)  # warm-up
    t, cpu = time.perf_counter(), time.process_time()
    found = find_boundaries(vol.volume, workers=threads)
    out["graph_volume_s"] = time.perf_counter() - t
    out["graph_volume_cpu_s"] = time.process_time() - cpu
    out["graph_per_bscan_ms"] = 1000 * out["graph_volume_s"] / n
    out["load_average_1min"] = os.getloadavg()[0]
    print(f"graph search (ours, {threads} threads): {out['graph_volume_s']:.2f} s wall, "
          f"{out['graph_volume_cpu_s']:.2f} s CPU for {n} B-scans ({out['graph_per_bscan_ms']:.1f} ms / B-scan); "
          f"machine load average {out['load_average_1min']:.1f} on {os.cpu_count()} cores", flush=True)

    m = min(n, 16)
    t, cpu = time.perf_counter(), time.process_time()
    for k in range(m):
        find_boundaries(vol.volume[k], workers=1)
    per_scan = (time.perf_counter() - t) / m
    out["per_bscan_calls_cpu_s_per_bscan"] = (time.process_time() - cpu) / m
    out["per_bscan_calls_volume_s"] = per_scan * n
    print(f"baseline one call per B-scan, 1 worker: {per_scan * 1000:.1f} ms / B-scan -> {per_scan * n:.1f} s "
          f"per volume (x{per_scan * n / out['graph_volume_s']:.1f} slower)", flush=True)

    err = np.abs(found - vol.boundaries).mean(axis=(0, 2))
    out["synthetic_mae_px"] = {name: float(e) for name, e in zip(
        ("ILM", "NFL/GCL", "IPL/INL", "INL/OPL", "OPL/ONL", "ONL/EZ", "EZ/RPE", "RPE/choroid", "choroid/sclera"), err)}
    out["synthetic_mae_px_mean"] = float(err.mean())
    print("boundary error vs synthetic truth (px): " + ", ".join(f"{k} {v:.2f}" for k, v in out["synthetic_mae_px"].items()))

    # Naive baseline on the first full-height search (the ILM/photoreceptor search's cost image, full resolution).
    scans = vol.volume[:naive_n].astype(np.float32)
    cost = edge_cost(box_edge(scans, 3), +1)
    h, w = shape
    lo, hi = np.zeros((naive_n, w), np.int32), np.full((naive_n, w), h - 1, np.int32)
    t = time.perf_counter()
    ours = shortest_paths(cost, lo, hi, 2, 0.05)
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    naive = [naive_shortest_path(cost[i], lo[i], hi[i], 2, 0.05) for i in range(naive_n)]
    naive_s = time.perf_counter() - t
    for i, (rows, total) in enumerate(naive):
        assert abs(path_cost(cost[i], ours[i], 0.05) - total) < 1e-2 * max(1.0, total), "paths differ in cost"
    out["one_path_full_height_ms"] = {"ours": 1000 * ours_s / naive_n, "naive_python": 1000 * naive_s / naive_n}
    out["naive_vs_ours_one_path"] = naive_s / ours_s
    # Our full search runs 14 shortest paths per B-scan, most of them in narrow bands; the naive loop would run
    # the same graph sizes. Estimate its volume time conservatively from one full-height path per boundary.
    out["naive_volume_s_estimate"] = naive_s / naive_n * 9 * n
    print(f"one full-height shortest path: ours {out['one_path_full_height_ms']['ours']:.1f} ms, naive pure Python "
          f"{out['one_path_full_height_ms']['naive_python']:.0f} ms (x{out['naive_vs_ours_one_path']:.0f}); same path cost. "
          f"Naive 9 boundaries x {n} B-scans ~ {out['naive_volume_s_estimate']:.0f} s", flush=True)

    if weights is not None and weights.is_file():
        from engine.oct.layers import load_layer_network

        net = load_layer_network(weights)
        net.find_boundaries(vol.volume[:2])
        t = time.perf_counter()
        nb = net.find_boundaries(vol.volume)
        out["network_volume_s"] = time.perf_counter() - t
        nerr = np.abs(nb[:, :8] - vol.boundaries[:, :8]).mean(axis=(0, 2))
        out["network_synthetic_mae_px_mean"] = float(nerr.mean())
        print(f"network ({net.name}, {threads} threads): {out['network_volume_s']:.1f} s for {n} B-scans; "
              f"boundary error vs synthetic truth {nerr.mean():.2f} px (ILM..Bruch's)", flush=True)
    return out


def bench_real(data: Path, weights: Path | None) -> dict:
    import cv2

    from engine.oct.graph_boundaries import find_boundaries
    from engine.oct.labels import boundaries_from_labels, cirrus_mask_to_labels
    from engine.oct.train_task import boundary_error

    names = ("ILM", "NFL/GCL", "IPL/INL", "INL/OPL", "OPL/ONL", "ONL/EZ", "EZ/RPE", "RPE/choroid")
    net = None
    if weights is not None and weights.is_file():
        from engine.oct.layers import load_layer_network

        net = load_layer_network(weights)
    out: dict = {}
    cirrus = sorted((data / "oct_layers_cirrus" / "images").glob("*.png"))
    if cirrus:
        truth, graph, network = [], [], []
        for path in cirrus:
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            mask = cv2.imread(str(data / "oct_layers_cirrus" / "layer_masks" / path.name), cv2.IMREAD_UNCHANGED)
            truth.append(boundaries_from_labels(cirrus_mask_to_labels(mask)))
            graph.append(find_boundaries(image))
            if net is not None:
                network.append(net.find_boundaries(image))
        rows = {"graph": boundary_error(np.stack(graph), np.stack(truth))}
        if network:
            rows["network"] = boundary_error(np.stack(network), np.stack(truth))
        out["cirrus_expert_mae_px"] = {k: dict(zip(names, map(float, v))) for k, v in rows.items()}
        print(f"\nCirrus ONH B-scans vs expert masks ({len(cirrus)} B-scans, 1024 px deep), mean abs error px:")
        print("  method   " + " ".join(f"{n:>11}" for n in names) + "   mean")
        for k, v in rows.items():
            print(f"  {k:8} " + " ".join(f"{x:11.1f}" for x in v) + f" {v.mean():6.1f}")
    if net is not None:
        vols = []
        spectralis = sorted((data / "oct_volumes").rglob("*.png"))
        dme = sorted((data / "oct_dme_bscans" / "images").glob("*.png"))
        for label, paths in (("spectralis", spectralis), ("dme", dme)):
            if not paths:
                continue
            images = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]
            g = np.stack([find_boundaries(im) for im in images])
            t = time.perf_counter()
            nb = np.stack([net.find_boundaries(im) for im in images])
            net_s = time.perf_counter() - t
            err = boundary_error(nb, g)
            out[f"agreement_{label}_mae_px"] = dict(zip(names, map(float, err)))
            vols.append((label, len(paths), err, net_s))
        print("\nnetwork vs graph search (agreement with its pseudo-label teacher; not accuracy), mean abs px:")
        for label, count, err, net_s in vols:
            print(f"  {label:10} ({count} B-scans, network {1000 * net_s / count:.0f} ms/B-scan): " +
                  ", ".join(f"{n} {e:.1f}" for n, e in zip(names, err)) + f"; mean {err.mean():.1f}")
    return out


def ship(best: Path, dest: Path, data: Path, notes: list[str]) -> int:
    """Copy a trained ``best.pt`` to ``dest`` with the real-data evaluation added to its model card."""
    from engine.models.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(best, expected_task="layers", map_location="cpu")
    evaluation = bench_real(data, best)
    card = dict(ckpt.card)
    card["evaluation"] = {
        "held_out_expert": "2 real Zeiss Cirrus optic-nerve-head B-scans (200 x 1024) with expert-style 8-layer "
                           "masks (OCTseg-Zeiss, MIT): a device and a region (optic disc) never seen in training; "
                           "mean absolute boundary error in px at 1024 px depth, graph search for comparison",
        "cirrus_expert_mae_px": evaluation.get("cirrus_expert_mae_px"),
        "agreement_with_graph_search_mae_px": {k: v for k, v in evaluation.items() if k.startswith("agreement")},
        "agreement_note": "agreement with the graph search on the B-scans the network was trained on "
                          "(pseudo-labels): how well it learnt its teacher, not accuracy",
        "reproduce": "python -m engine train layers --data DIR --set data.pseudo_labels=graph; "
                     "python benchmarks/bench_layers.py --ship RUN/best.pt",
    }
    if notes:
        card["notes"] = list(card.get("notes", [])) + notes
    card["preprocessing"] = ("white export padding set to background, B-scan resized to the network size, per-image "
                             "z-score; boundaries = minimum-cost paths through the cumulative class probabilities, "
                             "each at or below the one above (anatomical order)")
    digest = save_checkpoint(dest, ckpt.spec, ckpt.state_dict, card)
    print(f"\nwrote {dest} ({dest.stat().st_size / 1e6:.2f} MB, sha256 {digest[:16]}...)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bscans", type=int, default=256)
    ap.add_argument("--bscan-shape", type=int, nargs=2, default=(992, 512), metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--naive-bscans", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("GV_SAMPLE_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--weights", type=Path, default=ROOT / "resources" / "models" / "oct_layers.pt")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--note", action="append", default=[], help="with --ship: a line added to the card's notes")
    ap.add_argument("--ship", type=Path, metavar="BEST_PT",
                    help="evaluate this trained checkpoint on the real data and write it to --weights with the "
                         "evaluation in its model card")
    args = ap.parse_args(argv)
    if args.ship:
        return ship(args.ship, args.weights, args.data, args.note)
    _limit_threads(args.threads)
    report = {}
    if not args.skip_speed:
        report["speed"] = bench_speed(args.bscans, tuple(args.bscan_shape), args.threads, args.naive_bscans, args.weights)
    if args.data.is_dir():
        report["real"] = bench_real(args.data, args.weights)
    else:
        print(f"\n{args.data}: no sample data, real-data part skipped")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
