"""Correcting the disc or cup outline by hand in the window: editor, measurement, refusal, undo, batch export."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore


def _circle(centre, radius, n=32):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + radius * np.sin(t), centre[1] + radius * np.cos(t)], axis=1)


def _vcdr(view) -> float:
    return float(next(b.value for b in view.biomarkers if b.name == "vertical CDR"))


def test_correcting_the_cup_outline_measures_it_again_without_grading_again(qtbot, window, small_exam, wait_idle,
                                                                            circles):
    key = window.add_exam(small_exam(seed=3))
    wait_idle(window)
    fundus_view, entry = window.fundus_view, window.entries[key]
    automatic = entry.analysis
    assert _vcdr(automatic) == pytest.approx(17 / 41, abs=0.01)
    assert {k: v.shape for k, v in automatic.outline_vertices.items()} == {"disc": (24, 2), "cup": (24, 2)}
    actions = {a.text(): a for a in fundus_view.disc_menu(80.0, 100.0).actions() if a.text()}
    assert actions["Correct the cup outline…"].isEnabled() and not actions["Use the automatic outlines"].isEnabled()

    actions["Correct the cup outline…"].trigger()
    roi = fundus_view.outline_roi
    assert fundus_view.editing == "cup" and roi is not None and not fundus_view.edit_bar.isHidden()
    assert not any(c.isVisible() for c in fundus_view.cup_curves)
    assert all(c.isVisible() for c in fundus_view.disc_curves)
    assert np.allclose(fundus_view.outline_points(), automatic.outline_vertices["cup"], atol=1e-3)
    # drag every point of the cup outward to a radius of 16 px, as the mouse would (one change at the end)
    handles = roi.getHandles()
    for k, (h, (r, c)) in enumerate(zip(handles, _circle((80.0, 100.0), 16.0, n=len(handles)))):
        roi.movePoint(h, QtCore.QPointF(c, r), finish=k == len(handles) - 1)
    wait_idle(window)
    drawn = entry.analysis
    assert entry.outlines.parts == ("cup",) and drawn.outlines is entry.outlines
    assert _vcdr(drawn) == pytest.approx(33 / 41, abs=0.02)
    assert "Cup outline drawn by hand: the masks and biomarkers are measured on it; graders are given the " \
           "automatic outline." in drawn.disc_method
    assert drawn.ensemble == automatic.ensemble and drawn.raw is automatic.raw  # not graded again
    assert "cup outline drawn by hand; vertical CDR" in window.status_label.text()
    assert "Cup outline drawn by hand" in window.results.bio_note.text()
    assert fundus_view.editing == "cup"  # the editor stays open on the measured outline
    assert np.allclose(drawn.outline_vertices["cup"], fundus_view.outline_points(), atol=1e-3)

    # a cup drawn outside the disc is refused in the status line; the editor goes back to the last outline
    window.correct_outline("cup", _circle((20.0, 20.0), 6.0))
    wait_idle(window)
    assert "outline not used: the cup outline drawn lies outside the disc" in window.status_label.text()
    assert entry.analysis is drawn and entry.outlines is drawn.outlines
    assert np.allclose(fundus_view.outline_points(), drawn.outline_vertices["cup"], atol=1e-3)

    # the report's picture of the photo shows the outline measured, not the editor's points
    report_shot, shown = fundus_view.grab_photo().toImage(), fundus_view.photo_view.grab().toImage()
    assert fundus_view.editing == "cup" and fundus_view.outline_roi.isVisible()
    assert report_shot != shown
    qtbot.mouseClick(fundus_view.done_button, QtCore.Qt.MouseButton.LeftButton)
    assert fundus_view.grab_photo().toImage() == report_shot  # the same picture once the editor is closed
    assert fundus_view.editing is None and fundus_view.outline_roi is None and fundus_view.edit_bar.isHidden()
    assert all(c.isVisible() for c in fundus_view.cup_curves)

    # analysed again (e.g. another site calibration): the drawn outline is kept
    window.reanalyse(key)
    wait_idle(window)
    assert entry.analysis is not drawn and _vcdr(entry.analysis) == pytest.approx(33 / 41, abs=0.02)

    reset = next(a for a in fundus_view.disc_menu(80.0, 100.0).actions() if a.text() == "Use the automatic outlines")
    assert reset.isEnabled()
    reset.trigger()
    wait_idle(window)
    assert entry.outlines is None and _vcdr(entry.analysis) == pytest.approx(17 / 41, abs=0.01)
    assert "drawn by hand" not in entry.analysis.disc_method


def test_a_drawn_disc_is_dropped_when_the_disc_is_placed_elsewhere(qtbot, window, small_exam, wait_idle, circles):
    key = window.add_exam(small_exam(seed=5))
    wait_idle(window)
    entry = window.entries[key]
    window.fundus_view.start_editing("disc")
    window.correct_outline("disc", _circle((80.0, 100.0), 25.0))
    wait_idle(window)
    assert entry.analysis.outlines.parts == ("disc",) and _vcdr(entry.analysis) == pytest.approx(17 / 51, abs=0.02)
    window.place_disc((60.0, 70.0))
    wait_idle(window)
    assert entry.outlines is None and entry.analysis.outlines is None and window.fundus_view.editing is None
    assert _vcdr(entry.analysis) == pytest.approx(17 / 41, abs=0.01)


def test_outlines_drawn_in_the_window_are_used_by_the_batch_export(qtbot, window, cohort, tmp_path, wait_idle,
                                                                   export_batch, show_cohort_exam):
    key = show_cohort_exam(window, "SYNTH0000")
    wait_idle(window)
    entry = window.entries[key]
    disc = entry.analysis.outline_vertices["disc"]
    window.correct_outline("cup", disc.mean(axis=0) + 0.6 * (disc - disc.mean(axis=0)))
    wait_idle(window)
    assert entry.analysis.outlines.parts == ("cup",)
    dialog, summary = export_batch(window, cohort, tmp_path / "drawn.csv")
    assert summary.outlined == 1 and "1 exam(s) measured on disc/cup outlines drawn by hand" in \
        dialog.result_label.text()
    with open(tmp_path / "drawn.csv", newline="", encoding="utf-8") as fh:
        by_id = {r["data"]: r for r in csv.DictReader(fh)}
    assert "cup outline drawn by hand; the graders used the automatic outline" in by_id["SYNTH0000"]["message"]
    assert "drawn by hand" not in by_id["SYNTH0001"]["message"]
    assert float(by_id["SYNTH0000"]["vcdr"]) == pytest.approx(_vcdr(entry.analysis), abs=0.01)
    dialog.close()


def test_the_outline_shown_can_be_exported_as_a_gamma_mask(qtbot, window, small_exam, tmp_path, wait_idle, circles):
    import cv2

    from engine.fundus.hand_outline import polygon_mask

    key = window.add_exam(small_exam(seed=6))
    wait_idle(window)
    entry = window.entries[key]
    cup = _circle((80.0, 100.0), 12.0)
    window.correct_outline("cup", cup)
    wait_idle(window)
    window.export_mask(tmp_path / "mask.png")
    wait_idle(window)
    mask = cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == entry.loaded.exam.fundus.shape[:2] and set(np.unique(mask)) == {0, 128, 255}
    assert ((mask == 0) == polygon_mask(cup, mask.shape)).all()  # the drawn cup, inside the segmenter's disc
    assert ((mask < 255) == entry.analysis.disc_analysis.disc_mask).all()
    assert "disc/cup mask written to" in window.status_label.text() and "cup outline drawn by hand" in \
        window.status_label.text()
    assert not list(tmp_path.glob(".mask.png.*"))  # no temp file left


def test_the_mask_export_never_writes_over_an_exams_own_file(qtbot, window, tmp_path, wait_idle, circles):
    import cv2

    from engine.synthetic import synthetic_fundus

    photo = tmp_path / "0001.png"
    cv2.imwrite(str(photo), synthetic_fundus((200, 240), cdr=0.5, seed=1).image[..., ::-1])
    before = photo.read_bytes()
    window.open_paths([str(photo)], remember=False)
    wait_idle(window)
    window.show_exam(next(iter(window.entries)))
    window.export_mask(photo)
    wait_idle(window)
    assert "mask not written: 0001.png is one of the exam's own files" in window.status_label.text()
    assert photo.read_bytes() == before
    from glaucoma_viewer import worker as jobs
    from glaucoma_viewer.state import AnalysisView

    window.worker.submit(jobs.export_disc_mask, AnalysisView(), None, str(tmp_path / "none.png"),
                         on_failed=lambda failure: window.status_label.setText(failure.message))
    wait_idle(window)
    assert window.status_label.text() == "no optic disc was found: there is no outline to write"


def test_corrections_are_remembered_for_the_same_photo_in_the_next_session(qtbot, make_window, settings, small_exam,
                                                                          wait_idle, circles, tmp_path):
    from engine.fundus.corrections import CorrectionStore

    window = make_window()
    key = window.add_exam(small_exam(seed=7))
    wait_idle(window)
    window.place_disc((80.0, 100.0))
    wait_idle(window)
    cup = _circle((80.0, 100.0), 14.0)
    window.correct_outline("cup", cup)
    wait_idle(window)
    store = tmp_path / "disc_corrections.json"
    assert store.exists() and "small" not in store.read_text()  # keyed by the pixels' SHA-256, no names
    sha = window.entries[key].loaded.photo_sha256
    assert len(sha) == 64 and len(CorrectionStore(store)) == 1

    again = make_window()
    other = again.add_exam(small_exam(seed=8))  # another photo: nothing restored
    same = again.add_exam(small_exam(seed=7))
    wait_idle(again)
    assert again.entries[other].disc_at is None and again.entries[other].outlines is None
    entry = again.entries[same]
    assert entry.disc_at == (80.0, 100.0) and entry.outlines.parts == ("cup",)
    assert np.allclose(entry.outlines.cup, cup, atol=0.01)
    assert entry.analysis.disc_method.startswith("Disc placed by hand") and "Cup outline drawn by hand" in \
        entry.analysis.disc_method
    assert _vcdr(entry.analysis) == pytest.approx(29 / 41, abs=0.02)

    # back to the automatic search: forgotten
    again.show_exam(same)
    again.place_disc(None)
    wait_idle(again)
    assert len(CorrectionStore(store)) == 0

    store.write_text("{not json")
    third = make_window()
    assert "not used: disc_corrections.json could not be read" in third.status_label.text()
    assert len(third.corrections) == 0



def test_corrections_are_exported_imported_into_open_exams_and_forgotten(qtbot, make_window, small_exam, wait_idle,
                                                                         circles, tmp_path, monkeypatch):
    from PySide6 import QtWidgets

    from engine.fundus.corrections import CorrectionStore

    window = make_window()
    said: list[str] = []  # every status line (an analysis ending writes its own after ours)
    set_text = window.status_label.setText
    monkeypatch.setattr(window.status_label, "setText", lambda text: (said.append(text), set_text(text)))
    key = window.add_exam(small_exam(seed=7))
    wait_idle(window)
    window.correct_outline("cup", _circle((80.0, 100.0), 14.0))
    wait_idle(window)
    window._update_corrections_menu()
    assert window.export_corrections_action.text() == "Export… (1 photo)"
    window.export_corrections(tmp_path / "shared.json")
    wait_idle(window)
    assert len(CorrectionStore(tmp_path / "shared.json")) == 1
    assert "--disc-corrections " + str(tmp_path / "shared.json") in window.status_label.text()

    window.forget_corrections()  # the open exam goes back to the automatic outline
    wait_idle(window)
    entry = window.entries[key]
    assert entry.outlines is None and _vcdr(entry.analysis) == pytest.approx(8 / 20, abs=0.01)
    assert "Hand corrections of 1 photo(s) forgotten; 1 open exam(s) analysed again without them" in said
    assert len(CorrectionStore(window.corrections.path)) == 0
    window._update_corrections_menu()
    assert not window.export_corrections_action.isEnabled()

    window.import_corrections(tmp_path / "shared.json")  # a colleague's file: the open exam takes it
    wait_idle(window)
    assert entry.outlines.parts == ("cup",) and _vcdr(entry.analysis) == pytest.approx(29 / 41, abs=0.02)
    assert any(t.startswith("Imported hand corrections of 1 photo(s) from shared.json (1 there; older or the "
                            "same as ours: 0); 1 open exam(s) analysed again with them") for t in said)
    assert len(CorrectionStore(window.corrections.path)) == 1
    window.import_corrections(tmp_path / "shared.json")  # nothing newer the second time
    wait_idle(window)
    assert said[-1] == ("Imported hand corrections of 0 photo(s) from shared.json (1 there; older or the same as "
                        "ours: 1)")

    warned = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", lambda parent, title, text: warned.append(text))
    (tmp_path / "bad.json").write_text("{")
    window.import_corrections(tmp_path / "bad.json")
    window.import_corrections(tmp_path / "none.json")
    wait_idle(window)
    bad, missing = sorted(warned, key=lambda text: "no such file" in text)  # read on two threads: either first
    assert bad.startswith("Not imported: bad.json could not be read") and missing.startswith("Not imported: ")
    assert missing.endswith("none.json: no such file")


def test_export_dialogs_open_in_the_last_folder_and_write_where_chosen(qtbot, window, small_exam, wait_idle,
                                                                       circles, tmp_path, monkeypatch):
    from PySide6 import QtWidgets

    from engine.fundus.corrections import CorrectionStore

    key = window.add_exam(small_exam(seed=7))
    wait_idle(window)
    window.correct_outline("cup", _circle((80.0, 100.0), 14.0))
    wait_idle(window)
    window.settings.setValue("last_folder", str(tmp_path))
    asked = []

    def save_as(parent, title, default, file_filter):
        asked.append((title, default, file_filter))
        return str(tmp_path / f"chosen{len(asked)}{Path(default).suffix}"), file_filter

    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", save_as)
    window.export_corrections_dialog()
    window.export_mask_dialog()
    wait_idle(window)
    exam_id = window.entries[key].loaded.exam_id
    assert asked == [("Export hand corrections", str(tmp_path / "disc_corrections.json"), "JSON (*.json)"),
                     ("Export disc/cup mask", str(tmp_path / f"{exam_id}_disc_cup_mask.png"), "PNG (*.png)")]
    assert len(CorrectionStore(tmp_path / "chosen1.json")) == 1 and (tmp_path / "chosen2.png").is_file()


def test_an_exam_dropped_from_memory_takes_the_imported_corrections_when_read_again(qtbot, make_window, cohort,
                                                                                    wait_idle, circles, tmp_path):
    from engine.fundus.corrections import CorrectionStore

    window = make_window(max_exams=1)
    window.open_paths([cohort], remember=False)
    wait_idle(window)
    qtbot.waitUntil(lambda: len(window.resident_keys()) == 1, timeout=30000)
    first = window.resident_keys()[0]
    window.show_exam(first)
    window.place_disc((70.0, 90.0))  # remembered for its photo
    wait_idle(window)
    assert window.entries[first].disc_at == (70.0, 90.0)
    sha = window.entries[first].loaded.photo_sha256
    other = next(k for k, e in window.entries.items() if e.status == "unloaded")
    window.exam_list.select(other)  # reading the other one drops this one from memory
    qtbot.waitUntil(lambda: window.entries[first].status == "unloaded", timeout=30000)
    wait_idle(window)
    colleague = CorrectionStore(tmp_path / "colleague.json")
    colleague.put(sha, (80.0, 100.0), None)
    colleague._photos[sha]["saved"] = "2099-01-01T00:00:00+00:00"  # saved after ours: it wins
    colleague.write()
    window.import_corrections(colleague.path)
    wait_idle(window)
    assert window.entries[first].disc_at is None  # taken from the store when read again, not from memory
    window.exam_list.select(first)
    qtbot.waitUntil(lambda: window.entries[first].status == "done", timeout=30000)
    assert window.entries[first].disc_at == (80.0, 100.0) and circles[-1] == (80.0, 100.0)


def test_the_editor_zooms_to_the_disc_and_the_disc_button_does(qtbot, window, small_exam, wait_idle, circles):
    window.add_exam(small_exam(seed=3))
    wait_idle(window)
    view = window.fundus_view
    assert view.disc_button.isEnabled() and view.disc_region() == pytest.approx((40, 60, 120, 140), abs=1)
    view.fit()
    (x0, x1), _ = view.photo_box.viewRange()
    assert x1 - x0 > 3 * 40  # the whole photo: the disc is 40 px across
    view.start_editing("cup")
    (x0, x1), (y0, y1) = view.photo_box.viewRange()
    assert x0 <= 61 and x1 >= 139 and y0 <= 41 and y1 >= 119 and min(x1 - x0, y1 - y0) < 3 * 40
    view.stop_editing()
    view.fit()
    assert view.zoom_to_disc()
    (x0, x1), (y0, y1) = view.photo_box.viewRange()
    assert min(x1 - x0, y1 - y0) < 3 * 40  # the other side follows the pane's aspect
    view.set_outline_vertices({}, ())  # an exam shown without an analysis
    assert not view.disc_button.isEnabled() and not view.zoom_to_disc()


def test_the_rim_profile_is_plotted_and_follows_a_corrected_cup(qtbot, window, small_exam, wait_idle, circles):
    key = window.add_exam(small_exam(seed=3))
    wait_idle(window)
    entry, panel = window.entries[key], window.results
    angles, ratio = entry.analysis.rim_profile
    assert entry.analysis.rim_eye == entry.loaded.exam.eye and len(angles) == 180
    assert ratio == pytest.approx(np.full(180, (20 - 8) / 40), abs=0.03)  # the fixture's concentric circles
    assert panel.rim_plot.isVisibleTo(panel) and "narrowest 0.2" in panel.rim_plot.title
    window.correct_outline("cup", _circle((80.0, 100.0), 14.0))
    wait_idle(window)
    thin = entry.analysis.rim_profile[1]
    assert thin.mean() == pytest.approx((20 - 14) / 40, abs=0.02) and thin.max() < 0.2  # 6 px of rim, to a pixel
    assert "narrowest 0.1" in panel.rim_plot.title
    window.place_disc((5.0, 5.0))  # the fixture finds no disc there: no profile
    wait_idle(window)
    assert entry.analysis.rim_profile is None and not panel.rim_plot.isVisibleTo(panel)


def test_outline_changes_are_undone_one_by_one(qtbot, window, small_exam, wait_idle, circles):
    key = window.add_exam(small_exam(seed=4))
    wait_idle(window)
    entry, view = window.entries[key], window.fundus_view
    assert not window.undo_outline_action.isEnabled() and not view.undo_button.isEnabled()
    view.start_editing("cup")
    for radius in (12.0, 16.0):
        window.correct_outline("cup", _circle((80.0, 100.0), radius))
        wait_idle(window)
    window.correct_outline("disc", _circle((80.0, 100.0), 25.0))
    wait_idle(window)
    assert entry.outlines.parts == ("disc", "cup") and _vcdr(entry.analysis) == pytest.approx(33 / 51, abs=0.02)
    assert window.undo_outline_action.isEnabled() and view.undo_button.isEnabled()
    ratios = []
    while window.undo_outline_action.isEnabled():
        qtbot.mouseClick(view.undo_button, QtCore.Qt.MouseButton.LeftButton)
        wait_idle(window)
        ratios.append(round(_vcdr(entry.analysis), 2))
    assert ratios == [round(33 / 41, 2), round(25 / 41, 2), round(17 / 41, 2)]  # disc, then the two cups, undone
    assert entry.outlines is None and "drawn by hand" not in entry.analysis.disc_method
    assert np.allclose(view.outline_points(), entry.analysis.outline_vertices["cup"], atol=1e-3)  # editor follows
    window.correct_outline("cup", _circle((80.0, 100.0), 12.0))
    wait_idle(window)
    window.place_disc((70.0, 90.0))  # another disc: nothing left to undo
    wait_idle(window)
    assert not window.undo_outline_action.isEnabled() and entry.outline_undo == []


def test_where_no_disc_was_found_both_outlines_can_be_drawn(qtbot, window, small_exam, tmp_path, wait_idle, circles):
    import cv2

    key = window.add_exam(small_exam(seed=9))
    wait_idle(window)
    window.place_disc((5.0, 5.0))  # the circles fixture finds no disc there
    wait_idle(window)
    entry, view = window.entries[key], window.fundus_view
    assert not entry.analysis.outline_vertices and view.drawing_enabled
    assert "or to outline it and its cup by hand" in window.results.bio_note.text()
    actions = {a.text(): a for a in view.disc_menu(60.0, 70.0).actions() if a.text()}
    assert not actions["Correct the disc outline…"].isEnabled()
    actions["Outline the disc and cup by hand here"].trigger()
    wait_idle(window)
    h, w = entry.loaded.exam.fundus.shape[:2]
    radius = 0.05 * min(h, w)  # the fixture's analysis has no localiser answer
    assert entry.analysis.outlines.parts == ("disc", "cup") and set(entry.analysis.outline_vertices) == {"disc", "cup"}
    assert _vcdr(entry.analysis) == pytest.approx(0.5, abs=2 / radius)
    assert "It found no disc: the disc and cup outlines were drawn by hand" in entry.analysis.disc_method
    assert "the segmenter found no disc" in window.results.bio_note.text() and not view.drawing_enabled
    window.export_mask(tmp_path / "drawn.png")
    wait_idle(window)
    mask = cv2.imread(str(tmp_path / "drawn.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(mask)) == {0, 128, 255} and abs((mask < 255).sum() - np.pi * radius**2) < 0.2 * radius**2
    window.undo_outline()
    wait_idle(window)
    assert entry.outlines is None and not entry.analysis.outline_vertices and view.drawing_enabled


def test_the_corrections_file_sits_beside_the_settings_or_in_the_app_data_folder(tmp_path, monkeypatch):
    import sys

    from PySide6 import QtCore

    from glaucoma_viewer.main_window import corrections_path

    ini = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    assert corrections_path(ini) == tmp_path / "disc_corrections.json"
    native = QtCore.QSettings()
    monkeypatch.setattr(sys, "platform", "win32")  # the settings would be in the registry
    data = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.StandardLocation.AppDataLocation)
    assert corrections_path(native) == Path(data) / "disc_corrections.json"
    assert corrections_path(ini) == tmp_path / "disc_corrections.json"  # an ini file is a file everywhere


def test_an_exam_still_being_analysed_offers_no_outline_of_the_one_shown_before(qtbot, window, small_exam, wait_idle,
                                                                                circles, monkeypatch):
    import time

    from glaucoma_viewer import worker as jobs

    first = window.add_exam(small_exam(seed=10))
    wait_idle(window)
    real, release = jobs.analyse_exam, []

    def held(loaded, progress=None, cancel=None, **kw):
        while not release:
            cancel.raise_if_cancelled()
            time.sleep(0.01)
        return real(loaded, progress=progress, cancel=cancel, **kw)

    monkeypatch.setattr(jobs, "analyse_exam", held)
    second = window.add_exam(small_exam(seed=11))
    qtbot.waitUntil(lambda: window.entries[second].status == "analysing", timeout=10000)
    window.show_exam(second)
    actions = {a.text(): a for a in window.fundus_view.disc_menu(80.0, 100.0).actions() if a.text()}
    assert not actions["Correct the disc outline…"].isEnabled() and not actions["Correct the cup outline…"].isEnabled()
    assert "Outline the disc and cup by hand here" not in actions
    release.append(True)
    wait_idle(window)
    window.show_exam(first)
    actions = {a.text(): a for a in window.fundus_view.disc_menu(80.0, 100.0).actions() if a.text()}
    assert actions["Correct the disc outline…"].isEnabled()


def test_a_corrections_file_that_cannot_be_written_after_an_import_is_said(qtbot, window, small_exam, wait_idle,
                                                                          circles, tmp_path, monkeypatch):
    from engine.fundus.corrections import CorrectionStore

    window.add_exam(small_exam(seed=7))
    wait_idle(window)
    window.correct_outline("cup", _circle((80.0, 100.0), 14.0))
    wait_idle(window)
    window.export_corrections(tmp_path / "shared.json")
    window.forget_corrections()
    wait_idle(window)
    (tmp_path / "a_file").write_text("")
    monkeypatch.setattr(window.corrections, "path", tmp_path / "a_file" / "disc_corrections.json")  # not writable
    said: list[str] = []
    set_text = window.status_label.setText
    monkeypatch.setattr(window.status_label, "setText", lambda text: (said.append(text), set_text(text)))
    window.import_corrections(tmp_path / "shared.json")
    wait_idle(window)
    assert len(window.corrections) == 1 and len(CorrectionStore(tmp_path / "shared.json")) == 1
    assert any(t.startswith("Corrections not remembered for the next session: ") for t in said)


def test_an_eye_set_by_hand_travels_with_the_corrections_file(qtbot, make_window, small_exam, wait_idle, circles,
                                                              tmp_path):
    from engine.fundus.corrections import CorrectionStore

    window = make_window()
    exam = small_exam(seed=11)
    exam.eye = "unknown"
    key = window.add_exam(exam)
    wait_idle(window)
    sha = window.entries[key].loaded.photo_sha256
    colleague = CorrectionStore(tmp_path / "colleague.json")
    colleague.put_eye(sha, "OS")
    colleague.write()
    before = window.entries[key].analysis
    window.import_corrections(colleague.path)  # the eye is all the record holds: the open exam still takes it
    wait_idle(window)
    after = window.entries[key].analysis
    assert exam.eye == "OS" and after is not None and after is not before  # analysed again
    window.forget_corrections()
    wait_idle(window)
    assert exam.eye == "unknown" and window.corrections.eye(sha) is None
