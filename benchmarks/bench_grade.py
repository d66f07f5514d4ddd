"""Grade one exam (fundus + 256-B-scan OCT volume) with Grad-CAM for every branch, against a naive pipeline.

    .venv/bin/python benchmarks/bench_grade.py [--bscans 256] [--bscan-shape 992 512] [--threads 2]

Both pipelines run in fresh subprocesses limited to ``--threads`` CPU threads and start from the same
files on disk (GAMMA layout: ``<ID>/<ID>.jpg`` + ``<ID>/<ID>/<k>_image.jpg``):

- ours: ``engine`` loader -> ``engine.pipeline.grade`` (three graders: fundus, fundus+disc, fundus+disc+OCT,
  Grad-CAM of every level mapped back to the photo and to the (N, H, W) volume). Measured cold (first exam in
  a new process: imports + model load) and warm (the next exam); the warm run is profiled with cProfile.
- reference (the naive pipeline of the earlier project): read the 256 B-scans one by one, bilateral-filter
  each at full size, stack as float64, ``scipy.ndimage.zoom`` to the network size, run the same networks,
  Grad-CAM through pytorch-grad-cam's default (full branch recomputed, map zoomed with SciPy), and zoom the
  3D map back to the volume in float64.

Models (``--models FILE``): an ensemble file with an OCT level; by default the shipped
``resources/models/with-synthetic-oct.ensemble.json`` when present, else random weights with the shipped
architectures (timing does not depend on the weights). Peak memory is the subprocess's max RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHIPPED_LIKE = [
    ("fundus", {"fundus": "small2d"}, "concat"),
    ("two_level", {"fundus": "small2d", "disc": "small2d"}, "concat"),
    ("three_level", {"fundus": "small2d", "disc": "small2d", "oct": "small3d"}, "concat"),
]


def _limit_threads(n: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["MKL_NUM_THREADS"] = str(n)
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(n)


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def make_inputs(folder: Path, n_bscans: int, bscan_shape: tuple[int, int], fundus_shape: tuple[int, int],
                models: Path | None = None) -> Path:
    """Write the synthetic exam (GAMMA layout); return ``models``, the shipped ensemble with an OCT level, or a
    random-weight ensemble of the shipped architectures."""
    from engine.resources import models_dir
    from engine.synthetic import synthetic_exam, write_gamma_exam

    exam = synthetic_exam(2, n_bscans=n_bscans, fundus_shape=fundus_shape, bscan_shape=bscan_shape, seed=7,
                          exam_id="BENCH01")
    write_gamma_exam(folder / "exams", exam)
    shipped = models or models_dir() / "with-synthetic-oct.ensemble.json"
    if shipped.is_file():
        return shipped
    import torch

    from engine.models.checkpoint import save_checkpoint
    from engine.models.ensemble import EnsembleDefinition, write_ensemble_file
    from engine.models.preprocess import default_input_spec
    from engine.models.registry import build_model, grader_spec

    members = []
    for seed, (name, levels, fusion) in enumerate(SHIPPED_LIKE):
        torch.manual_seed(seed)
        spec = grader_spec(levels, fusion, inputs={lv: default_input_spec(lv) for lv in levels})
        path = folder / "models" / f"{name}.pt"
        save_checkpoint(path, spec, build_model(spec).state_dict(), {"name": name, "training_data": "random"})
        members.append((name, path))
    out = folder / "models" / "ensemble.json"
    write_ensemble_file(out, EnsembleDefinition("bench", "vote", "prefer:fundus", members))
    return out


# --------------------------------------------------------------------------------------------------- ours


def run_ours(exam_dir: Path, models: Path, threads: int) -> dict:
    t0 = time.perf_counter()
    _limit_threads(threads)
    from engine.pipeline import grade, load_models

    try:
        from engine.io.discover import load_exam  # the loader `grade` uses
    except ImportError:
        from engine.io.gamma import load_gamma as load_exam

    t_import = time.perf_counter() - t0
    t = time.perf_counter()
    ensemble = load_models(models, "cpu")
    t_models = time.perf_counter() - t

    def once(analyses: bool = True) -> dict:
        t = time.perf_counter()
        exam = load_exam(exam_dir)
        t_load = time.perf_counter() - t
        result = grade(exam, ensemble, device="cpu", analyses=analyses)
        total = time.perf_counter() - t
        return {"load_exam": t_load, **{f"grade.{k}": v for k, v in result.timings.items()}, "total": total,
                "grade": result.grade_name, "cams": {k: list(v.heatmap.shape) for k, v in result.cams.items()}}

    cold = once()
    cold["imports"], cold["models_load"] = t_import, t_models
    cold["total_with_imports"] = cold["total"] + t_import + t_models

    import cProfile
    import io
    import pstats

    # like the reference: load, grade, Grad-CAM (no disc/cup, no OCT layers); the faster of two runs
    bare = min((once(analyses=False) for _ in range(2)), key=lambda r: r["total"])
    prof = cProfile.Profile()
    prof.enable()
    warm = once()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(14)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    return {"cold": cold, "warm": warm, "grading_only": bare, "profile": lines[start : start + 15], "peak_mb": _peak_mb()}


# ---------------------------------------------------------------------------------------------- reference


def run_reference(exam_dir: Path, models: Path, threads: int) -> dict:
    _limit_threads(threads)
    import cv2
    import numpy as np
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from scipy import ndimage

    from engine.models.ensemble import read_ensemble_file
    from engine.models.registry import load_grader

    times: dict[str, float] = {}
    t = time.perf_counter()
    graders = [load_grader(p, "cpu") for _, p in read_ensemble_file(models).members]
    times["models_load"] = time.perf_counter() - t

    t = time.perf_counter()
    eid = exam_dir.name
    fundus = cv2.cvtColor(cv2.imread(str(exam_dir / f"{eid}.jpg")), cv2.COLOR_BGR2RGB)
    files = sorted((exam_dir / eid).iterdir(), key=lambda p: int(p.stem.split("_")[0]))
    scans = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
    times["read_sequential"] = time.perf_counter() - t
    t = time.perf_counter()
    scans = [cv2.bilateralFilter(s, 9, 75, 75) for s in scans]
    times["bilateral_full_size"] = time.perf_counter() - t
    t = time.perf_counter()
    volume = np.stack(scans).astype(np.float64)
    three = max(graders, key=lambda g: len(g.levels))  # the multilevel member explains every level
    d, h, w = three.inputs["oct"].size
    small = ndimage.zoom(volume, (d / volume.shape[0], h / volume.shape[1], w / volume.shape[2]))
    times["zoom_float64"] = time.perf_counter() - t

    t = time.perf_counter()
    def tensor2d(img, spec):
        x = cv2.resize(img.astype(np.float64) / 255.0, spec.size[::-1])
        x = (x - np.array(spec.mean)) / np.array(spec.std)
        return torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))

    n, hh, ww = volume.shape
    c = fundus.shape[0] // 2, int(fundus.shape[1] * 0.78)
    r = fundus.shape[0] // 8
    crop = fundus[c[0] - r : c[0] + r, c[1] - r : c[1] + r]
    inputs = {"fundus": tensor2d(fundus, three.inputs["fundus"]), "disc": tensor2d(crop, three.inputs["disc"]),
              "oct": torch.from_numpy(((small / 255.0 - 0.3) / 0.2)[None, None].astype(np.float32))}
    probs = []
    with torch.no_grad():
        for g in graders:
            probs.append(torch.softmax(g.module({lv: inputs[lv] for lv in g.levels}), 1)[0].numpy())
    target = int(np.mean(probs, axis=0).argmax())
    times["inference"] = time.perf_counter() - t

    t = time.perf_counter()

    class Full(torch.nn.Module):  # naive wrapper: the whole model reruns for every level
        def __init__(self, model, level, others):
            super().__init__()
            self.model, self.level, self.others = model, level, others

        def forward(self, x):
            return self.model({**self.others, self.level: x})

    maps = {}
    for lv in three.levels:
        wrapper = Full(three.module, lv, {k: v for k, v in inputs.items() if k != lv})
        with GradCAM(model=wrapper, target_layers=[three.module.branches[lv].trunk]) as cam:
            maps[lv] = cam(input_tensor=inputs[lv], targets=[ClassifierOutputTarget(target)])[0]
    vol_map = ndimage.zoom(maps["oct"].astype(np.float64), (n / d, hh / h, ww / w), order=1)
    fundus_map = cv2.resize(maps["fundus"].astype(np.float64), (fundus.shape[1], fundus.shape[0]))
    times["cam"] = time.perf_counter() - t
    times["total"] = sum(v for k, v in times.items() if k != "models_load")
    return {"times": times, "peak_mb": _peak_mb(), "shapes": [list(vol_map.shape), list(fundus_map.shape)]}


# ---------------------------------------------------------------------------------------------------- main


def _child(kind: str, exam_dir: Path, models: Path, threads: int) -> dict:
    cmd = [sys.executable, __file__, f"--_child={kind}", str(exam_dir), str(models), "--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bscans", type=int, default=256)
    ap.add_argument("--bscan-shape", type=int, nargs=2, default=(992, 512), metavar=("H", "W"))
    ap.add_argument("--fundus-shape", type=int, nargs=2, default=(1934, 1956), metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--models", type=Path, metavar="FILE", help="ensemble file with an OCT level")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        fn = run_ours if args._child == "ours" else run_reference
        print(json.dumps(fn(Path(args.paths[0]), Path(args.paths[1]), args.threads)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_grade_") as tmp:
        tmp_path = Path(tmp)
        t = time.perf_counter()
        models = make_inputs(tmp_path, args.bscans, tuple(args.bscan_shape), tuple(args.fundus_shape), args.models)
        exam_dir = tmp_path / "exams" / "BENCH01"
        print(f"exam: fundus {tuple(args.fundus_shape)}, {args.bscans} B-scans of {tuple(args.bscan_shape)} "
              f"(JPEG, GAMMA layout; made in {time.perf_counter() - t:.1f}s); models: {models.name}; "
              f"threads: {args.threads}")
        ours = _child("ours", exam_dir, models, args.threads)
        ref = None if args.skip_reference else _child("reference", exam_dir, models, args.threads)

    warm, cold, bare = ours["warm"], ours["cold"], ours["grading_only"]
    print("\nours, grading only (warm; load + grade + Grad-CAM of every level, as the reference does)")
    for k, v in bare.items():
        if isinstance(v, float):
            print(f"  {k:<22} {v:7.3f} s")
    print("\nours, full (warm: models loaded, the next exam; + disc/cup and OCT-layer analyses)")
    for k, v in warm.items():
        if isinstance(v, float):
            print(f"  {k:<22} {v:7.3f} s")
    print(f"  cold first exam {cold['total']:.2f} s (+ imports {cold['imports']:.2f} s, "
          f"model load {cold['models_load']:.2f} s = {cold['total_with_imports']:.2f} s)")
    print(f"  peak memory (max RSS) {ours['peak_mb']:.0f} MB;  CAM shapes {warm['cams']}")
    print("\nprofile of the warm run (cProfile, by own time):")
    print("\n".join("  " + ln for ln in ours["profile"]))
    if ref:
        print("\nreference (naive)")
        for k, v in ref["times"].items():
            print(f"  {k:<22} {v:7.3f} s")
        print(f"  peak memory (max RSS) {ref['peak_mb']:.0f} MB")
        print(f"\nspeed-up, like for like (reference total / ours grading only): {ref['times']['total'] / bare['total']:.1f}x;"
              f" ours full with analyses: {ref['times']['total'] / warm['total']:.1f}x")
    ok = bare["total"] < 5.0 and ours["peak_mb"] < 2048
    print(f"\ntarget (grading only) < 5 s and < 2 GB on {args.threads} threads: {'met' if ok else 'NOT met'}")
    print(json.dumps({"ours": {k: v for k, v in ours.items() if k != "profile"}, "reference": ref}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
