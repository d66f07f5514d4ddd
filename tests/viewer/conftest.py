"""Viewer fixtures: throw-away settings, a main window that is always shut down, tiny graders, small cohorts.

Qt runs offscreen (the suite's conftest sets ``QT_QPA_PLATFORM``). Exams are drawn by ``engine.synthetic`` and
kept small so that the whole ``tests/viewer`` run stays well under a minute.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore  # noqa: E402

from engine.synthetic import synthetic_exam, write_gamma_exam  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """An ensemble file of three tiny random graders (fundus, fundus+disc, fundus+disc+OCT)."""
    from engine.models.tiny import save_tiny_ensemble

    return save_tiny_ensemble(tmp_path_factory.mktemp("tiny_models"))


def _small_exam(seed: int = 0, n: int = 12, grade: int = 1, positions: bool = True, exam_id=None):
    """A small synthetic exam: 160 x 200 photo, ``n`` B-scans of 64 x 80 px, positions known unless told."""
    exam = synthetic_exam(grade, n_bscans=n, fundus_shape=(160, 200), bscan_shape=(64, 80), seed=seed,
                          exam_id=exam_id)
    if not positions:
        exam.bscan_positions = None
    return exam


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    """A folder of two GAMMA-layout synthetic exams and one broken exam (a truncated JPEG)."""
    root = tmp_path_factory.mktemp("cohort") / "cases"
    for seed in range(2):
        write_gamma_exam(root, _small_exam(seed, n=8, grade=seed))
    broken = root / "BROKEN"
    broken.mkdir()
    (broken / "BROKEN.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


@pytest.fixture
def settings(tmp_path) -> QtCore.QSettings:
    return QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, settings, tiny_models):
    """Factory: a shown MainWindow grading with the tiny ensemble; every one is shut down at teardown."""
    from glaucoma_viewer.main_window import MainWindow

    made = []

    def make(models=tiny_models, s=settings, **kwargs):
        window = MainWindow(settings=s, models=None if models is None else str(models), **kwargs)
        qtbot.addWidget(window)
        window.resize(1400, 900)
        window.show()
        made.append(window)
        return window

    yield make
    for window in made:
        window.shutdown()


@pytest.fixture
def window(make_window):
    return make_window()


@pytest.fixture
def small_exam():
    return _small_exam


@pytest.fixture
def wait_idle(qtbot):
    """``wait_idle(window)``: wait until every job of ``window`` was delivered."""

    def wait(window, timeout=30000):
        qtbot.waitUntil(lambda: not window.is_busy() and bool(window.entries), timeout=timeout)

    return wait


@pytest.fixture
def show_cohort_exam(cohort, wait_idle):
    """``show_cohort_exam(window, exam_id) -> key``: the cohort opened in ``window`` and analysed, ``exam_id``
    shown."""

    def show(window, exam_id):
        window.open_paths([str(cohort)], remember=False)
        wait_idle(window)
        key = next(k for k, e in window.entries.items() if e.label.startswith(exam_id))
        window.show_exam(key)
        return key

    return show


@pytest.fixture(autouse=True)
def _no_new_threads_left():
    """Every viewer test must end with no extra Python threads (pools are Qt threads: checked separately)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    extra = [t for t in threading.enumerate() if t.ident not in before and t.is_alive() and not t.daemon]
    assert not extra, f"threads left running: {extra}"


@pytest.fixture
def circles(monkeypatch) -> list:
    """The disc/cup analysis replaced by circles (disc radius 20 px, cup 8 px) at (80, 100) px or where the disc
    is placed; placed at (5, 5) it is "not found". Returns the list of the ``disc_at`` it was asked with."""
    import numpy as np

    import engine.fundus as fundus
    from engine.fundus.analysis import DiscAnalysis, measure

    asked: list = []

    def analyse(image, disc_at=None, **kw):
        asked.append(disc_at)
        if disc_at == (5.0, 5.0):
            return DiscAnalysis(False, 0.1, "optic disc not found at the place given", disc_at, placed_at=disc_at)
        r, c = disc_at or (80.0, 100.0)
        rows, cols = np.ogrid[: image.shape[0], : image.shape[1]]
        r2 = (rows - r) ** 2 + (cols - c) ** 2
        disc, cup = r2 <= 20**2, r2 <= 8**2
        return DiscAnalysis(True, 0.95, "", (r, c), disc, cup, biomarkers=measure(disc, cup, "OD", None),
                            weights_sha256="w", placed_at=disc_at)

    monkeypatch.setattr(fundus, "analyse_disc", analyse)
    return asked


@pytest.fixture
def export_batch(qtbot):
    """``export_batch(window, folder, out) -> (dialog, summary)``: File > Batch export CSV… of ``folder`` into
    ``out``, waited for (close the dialog when done with it)."""

    def run(window, folder, out):
        dialog = window.open_batch_export()
        dialog.folders.clear()
        dialog.folders.addItem(str(folder))
        dialog.out_edit.setText(str(out))
        with qtbot.waitSignal(dialog.finished_export, timeout=120000) as signal:
            dialog.start()
        return dialog, signal.args[0]

    return run
