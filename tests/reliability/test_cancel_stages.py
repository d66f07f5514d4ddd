"""Cancel at every stage: ``Cancelled`` is raised, no result or partial output is left, no thread is stuck.

The cancel is set from the progress callback when a given stage's message appears, so each stage is hit
exactly. The CLI has no token: Ctrl-C (``KeyboardInterrupt``) raised at each stage of the second exam must
leave a complete CSV of the first exam plus the ``.partial`` marker, never a truncated file.
"""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest

import engine.pipeline as pipeline
from engine.cli import main
from engine.fundus import analyse_disc
from engine.models.tiny import save_tiny_ensemble
from engine.oct import analyse_oct
from engine.progress import Cancelled, CancelToken
from engine.results_csv import COLUMNS, is_partial, read_csv
from engine.synthetic import synthetic_exam, write_gamma_exam

PIPELINE_STAGES = ("loading models", "optic disc and cup", "OCT layers", "preparing inputs", "grading", "Grad-CAM")
DISC_STAGES = ("locating the optic disc", "checking disc candidates", "segmenting disc and cup",
               "measuring cup-to-disc ratios")
# 40 B-scans = 3 chunks of the graph search (16 + 16 + 8), run on a 2-thread pool.
OCT_STAGES = ("graph search on 40 B-scan(s)", "layers: 16/40 B-scans", "layers: 40/40 B-scans", "layer thickness")


class ColourSegmenter:
    """A classical disc/cup segmenter for the synthetic photos (the disc is yellow, the cup pale): green-channel
    thresholds as class probabilities. It lets the disc analysis reach every stage without trained weights."""

    size, crop_scale, sha256 = 64, 2.2, "colour-thresholds"

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 (background, rim, cup)."""
        self.calls += 1
        green = np.asarray(crops)[..., 1]
        disc, cup = green > 135, green > 185
        return (0.02 + 0.94 * np.stack([~disc, disc & ~cup, cup], 1)).astype(np.float32)


def _settled(baseline: set[threading.Thread], timeout: float = 5.0) -> list[threading.Thread]:
    """Threads alive now that were not in ``baseline``, after giving them ``timeout`` s to finish."""
    deadline = time.monotonic() + timeout
    extra = [t for t in threading.enumerate() if t not in baseline]
    for t in extra:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threading.enumerate() if t not in baseline and t.is_alive()]


def _cancel_at(stage: str, token: CancelToken, seen: list[str]) -> Callable[[float, str], None]:
    """A progress callback that records every message and cancels ``token`` when ``stage`` appears."""

    def progress(fraction: float, message: str) -> None:
        seen.append(message)
        if message == stage:
            token.cancel()

    return progress


def _run_cancelled(fn: Callable[..., object], stage: str) -> list[str]:
    """Call ``fn(progress=..., cancel=...)`` cancelling at ``stage``; assert ``Cancelled`` and no stray thread.

    Returns the messages seen; the stage's message must be the last one (nothing reported after the cancel).
    """
    baseline = set(threading.enumerate())
    token, seen = CancelToken(), []
    with pytest.raises(Cancelled):
        fn(progress=_cancel_at(stage, token, seen), cancel=token)
    assert stage in seen, f"stage {stage!r} never reported; saw {seen}"
    assert seen[-1] == stage, f"work went on after the cancel at {stage!r}: {seen[seen.index(stage):]}"
    assert not _settled(baseline), "threads left running after the cancel"
    return seen


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return save_tiny_ensemble(tmp_path_factory.mktemp("cancel_models"))


@pytest.fixture(scope="module")
def exam():
    return synthetic_exam(1, n_bscans=40, fundus_shape=(256, 256), bscan_shape=(48, 40), seed=3)


@pytest.fixture
def segmenter(monkeypatch) -> ColourSegmenter:
    """The pipeline's disc analysis runs with the colour segmenter (no disc/cup weights are needed)."""
    import engine.fundus.segmenter as seg_mod

    seg = ColourSegmenter()
    monkeypatch.setattr(seg_mod, "load_segmenter", lambda *a, **k: seg)
    return seg


def test_uncancelled_runs_report_every_stage(exam, models, segmenter):
    """The stage lists above are what the code reports (so the cancel tests below hit real stages)."""
    seen: list[str] = []
    result = pipeline.grade(exam, models, device="cpu", progress=lambda f, m: seen.append(m))
    assert seen == [*PIPELINE_STAGES, "done"]
    assert result.disc is not None and result.disc.found and result.layers is not None
    seen = []
    analyse_disc(exam.fundus, segmenter=ColourSegmenter(), progress=lambda f, m: seen.append(m))
    assert seen == [*DISC_STAGES, "disc and cup done"]
    seen = []
    analyse_oct(exam, progress=lambda f, m: seen.append(m))
    assert [m for m in seen if m in OCT_STAGES] == list(OCT_STAGES) and seen[-1].startswith("layers done")


@pytest.mark.parametrize("stage", PIPELINE_STAGES)
def test_cancel_grade_at_every_stage(exam, models, segmenter, stage, monkeypatch):
    import engine.oct.graph_boundaries as gb

    chunks = {"n": 0}
    real_chunk = gb._find_chunk

    def counted(*args, **kwargs):
        chunks["n"] += 1
        return real_chunk(*args, **kwargs)

    monkeypatch.setattr(gb, "_find_chunk", counted)
    _run_cancelled(lambda **kw: pipeline.grade(exam, models, device="cpu", **kw), stage)
    before_oct = PIPELINE_STAGES.index(stage) <= PIPELINE_STAGES.index("OCT layers")
    # A cancel before or at the analyses stops them at their first check: no network call, no B-scan searched.
    if before_oct:
        assert chunks["n"] == 0
    if PIPELINE_STAGES.index(stage) <= PIPELINE_STAGES.index("optic disc and cup"):
        assert segmenter.calls == 0


def test_cancel_during_the_last_grader_gives_no_result(exam, models, segmenter, monkeypatch):
    """A cancel that arrives while the last piece of work runs (no stage message after it) still wins."""
    from engine.models.multilevel import MultiLevelGrader

    token = CancelToken()
    real = MultiLevelGrader.forward_cached

    def cancel_while_running(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        token.cancel()
        return out

    monkeypatch.setattr(MultiLevelGrader, "forward_cached", cancel_while_running)
    with pytest.raises(Cancelled):
        pipeline.grade(exam, models, device="cpu", cams=False, analyses=False, cancel=token)


@pytest.mark.parametrize("stage", DISC_STAGES)
def test_cancel_disc_analysis_at_every_stage(exam, stage):
    seg = ColourSegmenter()
    _run_cancelled(lambda **kw: analyse_disc(exam.fundus, segmenter=seg, **kw), stage)


@pytest.mark.parametrize("stage", OCT_STAGES)
def test_cancel_oct_analysis_at_every_stage(exam, stage):
    _run_cancelled(lambda **kw: analyse_oct(exam, **kw), stage)


# ---------------------------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cancel_cohort")
    for seed in range(2):
        write_gamma_exam(root, synthetic_exam(seed, n_bscans=20, fundus_shape=(160, 160), bscan_shape=(48, 40),
                                              seed=seed))
    return root


def _interrupt_at(stage: str, exam_no: int, monkeypatch) -> None:
    """Raise ``KeyboardInterrupt`` (Ctrl-C) when the pipeline reports ``stage`` for exam number ``exam_no``."""
    real = pipeline.report
    count = {"n": 0}

    def report(progress: Optional[Callable], fraction: float, message: str) -> None:
        if message == PIPELINE_STAGES[0]:
            count["n"] += 1
        if message == stage and count["n"] == exam_no:
            raise KeyboardInterrupt
        real(progress, fraction, message)

    monkeypatch.setattr(pipeline, "report", report)


def _complete_rows(path: Path) -> list[dict[str, str]]:
    """Rows of ``path``, asserting every line is a whole row (header first, every column filled in)."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), "CSV does not end with a complete line"
    lines = list(csv.reader(text.splitlines()))
    assert lines[0][: len(COLUMNS)] == list(COLUMNS)
    assert all(len(line) == len(lines[0]) for line in lines), "a truncated row"
    return read_csv(path)


@pytest.mark.parametrize("stage", PIPELINE_STAGES)
def test_ctrl_c_in_grade_at_every_stage(cohort, models, segmenter, tmp_path, stage, monkeypatch, capsys):
    out = tmp_path / "g.csv"
    argv = ["grade", str(cohort), "--csv", str(out), "--models", str(models), "--cams", str(tmp_path / "cams"),
            "--quiet"]
    baseline = set(threading.enumerate())
    _interrupt_at(stage, 2, monkeypatch)
    assert main(argv) == 130
    assert "rerun with --resume" in capsys.readouterr().err
    assert is_partial(out)
    rows = _complete_rows(out)
    assert [(r["data"], r["status"]) for r in rows] == [("SYNTH0000", "ok")]
    assert not list(tmp_path.glob("*.tmp*")), "a temporary file was left behind"
    assert not _settled(baseline)
    # The CAM overlays of the interrupted exam are never half there: only the finished exam has files.
    assert {p.name.split("_")[0] for p in (tmp_path / "cams").iterdir()} <= {"SYNTH0000"}
    monkeypatch.undo()
    import engine.fundus.segmenter as seg_mod

    monkeypatch.setattr(seg_mod, "load_segmenter", lambda *a, **k: ColourSegmenter())
    assert main(argv + ["--resume"]) == 0
    rows = _complete_rows(out)
    assert [(r["data"], r["status"]) for r in rows] == [("SYNTH0000", "ok"), ("SYNTH0001", "ok")]
    assert not is_partial(out)


def test_ctrl_c_on_the_first_exam_replaces_an_old_csv_only_by_a_marked_one(cohort, models, segmenter, tmp_path,
                                                                          monkeypatch, capsys):
    out = tmp_path / "g.csv"
    argv = ["grade", str(cohort), "--csv", str(out), "--models", str(models), "--no-analyses", "--quiet"]
    assert main(argv) == 0 and not is_partial(out)
    previous = out.read_bytes()
    _interrupt_at("grading", 1, monkeypatch)
    assert main(argv) == 130
    capsys.readouterr()
    # Either the previous file untouched, or a complete (here: header-only) CSV with the partial marker.
    assert out.read_bytes() == previous or (is_partial(out) and _complete_rows(out) == [])
