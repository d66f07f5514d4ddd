"""The file of discs placed and outlines drawn by hand (viewer sessions, ``grade --disc-corrections``)."""

from __future__ import annotations

import json

import numpy as np

from engine.fundus.corrections import CorrectionStore, photo_sha256
from engine.fundus.hand_outline import HandOutlines


def _circle(centre, radius, n=32):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + radius * np.sin(t), centre[1] + radius * np.cos(t)], axis=1)


def test_photo_hash_sees_pixels_and_shape():
    a = np.zeros((4, 6, 3), np.uint8)
    assert photo_sha256(a) == photo_sha256(a.copy()) and len(photo_sha256(a)) == 64
    assert photo_sha256(a) != photo_sha256(np.zeros((6, 4, 3), np.uint8))
    b = a.copy()
    b[3, 5, 2] = 1
    assert photo_sha256(a) != photo_sha256(b)
    assert photo_sha256(np.asfortranarray(b)) == photo_sha256(b)  # memory layout does not matter


def test_the_corrections_file_round_trips_and_ignores_bad_records(tmp_path):
    path = tmp_path / "c.json"
    store = CorrectionStore(path)
    assert store.get("a" * 64) == (None, None) and not path.exists()
    assert store.put("a" * 64, None, HandOutlines(disc=_circle((50, 60), 20)))
    assert store.put("b" * 64, (1.0, 2.0), None)
    assert not store.put("c" * 64, None, None)  # nothing to remember: no change to write
    assert not path.exists()  # remembered in memory until written
    store.write()
    again = CorrectionStore(path)
    disc_at, outlines = again.get("a" * 64)
    assert disc_at is None and outlines.parts == ("disc",) and np.allclose(outlines.disc, _circle((50, 60), 20),
                                                                           atol=0.01)
    assert again.get("b" * 64) == ((1.0, 2.0), None) and len(again) == 2
    data = json.loads(path.read_text())
    data["photos"]["d" * 64] = {"disc_at": None, "cup": [[1, 2]]}  # too few points
    data["photos"]["e" * 64] = {"disc_at": "x"}
    path.write_text(json.dumps(data))
    bad = CorrectionStore(path)
    assert bad.problem == "" and bad.get("d" * 64) == (None, None) and bad.get("e" * 64) == (None, None)
    path.write_text(json.dumps({"version": 2, "photos": {}}))
    assert "not a version-1 corrections file" in CorrectionStore(path).problem
    copy = again.snapshot()
    assert again.put("a" * 64, None, None)  # forgotten: a change
    assert len(copy) == 2 and len(again) == 1


def test_merge_takes_the_newer_records_and_copies_and_forgetting_are_written(tmp_path):
    mine, theirs = CorrectionStore(tmp_path / "mine.json"), CorrectionStore(tmp_path / "theirs.json")
    mine.put("a" * 64, (1.0, 1.0), None)
    mine.put("b" * 64, (2.0, 2.0), None)
    theirs.put("b" * 64, (3.0, 3.0), None)
    theirs.put("c" * 64, None, HandOutlines(cup=_circle((40, 40), 5)))
    mine._photos["a" * 64]["saved"] = "2026-01-01T00:00:00+00:00"  # older than theirs: replaced
    theirs.put("a" * 64, (9.0, 9.0), None)
    theirs._photos["b" * 64]["saved"] = "2025-01-01T00:00:00+00:00"  # older than mine: kept
    assert mine.merge(theirs) == {"a" * 64, "c" * 64}
    assert mine.get("a" * 64)[0] == (9.0, 9.0) and mine.get("b" * 64)[0] == (2.0, 2.0)
    assert mine.get("c" * 64)[1].parts == ("cup",) and mine.merge(theirs) == set()  # nothing new the second time
    mine.write(tmp_path / "copy.json")
    assert not mine.path.exists() and len(CorrectionStore(tmp_path / "copy.json")) == 3
    assert mine.forget_all() == {"a" * 64, "b" * 64, "c" * 64} and len(mine) == 0
    mine.write()
    assert CorrectionStore(mine.path).get("a" * 64) == (None, None)


def test_an_eye_set_by_hand_shares_the_photos_record_with_its_placement(tmp_path):
    store = CorrectionStore(tmp_path / "c.json")
    key = "e" * 64
    assert store.eye(key) is None and not store.put_eye(key, None)
    assert store.put_eye(key, "OS") and store.eye(key) == "OS" and store.get(key) == (None, None) and len(store) == 1
    assert not store.put_eye(key, "OS")  # the same: nothing to write
    assert store.put(key, (10.0, 20.0), None) and store.eye(key) == "OS"  # a placement keeps the eye
    assert store.put(key, None, None) and store.eye(key) == "OS" and len(store) == 1  # and its removal too
    assert store.put(key, (10.0, 20.0), None) and store.put_eye(key, None)
    assert store.eye(key) is None and store.get(key)[0] == (10.0, 20.0)  # forgetting the eye keeps the placement
    assert store.put(key, None, None) and len(store) == 0  # nothing left: no record
    store.put_eye(key, "OD")
    store.write()
    assert CorrectionStore(tmp_path / "c.json").eye(key) == "OD"
