"""File > Batch export CSV…: same columns as `engine grade`, error rows, progress, cancel keeps a partial file."""

from __future__ import annotations

import csv
import re

from engine.results_csv import COLUMNS, is_partial
from glaucoma_viewer.dialogs.batch_export import BatchExportDialog, format_duration


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return tuple(reader.fieldnames), list(reader)


def test_batch_export_grades_a_folder_with_one_broken_exam(qtbot, window, cohort, tmp_path):
    out = tmp_path / "grades.csv"
    # The app's mode: grading in the dialog's own child process.
    dialog = BatchExportDialog(window.worker, folders=[str(cohort)], out=str(out), models=window.models,
                               isolate=True)
    qtbot.addWidget(dialog)
    messages = []
    with qtbot.waitSignal(dialog.finished_export, timeout=120000) as signal:
        job = dialog.start()
        job.signals.progress.connect(lambda f, m: messages.append(m))
    summary = signal.args[0]
    assert (summary.total, summary.ok, summary.errors, summary.partial) == (3, 2, 1, False)
    header, rows = _rows(out)
    assert header == COLUMNS  # exactly the CLI's columns, GAMMA submission columns first
    by_id = {r["data"]: r for r in rows}
    assert set(by_id) == {"SYNTH0000", "SYNTH0001", "BROKEN"}
    assert by_id["BROKEN"]["status"] == "error" and by_id["BROKEN"]["message"]
    for exam_id in ("SYNTH0000", "SYNTH0001"):
        r = by_id[exam_id]
        assert r["status"] == "ok"
        assert abs(sum(float(r[c]) for c in ("non", "early", "mid_advanced")) - 1) < 1e-5
    assert not is_partial(out)
    assert any("of 3" in m for m in messages)
    flagged = [r["caution"] for r in rows if r["caution"]]
    assert summary.cautions == {kind: flagged.count(kind) for kind in flagged}  # whatever the tiny exams give
    assert (f"{len(flagged)} exam(s) with a caution" in dialog.result_label.text()) == bool(flagged)
    assert "complete" in dialog.count_label.text() and "elapsed" in dialog.time_label.text()
    assert dialog.start_button.isEnabled() and not dialog.cancel_button.isEnabled()
    dialog.close()
    assert dialog.runner._pool is None  # the grading process is gone with the dialog


def test_cancel_keeps_the_finished_rows_and_marks_the_file_partial(qtbot, window, cohort, tmp_path, monkeypatch):
    import time

    from engine.cli import grade_cmd

    real = grade_cmd.grade_one

    def slow_grade_one(*args, **kwargs):  # real grading takes seconds: give the user time to press Cancel
        time.sleep(0.6)
        return real(*args, **kwargs)

    monkeypatch.setattr(grade_cmd, "grade_one", slow_grade_one)
    out = tmp_path / "partial.csv"
    dialog = BatchExportDialog(window.worker, folders=[str(cohort)], out=str(out), models=window.models)
    qtbot.addWidget(dialog)

    grading = re.compile(r"^Exam 1 of 3: \w+$")  # the label while the first exam is being graded
    with qtbot.waitSignal(dialog.finished_export, timeout=60000) as signal:
        dialog.start()
        qtbot.waitUntil(lambda: bool(grading.match(dialog.count_label.text())), timeout=30000)
        dialog.cancel()
        assert "cancelling" in dialog.count_label.text() and not dialog.cancel_button.isEnabled()
    summary = signal.args[0]
    assert summary.partial and summary.ok + summary.errors == 1
    _, rows = _rows(out)
    assert len(rows) == 1
    assert is_partial(out)
    assert "PARTIAL" in dialog.count_label.text()


def test_bad_inputs_are_refused_in_the_dialog(qtbot, window, tmp_path):
    dialog = BatchExportDialog(window.worker, folders=[], out="")
    qtbot.addWidget(dialog)
    assert dialog.start() is None and "folder" in dialog.result_label.text()
    dialog.folders.addItem(str(tmp_path))
    assert dialog.start() is None and "output" in dialog.result_label.text()
    dialog.out_edit.setText(str(tmp_path / "missing" / "x.csv"))
    assert dialog.start() is None and "does not exist" in dialog.result_label.text()
    dialog.out_edit.setText(str(tmp_path / "x.csv"))
    dialog.scale.setValue(0.3)  # below a photo's plausible scale
    assert dialog.start() is None and dialog.result_label.text().startswith("A photo's scale must be 0.5 to 100")


def test_a_photo_scale_typed_in_the_dialog_measures_every_photo_with_it(qtbot, window, cohort, tmp_path):
    out = tmp_path / "grades.csv"
    dialog = BatchExportDialog(window.worker, folders=[str(cohort)], out=str(out), models=window.models)
    qtbot.addWidget(dialog)
    assert dialog.scale.text() == "not known"
    dialog.scale.setValue(12.0)
    with qtbot.waitSignal(dialog.finished_export, timeout=120000):
        dialog.start()
    measured = [r for r in _rows(out)[1] if r["vcdr"]]
    assert measured and all(r["photo_scale"] == "12 um/px (typed in)" and r["ddls_stage"] for r in measured)


def test_the_batch_export_takes_the_scales_typed_in_for_every_photo_of_a_size(qtbot, window, cohort, tmp_path):
    window.size_scales = {"200x160": 20.0, "640x480": 6.0}  # the cohort's photos are 200 x 160
    dialog = window.open_batch_export()
    assert "200×160 px: 20.00 µm per pixel" in dialog.size_note.text() and not dialog.size_note.isHidden()
    out = tmp_path / "sized.csv"
    dialog.folders.clear()
    dialog.folders.addItem(str(cohort))
    dialog.out_edit.setText(str(out))
    with qtbot.waitSignal(dialog.finished_export, timeout=120000):
        dialog.start()
    measured = [r for r in _rows(out)[1] if r["vcdr"]]
    assert measured and all(r["photo_scale"] == "20 um/px (typed in)" and r["ddls_stage"] for r in measured)
    dialog.scale.setValue(12.0)  # a scale for all photos wins
    with qtbot.waitSignal(dialog.finished_export, timeout=120000):
        dialog.start()
    assert all(r["photo_scale"] == "12 um/px (typed in)" for r in _rows(out)[1] if r["vcdr"])


def test_durations_read_like_a_clock():
    assert format_duration(0) == "0:00"
    assert format_duration(75.4) == "1:15"
    assert format_duration(3725) == "1:02:05"


def test_discs_placed_in_the_window_are_used_by_the_batch_export(qtbot, window, cohort, tmp_path, wait_idle,
                                                                  export_batch, show_cohort_exam):
    key = show_cohort_exam(window, "SYNTH0000")
    window.place_disc((60.0, 50.0))
    wait_idle(window)
    assert window.entries[key].analysis.raw.disc_source == "user"
    dialog, summary = export_batch(window, cohort, tmp_path / "placed.csv")
    assert summary.placed == 1 and "1 exam(s) graded with the optic disc placed by hand" in dialog.result_label.text()
    by_id = {r["data"]: r for r in _rows(tmp_path / "placed.csv")[1]}
    assert by_id["SYNTH0000"]["disc_source"] == "user" and by_id["SYNTH0001"]["disc_source"] != "user"
    dialog.close()
    # a disc placed on a photo that is not in the folder (an exam opened from memory) matches nothing there
    from engine.synthetic import synthetic_exam

    memory = window.add_exam(synthetic_exam(1, n_bscans=4, fundus_shape=(160, 200), bscan_shape=(64, 80), seed=9))
    wait_idle(window)
    window.show_exam(memory)
    window.place_disc((70.0, 60.0))
    wait_idle(window)
    assert len(window.corrections) == 2
    again, summary = export_batch(window, cohort, tmp_path / "again.csv")
    assert summary.placed == 1
    again.close()
