import sys

from engine import resources


def test_source_tree_resources_exist():
    assert resources.demo_exam_dir().is_dir()
    assert (resources.demo_exam_dir() / "DEMO01.jpg").is_file()
    assert resources.icon_path().is_file()
    assert not resources.is_frozen()


def test_override_and_frozen_bundle(monkeypatch, tmp_path):
    monkeypatch.setenv("GV_RESOURCES", str(tmp_path))
    assert resources.models_dir() == tmp_path / "models"
    monkeypatch.delenv("GV_RESOURCES")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources.resources_dir() == tmp_path / "resources"
    assert resources.is_frozen()
