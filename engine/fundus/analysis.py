"""Photo -> optic disc and cup masks -> biomarkers: the fundus half of the engine's anatomy.

:func:`analyse_disc` runs three steps on a ``(H, W, 3)`` uint8 RGB photo of any size:

1. **Localise** (:func:`engine.fundus.localize.locate_disc`, training-free): up to :data:`N_COARSE` candidate
   centres and the expected disc size from the field of view.
2. **Coarse pass**: one square crop of :data:`COARSE_SCALE` expected diameters around each candidate, all
   segmented in one batch. The segmenter was trained to answer "background" on crops without a disc, so the
   candidate whose crop holds a confident, disc-sized region wins. When none does, the network scans the
   whole field of view in overlapping crops of the same size; when that finds nothing either, the result
   says "disc not found" instead of returning a confident wrong mask.
3. **Fine pass**: a crop of the segmenter's ``crop_scale`` x the measured disc diameter around the measured
   centre (done twice, so the second crop is centred on the first one's disc), for every candidate that passed
   the coarse check; the most certain one wins, with a penalty for a lower localiser rank and score. Its
   probabilities are post-processed at model resolution (:func:`clean_masks`: the disc's largest component and
   its convex hull, the cup's largest component inside the disc and its fitted ellipse) and mapped back onto
   the photo's pixels (:func:`engine.fundus.crop.map_to_image`). When another candidate centred outside the
   winner's disc passed the fine pass too, the result says so (:data:`RIVAL_MESSAGE`).

A photo without a black border may be a crop centred on the disc (an optic-nerve-head photo: RIM-ONE, ACRIMA,
SMDG's ``onh`` images), where the disc spans about two thirds of the frame instead of the 0.13-0.26 of the field of
view that step 1 expects. For such a photo the passes also run on the hypothesis "the disc is in the middle, about
:data:`CENTRED_DISC_SIDE` of the shorter side across": of two nested finds the larger wins (the smaller is its cup
or a bright part of it), of two apart the one that scores higher under its own expected size
(:attr:`DiscAnalysis.centred`).

A disc placed by hand (``disc_at``, e.g. a click in the viewer on a photo where the localiser chose a bright
lesion) replaces step 1's candidates: the coarse and fine passes look at that point only (on a photo without a
black border with both size priors), and a disc found away from it is "not found" rather than another region's
mask.

Masks in files follow the GAMMA convention (:func:`label_mask`): 0 = cup, 128 = neuro-retinal rim,
255 = background.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from engine.fundus.biomarkers import DiscBiomarkers, compute_biomarkers
from engine.fundus.crop import DEFAULT_MARGIN, Box, crop_square, disc_box, map_to_image, square_box
from engine.fundus.laterality import eye_conflict, eye_from_disc
from engine.fundus.localize import BORDERLESS_FOV, DiscLocation, locate_disc, out_of_focus
from engine.io.exam import Spacing
from engine.progress import CancelToken, ProgressCallback, check, report

N_COARSE = 3
"""Localiser candidates checked by the coarse pass."""
COARSE_SCALE = 3.0
"""Coarse crop side / expected disc diameter."""
MIN_CERTAINTY = 0.7
"""Below this mean disc probability (over the predicted disc) the fine crop holds no disc: "not found"."""
COARSE_MIN_CERTAINTY = 0.6
"""The same for a coarse candidate crop (wider, so the disc is smaller and less certain)."""
RANK_PENALTY = 0.08
LOCALISER_PENALTY = 0.05
SIZE_PENALTY = 0.3
"""Candidate score = certainty - RANK_PENALTY x localiser rank - LOCALISER_PENALTY x (top localiser score -
its localiser score, z units) - SIZE_PENALTY x |ln(measured / expected size)|. The localiser term keeps a
bright lesion that the network finds slightly more disc-like from beating a clear localiser favourite (seen
on G1020-128; on the 202 sample photos it changed that choice only)."""
LOW_CONFIDENCE = 0.8
"""Below this confidence the result carries :data:`LOW_CONFIDENCE_MESSAGE`."""
LOW_CONFIDENCE_MESSAGE = "low confidence: check the disc outline"
RIVAL_MESSAGE = "check the disc outline: another region of the photo also looked like a whole disc"
"""Said when two fine passes that both hold a confident, plausible disc are centred apart (e.g. a bright patch of
atrophy beside the disc): the mask may be on the wrong one. Measured: the shipped model says it on 1 of the 202
sample photos (G1020-128, a bright macular lesion; it kept the disc); the photo-level 5-fold networks on 2 of 120
(G1020-128 again, and REFUGE1-val-351, where one network kept a patch of atrophy beside the disc)."""
NO_COLOUR = "a photo without colour (red-free or grey)"
"""How every message about a grey or one-channel photo begins."""
MONOCHROME_NOTE = f"{NO_COLOUR}: the network was trained on colour photos only"
"""Why a disc may not be found on a grey or one-channel photo (added to the not-found message)."""
MONOCHROME_MESSAGE = f"{MONOCHROME_NOTE}; check the disc outline"
"""Said of a disc found on a grey or one-channel photo (:func:`engine.fundus.localize.is_monochrome`) by a model
without networks for such photos: on grey copies of 40 sample photos the colour networks of the shipped model missed
6 discs, outlined 5 elsewhere and moved the vertical ratio 0.089 on average from the colour photo's (green channel:
12, 9, 0.121; ``benchmarks/disc_grey.py``), so the result must not look as sure as on colour."""
GREY_MODEL_NOTE = f"{NO_COLOUR}: looked at by networks trained with grey copies of colour photos"
"""Why a disc may not be found on a photo without colour by a model's networks for such photos."""
GREY_MODEL_MESSAGE = f"{GREY_MODEL_NOTE}; check the disc outline"
"""Said of a disc found on a photo without colour by a model's networks for such photos
(:func:`engine.fundus.segmenter.attach_grey`): the shipped ones missed no disc on grey copies of 40 sample photos and
moved the vertical ratio 0.057 on average from the colour photo's (green channel 0.055), but were trained on grey
copies of colour photos, not on photos of grey or red-free cameras."""
FOCUS_MESSAGE = "out of focus: the cup outline may be off; check it"
"""Said of a disc found on a photo that :func:`engine.fundus.localize.out_of_focus` calls so: blur moves the
cup outline without lowering the confidence (``benchmarks/disc_blur.py``)."""
CENTRED_DISC_SIDE = 0.65
"""Expected disc diameter / shorter image side on a photo centred on the optic disc (the disc's height measured
0.41-0.70 of the side on the 35 SMDG optic-nerve-head crops of the shared samples)."""
CENTRED_MIN_FOV = BORDERLESS_FOV
"""The centred-disc hypothesis is tried on photos without a black border only. Tried on every photo, it changed one
of the 202 full sample photos: on an ODIR photo it took a bright ring of atrophy round the disc for the disc."""
SIZE_RANGE = (0.35, 2.6)
"""Accepted measured / expected disc diameter (the expected one comes from the FOV size)."""

CUP_VALUE, RIM_VALUE, BACKGROUND_VALUE = 0, 128, 255


@dataclass
class DiscAnalysis:
    """Result of :func:`analyse_disc`.

    Attributes:
        found: a disc was segmented with enough confidence; when False the masks and biomarkers are None and
            ``message`` says why.
        confidence: 0..1, the segmenter's mean certainty over the disc times a localisation factor.
        message: one line for the user ("" when all is well; "low confidence ..." below :data:`LOW_CONFIDENCE`;
            :data:`RIVAL_MESSAGE` when a second disc-like region passed too; :data:`MONOCHROME_MESSAGE` on a photo
            without colour; :data:`FOCUS_MESSAGE` on one out of focus; a given eye the disc's side disagrees with).
        center: disc centre (row, col) photo px (bounding-box centre of the disc mask), or the localiser's guess.
        disc_mask, cup_mask: (H, W) bool in photo px (cup inside disc), or None.
        crop_box: square disc box + relative margin (top, left, bottom, right) photo px, for the grader's crop.
        biomarkers: :class:`DiscBiomarkers` or None.
        localisation: the localiser's answer.
        weights_sha256: SHA-256 of the segmenter weights used.
        model_card: the segmenter's model card (training data, held-out evaluation), for display.
        spacing: the photo's pixel spacing the biomarkers were measured with.
        site_calibration: the :class:`engine.fundus.site_calibration.SiteCalibration` applied to the cup outline
            (:func:`engine.fundus.site_calibration.apply_calibration`), or None: the segmenter's own outline.
        placed_at: the (row, col) photo px where the user placed the disc (``disc_at``), or None: the localiser's.
        hand_outlined: which outlines a user drew in place of the segmenter's (:mod:`engine.fundus.hand_outline`):
            a subset of ("disc", "cup"); () when both are the segmenter's.
        centred: the photo was read as a crop centred on the optic disc (see the module docstring).
        eye_inferred: no eye was given and ``biomarkers.eye`` is the one the disc's side of the photo shows
            (:func:`engine.fundus.laterality.eye_from_disc`).
        rival_region: another region of the photo also looked like a whole disc (:data:`RIVAL_MESSAGE`).
    """

    found: bool
    confidence: float
    message: str
    center: Optional[tuple[float, float]]
    disc_mask: Optional[np.ndarray] = None
    cup_mask: Optional[np.ndarray] = None
    crop_box: Optional[Box] = None
    biomarkers: Optional[DiscBiomarkers] = None
    localisation: Optional[DiscLocation] = None
    weights_sha256: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    model_card: dict[str, Any] = field(default_factory=dict)
    spacing: Optional[Spacing] = None
    site_calibration: Any = None
    placed_at: Optional[tuple[float, float]] = None
    hand_outlined: tuple[str, ...] = ()
    centred: bool = False
    eye_inferred: bool = False
    rival_region: bool = False

    def label_mask(self) -> np.ndarray:
        """(H, W) uint8 GAMMA-convention mask: 0 cup, 128 rim, 255 background (all 255 when not found)."""
        if self.disc_mask is None or self.cup_mask is None:
            raise ValueError("no disc was found: there is no mask to write")
        return label_mask(self.disc_mask, self.cup_mask)


def label_mask(disc: np.ndarray, cup: np.ndarray) -> np.ndarray:
    """(H, W) bool disc and cup -> (H, W) uint8 with 0 cup, 128 rim, 255 background (cup clipped to disc)."""
    out = np.full(disc.shape, BACKGROUND_VALUE, np.uint8)
    out[disc] = RIM_VALUE
    out[disc & cup] = CUP_VALUE
    return out


def _largest_component(mask: np.ndarray, near: Optional[tuple[float, float]] = None) -> np.ndarray:
    """The largest 8-connected component of a (h, w) bool mask (the one containing ``near`` when it has one)."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, bool)
    if near is not None:
        r, c = int(round(near[0])), int(round(near[1]))
        if 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] and labels[r, c] > 0:
            return labels == labels[r, c]
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """(h, w) bool with every enclosed hole filled."""
    import cv2

    m = mask.astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(m)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out.astype(bool)


def _largest_outline(mask: np.ndarray) -> np.ndarray:
    """(h, w) bool with at least one pixel -> (K, 1, 2) int32 points (x, y) of its largest outer contour."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return max(contours, key=cv2.contourArea)


def _convex_hull(mask: np.ndarray) -> np.ndarray:
    """(h, w) bool -> the filled convex hull of its largest outline."""
    import cv2

    out = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(out, [cv2.convexHull(_largest_outline(mask))], -1, 1, thickness=cv2.FILLED)
    return out.astype(bool)


def _ellipse(mask: np.ndarray) -> np.ndarray:
    """(h, w) bool -> the filled least-squares ellipse of its largest outline (the mask itself when the outline
    has fewer than 5 points)."""
    import cv2

    outline = _largest_outline(mask)
    if len(outline) < 5:
        return mask
    out = np.zeros(mask.shape, np.uint8)
    cv2.ellipse(out, cv2.fitEllipse(outline), 1, thickness=cv2.FILLED)
    return out.astype(bool)


def clean_masks(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(3, S, S) class probabilities (background, rim, cup) -> cleaned disc, cup (S, S) bool and certainty.

    Disc = P(rim) + P(cup) > 0.5, largest component, its convex hull; cup = P(cup) > 0.5 inside the disc,
    largest component, the ellipse fitted to its outline, clipped to the disc. (Shape priors chosen on the
    leave-one-source-out blocks Drishti-GS1 and odoc100: the hull mends discs notched by vessels, the ellipse
    ragged cup edges.) ``certainty`` = mean disc probability over the disc (0 when there is none).
    """
    p_disc = probs[1] + probs[2]
    s = p_disc.shape[0]
    disc = _largest_component(p_disc > 0.5, near=(s / 2.0, s / 2.0))
    if not disc.any():
        return disc, disc.copy(), 0.0
    certainty = float(p_disc[_fill_holes(disc)].mean())
    disc = _convex_hull(disc)
    cup = (probs[2] > 0.5) & disc
    if cup.any():
        cup = _ellipse(_largest_component(cup)) & disc
    return disc, cup, certainty


def masks_on_photo(disc: np.ndarray, cup: np.ndarray, box: Box, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) bool disc and cup of a crop of ``box`` -> (H, W) bool photo-px masks of a photo of ``shape``, the cup
    inside the disc. A light blur at model resolution gives smooth outlines instead of enlarged model pixels."""
    import cv2

    smooth = cv2.GaussianBlur(np.stack([disc, cup], axis=-1).astype(np.float32), (0, 0), 0.8)
    both = map_to_image(smooth, box, (int(shape[0]), int(shape[1])))
    disc_img = both[..., 0] >= 0.5
    return disc_img, (both[..., 1] >= 0.5) & disc_img


def _box_of(mask: np.ndarray, box: Box) -> tuple[tuple[float, float], float]:
    """Centre (row, col) photo px and diameter (larger bbox side, photo px) of a mask drawn on a crop of ``box``."""
    s = box[2] - box[0]
    k = s / mask.shape[0]
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r = box[0] + (rows[0] + rows[-1] + 1) / 2.0 * k
    c = box[1] + (cols[0] + cols[-1] + 1) / 2.0 * k
    return (r, c), max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) * k


def _score(certainty: float, penalty: float, ratio: float) -> float:
    """How much a crop looks like the disc: certainty - the crop's localiser penalty - SIZE_PENALTY x
    |ln(measured / expected diameter)|."""
    return certainty - penalty - SIZE_PENALTY * abs(float(np.log(ratio)))


def _passing_crops(image: np.ndarray, segmenter: Any, boxes: list[Box], expected: float,
                   penalties: Sequence[float]) -> list[tuple[float, float, Box, np.ndarray]]:
    """Segment the crops of ``boxes`` (batches of 8) and return ``(score, penalty, box, disc mask)`` for every
    crop that holds a confident, disc-sized region, best first (``penalties[k]``: how much less the localiser
    believes in box k than in its best candidate, see :func:`_localiser_penalties`)."""
    size = int(segmenter.size)
    found: list[tuple[float, float, Box, np.ndarray]] = []
    for start in range(0, len(boxes), 8):
        chunk = boxes[start : start + 8]
        probs = segmenter.predict(np.stack([crop_square(image, b, size) for b in chunk]))
        for box, penalty, p in zip(chunk, penalties[start : start + 8], probs):
            disc, _, certainty = clean_masks(p)
            if not disc.any():
                continue
            ratio = _box_of(disc, box)[1] / expected
            if certainty < COARSE_MIN_CERTAINTY or not SIZE_RANGE[0] <= ratio <= SIZE_RANGE[1]:
                continue
            found.append((_score(certainty, penalty, ratio), penalty, box, disc))
    return sorted(found, key=lambda item: -item[0])


def _fine(image: np.ndarray, segmenter: Any, coarse_box: Box, coarse_disc: np.ndarray, expected: float
          ) -> Optional[tuple[Box, np.ndarray, np.ndarray, float]]:
    """Two fine passes centred on a coarse disc: ``(box, disc, cup, certainty)``, or None when the network is
    not confident or the disc's size is implausible for the photo (:data:`SIZE_RANGE` x ``expected`` px)."""
    size, crop_scale = int(segmenter.size), float(segmenter.crop_scale)
    centre, diameter = _box_of(coarse_disc, coarse_box)
    for _ in range(2):
        box = square_box(centre, crop_scale * max(diameter, 8.0))
        disc, cup, certainty = clean_masks(segmenter.predict(crop_square(image, box, size)[None])[0])
        if not disc.any():
            return None
        centre, diameter = _box_of(disc, box)
    plausible = SIZE_RANGE[0] <= diameter / expected <= SIZE_RANGE[1]
    return (box, disc, cup, certainty) if certainty >= MIN_CERTAINTY and plausible else None


def _best_fine(image: np.ndarray, segmenter: Any, coarse: list[tuple[float, float, Box, np.ndarray]],
               expected: float) -> tuple[Optional[tuple[Box, np.ndarray, np.ndarray, float]], bool]:
    """Fine passes on every coarse find; the best by fine certainty - localiser penalty - size penalty, and
    whether another find that passed is centred outside the best one's disc (a second disc-like region)."""
    finds = []
    for _, penalty, box, disc in coarse:
        f = _fine(image, segmenter, box, disc, expected)
        if f is not None:
            centre, diameter = _box_of(f[1], f[0])
            finds.append((_score(f[3], penalty, diameter / expected), centre, diameter, f))
    if not finds:
        return None, False
    _, (r, c), diameter, best = max(finds, key=lambda item: item[0])
    rival = any(np.hypot(o[0] - r, o[1] - c) > 0.5 * diameter for _, o, _, _ in finds)
    return best, rival


def _centred_hypothesis(image: np.ndarray, segmenter: Any, fine: Any, rival: bool, expected: float,
                        at: Optional[tuple[float, float]] = None) -> tuple[Any, bool, bool]:
    """The passes on "a crop centred on the disc" (:data:`CENTRED_DISC_SIDE`; the disc looked for in the middle,
    or at ``at`` where the user placed it), against the ``fine`` find made with the field-of-view size prior
    (``expected`` px across): ``(fine, rival, centred)`` of the one chosen. A find centred inside the other,
    larger one is part of that disc (its cup, a bright patch of it): the larger wins. Otherwise the one that scores
    higher under its own expected size (certainty - SIZE_PENALTY x |ln(measured / expected diameter)|)."""
    h, w = image.shape[:2]
    side = CENTRED_DISC_SIDE * min(h, w)
    centre = at or (h / 2.0, w / 2.0)
    coarse = _passing_crops(image, segmenter, [square_box(centre, COARSE_SCALE * side)], side, [0.0])
    centred, _ = _best_fine(image, segmenter, coarse, side)
    if centred is None:
        return fine, rival, False
    if fine is None:
        return centred, False, True
    (r0, c0), mine = _box_of(fine[1], fine[0])
    (r1, c1), theirs = _box_of(centred[1], centred[0])
    if np.hypot(r1 - r0, c1 - c0) < 0.5 * max(mine, theirs):  # one inside the other
        return (centred, False, True) if theirs > mine else (fine, rival, False)
    if _score(fine[3], 0.0, mine / expected) >= _score(centred[3], 0.0, theirs / side):
        return fine, rival, False
    return centred, False, True


def _localiser_penalties(loc: DiscLocation) -> list[float]:
    """Per checked candidate: RANK_PENALTY x rank + LOCALISER_PENALTY x (best score - its score)."""
    candidates = loc.candidates[:N_COARSE]
    if not candidates:
        return [0.0]
    top = candidates[0].score
    return [RANK_PENALTY * k + LOCALISER_PENALTY * max(0.0, top - c.score) for k, c in enumerate(candidates)]


def _scan_boxes(loc: DiscLocation, side: float) -> list[Box]:
    """Square boxes of ``side`` px covering the field of view with half-side overlap."""
    (fr, fc), radius = loc.fov_center, loc.fov_radius_px
    n = max(1, int(np.ceil(2.0 * radius / (0.5 * side))))
    offsets = np.linspace(-radius + 0.25 * side, radius - 0.25 * side, n) if n > 1 else np.zeros(1)
    return [square_box((fr + dr, fc + dc), side) for dr in offsets for dc in offsets
            if np.hypot(dr, dc) <= radius]


def measure(disc: np.ndarray, cup: np.ndarray, eye: str, spacing: Optional[Spacing]) -> DiscBiomarkers:
    """Biomarkers of (H, W) bool photo-px disc and cup masks (disc not empty), measured on the disc's bounding
    box plus 2 px (the rest of a 12 MP photo is background)."""
    rows = np.flatnonzero(disc.any(axis=1))
    cols = np.flatnonzero(disc.any(axis=0))
    r0, r1, c0, c1 = max(0, rows[0] - 2), rows[-1] + 3, max(0, cols[0] - 2), cols[-1] + 3
    return compute_biomarkers(disc[r0:r1, c0:c1], cup[r0:r1, c0:c1], eye=eye, spacing=spacing)


def _not_found(message: str, loc: Optional[DiscLocation], sha: str, timings: dict[str, float],
               card: dict[str, Any], placed_at: Optional[tuple[float, float]] = None,
               colour_only: bool = True) -> DiscAnalysis:
    """A result without a disc; on a photo without colour the message says so (``colour_only``: and that the networks
    that looked saw colour photos only)."""
    centre = placed_at or (None if loc is None else loc.center)
    if loc is not None and loc.monochrome:
        message = f"{message}; {MONOCHROME_NOTE if colour_only else GREY_MODEL_NOTE}"
    return DiscAnalysis(False, 0.0 if loc is None else float(loc.confidence) * 0.5, message, centre,
                        localisation=loc, weights_sha256=sha, timings=timings, model_card=card, placed_at=placed_at)


def check_disc_at(disc_at: Optional[Sequence[float]], shape: Sequence[int]) -> Optional[tuple[float, float]]:
    """``disc_at`` as (row, col) floats, checked to lie on the photo of ``shape`` (H, W, ...).

    Raises:
        ValueError: it lies outside (one line for the user, in x / y photo px).
    """
    if disc_at is None:
        return None
    r, c = (float(v) for v in disc_at)
    if not (0.0 <= r < shape[0] and 0.0 <= c < shape[1]):
        raise ValueError(f"the disc position x {c:.0f}, y {r:.0f} px is outside the {shape[1]} x {shape[0]} px photo")
    return r, c


def analyse_disc(
    image: np.ndarray,
    spacing: Optional[Spacing] = None,
    eye: str = "unknown",
    *,
    segmenter: Any = None,
    weights: Any = None,
    disc_at: Optional[Sequence[float]] = None,
    infer_eye: bool = True,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> DiscAnalysis:
    """Find, segment and measure the optic disc and cup of one colour fundus photo.

    Args:
        image: (H, W, 3) uint8 RGB, any size (1-12 MP), aspect ratio, eye, with or without a black border.
        spacing: the photo's pixel spacing; biomarkers get mm values only when ``spacing.is_physical``.
        eye: "OD", "OS" or "unknown" (nasal / temporal sectors and the ISNT rule need it).
        infer_eye: with ``eye`` unknown, measure with the eye the disc's side of the photo shows, when it shows
            one (:func:`engine.fundus.laterality.eye_from_disc`; ``eye_inferred`` then says so); with ``eye``
            given, say in the message when the disc's side shows the other eye.
        segmenter: an object with ``size``, ``crop_scale``, ``sha256`` and ``predict((B, S, S, 3) uint8) ->
            (B, 3, S, S)`` probabilities; default: :func:`engine.fundus.segmenter.load_segmenter` (``weights``
            path or the shipped ``resources/models/disc_cup.pt``). When it has a ``grey`` model (such an object too),
            that one does all of the below on a photo without colour. When it has ``fine`` networks (such an object
            too), they draw the final masks with two passes centred on the disc found (their certainty is the
            confidence's); where they are not confident or see a disc of another size (outside
            :data:`SIZE_RANGE` x the found one), the finding networks' masks stay.
        disc_at: (row, col) photo px where the user says the disc is: the networks look there only, no rival
            region is considered, and a disc centred over one disc diameter away counts as not found.
        progress, cancel: see :mod:`engine.progress`.

    Raises:
        ValueError: ``image`` is not (H, W, 3) or is empty, or ``disc_at`` lies outside it.
        engine.models.checkpoint.CheckpointError: no usable segmenter weights.
        engine.progress.Cancelled: ``cancel`` was set.
    """
    import time

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB photo, got an array of shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"the photo is empty ({image.shape[1]} x {image.shape[0]} px)")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    placed_at = check_disc_at(disc_at, image.shape)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if segmenter is None:
        from engine.fundus.segmenter import load_segmenter

        segmenter = load_segmenter(weights)
    sha = str(getattr(segmenter, "sha256", ""))
    card = dict(getattr(segmenter, "card", None) or {})
    check(cancel)
    report(progress, 0.05, "locating the optic disc")
    t = time.perf_counter()
    timings["load"] = t - t0
    loc = locate_disc(image)
    timings["localise"] = time.perf_counter() - t
    grey_model = getattr(segmenter, "grey", None) if loc.monochrome else None
    if grey_model is not None:  # a photo without colour: the networks trained for one
        segmenter = grey_model
    expected = 2.0 * loc.radius_px

    # coarse pass: which candidate holds a disc?
    check(cancel)
    report(progress, 0.3, "checking disc candidates")
    t = time.perf_counter()
    if placed_at is None:
        centres, penalties = [c.center for c in loc.candidates[:N_COARSE]] or [loc.center], _localiser_penalties(loc)
    else:
        centres, penalties = [placed_at], [0.0]
    coarse = _passing_crops(image, segmenter, [square_box(c, COARSE_SCALE * expected) for c in centres], expected,
                            penalties)
    timings["coarse"] = time.perf_counter() - t

    # fine passes, centred on the measured disc, best coarse crop first
    check(cancel)
    report(progress, 0.6, "segmenting disc and cup")
    t = time.perf_counter()
    fine, rival = _best_fine(image, segmenter, coarse[:N_COARSE], expected)
    centred = False
    if loc.fov_fraction >= CENTRED_MIN_FOV:  # maybe a crop centred on the disc: its size prior, at the place given
        fine, rival, centred = _centred_hypothesis(image, segmenter, fine, rival, expected, placed_at)
    if placed_at is not None:
        rival = False  # the user chose the region
        if fine is not None:
            (r, c), diameter = _box_of(fine[1], fine[0])
            if np.hypot(r - placed_at[0], c - placed_at[1]) > diameter:
                fine = None
        if fine is None:
            timings["fine"] = time.perf_counter() - t
            return _not_found(f"optic disc not found at the place given (x {placed_at[1]:.0f}, y {placed_at[0]:.0f} "
                              "px): the segmenter saw no whole disc there", loc, sha, timings, card, placed_at,
                              colour_only=grey_model is None)
    if placed_at is None and fine is None:
        # no candidate holds a disc (a disc cut by the edge of the field of view, bright lesions ...): the
        # network scans the whole field of view in overlapping coarse crops
        boxes = _scan_boxes(loc, COARSE_SCALE * expected)
        scan = _passing_crops(image, segmenter, boxes, expected, [0.0] * len(boxes))
        fine, rival = _best_fine(image, segmenter, scan[:N_COARSE], expected)
    timings["fine"] = time.perf_counter() - t
    if fine is None:
        return _not_found("optic disc not found: no region of the photo looked like a whole disc to the "
                          "segmenter (a disc cut by the edge of the field of view is not measured)",
                          loc, sha, timings, card, colour_only=grey_model is None)
    box, disc, cup, certainty = fine
    refine = getattr(segmenter, "fine", None)
    if refine is not None:  # the fine-pass networks draw the masks, centred on the disc found
        check(cancel)
        t = time.perf_counter()
        drawn = _fine(image, refine, box, disc, _box_of(disc, box)[1])
        if drawn is not None:
            box, disc, cup, certainty = drawn
        timings["refine"] = time.perf_counter() - t

    # back to photo pixels (only the box's region is touched), measure
    check(cancel)
    report(progress, 0.85, "measuring cup-to-disc ratios")
    t = time.perf_counter()
    disc_img, cup_img = masks_on_photo(disc, cup, box, image.shape[:2])
    if not disc_img.any():
        return _not_found("optic disc not found: the disc mask is empty at the photo's resolution", loc, sha,
                          timings, card, placed_at, colour_only=grey_model is None)
    rows = np.flatnonzero(disc_img.any(axis=1))
    cols = np.flatnonzero(disc_img.any(axis=0))
    found_centre = ((rows[0] + rows[-1] + 1) / 2.0, (cols[0] + cols[-1] + 1) / 2.0)
    side = eye_from_disc(found_centre, loc) if infer_eye else "unknown"
    eye_inferred = eye not in ("OD", "OS") and side != "unknown"
    markers = measure(disc_img, cup_img, side if eye_inferred else eye, spacing)
    timings["measure"] = time.perf_counter() - t
    # the localiser's confidence counts only where it chose the place
    located = 1.0 if placed_at is not None else 0.85 + 0.15 * loc.confidence
    confidence = float(np.clip(certainty * located, 0.0, 1.0))
    message = "" if confidence >= LOW_CONFIDENCE else LOW_CONFIDENCE_MESSAGE
    if rival and not message:
        message = RIVAL_MESSAGE
    if loc.monochrome:
        message = MONOCHROME_MESSAGE if grey_model is None else GREY_MODEL_MESSAGE
    focus = FOCUS_MESSAGE if out_of_focus(loc) else ""
    message = "; ".join(m for m in (message, focus, eye_conflict(eye, side)) if m)
    check(cancel)
    report(progress, 1.0, "disc and cup done")
    return DiscAnalysis(True, confidence, message, found_centre, disc_img, cup_img,
                        disc_box(disc_img, DEFAULT_MARGIN), markers, loc, sha, timings, card, spacing,
                        placed_at=placed_at, centred=centred, eye_inferred=eye_inferred, rival_region=rival)
