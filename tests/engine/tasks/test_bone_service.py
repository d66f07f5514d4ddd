"""The bone-health JSON-lines service, driven as a real subprocess: one JSON line out per line in, always."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from engine.tasks import bone_service, phantoms

ROOT = Path(__file__).resolve().parents[3]


def run_service(lines: list[str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "engine", "bone-health", *args], input="".join(lines).encode(), capture_output=True,
        cwd=ROOT, env=env, timeout=timeout,
    )


@pytest.fixture(scope="module")
def radiograph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "pano 1.png"
    cv2.imwrite(str(path), phantoms.phantom_panoramic(shape=(150, 330)))
    return path


def test_good_bad_and_ugly_lines_each_get_exactly_one_json_answer(tiny_weights, radiograph, tmp_path):
    out_dir = tmp_path / "out"
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    lines = [
        json.dumps({"img_path": str(radiograph), "destination_path": str(out_dir)}) + "\n",      # ok
        "this is not json\n",                                                                    # garbage
        "\n",                                                                                    # blank
        "[1, 2, 3]\n",                                                                           # not an object
        json.dumps({"img_path": str(radiograph)}) + "\n",                                        # missing key
        json.dumps({"img_path": str(tmp_path / "missing.png"), "destination_path": str(out_dir)}) + "\n",
        json.dumps({"img_path": str(a_file), "destination_path": str(out_dir)}) + "\n",          # not an image
        json.dumps({"img_path": str(radiograph), "destination_path": str(a_file / "sub")}) + "\n",  # unwritable
        "\xff\xfe garbage bytes \n",
        json.dumps({"img_path": str(radiograph), "destination_path": str(out_dir)}),             # ok, no final newline
    ]
    proc = run_service(lines, "--model", str(tiny_weights["bone"]))
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode().splitlines()
    assert len(out) == len(lines)
    answers = [json.loads(line) for line in out]  # stdout holds nothing but JSON
    assert [a["result"] for a in answers] == ["ok"] + ["fail"] * 8 + ["ok"]
    for a in answers:
        assert set(a) == {"result", "diagnosis", "probability", "saliency_img_path", "overlay_img_path", "message"}
    assert "not JSON" in answers[1]["message"]
    assert "empty line" in answers[2]["message"]
    assert "expected a JSON object" in answers[3]["message"]
    assert "destination_path" in answers[4]["message"]
    assert "cannot read the image" in answers[5]["message"]
    assert "cannot read the image" in answers[6]["message"]
    assert "not a writable folder" in answers[7]["message"]
    for a in (answers[0], answers[-1]):
        assert a["diagnosis"] in ("healthy", "osteoporosis") and 0.5 <= a["probability"] <= 1.0
        for key, kind in (("saliency_img_path", "saliency"), ("overlay_img_path", "overlay")):
            path = Path(a[key])
            assert path.parent == out_dir.resolve()
            assert re.fullmatch(rf"pano 1_{kind}_\d{{14}}(_\d+)?\.png", path.name)
            img = cv2.imread(str(path))
            assert img is not None and img.shape[:2] == (150, 330)
    # the two ok answers never overwrite each other, and no temporary file is left behind
    assert answers[0]["saliency_img_path"] != answers[-1]["saliency_img_path"]
    assert sorted(p.suffix for p in out_dir.iterdir()) == [".png"] * 4
    assert b"line 2: fail" in proc.stderr


def test_end_of_input_without_any_line_exits_zero(tiny_weights):
    proc = run_service([], "--model", str(tiny_weights["bone"]))
    assert proc.returncode == 0 and proc.stdout == b""


def test_unusable_model_exits_2_with_a_message_and_no_stdout(tmp_path):
    proc = run_service(['{"img_path": "a.png", "destination_path": "."}\n'], "--model", str(tmp_path / "none.pt"))
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert b"checkpoint not found" in proc.stderr


def test_prints_from_libraries_never_reach_stdout(tiny_weights, radiograph, tmp_path):
    """A library that prints (Python print and a C-level write to fd 1) while serving: stdout stays JSON."""
    code = (
        "import os, sys\n"
        "from engine.tasks import bone\n"
        "real = bone.diagnose\n"
        "def noisy(*a, **k):\n"
        "    print('python noise')\n"
        "    os.write(1, b'c-level noise\\n')\n"
        "    return real(*a, **k)\n"
        "bone.diagnose = noisy\n"
        "from engine.cli import main\n"
        f"sys.exit(main(['bone-health', '--model', {str(tiny_weights['bone'])!r}]))\n"
    )
    line = json.dumps({"img_path": str(radiograph), "destination_path": str(tmp_path)}) + "\n"
    proc = subprocess.run([sys.executable, "-c", code], input=line.encode(), capture_output=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert [json.loads(x)["result"] for x in proc.stdout.decode().splitlines()] == ["ok"]
    assert b"python noise" in proc.stderr and b"c-level noise" in proc.stderr


def test_parse_request_messages():
    with pytest.raises(bone_service.RequestError, match="missing or empty key.*img_path"):
        bone_service.parse_request(b'{"img_path": "", "destination_path": "x"}')
    with pytest.raises(bone_service.RequestError, match="longer than"):
        bone_service.parse_request(b"x" * (bone_service.MAX_LINE_BYTES + 1))
    assert bone_service.parse_request(b'{"img_path": "a.png", "destination_path": "d"}') == (Path("a.png"), Path("d"))
