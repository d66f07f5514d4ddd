"""How long ``grade --resume --disc-corrections`` takes to find the rows whose hand correction changed.

    .venv/bin/python benchmarks/resume_check.py [--exams 20]

Copies the bundled demo exam (GAMMA layout: a 2.0 MP photo and 96 OCT B-scans) ``--exams`` times, writes a
corrections file holding its photo, then times ``engine.cli.grade_cmd.changed_corrections`` over one earlier
row per exam (each photo read and hashed, ``ExamSource.load_photo``) against the naive way (the whole exam read
for its photo, ``ExamSource.load``) in the same script; for scale, grading one exam with the shipped models.

Measured (2 CPU cores, ~15 s): 20 exams 0.011 s per exam checked vs 0.066 s reading each whole exam (5.9x);
grading one exam 2.4 s, so checking a resumed batch costs well under 1 % of grading it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from engine.cli.grade_cmd import changed_corrections, discover_sources
    from engine.fundus.corrections import CorrectionStore, photo_sha256
    from engine.pipeline import grade, load_models
    from engine.resources import demo_exam_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--exams", type=int, default=20, help="copies of the demo exam")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.exams):
            shutil.copytree(demo_exam_dir(), Path(tmp) / f"c{k:04d}" / "DEMO01")
        sources = discover_sources([tmp])[0]
        jobs = [(s.exam_id, s) for s in sources]
        store = CorrectionStore(Path(tmp) / "disc_corrections.json")
        store.put(photo_sha256(sources[0].load_photo()), (700.0, 900.0), None)
        rows = [{"data": did, "status": "ok", "vcdr": "0.5", "disc_source": "user", "disc_correction": ""}
                for did, _ in jobs]
        t = time.perf_counter()
        changed = changed_corrections(rows, jobs, {}, store)
        fast = (time.perf_counter() - t) / len(jobs)
        t = time.perf_counter()
        naive = [s.load().fundus for s in sources]
        slow = (time.perf_counter() - t) / len(jobs)
        assert len(changed) == len(jobs) == len(naive)  # every copy's photo now has a placement its row lacks
        ensemble = load_models(None, "cpu")
        exam = sources[0].load()
        grade(exam, ensemble, device="cpu")  # warm-up
        t = time.perf_counter()
        grade(exam, ensemble, device="cpu")
        one = time.perf_counter() - t
    print(f"{len(jobs)} exams: {fast:.3f} s per exam checked (photo alone) vs {slow:.3f} s reading the whole exam "
          f"({slow / fast:.1f}x); grading one exam {one:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
