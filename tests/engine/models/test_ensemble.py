"""Ensembles: mean, majority vote, every tie rule, and definition files."""

import json

import numpy as np
import pytest

from engine.models.ensemble import EnsembleError, combine, read_ensemble_file, write_ensemble_file, EnsembleDefinition

A = [0.7, 0.2, 0.1]  # votes non
B = [0.1, 0.6, 0.3]  # votes early
C = [0.2, 0.3, 0.5]  # votes mid_advanced


def test_mean_averages_probabilities():
    out = combine({"f": A, "d": C}, "mean")
    np.testing.assert_allclose(out.probabilities, [0.45, 0.25, 0.3])
    assert out.grade == 0 and out.method == "mean" and out.votes is None


def test_majority_vote_and_consistent_probabilities():
    out = combine({"f": A, "d": B, "o": B}, "vote")
    assert out.grade == 1 and list(out.votes) == [1, 2, 0] and out.tie_broken_by is None
    assert np.isclose(out.probabilities.sum(), 1) and int(np.argmax(out.probabilities)) == 1


@pytest.mark.parametrize(
    "tie,expected",
    [("prefer:f", 0), ("prefer:o", 2), ("higher", 2), ("lower", 0), ("mean", 1)],
)
def test_three_way_disagreement_uses_the_tie_rule(tie, expected):
    out = combine({"f": A, "d": B, "o": C}, "vote", tie)
    assert out.grade == expected and out.tie_broken_by == tie
    assert int(np.argmax(out.probabilities)) == expected


def test_preferred_member_outside_the_tie_falls_back_to_mean():
    out = combine({"a": A, "b": A, "c": B, "d": B, "f": C}, "vote", "prefer:f")
    assert out.grade in (0, 1) and out.tie_broken_by == "mean"


def test_bad_rules_and_empty_inputs():
    with pytest.raises(EnsembleError):
        combine({}, "mean")
    with pytest.raises(EnsembleError, match="method"):
        combine({"a": A}, "median")
    with pytest.raises(EnsembleError, match="tie"):
        combine({"a": A}, "vote", "coin")


def test_json_and_toml_definitions(tmp_path):
    (tmp_path / "m").mkdir()
    j = tmp_path / "e.json"
    j.write_text(json.dumps({"method": "vote", "tie": "prefer:fundus",
                             "members": [{"name": "fundus", "path": "m/f.pt"}, "m/three.pt"]}))
    d = read_ensemble_file(j)
    assert d.method == "vote" and d.tie == "prefer:fundus"
    assert d.members == [("fundus", (tmp_path / "m/f.pt").resolve()), ("three", (tmp_path / "m/three.pt").resolve())]
    t = tmp_path / "e.toml"
    t.write_text('name = "x"\nmethod = "mean"\n[[members]]\nname = "a"\npath = "m/a.pt"\n')
    assert read_ensemble_file(t).members[0][0] == "a"
    out = tmp_path / "copy.json"
    write_ensemble_file(out, d)
    assert read_ensemble_file(out).members == d.members
    assert json.loads(out.read_text())["members"][0]["path"] == "m/f.pt"


@pytest.mark.parametrize("text,match", [
    ("{", "not valid"), ('{"members": []}', "members"), ('{"members": [{"name": "a"}]}', "path"),
    ('{"members": ["a.pt", "a.pt"]}', "twice"), ('{"members": ["a.pt"], "tie": "dice"}', "tie"),
])
def test_bad_definition_files_say_why(tmp_path, text, match):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(EnsembleError, match=match):
        read_ensemble_file(p)
