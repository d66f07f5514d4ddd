"""What the analysis process sends back is cheap to receive: unpickling it imports no torch, MONAI or SciPy.

The viewer receives an :class:`glaucoma_viewer.state.AnalysisView` from its analysis process on a thread of
the UI process; every module its classes live in is imported there on first receipt, holding the interpreter
lock. Importing torch that way stalled the event loop for up to 400 ms on the first exam.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

from glaucoma_viewer import worker as jobs

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "monai", "torchvision", "pytorch_grad_cam", "scipy")


def test_unpickling_an_analysis_imports_nothing_heavy(tmp_path, small_exam, tiny_models):
    loaded = jobs.prepare_display(small_exam(seed=21, n=6), "k", "test")
    view = jobs.analyse_exam(loaded, models=tiny_models)
    assert view.raw is not None and view.raw.cams, "the tiny ensemble grades with Grad-CAM"
    assert view.raw.layers is not None and [t.task for t in view.tasks] == ["odir"]
    blob = tmp_path / "view.pickle"
    blob.write_bytes(pickle.dumps(view))
    code = (
        "import pickle, sys\n"
        f"view = pickle.loads(open({str(blob)!r}, 'rb').read())\n"
        "assert view.raw.cams and view.raw.layers is not None and view.tasks[0].cams\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
