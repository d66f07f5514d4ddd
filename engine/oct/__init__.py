"""OCT retinal layers: the training-free boundary finder, the layer network, thickness maps.

Names and order used everywhere in this package (anatomical, top to bottom):

- ``LAYER_NAMES[k - 1]`` is the layer with label ``k`` (1..8); label 0 is outside the retina (vitreous above
  the ILM). Labels never decrease going down a column of a label map.
- ``BOUNDARY_NAMES[k]`` is the top edge of label ``k + 1`` for k = 0..7 (the ILM is the top of the NFL, the
  RPE/choroid boundary is Bruch's membrane, the top of the choroid) and the bottom of the choroid for k = 8.
  A boundary is stored as the row (float, px) of the *first pixel of the lower layer* in each column.

Heavy imports (torch, MONAI) live in :mod:`engine.oct.layers` only; :func:`analyse_oct` (the pipeline's entry
point) imports :mod:`engine.oct.analyse` when called.
"""

LAYER_NAMES = ("NFL", "GCL+IPL", "INL", "OPL", "ONL", "EZ", "RPE", "choroid")
BOUNDARY_NAMES = (
    "ILM", "NFL/GCL", "IPL/INL", "INL/OPL", "OPL/ONL", "ONL/EZ", "EZ/RPE", "RPE/choroid", "choroid/sclera",
)
N_CLASSES = 1 + len(LAYER_NAMES)
"""Network classes: 0 outside the retina + the eight layers."""


def analyse_oct(exam, progress=None, cancel=None, **options):  # type: ignore[no-untyped-def]
    """The layer analysis of an exam's OCT (see :func:`engine.oct.analyse.analyse_oct`); imported lazily."""
    from engine.oct.analyse import analyse_oct as run

    return run(exam, progress, cancel, **options)
