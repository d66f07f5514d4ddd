"""The grading CSV: GAMMA submission columns first, then grade, biomarkers, models, status.

Columns (in order, see :data:`COLUMNS`):

- ``data,non,early,mid_advanced``: exam id (or its salted hash with ``--anonymize``) and the class
  probabilities (6 decimals, summing to 1) — a valid GAMMA submission when only these are read;
- ``grade``: the predicted class name; ``caution``: why the grade should not be read as it stands
  (:func:`engine.pipeline.grade_caution`: ``no disc``, ``no colour``, ``out of focus``, ``disc uncertain``,
  ``centred photo``; empty
  when there is no such reason, the message column says more); ``eye``: ``OD`` / ``OS`` as the exam gives it, or
  ``OD (disc side)`` when it was inferred from the disc's side of the photo
  (:func:`engine.fundus.laterality.eye_from_disc`; the ISNT rule and nasal / temporal rims use it), empty when
  unknown;
- biomarkers (:data:`BIOMARKER_COLUMNS`; empty when the analysis was unavailable); ``ddls_stage`` is the Disc
  Damage Likelihood Scale stage, empty when the disc's size is unknown (no mm scale), ``ddls_min,ddls_max`` the
  stages it could have over the disc sizes (:mod:`engine.fundus.ddls`);
- sibling tasks (:data:`engine.tasks.SIBLING_COLUMNS`): ODIR per-label probabilities ``odir_N..odir_O`` for a
  fundus photo, ``glioma_hgg,glioma_lgg,glioma_grade`` for an MRI, ``bone_*`` for a dental X-ray, ``task_models``;
  empty where the task does not apply or has no weights;
- ``models``: names of the graders that ran, ``;``-separated; ``weights_sha256``: their weights' SHA-256 in the
  same order; ``disc_source``: where the disc crop was centred (``engine.fundus.localize``, ``brightness
  heuristic`` or ``user``: placed by hand, ``grade --disc-positions``); ``disc_calibration``: the site
  calibration that scaled the cup outline and the disc biomarkers (``NAME x1.07``; empty when none was applied);
  ``disc_correction``: the hand correction the exam was graded with (:func:`correction_label`: what was corrected
  and a digest of it, e.g. ``placed+cup #3fa2c1d09b7e``; empty when none), which ``grade --resume`` compares;
  ``photo_scale``: the photo's scale the disc was measured with when it is physical (:func:`scale_label`:
  ``4.2 um/px (file)``, or ``(typed in)`` for ``grade --photo-scale`` / ``--photo-scale-for``; empty when not
  known); ``photo_size``: the fundus photo's ``WxH`` px (one camera at one resolution; empty without a photo);
- ``status``: ``ok`` or ``error``; ``message``: the error (one line) or warnings, and what the disc/cup analysis
  asks to check on a disc it found (``disc/cup: low confidence ...``, ``... check the eye``).

The file is always replaced atomically (temp file + rename), so a reader or a crash sees either the previous
file or a complete new one. While a batch is running or after it was cancelled, a sidecar ``OUT.partial``
(JSON) exists: the CSV then holds only the exams finished so far, and ``grade --resume`` continues from it.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from engine.models.checkpoint import atomic_write_bytes
from engine.tasks import SIBLING_COLUMNS

GAMMA_COLUMNS = ("data", "non", "early", "mid_advanced")
BIOMARKER_COLUMNS = ("vcdr", "hcdr", "area_cdr", "rim_to_disc", "ddls_stage", "ddls_min", "ddls_max", "isnt",
                     "ist", "rnfl_mean")
TAIL_COLUMNS = ("models", "weights_sha256", "disc_source", "disc_calibration", "disc_correction", "photo_scale",
                "photo_size", "status", "message")
COLUMNS = (*GAMMA_COLUMNS, "grade", "caution", "eye", *BIOMARKER_COLUMNS, *SIBLING_COLUMNS, *TAIL_COLUMNS)

_ALIASES = {
    "vcdr": ("vcdr", "vertical_cdr", "cdr_vertical"),
    "hcdr": ("hcdr", "horizontal_cdr", "cdr_horizontal"),
    "area_cdr": ("area_cdr", "acdr", "cdr_area"),
    "rim_to_disc": ("rim_to_disc", "rim_to_disc_ratio", "rdr", "min_rim_to_disc"),
    "ddls_stage": ("ddls_stage",),
    "ddls_min": ("ddls_min",),
    "ddls_max": ("ddls_max",),
    "isnt": ("isnt", "isnt_rule", "isnt_ok", "isnt_obeyed"),
    "ist": ("ist",),
    "rnfl_mean": ("rnfl_mean", "rnfl_mean_um", "mean_rnfl_um", "rnfl_mean_px", "mean_rnfl_px"),
}


class ResultsCsvError(ValueError):
    """An existing CSV that cannot be resumed from (not ours, or a different column layout)."""


def anonymize_id(exam_id: str, salt: str) -> str:
    """A salted, keyed hash of ``exam_id`` (HMAC-SHA-256, 16 hex chars): stable for one salt, not reversible."""
    if not salt:
        raise ValueError("anonymizing needs a non-empty salt")
    return "anon-" + hmac.new(salt.encode(), exam_id.encode(), hashlib.sha256).hexdigest()[:16]


def _fmt(value: Any) -> str:
    """A cell's text. A carriage return becomes a newline: with ``\n`` line ends the csv module does not quote a
    lone ``\r``, which a reader would take for the end of the row."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("\r\n", "\n").replace("\r", "\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def calibration_label(calibration: Any) -> str:
    """The ``disc_calibration`` cell of a site calibration (``NAME x1.07``; empty for None)."""
    return f"{calibration.name} x{calibration.cup_scale:.2f}" if calibration is not None else ""


def scale_label(spacing: Any) -> str:
    """The ``photo_scale`` cell of a photo's :class:`engine.io.exam.Spacing`: ``8.85 um/px (typed in)`` or
    ``(file)``; empty when there is none or it was assumed."""
    if spacing is None or not spacing.is_physical:
        return ""
    return f"{spacing.mm[0] * 1000:.4g} um/px ({'typed in' if spacing.source == 'user' else spacing.source})"


def eye_label(exam_eye: str, disc: Any) -> str:
    """The ``eye`` cell: ``OD`` / ``OS`` as the exam gives it, ``OD (disc side)`` / ``OS (disc side)`` where the
    disc/cup analysis ``disc`` inferred it (``eye_inferred``), else empty."""
    if getattr(disc, "eye_inferred", False) and getattr(disc, "biomarkers", None) is not None:
        return f"{disc.biomarkers.eye} (disc side)"
    return exam_eye if exam_eye in ("OD", "OS") else ""


def correction_label(disc_at: Optional[Sequence[float]], outlines: Any, eye: Optional[str] = None) -> str:
    """The ``disc_correction`` cell for a disc placed at ``disc_at`` (row, col) px and/or the
    :class:`engine.fundus.hand_outline.HandOutlines` drawn and/or the ``eye`` set by hand (from the corrections
    file): the parts corrected and the first 12 hex digits of a SHA-256 of them (coordinates rounded to 0.01 px, as
    the corrections file keeps them), e.g. ``placed+cup #3fa2c1d09b7e``; empty when there is no correction. The
    same correction always gives the same cell."""
    record: dict[str, Any] = {}
    if disc_at is not None:
        record["placed"] = [round(float(v), 2) for v in disc_at]
    for part in () if outlines is None else outlines.parts:
        record[part] = [[round(float(v), 2) for v in point] for point in getattr(outlines, part)]
    if eye is not None:
        record["eye"] = eye
    if not record:
        return ""
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]
    return f"{'+'.join(record)} #{digest}"


def row_from_result(result: Any, data_id: Optional[str] = None) -> dict[str, str]:
    """A CSV row for a :class:`engine.pipeline.GradingResult` (``data_id`` replaces the exam id)."""
    from engine.pipeline import grade_caution

    probs = [float(p) for p in result.probabilities]
    row = {c: "" for c in COLUMNS}
    row["data"] = data_id or result.exam_id
    for name, p in zip(GAMMA_COLUMNS[1:], probs):
        row[name] = f"{p:.6f}"
    row["grade"] = result.grade_name
    row["caution"] = grade_caution(result)
    for column, names in _ALIASES.items():
        for name in names:
            if name in result.biomarkers:
                row[column] = _fmt(float(result.biomarkers[name]))
                break
    row["models"] = ";".join(result.models_used)
    row["weights_sha256"] = ";".join(result.weights_sha256.get(n, "") for n in result.models_used)
    row["disc_source"] = result.disc_source or ""
    row["disc_calibration"] = calibration_label(getattr(result.disc, "site_calibration", None))
    row["photo_scale"] = scale_label(getattr(result.disc, "spacing", None))
    row["status"] = "ok"
    disc = result.disc
    said = [f"disc/cup: {disc.message}"] if getattr(disc, "found", False) and getattr(disc, "message", "") else []
    row["message"] = _one_line("; ".join([*result.warnings, *said]))
    return row


def error_row(data_id: str, message: str) -> dict[str, str]:
    """A row for an exam that could not be graded: ``status=error`` and the message on one line."""
    row = {c: "" for c in COLUMNS}
    row.update(data=data_id, status="error", message=_one_line(message))
    return row


def render_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _fmt(row.get(c, "")) for c in COLUMNS})
    return buffer.getvalue()


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write all rows atomically (UTF-8, header first).

    File names that are not valid UTF-8 reach Python as lone surrogates; they are written as ``\\udcXX``
    escapes so that the CSV stays valid UTF-8 and the batch never fails on a name.
    """
    atomic_write_bytes(Path(path), render_csv(rows).encode("utf-8", "backslashreplace"))


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV written by :func:`write_csv`.

    Raises:
        ResultsCsvError: the header is not ours (refusing to resume into someone else's file).
    """
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        found = tuple(reader.fieldnames or ())
        if found != COLUMNS:
            if found[:len(GAMMA_COLUMNS)] != GAMMA_COLUMNS:
                raise ResultsCsvError(f"{path}: not a grading CSV (columns {list(found)})")
            added = [c for c in COLUMNS if c not in found]
            dropped = [c for c in found if c not in COLUMNS]
            changes = "; ".join(x for x in (f"columns added since: {', '.join(added)}" if added else "",
                                            f"columns dropped since: {', '.join(dropped)}" if dropped else "")
                                if x) or "columns in another order"
            raise ResultsCsvError(f"{path}: a grading CSV of another version of grade ({changes})")
        return [dict(r) for r in reader]


def partial_marker(path: Path) -> Path:
    """``OUT.csv`` -> ``OUT.csv.partial``."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def mark_partial(path: Path, info: Mapping[str, Any]) -> None:
    """Say (atomically) that ``path`` holds an unfinished batch; ``info`` is JSON-able (counts, reason)."""
    atomic_write_bytes(partial_marker(path), (json.dumps(dict(info), indent=2) + "\n").encode())


def clear_partial(path: Path) -> None:
    partial_marker(path).unlink(missing_ok=True)


def is_partial(path: Path) -> bool:
    return partial_marker(path).exists()


def _measured_otherwise(rows: Sequence[Mapping[str, str]], column: str, label: str) -> Iterable[Mapping[str, str]]:
    """The ``ok`` rows with a measured disc whose ``column`` is not ``label``."""
    return (row for row in rows if row.get("status") == "ok" and row.get("vcdr") and row.get(column, "") != label)


def calibration_conflict(rows: Sequence[Mapping[str, str]], label: str) -> Optional[str]:
    """Why rows with a measured disc cannot be joined by rows graded with the calibration ``label`` (see
    :func:`calibration_label`; empty: none), or None when they agree."""
    for row in _measured_otherwise(rows, "disc_calibration", label):
        then = row.get("disc_calibration")
        then = f"site calibration '{then}'" if then else "no site calibration"
        now = f"site calibration '{label}'" if label else "none"
        return f"{row['data']} was graded with {then}, this run with {now}"
    return None


def scale_changed(rows: Sequence[Mapping[str, str]], typed: Any, by_size: Mapping[str, float]) -> set[str]:
    """``data`` ids of the ``ok`` rows with a measured disc that this run would measure with another photo scale
    than their ``photo_scale``: ``typed`` (an :class:`engine.io.exam.Spacing` typed in for every photo, or None)
    replaces every photo's own; else a photo without a scale of its own (its cell empty or typed in) takes the
    one typed for its ``photo_size`` in ``by_size`` (``{"WxH": µm per px}``, :func:`engine.io.exam.scale_for_size`),
    else none; a scale read from the file is kept."""
    from engine.io.exam import typed_photo_spacing

    changed = set()
    for row in rows:
        if row.get("status") != "ok" or not row.get("vcdr"):
            continue
        then = row.get("photo_scale", "")
        if typed is not None:
            now = scale_label(typed)
        elif then and not then.endswith("(typed in)"):
            continue  # the file's own scale
        else:
            um = by_size.get(row.get("photo_size", ""))
            now = "" if um is None else scale_label(typed_photo_spacing(um))
        if now != then:
            changed.add(row["data"])
    return changed


def grader_conflict(rows: Sequence[Mapping[str, str]], weights: Mapping[str, str],
                    needs: Optional[Mapping[str, tuple[Sequence[str], Sequence[str]]]] = None) -> Optional[str]:
    """Why ``ok`` rows cannot be joined by rows graded with the graders ``weights`` (``{name: SHA-256}``), or None.

    Each row names the graders that ran on its exam (which of them run depends on the exam's images); every one
    of them must be among ``weights`` with the same weights. With ``needs`` (``{name: (modalities, biomarker
    features)}`` of this run's graders), a grader missing from a row although the row shows the exam had what it
    needs (the modalities of the graders that ran, a fundus where ``vcdr`` was measured, an OCT where
    ``rnfl_mean`` was; its features in their columns) was added since, and is a conflict too.
    """
    for row in rows:
        if row.get("status") != "ok" or not row.get("models"):
            continue
        ran = row["models"].split(";")
        for name, sha in zip(ran, row.get("weights_sha256", "").split(";")):
            if weights.get(name) != sha:
                now = (f"this run's {name} has weights {weights[name][:12]}" if name in weights
                       else "this run's models do not include it")
                return f"{row['data']} was graded by {name} (weights {sha[:12]}), {now}"
        if not needs:
            continue
        had = {m for name in ran for m in needs.get(name, ((), ()))[0]}
        had |= {m for m, column in (("fundus", "vcdr"), ("oct", "rnfl_mean")) if row.get(column)}
        for name, (modalities, features) in needs.items():
            measured = all(row.get(_column_of(f) or "") for f in features)
            if name not in ran and set(modalities) <= had and measured:
                return f"{row['data']} was graded without {name}, which this run's models would run on it"
    return None


def _column_of(feature: str) -> Optional[str]:
    """The CSV column that holds a grader's biomarker feature (``vcdr``, ``vertical_cdr`` ... -> ``vcdr``)."""
    return next((column for column, names in _ALIASES.items() if feature in names), None)


def caution_counts(rows: Iterable[Mapping[str, str]]) -> dict[str, int]:
    """How many rows carry each ``caution``, kinds in alphabetical order (rows without one not counted)."""
    return dict(sorted(Counter(row["caution"] for row in rows if row.get("caution")).items()))


def counts_text(counts: Mapping[str, int]) -> str:
    """``{"disc uncertain": 1, "no disc": 2}`` -> ``1 disc uncertain, 2 no disc``."""
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())


def done_ids(rows: Sequence[Mapping[str, str]]) -> set[str]:
    """``data`` ids whose row is ``ok`` (errors are retried on resume)."""
    return {r["data"] for r in rows if r.get("status") == "ok"}
