"""The sibling tasks in the window: a radiograph, an MRI and the ODIR labels of a fundus photo.

The tasks run with the shipped (demo) weights of ``resources/models``; the exams are small phantoms.
"""

from __future__ import annotations

import numpy as np

from engine.io.exam import Exam
from engine.tasks import phantoms


def _labels(layout):
    return [layout.itemAt(i).widget() for i in range(layout.count())
            if hasattr(layout.itemAt(i).widget(), "text")]


def test_a_radiograph_shows_in_the_photo_view_with_its_bone_health_heat_map(qtbot, window, wait_idle, tmp_path):
    xray = phantoms.phantom_panoramic("osteoporosis", shape=(240, 480), seed=3)
    key = window.add_exam(Exam("PANO1", xray=xray))
    wait_idle(window)
    entry = window.entries[key]
    assert entry.status == "done", entry.message
    assert entry.loaded.photo_kind == "xray" and entry.loaded.fundus_display.shape == (240, 480, 3)
    view = entry.analysis
    assert [t.task for t in view.tasks] == ["bone"]
    bone = view.tasks[0]
    assert bone.verdict in bone.probabilities and abs(sum(bone.probabilities.values()) - 1) < 1e-5
    assert bone.run.sha256 and bone.run.card
    assert view.fundus_cam is not None and view.fundus_cam.shape == (240, 480)
    assert window.fundus_view.title.text().startswith("Panoramic radiograph")
    assert window.fundus_view.cam_toggle.isEnabled()
    results = window.results
    assert results.tasks_section.isVisibleTo(window) and not results.grade_section.isVisibleTo(window)
    assert any("synthetic phantoms" in n for n in bone.notes)  # the demo-weights note, shown in the task's box
    assert any("synthetic phantoms" in w.text() for w in _labels(results.tasks_box))
    assert "Bone health" in window.status_label.text()
    cards = []
    results.modelCardRequested.connect(cards.append)
    link = results.tasks_box.itemAt(2).widget()
    link.linkActivated.emit("#")
    assert cards and cards[0].name == bone.run.name
    pdf = window.export_report(tmp_path / "pano.pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000


def test_an_mri_is_browsed_slice_by_slice_with_the_glioma_attention(qtbot, window, wait_idle):
    mri = phantoms.phantom_brain_mri("HGG", (12, 48, 48), ("flair", "t1ce"), seed=2)
    key = window.add_exam(Exam("BRAIN2", mri=mri))
    wait_idle(window)
    entry = window.entries[key]
    assert entry.status == "done", entry.message
    shown = entry.loaded.mri_display
    assert shown.dtype == np.uint8 and shown.shape == (12, 48, 48) and entry.loaded.mri_sequence == "flair"
    view = entry.analysis
    assert [t.task for t in view.tasks] == ["glioma"] and view.tasks[0].verdict in ("HGG", "LGG")
    assert view.oct_cam is not None and view.oct_cam.shape == shown.shape
    oct_view = window.oct_view
    assert oct_view.volume is shown and oct_view.title.text().startswith("MRI — FLAIR")
    assert oct_view.cam_toggle.text() == "Attention" and oct_view.cam_toggle.isEnabled()
    assert oct_view.current_index == 6 and oct_view.position.text() == "7 / 12"
    oct_view.step(-2)
    qtbot.waitUntil(lambda: oct_view.current_index == 4 and oct_view.position.text() == "5 / 12")


def test_odir_labels_and_their_heat_maps_for_a_fundus_photo(qtbot, window, small_exam, wait_idle):
    key = window.add_exam(small_exam(seed=31, n=4))
    wait_idle(window)
    view = window.entries[key].analysis
    odir = next(t for t in view.tasks if t.task == "odir")
    assert len(odir.probabilities) == 8 and set(odir.cams) == set("NDGCAHMO")
    assert all(m.dtype == np.uint8 and max(m.shape) <= 512 for m in odir.cams.values())
    combo = window.results.cam_choice
    assert combo is not None and combo.count() == 1 + 8  # the glaucoma grade's map, then one per label
    assert combo.currentData() is view.fundus_cam
    combo.setCurrentIndex(3)  # the second ODIR label
    shown = window.fundus_view.cam_item.image
    assert window.fundus_view.cam_toggle.isChecked()
    assert np.array_equal(shown, combo.itemData(3)) and not np.array_equal(shown, view.fundus_cam)
