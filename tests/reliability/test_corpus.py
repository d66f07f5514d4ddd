"""Every hostile input of the corpus: a clear one-line message (or a clean load), bounded time and memory.

In process through discover + load (the path the viewer and ``grade`` use), then once through the real
``python -m engine inspect`` process over the whole corpus (exit 1, one stderr line per failure, no traceback).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from corpus_kit import TINY_FILES, assert_no_secrets, write_tiny_files
from engine.io.discover import discover
from engine.io.errors import ExamLoadError

ROOT = Path(__file__).resolve().parents[2]
CASE_SECONDS = 5.0
CASE_PEAK_MB = 64.0
"""Python/NumPy heap peak per case (tracemalloc): every corpus image is tiny, so a bomb shows as a spike."""


def load_all(path: Path) -> tuple[list, list[str]]:
    """Exams loaded from ``path`` and one message per failure (the nothing-found reason when none)."""
    found = discover([path])
    exams, errors = [], []
    for source in found.sources:
        try:
            exams.append(source.load())
        except ExamLoadError as err:
            errors.append(str(err))
    if not found.sources:
        errors.extend(f"{s.path}: {s.reason}" for s in found.skipped[:1])
    return exams, errors


@pytest.fixture(scope="module")
def cases(corpus):
    return {c.name: c for c in corpus[1]}


CASE_NAMES = [
    "truncated.jpg", "zero-byte.jpg", "truncated.png", "zero-byte.png", "truncated.tif", "zero-byte.tif",
    "text-as-jpg", "png-bomb", "tiff-bomb", "png-16bit", "tiff-16bit-grey", "jpeg-cmyk", "png-rgba",
    "unicode-space-path", "dicom-ok-with-patient-name", "dicom-missing-pixel-data", "dicom-wrong-length",
    "dicom-absurd-frames", "dicom-unsupported-syntax", "dicom-truncated", "nifti-absurd-dims", "nifti-4d",
    "bscans-odd-size", "bscans-missing-slice", "bscans-duplicate-numbers", "symlink-loop", "empty-folder",
    "broken-symlink", "missing-path",
]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case_fails_cleanly_or_loads(cases, name):
    if name not in cases:
        pytest.skip(f"{name}: cannot be written here (Pillow missing)")
    case = cases[name]
    tracemalloc.start()
    start = time.perf_counter()
    try:
        exams, errors = load_all(case.path)  # any exception other than ExamLoadError fails the test here
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    assert elapsed < CASE_SECONDS, f"{name} took {elapsed:.1f} s"
    assert peak < CASE_PEAK_MB, f"{name} peaked at {peak:.0f} MB"
    for message in errors:
        assert "\n" not in message and "Traceback" not in message
        assert_no_secrets(message)
    if case.expect is None:
        assert not errors, errors
        assert exams and all(e.modalities == case.modalities for e in exams), [e.modalities for e in exams]
        for exam in exams:
            assert_no_secrets(" ".join(exam.provenance.notes) + exam.exam_id)
    else:
        assert not exams and len(errors) == 1, (exams, errors)
        assert re.search(case.expect, errors[0], re.IGNORECASE), errors[0]


def test_symlink_loop_is_named_in_the_skip_report(cases):
    found = discover([cases["symlink-loop"].path])
    assert any("symbolic link loop" in s.reason for s in found.skipped)


def test_unreadable_file(tmp_path, cases, monkeypatch):
    """chmod 000 where permissions bite; as root (they do not) the read itself is made to fail."""
    target = tmp_path / "locked.jpg"
    target.write_bytes(cases["unicode-space-path"].path.read_bytes())
    os.chmod(target, 0)
    try:
        if os.geteuid() == 0:
            real_open = open

            def deny(file, *args, **kwargs):
                if str(file) == str(target):
                    raise PermissionError(13, "Permission denied", str(file))
                return real_open(file, *args, **kwargs)

            monkeypatch.setattr("builtins.open", deny)
            monkeypatch.setattr(os, "access", lambda p, m, **k: str(p) != str(target))
        exams, errors = load_all(target)
    finally:
        os.chmod(target, 0o644)
    assert not exams and len(errors) == 1 and "permission denied" in errors[0]


def test_ten_thousand_tiny_files_answer_in_bounded_time(tmp_path):
    folder = write_tiny_files(tmp_path / "many")
    start = time.perf_counter()
    found = discover([tmp_path])
    (source,) = found.sources  # 0.png .. 9999.png: one numbered series
    exam = source.load()
    elapsed = time.perf_counter() - start
    assert exam.oct.shape == (TINY_FILES, 2, 2) and elapsed < 20, elapsed
    capped = discover([folder], max_entries=1000)
    assert not capped.sources or len(capped.sources[0].paths) <= TINY_FILES
    assert any("entries" in s.reason for s in capped.skipped)


def test_inspect_process_over_the_whole_corpus(corpus):
    root, all_cases = corpus
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from engine.cli import main; rc = main(sys.argv[1:]); "
         "import re; print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1), file=sys.stderr); "
         "sys.exit(rc)",  # VmHWM, not ru_maxrss: the latter carries over the (large) pytest parent's peak
         "inspect", "--json", *(str(c.path) for c in all_cases)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    elapsed = time.perf_counter() - start
    *lines, maxrss_kb = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert int(maxrss_kb) / 1024 < 1024, f"inspect peaked at {int(maxrss_kb) / 1024:.0f} MB"
    assert elapsed < 60
    failing = [c for c in all_cases if c.expect is not None]
    assert len(lines) == len(failing)
    for case, line in zip(failing, lines):
        assert line.startswith("error: ") and re.search(case.expect, line, re.IGNORECASE), (case.name, line)
    doc = json.loads(proc.stdout)
    assert len(doc["exams"]) == sum(1 for c in all_cases if c.expect is None)
    assert_no_secrets(proc.stdout + proc.stderr)
