"""Layer label maps: from boundaries, from the Cirrus sample masks, from VGG / makesense.ai polygon JSON.

Our label convention (see :mod:`engine.oct`): ``(H, W)`` uint8, 0 above the ILM (outside the retina), then
1..8 = NFL, GCL+IPL, INL, OPL, ONL, EZ, RPE, choroid, never decreasing down a column. Label 8 runs from Bruch's
membrane (RPE/choroid) to the bottom of the B-scan: the sclera is not a separate class (its top, the
choroid/sclera boundary, is kept with the boundaries when a method finds it).

Other conventions met in the wild and how they map here:

- **Cirrus ONH masks** (``../shared/data/oct_layers_cirrus/layer_masks``, OCTseg-Zeiss): values 0, 30, ... 240
  = RNFL, GCL+IPL, INL, OPL, ONL, IS, OS, RPE, *background*. Its PROVENANCE.md says "0 = background, 30..240 =
  RNFL .. RPE", but the pixels say otherwise: the band touching the vitreous is 0 and both the vitreous and
  everything below the RPE are 240 (checked on both masks). So: 0 -> 1 NFL, 30 -> 2 GCL+IPL, 60 -> 3 INL,
  90 -> 4 OPL, 120 -> 5 ONL, 150 (IS) and 180 (OS) -> 6 EZ (our EZ band is the photoreceptor segments, ONL end
  to the RPE), 210 -> 7 RPE, 240 above the retina -> 0, 240 below it -> 8 (choroid and below).
- **Another network's channel order** (the reference segmenter emitted these eight layers plus background in a
  non-anatomical channel order): :func:`from_channel_order` maps its class map to ours *by name*, given its
  channel names in order (e.g. ``("background", "ONL", "NFL", ...)``); names are matched with
  :data:`LABEL_ALIASES`. Our networks use anatomical order (label = channel index).
- **VGG Image Annotator / makesense.ai polygon JSON** (``{key: {"filename", "regions": [{"shape_attributes":
  {"name": "polygon", "all_points_x", "all_points_y"}, "region_attributes": {"label": "NFL"}}]}}``, regions
  may also be a dict): each polygon is filled with the class its label names (see :data:`LABEL_ALIASES`), in
  anatomical order so a deeper layer wins where two polygons overlap.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import cv2
import numpy as np

from engine.oct import BOUNDARY_NAMES, LAYER_NAMES

CIRRUS_VALUE_TO_LABEL = {0: 1, 30: 2, 60: 3, 90: 4, 120: 5, 150: 6, 180: 6, 210: 7}
"""Cirrus mask value -> our label; 240 is background (0 above the retina, 8 below it)."""
CIRRUS_BACKGROUND = 240

LABEL_ALIASES: dict[str, int] = {}
"""Lower-cased annotation label -> our class index (0 = outside the retina)."""
for _index, _names in enumerate((
    ("background", "bg", "vitreous", "outside", "none"),
    ("nfl", "rnfl", "nerve fibre layer", "nerve fiber layer", "retinal nerve fibre layer", "retinal nerve fiber layer"),
    ("gcl+ipl", "gcl-ipl", "gcl/ipl", "gcipl", "gc-ipl", "gcl", "ipl", "ganglion cell layer"),
    ("inl", "inner nuclear layer"),
    ("opl", "outer plexiform layer"),
    ("onl", "hfl+onl", "onl+hfl", "outer nuclear layer"),
    ("ez", "is", "os", "is/os", "isos", "is+os", "ellipsoid zone", "ellipsoid", "mez", "photoreceptors"),
    ("rpe", "iz+rpe", "rpe+iz", "iz", "retinal pigment epithelium"),
    ("choroid", "chor", "ch"),
)):
    for _name in _names:
        LABEL_ALIASES[_name] = _index


class AnnotationError(ValueError):
    """An annotation file cannot be read or names an unknown layer. ``str()`` is user-readable."""


def labels_from_boundaries(boundaries: np.ndarray, height: int) -> np.ndarray:
    """Label maps from boundary rows.

    Args:
        boundaries: (9, W) or (N, 9, W) float rows in :data:`engine.oct.BOUNDARY_NAMES` order; NaN marks a
            boundary the method did not find: the band it would have split keeps the label of its uppermost
            layer (merged band). The choroid/sclera boundary (last) never changes the labels.
        height: H of the B-scans.

    Returns:
        (H, W) or (N, H, W) uint8, 0 above the ILM then 1..8, non-decreasing down every column. A column whose
        ILM is NaN is all 0.
    """
    b = np.asarray(boundaries, np.float32)
    single = b.ndim == 2
    if single:
        b = b[None]
    if b.ndim != 3 or b.shape[1] != len(BOUNDARY_NAMES):
        raise ValueError(f"boundaries must be (N, {len(BOUNDARY_NAMES)}, W), got {np.shape(boundaries)}")
    n, _, w = b.shape
    # Mark the first row of each found layer with its label, then carry the largest mark down every column
    # (row r gets the highest label whose layer top is at or above r: one pass over the volume, not one per layer).
    out = np.zeros((n, height, w), np.uint8)
    ilm_known = np.isfinite(b[:, 0])
    scan, col = np.indices((n, w))
    for k in range(len(LAYER_NAMES)):  # the top of layer k + 1
        top = b[:, k]
        found = np.isfinite(top) & ilm_known
        edge = np.ceil(np.where(found, top, height) - 1e-3)
        keep = edge < height
        start = np.maximum(edge[keep], 0).astype(np.intp)
        out[scan[keep], start, col[keep]] = k + 1  # k grows: a later layer starting on the same row wins
    for r in range(1, height):  # running maximum down the rows; 10x faster than np.maximum.accumulate(axis=1)
        np.maximum(out[:, r], out[:, r - 1], out=out[:, r])
    return out[0] if single else out


def merged_note(found: Mapping[str, bool]) -> Optional[str]:
    """A sentence naming the merged bands for a method that found only some boundaries, or None."""
    missing = [name for name in BOUNDARY_NAMES[1:8] if not found.get(name, False)]
    if not missing:
        return None
    groups: list[list[str]] = []
    current = [LAYER_NAMES[0]]
    for k in range(1, len(LAYER_NAMES)):
        if found.get(BOUNDARY_NAMES[k], False):
            groups.append(current)
            current = [LAYER_NAMES[k]]
        else:
            current.append(LAYER_NAMES[k])
    groups.append(current)
    merged = [g for g in groups if len(g) > 1]
    parts = [f"{'+'.join(g)} labelled {LAYER_NAMES.index(g[0]) + 1} ({g[0]})" for g in merged]
    return "boundaries not found: " + ", ".join(missing) + "; merged bands take their uppermost layer's label: " + "; ".join(parts)


def cirrus_mask_to_labels(mask: np.ndarray) -> np.ndarray:
    """A Cirrus sample mask (values 0, 30, ... 240; see the module docstring) -> our (H, W) uint8 labels 0..8.

    Raises:
        ValueError: a value outside the Cirrus set.
    """
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    values = set(np.unique(m).tolist())
    unknown = values - set(CIRRUS_VALUE_TO_LABEL) - {CIRRUS_BACKGROUND}
    if unknown:
        raise ValueError(f"not a Cirrus layer mask: unexpected values {sorted(unknown)[:5]}")
    lut = np.zeros(256, np.uint8)
    for value, label in CIRRUS_VALUE_TO_LABEL.items():
        lut[value] = label
    labels = lut[m]
    background = m == CIRRUS_BACKGROUND
    inside = np.cumsum(~background, axis=0) > 0  # at or below the first retina pixel of the column
    labels[background & inside] = 8
    return labels


def is_cirrus_mask(mask: np.ndarray) -> bool:
    """True when every value is one of the Cirrus set and 240 (its background) is present."""
    values = set(np.unique(np.asarray(mask)).tolist())
    return CIRRUS_BACKGROUND in values and values <= set(CIRRUS_VALUE_TO_LABEL) | {CIRRUS_BACKGROUND}


def from_channel_order(class_map: np.ndarray, channel_names: "list[str] | tuple[str, ...]") -> np.ndarray:
    """A class map whose value ``c`` means layer ``channel_names[c]`` -> our anatomical labels 0..8.

    Raises:
        AnnotationError: a channel name that names no layer.
    """
    lut = np.zeros(256, np.uint8)
    for channel, name in enumerate(channel_names):
        lut[channel] = label_index(name)
    return lut[np.asarray(class_map, np.uint8)]


def label_index(name: str) -> int:
    """Our class index for an annotation label (case, spaces and punctuation tolerant).

    Raises:
        AnnotationError: the label names no known layer.
    """
    key = re.sub(r"\s+", " ", str(name).strip().lower())
    if key in LABEL_ALIASES:
        return LABEL_ALIASES[key]
    compact = key.replace(" ", "").replace("_", "")
    for alias, index in LABEL_ALIASES.items():
        if alias.replace(" ", "") == compact:
            return index
    known = ", ".join(LAYER_NAMES)
    raise AnnotationError(f"unknown layer label {name!r} (expected one of {known}, or background)")


def _region_label(region: Mapping[str, Any]) -> str:
    attrs = region.get("region_attributes") or {}
    if isinstance(attrs, Mapping):
        for key in ("label", "layer", "class", "name", "type"):
            if key in attrs and attrs[key] not in (None, ""):
                value = attrs[key]
                if isinstance(value, Mapping):  # VIA checkbox style: {"NFL": true}
                    value = next((k for k, v in value.items() if v), "")
                return str(value)
        if len(attrs) == 1:
            return str(next(iter(attrs.values())))
    raise AnnotationError("a polygon has no layer label in its region_attributes (expected e.g. {'label': 'NFL'})")


def read_polygon_annotations(path: Union[str, Path]) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Read a VGG Image Annotator / makesense.ai VGG JSON export.

    Returns:
        ``{image file name: [(class index, (K, 2) int32 polygon (x, y) px), ...]}``.

    Raises:
        AnnotationError: unreadable JSON, a region that is not a polygon / polyline, an unknown label.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AnnotationError(f"{path}: not a readable JSON annotation file ({err})") from None
    if isinstance(doc, Mapping) and "_via_img_metadata" in doc:  # a VIA project file
        doc = doc["_via_img_metadata"]
    if not isinstance(doc, Mapping):
        raise AnnotationError(f"{path}: expected a VGG/VIA JSON object of images")
    out: dict[str, list[tuple[int, np.ndarray]]] = {}
    for key, entry in doc.items():
        if not isinstance(entry, Mapping):
            continue
        filename = str(entry.get("filename") or key)
        regions = entry.get("regions") or []
        if isinstance(regions, Mapping):
            regions = list(regions.values())
        polys = []
        for region in regions:
            shape = region.get("shape_attributes") or {}
            kind = shape.get("name")
            if kind not in ("polygon", "polyline"):
                raise AnnotationError(f"{path}: {filename}: region of type {kind!r}; layers must be polygons")
            xs, ys = shape.get("all_points_x") or [], shape.get("all_points_y") or []
            if len(xs) != len(ys) or len(xs) < 3:
                raise AnnotationError(f"{path}: {filename}: a polygon needs >= 3 points with x and y")
            try:
                index = label_index(_region_label(region))
            except AnnotationError as err:
                raise AnnotationError(f"{path}: {filename}: {err}") from None
            pts = np.stack([np.round(np.asarray(xs, float)), np.round(np.asarray(ys, float))], axis=1).astype(np.int32)
            polys.append((index, pts))
        out[filename] = polys
    return out


def polygons_to_mask(polygons: list[tuple[int, np.ndarray]], shape: tuple[int, int]) -> np.ndarray:
    """Fill polygons into an (H, W) uint8 label map (0 where none), shallow layers first so deeper ones win."""
    mask = np.zeros(shape, np.uint8)
    for index, pts in sorted(polygons, key=lambda p: p[0]):
        cv2.fillPoly(mask, [pts.reshape(-1, 1, 2)], int(index))
    return mask


def monotone(labels: np.ndarray) -> np.ndarray:
    """Force labels to never decrease down each column (running maximum along rows), (..., H, W) uint8."""
    return np.maximum.accumulate(np.asarray(labels, np.uint8), axis=-2)


def boundaries_from_labels(labels: np.ndarray) -> np.ndarray:
    """(H, W) or (N, H, W) labels -> (9, W) / (N, 9, W) float32 boundary rows (first row with label >= k + 1).

    A layer absent from a column gets the row of the next present one (zero thickness); a column with no
    retina gets NaN everywhere; the choroid/sclera boundary is NaN (label maps do not carry it).
    """
    lab = np.asarray(labels)
    single = lab.ndim == 2
    if single:
        lab = lab[None]
    n, h, w = lab.shape
    out = np.full((n, len(BOUNDARY_NAMES), w), np.nan, np.float32)
    for k in range(len(LAYER_NAMES)):
        at_or_below = lab >= k + 1
        first = np.argmax(at_or_below, axis=1).astype(np.float32)
        present = at_or_below.any(axis=1)
        out[:, k] = np.where(present, first, np.nan)
    retina = np.isfinite(out[:, 0])
    for k in range(1, len(LAYER_NAMES)):  # a deeper layer missing below the retina: zero thickness at the bottom
        out[:, k] = np.where(retina & ~np.isfinite(out[:, k]), h, out[:, k])
    return out[0] if single else out
