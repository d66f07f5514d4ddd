"""The bone-health JSON-lines service (the reference ``run_model.py`` service mode, done robustly).

Protocol: one JSON object per input line, ``{"img_path": "...", "destination_path": "..."}``; exactly one JSON
object per input line on the output, in input order::

    {"result": "ok" | "fail", "diagnosis": "healthy" | "osteoporosis" | null, "probability": p | null,
     "saliency_img_path": "..." | null, "overlay_img_path": "..." | null, "message": "..."}

``probability`` is the model's probability of the diagnosis given (an addition to the reference's keys); an
``ok`` line's ``message`` says so when the model was trained on synthetic phantoms (the shipped demo weights).
For ``ok`` the two PNGs are in ``destination_path`` (created when missing): ``<name>_saliency_<YYYYmmddHHMMSS>.png``
(the Grad-CAM heat map, colour, radiograph size) and ``<name>_overlay_<YYYYmmddHHMMSS>.png`` (the map blended
over the radiograph), ``<name>`` being the image's file stem; a ``_2``, ``_3`` ... suffix is added rather than
overwrite an existing file. Each PNG is written to a temporary file and renamed, so a reader never sees half
a file; when the second cannot be written the first is removed again.

Anything wrong with one line (not JSON, not an object, missing or empty keys, unreadable image, unwritable
destination, a failure inside the model) gives a ``fail`` line with a one-line ``message`` and the service
reads the next line. A blank line is answered too (``fail``), so the count of lines out always equals the
count of lines in. End of input ends the service with exit status 0.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Optional

log = logging.getLogger("engine.bone_health")

MAX_LINE_BYTES = 1 << 20
"""A request line longer than this is refused (a path list or a stray binary file on stdin)."""
KEYS = ("img_path", "destination_path")
SYNTHETIC_NOTE = "demo model trained on synthetic phantoms only: no clinical validity (see its model card)"


def fail(message: str) -> dict[str, Any]:
    """A ``fail`` response with a one-line message."""
    return {
        "result": "fail", "diagnosis": None, "probability": None, "saliency_img_path": None,
        "overlay_img_path": None, "message": " ".join(str(message).split()),
    }


class RequestError(ValueError):
    """A request that cannot be served; ``str()`` becomes the response message."""


def parse_request(raw: bytes) -> tuple[Path, Path]:
    """One input line -> (image path, destination folder). Raises RequestError with a clear message."""
    if len(raw) > MAX_LINE_BYTES:
        raise RequestError(f"request line longer than {MAX_LINE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("request line is not UTF-8 text") from None
    if not text.strip():
        raise RequestError("empty line: expected a JSON object with img_path and destination_path")
    try:
        request = json.loads(text)
    except json.JSONDecodeError as err:
        raise RequestError(f"not JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(request, dict):
        raise RequestError(f"expected a JSON object with {' and '.join(KEYS)}, got {type(request).__name__}")
    missing = [k for k in KEYS if not isinstance(request.get(k), str) or not request.get(k).strip()]
    if missing:
        raise RequestError(f"missing or empty key(s): {', '.join(missing)} (strings expected)")
    return Path(request["img_path"]), Path(request["destination_path"])


def _free_name(folder: Path, stem: str, kind: str, stamp: str) -> Path:
    path = folder / f"{stem}_{kind}_{stamp}.png"
    k = 2
    while path.exists():
        path = folder / f"{stem}_{kind}_{stamp}_{k}.png"
        k += 1
    return path


def serve_one(
    raw: bytes, model: Any, now: Callable[[], _dt.datetime] = _dt.datetime.now
) -> dict[str, Any]:
    """Answer one request line (never raises for bad input: a ``fail`` dict instead)."""
    from engine.io.errors import ExamLoadError
    from engine.io.images import read_image
    from engine.tasks import bone
    from engine.tasks._common import colourise, overlay, write_png

    try:
        img_path, destination = parse_request(raw)
    except RequestError as err:
        return fail(str(err))
    try:
        image = read_image(img_path, grey=True)
    except ExamLoadError as err:
        return fail(f"cannot read the image: {err}")
    except (OSError, ValueError, MemoryError) as err:
        return fail(f"cannot read the image {img_path}: {err}")
    try:
        destination.mkdir(parents=True, exist_ok=True)
        if not destination.is_dir():
            raise NotADirectoryError(f"{destination} is not a folder")
    except OSError as err:
        return fail(f"destination_path {destination} is not a writable folder ({err.strerror or err})")
    try:
        result = bone.diagnose(image, model, cam=True)
    except bone.BoneInputError as err:
        return fail(str(err))
    except (RuntimeError, ValueError, MemoryError) as err:
        return fail(f"the model failed on {img_path.name}: {type(err).__name__}: {err}")
    stamp = now().strftime("%Y%m%d%H%M%S")
    stem = img_path.stem or "image"
    written: list[Path] = []
    try:
        heat = result.heatmap
        saliency = _free_name(destination, stem, "saliency", stamp)
        written.append(write_png(saliency, colourise(heat)))
        blended = _free_name(destination, stem, "overlay", stamp)
        written.append(write_png(blended, overlay(image, heat)))
    except OSError as err:
        for path in written:
            path.unlink(missing_ok=True)
        return fail(f"cannot write to {destination}: {err.strerror or err}")
    return {
        "result": "ok",
        "diagnosis": result.diagnosis,
        "probability": round(float(result.probabilities[result.diagnosis]), 6),
        "saliency_img_path": str(written[0].resolve()),
        "overlay_img_path": str(written[1].resolve()),
        "message": SYNTHETIC_NOTE if model.card.get("synthetic_training_data") else "",
    }


def serve(lines: Iterable[bytes], out: IO[str], model: Any) -> int:
    """Answer every line of ``lines`` on ``out`` (one JSON line each, flushed); return how many failed."""
    failures = 0
    for number, raw in enumerate(lines, 1):
        start = time.perf_counter()
        raw = raw.rstrip(b"\r\n")
        try:
            response = serve_one(raw, model)
        except Exception as err:  # last line of defence: the service must answer and go on
            log.exception("line %d: unexpected error", number)
            response = fail(f"internal error: {type(err).__name__}: {err}")
        failures += response["result"] != "ok"
        out.write(json.dumps(response, ensure_ascii=False) + "\n")
        out.flush()
        if response["result"] == "ok":
            log.info("line %d: ok %s (p=%.2f) in %.2fs", number, response["diagnosis"], response["probability"],
                     time.perf_counter() - start)
        else:
            log.info("line %d: fail: %s", number, response["message"])
    return failures


def load(path: Optional[Path], device: str = "cpu") -> Any:
    """The bone model (default weights unless ``path``). Raises CheckpointError."""
    from engine.tasks import load_model

    return load_model("bone", path, device)
