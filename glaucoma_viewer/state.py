"""Plain result objects that cross from the worker to the UI thread (no Qt, no torch inside).

The worker builds them from engine results; the widgets only read them. Arrays are display-ready: C-contiguous,
uint8 where an image is drawn, with shapes, axis order and units in each docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

GRADE_CLASSES = ("non", "early", "mid_advanced")
GRADE_LABELS = {"non": "non-glaucoma", "early": "early glaucoma", "mid_advanced": "mid / advanced glaucoma"}
RIM_SECTORS = {
    "TSNIT": (("T", "temporal"), ("S", "superior"), ("N", "nasal"), ("I", "inferior")),
    "photo": (("right", "photo's right"), ("S", "superior"), ("left", "photo's left"), ("I", "inferior")),
}
"""Sectors centred on 0, 90, 180 and 270 degrees: tick label and name, TSNIT or the photo's own directions."""


@dataclass
class LoadedExam:
    """An exam loaded and prepared for display.

    Attributes:
        key: unique within the session (source path + exam id).
        exam: the engine's ``Exam``.
        source: the path it came from (folder or file).
        fundus_display: (h, w, 3) uint8 RGB, the photo downsampled to at most ``MAX_DISPLAY`` px on its long side.
        fundus_shape: (H, W) of the original photo, or None.
        enface: (N, W) uint8 en-face projection of the OCT (mean along depth, contrast-stretched), or None.
        enface_aspect: displayed height of one en-face row in lateral px (B-scan spacing / lateral spacing).
        oct_wl: suggested (window, level) for the volume from its intensity percentiles.
        photo_kind: what ``fundus_display`` shows: "fundus", or "xray" (a radiograph shown in the photo view).
        mri_display: (D, H, W) uint8 axial slices of one MRI sequence (stretched between its 1st and 99th
            percentiles) shown in the slice view when the exam has no OCT, or None; mri_sequence: its name.
        load_seconds: wall time of loading and preparing.
        photo_sha256: SHA-256 of the photo's pixels (what corrections drawn by hand are remembered by), or "".
    """

    key: str
    exam: Any
    source: str
    fundus_display: Optional[np.ndarray] = None
    fundus_shape: Optional[tuple[int, int]] = None
    enface: Optional[np.ndarray] = None
    enface_aspect: float = 1.0
    oct_wl: tuple[float, float] = (255.0, 127.5)
    photo_kind: str = "fundus"
    mri_display: Optional[np.ndarray] = None
    mri_sequence: str = ""
    load_seconds: float = 0.0
    photo_sha256: str = ""

    @property
    def exam_id(self) -> str:
        return str(self.exam.exam_id)

    @property
    def label(self) -> str:
        eye = getattr(self.exam, "eye", "unknown")
        return f"{self.exam_id} {eye}" if eye != "unknown" else self.exam_id


@dataclass
class DiscoverResult:
    """What a drop or an Open found: exam candidates to load, files skipped (path, reason), paths that failed."""

    candidates: list[Any] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ModelRun:
    """One model that ran on the exam: a grader, or a segmentation model (no probabilities).

    Attributes:
        name: model name from its card.
        inputs: what it looked at, e.g. "fundus", "fundus + disc crop + OCT".
        probabilities: class name -> probability (sums to 1); empty for a segmentation model.
        weights: weights file name; sha256: its hash; card: the model card (dict).
        default_weights: True when the weights are the bundled defaults.
    """

    name: str
    inputs: str
    probabilities: dict[str, float]
    weights: str = ""
    sha256: str = ""
    card: dict[str, Any] = field(default_factory=dict)
    default_weights: bool = True


@dataclass
class Biomarker:
    """One measured value as shown: name, value with its unit ("0.62", "1.21 mm²", "812 px²"), and a note."""

    name: str
    value: str
    note: str = ""


@dataclass
class TaskRun:
    """One sibling task that ran on the exam (ODIR diseases, glioma grade, bone health).

    Attributes:
        task: "odir", "glioma" or "bone"; title: its heading for the user.
        verdict: the model's answer in words ("HGG", "osteoporosis", "positive: G, M").
        probabilities: label -> probability, in the model's label order (ODIR labels are independent).
        run: the model that ran (name, weights hash, card) for the card dialog.
        cams: label -> (h, w) uint8 Grad-CAM on the displayed photo (ODIR: one per label), empty otherwise.
        notes: the task's notes for the user (variant run, demo weights), without the task's name.
    """

    task: str
    title: str
    verdict: str
    probabilities: dict[str, float]
    run: ModelRun
    cams: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class AnalysisView:
    """Everything the window shows after analysis, prepared on the worker.

    Attributes:
        grade: predicted class name (one of ``classes``) or None when no grader ran.
        ensemble: class -> probability of the ensemble (or the single model), None when no grader ran.
        ensemble_rule: how the ensemble combined its members (text).
        models: every grader that ran.
        anatomy_models: the segmentation models that drew the anatomy (the disc/cup network), for their cards.
        disc_contours, cup_contours: (K, 2) float (row, col) px polylines on the original photo.
        crop_box: (r0, c0, r1, c1) px of the disc-region crop on the photo, or None.
        disc_note: disc localisation outcome for the user (e.g. "disc not found").
        grade_caution: why the grade should not be read as it stands (``engine.pipeline.grade_caution``: no optic
            disc found in the photo, a photo without colour, a crop centred on the disc), or "".
        disc_method: which method and weights made the disc/cup masks, for the user.
        disc_at: (row, col) photo px where the user placed the disc for this analysis, or None (found by itself).
        disc_hint: what the user can do about the disc outline (place it by hand), shown in the window only.
        disc_analysis: the engine's disc/cup analysis before any outline drawn by hand (what a correction starts
            from), or None.
        outlines: the :class:`engine.fundus.hand_outline.HandOutlines` applied to it, or None.
        outline_vertices: "disc" / "cup" -> (K, 2) float (row, col) px vertices the outline editor starts from (the
            drawn polygon for an outline drawn by hand; points along the shown outline otherwise).
        fundus_cam: (h, w) uint8 Grad-CAM on the photo (stretched over it), or None.
        oct_labels: (N, H, W) uint8 layer labels 0..8 per B-scan (0 = outside the retina), or None.
        oct_cam: (N, h, w) uint8 Grad-CAM per B-scan (stretched over each B-scan), or None.
        layer_method: which method produced the layers ("graph search …", "layer network <name> …").
        layer_notes: the layer analysis' caveats (merged bands, missing geometry, assumed scale).
        biomarkers: disc/cup values in display order.
        rim_profile: ((K,) angles in degrees, (K,) rim width / disc diameter) around the disc outline shown
            (``engine.fundus.biomarkers.rim_to_disc_profile``), or None; rim_eye: "OD" / "OS" when the angles are
            TSNIT, "unknown" when they are the photo's own (counter-clockwise from its right).
        eye_inferred: "OD" / "OS" when the exam does not say which eye and the disc analysis measured with the one
            the disc's side of the photo shows (``engine.fundus.laterality``), else "".
        rim_absent: (K,) bool beside ``rim_profile``, True where no rim is left (under
            ``engine.fundus.ddls.RIM_ABSENT_BELOW`` of the disc diameter; shaded on the plot), or None.
        rnfl_profiles: (N, W) float32 RNFL thickness along each B-scan, in ``rnfl_unit``; NaN where unknown.
        rnfl_unit: "µm" when the axial scale came from the file, else "px".
        lateral_mm: mm per lateral px when the scale is physical, else None (profile x axis then in px).
        rnfl_sectors: sector name -> mean RNFL thickness in ``rnfl_unit``; sector_grid: "ETDRS", "quadrants".
        tsnit: ((K,) angles in degrees, (K,) RNFL in ``rnfl_unit``) around the disc, when the scan has one.
        timings: stage -> seconds.
        messages: notes for the user (missing modality, low confidence, ...).
        default_weights: True while any model ran with the bundled default weights.
        tasks: the sibling tasks that ran (ODIR on a photo, glioma on an MRI, bone health on a radiograph);
            their heat maps are drawn in ``fundus_cam`` (radiograph) and ``oct_cam`` (MRI attention, one map per
            slice of ``LoadedExam.mri_display``) when the exam has no glaucoma grade.
        raw: the engine's own result object (for the CSV row and the report).
    """

    classes: tuple[str, ...] = GRADE_CLASSES
    grade: Optional[str] = None
    ensemble: Optional[dict[str, float]] = None
    ensemble_rule: str = ""
    models: list[ModelRun] = field(default_factory=list)
    anatomy_models: list[ModelRun] = field(default_factory=list)
    disc_contours: list[np.ndarray] = field(default_factory=list)
    cup_contours: list[np.ndarray] = field(default_factory=list)
    crop_box: Optional[tuple[float, float, float, float]] = None
    disc_note: str = ""
    grade_caution: str = ""
    disc_method: str = ""
    disc_at: Optional[tuple[float, float]] = None
    disc_hint: str = ""
    disc_analysis: Any = None
    outlines: Any = None
    outline_vertices: dict[str, np.ndarray] = field(default_factory=dict)
    fundus_cam: Optional[np.ndarray] = None
    oct_labels: Optional[np.ndarray] = None
    oct_cam: Optional[np.ndarray] = None
    layer_method: str = ""
    layer_notes: list[str] = field(default_factory=list)
    biomarkers: list[Biomarker] = field(default_factory=list)
    rim_profile: Optional[tuple[np.ndarray, np.ndarray]] = None
    rim_absent: Optional[np.ndarray] = None
    rim_eye: str = "unknown"
    eye_inferred: str = ""
    rnfl_profiles: Optional[np.ndarray] = None
    rnfl_unit: str = "px"
    lateral_mm: Optional[float] = None
    rnfl_sectors: dict[str, float] = field(default_factory=dict)
    sector_grid: str = ""
    tsnit: Optional[tuple[np.ndarray, np.ndarray]] = None
    timings: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    default_weights: bool = True
    tasks: list[TaskRun] = field(default_factory=list)
    raw: Any = None

    @property
    def rim_absent_deg(self) -> float:
        """Degrees around the disc where no rim is left (``rim_absent``'s share of the circle; 0 without one)."""
        return 0.0 if self.rim_absent is None or not len(self.rim_absent) else 360.0 * float(self.rim_absent.mean())
