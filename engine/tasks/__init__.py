"""The sibling tasks on the same machinery: ODIR multi-label fundus disease, glioma grade, bone health.

- :mod:`engine.tasks.odir`: 8 ODIR labels (N D G C A H M O) from a fundus photo (+ optional disc/cup biomarkers).
- :mod:`engine.tasks.glioma`: HGG vs LGG from brain MRI (attention-gated VGG16 on axial slices).
- :mod:`engine.tasks.bone`: healthy vs osteoporosis from a panoramic dental radiograph (EfficientNet).
- :mod:`engine.tasks.bone_service`: the JSON-lines service behind ``python -m engine bone-health``.

This package stays light on import (no torch): the CSV schema imports :data:`SIBLING_COLUMNS` from here.
:func:`run_sibling_tasks` runs whichever tasks fit an exam's modalities with the default (or given) weights
and returns CSV columns, maps for the viewer and plain messages.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Union

from engine.progress import CancelToken, ProgressCallback, check, report, sub_progress

ODIR_COLUMNS = tuple(f"odir_{k}" for k in ("N", "D", "G", "C", "A", "H", "M", "O"))
GLIOMA_COLUMNS = ("glioma_hgg", "glioma_lgg", "glioma_grade")
BONE_COLUMNS = ("bone_healthy", "bone_osteoporosis", "bone_diagnosis")
SIBLING_COLUMNS = (*ODIR_COLUMNS, *GLIOMA_COLUMNS, *BONE_COLUMNS, "task_models")
"""Extra CSV columns, in order: ODIR per-label probabilities, glioma HGG/LGG probabilities and grade, bone
health probabilities and diagnosis, and the names of the task models that ran (``;``-separated)."""

TASK_FOR_MODALITY = {"fundus": "odir", "mri": "glioma", "xray": "bone"}
DEFAULT_WEIGHTS = {"odir": "odir.pt", "glioma": "glioma.pt", "bone": "bone.pt"}


@dataclass
class SiblingResults:
    """What :func:`run_sibling_tasks` found for one exam.

    Attributes:
        columns: ``{column: text}`` for the columns of :data:`SIBLING_COLUMNS` that apply (others absent).
        values: the same numbers as floats (``odir_G`` ...).
        maps: for the viewer, float32 in [0, 1] in the exam's own coordinates:
            ``glioma_attention`` (D, H, W); ``odir_cam_<L>`` (H, W) per label; ``bone_cam`` (H, W).
        results: the task result objects (``odir``: OdirResult, ``glioma``: GliomaResult, ``bone``: BoneResult).
        models: names of the models that ran; weights_sha256: their weights' hashes, same order;
            cards: ``{task: model card}`` of the models that ran.
        messages: notes for the user (variant chosen, weights missing); errors: a task that failed, one line each.
    """

    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    maps: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    weights_sha256: list[str] = field(default_factory=list)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        return bool(self.results)


_CACHE: dict[tuple[str, str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


def _builder(task: str) -> Any:
    if task == "odir":
        from engine.tasks import odir

        return odir.build_model
    if task == "glioma":
        from engine.tasks import glioma

        return glioma.build_model
    if task == "bone":
        from engine.tasks import bone

        return bone.build_model
    raise ValueError(f"unknown sibling task {task!r}")


def default_weights(task: str) -> Path:
    """``<resources>/models/<task>.pt``."""
    from engine.resources import models_dir

    return models_dir() / DEFAULT_WEIGHTS[task]


def load_model(task: str, path: Union[str, Path, None] = None, device: str = "auto") -> Any:
    """The task's model (default weights unless ``path``), verified against its card, cached per process.

    Raises:
        engine.models.checkpoint.CheckpointError: missing, tampered or mismatched weights.
    """
    from engine.tasks._common import load_task_model, resolve_device

    weights = Path(path) if path is not None else default_weights(task)
    dev = str(resolve_device(device))
    key = (task, str(weights.resolve()), dev)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_task_model(weights, task, _builder(task), dev)
        return _CACHE[key]


def _model_for(task: str, exam: Any, path: Union[str, Path, None], device: str) -> Any:
    """The model to run: ``path`` if given; for glioma, among the installed variants ``glioma*.pt`` the one
    that uses the most of the sequences the exam holds; else the task's default weights."""
    if task != "glioma" or path is not None:
        return load_model(task, path, device)
    variants = sorted(default_weights(task).parent.glob("glioma*.pt"))
    if len(variants) <= 1:
        return load_model(task, variants[0] if variants else None, device)
    from engine.tasks.glioma import pick_variant

    return pick_variant(exam.mri, [load_model(task, v, device) for v in variants])


def _fmt(p: float) -> str:
    return f"{p:.6f}"


def run_sibling_tasks(
    exam: Any,
    device: str = "auto",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    *,
    biomarkers: Optional[Mapping[str, Any]] = None,
    cams: bool = False,
    weights: Optional[Mapping[str, Union[str, Path]]] = None,
    tasks: Optional[tuple[str, ...]] = None,
) -> SiblingResults:
    """Run ODIR on the fundus photo, the glioma grader on the MRI and the bone model on the X-ray, as present.

    Args:
        exam: an :class:`engine.io.Exam`.
        biomarkers: disc/cup biomarkers already measured (``vcdr``, ``hcdr``, ``acdr``, ``rim``,
            ``eccentricity``, ``centroid_shift``) for an ODIR model built with them.
        cams: also compute Grad-CAM per ODIR label and for the bone model (the glioma attention map is
            always returned: it costs nothing extra).
        weights: ``{task: path}`` overriding the default weights in ``resources/models`` (for glioma the
            default is the installed variant ``glioma*.pt`` that fits the sequences present, see
            :func:`engine.tasks.glioma.pick_variant`).
        tasks: restrict to these tasks (default: every task whose modality the exam holds).

    A task whose weights are missing or whose input does not fit adds a message or an error and the others
    still run; only :class:`engine.progress.Cancelled` propagates.
    """
    from engine.models.checkpoint import CheckpointError
    from engine.progress import Cancelled

    out = SiblingResults()
    todo = [TASK_FOR_MODALITY[m] for m in exam.modalities if m in TASK_FOR_MODALITY]
    if tasks is not None:
        todo = [t for t in todo if t in tasks]
    for k, task in enumerate(todo):
        check(cancel)
        step = sub_progress(progress, k / len(todo), (k + 1) / len(todo))
        report(step, 0.0, f"{task}: loading model")
        try:
            model = _model_for(task, exam, (weights or {}).get(task), device)
        except ValueError as err:  # no glioma variant fits the sequences present
            out.errors.append(f"{task}: {err}")
            continue
        except CheckpointError as err:
            if (weights or {}).get(task) is None and not default_weights(task).exists():
                out.messages.append(f"{task}: no weights installed ({default_weights(task).name}); task skipped")
            else:
                out.errors.append(f"{task}: {err}")
            continue
        try:
            if task == "odir":
                _run_odir(exam, model, out, biomarkers, cams)
            elif task == "glioma":
                _run_glioma(exam, model, out, step, cancel)
            else:
                _run_bone(exam, model, out, cams)
        except Cancelled:
            raise
        except Exception as err:  # one task's failure must not stop the others (or the glaucoma grade)
            out.errors.append(f"{task}: {err}" if isinstance(err, ValueError) else f"{task}: failed ({type(err).__name__}: {err})")
            continue
        if model.card.get("synthetic_training_data"):
            out.messages.append(f"{task}: demo weights trained on synthetic phantoms, no clinical validity")
        out.models.append(model.name)
        out.weights_sha256.append(model.sha256)
        out.cards[task] = dict(model.card)
        report(step, 1.0, f"{task}: done")
    if out.models:
        out.columns["task_models"] = ";".join(out.models)
    return out


def _run_odir(exam: Any, model: Any, out: SiblingResults, biomarkers: Optional[Mapping[str, Any]], cams: bool) -> None:
    from engine.tasks import odir

    result = odir.classify_fundus(exam.fundus, model, biomarkers=biomarkers, cams=cams)
    out.results["odir"] = result
    for letter, p in result.probabilities.items():
        out.values[f"odir_{letter}"] = p
        out.columns[f"odir_{letter}"] = _fmt(p)
    for letter, cam in result.cams.items():
        out.maps[f"odir_cam_{letter}"] = cam
    out.messages.extend(f"odir: {n}" for n in result.notes)


def _run_glioma(exam: Any, model: Any, out: SiblingResults, progress: Optional[ProgressCallback], cancel: Optional[CancelToken]) -> None:
    from engine.tasks import glioma

    result = glioma.grade_glioma(exam.mri, model, progress=progress, cancel=cancel)
    out.results["glioma"] = result
    out.values.update(glioma_hgg=result.probabilities["HGG"], glioma_lgg=result.probabilities["LGG"])
    out.columns.update(
        glioma_hgg=_fmt(result.probabilities["HGG"]), glioma_lgg=_fmt(result.probabilities["LGG"]),
        glioma_grade=result.grade,
    )
    out.maps["glioma_attention"] = result.attention
    out.messages.extend(f"glioma: {n}" for n in result.notes)


def _run_bone(exam: Any, model: Any, out: SiblingResults, cams: bool) -> None:
    from engine.tasks import bone

    result = bone.diagnose(exam.xray, model, cam=cams)
    out.results["bone"] = result
    out.values.update(bone_healthy=result.probabilities["healthy"], bone_osteoporosis=result.probabilities["osteoporosis"])
    out.columns.update(
        bone_healthy=_fmt(result.probabilities["healthy"]),
        bone_osteoporosis=_fmt(result.probabilities["osteoporosis"]),
        bone_diagnosis=result.diagnosis,
    )
    if result.heatmap is not None:
        out.maps["bone_cam"] = result.heatmap
    out.messages.extend(f"bone: {n}" for n in result.notes)


def add_to_row(row: dict[str, str], results: SiblingResults) -> dict[str, str]:
    """Merge sibling results into a grading-CSV row: their columns, plus messages and errors in ``message``."""
    row.update(results.columns)
    extra = [*results.errors, *results.messages]
    if extra:
        row["message"] = " ".join("; ".join(x for x in (row.get("message", ""), *extra) if x).split())
    return row


def needs_glaucoma_grader(exam: Any) -> bool:
    """Whether ``engine grade`` should run the glaucoma grader (the exam holds a fundus photo or an OCT);
    otherwise its row is :func:`sibling_only_row`."""
    return any(m in ("fundus", "oct") for m in exam.modalities)


def _display_slice(volume: Any) -> Any:
    """(H, W) float slice -> uint8 stretched between its 1st and 99th percentiles."""
    import numpy as np

    v = np.asarray(volume, np.float32)
    lo, hi = np.percentile(v, (1, 99))
    return np.clip((v - lo) / (hi - lo if hi > lo else 1.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def overlay_images(exam: Any, results: SiblingResults) -> Iterator[tuple[str, Any]]:
    """``(name, (H, W, 3) uint8 RGB)`` heat-map overlays, made one at a time (eight full-size ODIR overlays at
    once cost ~0.5 GB), of ``results`` on ``exam``: ``odir_<L>`` per ODIR label
    with a Grad-CAM, ``bone_cam`` on the radiograph, ``glioma_attention_s<k>`` on the FLAIR (else first)
    sequence's axial slice k that holds the most attention (summed; map rescaled to [0, 1] for display)."""
    import numpy as np

    from engine.tasks._common import normalise_map, overlay

    for name, heat in results.maps.items():
        if name.startswith("odir_cam_") and exam.fundus is not None:
            yield f"odir_{name[len('odir_cam_'):]}", overlay(exam.fundus, heat)
        elif name == "bone_cam" and exam.xray is not None:
            yield name, overlay(exam.xray, heat)
        elif name == "glioma_attention" and "glioma" in results.results:
            result = results.results["glioma"]
            volume = exam.mri.get("flair", exam.mri.get(result.sequences[0]))
            k = int(result.slice_indices[np.argmax(heat[result.slice_indices].sum(axis=(1, 2)))])
            yield f"glioma_attention_s{k:03d}", overlay(_display_slice(volume[k]), normalise_map(heat[k]))


def write_overlays(exam: Any, results: SiblingResults, folder: Union[str, Path], stem: str) -> list[Path]:
    """Write ``<folder>/<stem>_<name>.png`` for every :func:`overlay_images` entry (atomically); return paths."""
    from engine.tasks._common import write_png

    return [write_png(Path(folder) / f"{stem}_{name}.png", image) for name, image in overlay_images(exam, results)]


def _with_overlays(row: dict[str, str], exam: Any, results: SiblingResults, cams_dir: Optional[Path], stem: str) -> None:
    if cams_dir is None or not results.ran:
        return
    try:
        write_overlays(exam, results, cams_dir, stem)
    except OSError as err:
        row["message"] = "; ".join(x for x in (row.get("message", ""), f"task overlay not written: {err}") if x)


def _stem(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "exam"


def add_sibling_columns(
    row: dict[str, str], exam: Any, device: str = "auto", biomarkers: Optional[Mapping[str, Any]] = None,
    cams_dir: Optional[Path] = None,
) -> dict[str, str]:
    """The ``engine grade`` hook for a graded (fundus / OCT) exam: run the sibling tasks its modalities fit
    (ODIR on the fundus photo) and merge their columns and messages into ``row``. A missing weight or a task
    failure becomes a note in ``message`` (an extra task whose default weights are not installed is skipped
    without one); the row's glaucoma status is left as it is. With ``cams_dir``, per-label ODIR Grad-CAM
    overlays are written there as ``<data>_odir_<L>.png``."""
    results = run_sibling_tasks(exam, device, biomarkers=biomarkers, cams=cams_dir is not None)
    results.messages = [m for m in results.messages if "no weights installed" not in m]
    add_to_row(row, results)
    _with_overlays(row, exam, results, cams_dir, _stem(row.get("data", exam.exam_id)))
    return row


def sibling_only_row(
    exam: Any, data_id: str, device: str = "auto", cams_dir: Optional[Path] = None
) -> tuple[dict[str, str], str]:
    """A grading-CSV row for an exam with no fundus photo or OCT (MRI, X-ray): no glaucoma grade, the sibling
    columns filled. Status ``ok`` when a task ran and none failed, else ``error``. With ``cams_dir`` the
    attention / Grad-CAM overlays of :func:`overlay_images` are written there. Returns (row, stderr line)."""
    from engine.results_csv import error_row

    results = run_sibling_tasks(exam, device, cams=cams_dir is not None)
    row = error_row(data_id, "")
    add_to_row(row, results)
    _with_overlays(row, exam, results, cams_dir, _stem(data_id))
    ok = results.ran and not results.errors
    row["status"] = "ok" if ok else "error"
    if not results.ran and not row["message"]:
        row["message"] = f"no model for this exam's modalities ({', '.join(exam.modalities) or 'none'})"
    summary = ", ".join(
        f"{name} {results.columns[col]}" for name, col in (("glioma", "glioma_grade"), ("bone", "bone_diagnosis"), ("odir", "odir_G"))
        if col in results.columns
    )
    line = f"ok {summary}" if ok else f"error: {row['message']}"
    return row, line
