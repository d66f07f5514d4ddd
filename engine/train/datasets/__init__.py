"""Readers for the published training-set layouts, and MONAI dataset pipelines.

- :mod:`.gamma` GAMMA grading (multi-modality and fundus-only), :mod:`.odir` ODIR-5K, :mod:`.classfolders`
  class-per-folder sets, :mod:`.brats` BraTS-style NIfTI folders. Disc/cup segmentation sets (REFUGE, ORIGA,
  Drishti-GS, RIM-ONE) live in ``engine.fundus.datasets``; OCT layer masks with the OCT code.
- Every reader raises :class:`~engine.train.datasets.common.LayoutError` naming the missing file and the
  expected layout; readers return plain item dicts (nothing decoded).
- :mod:`.transforms` builds cached MONAI datasets (augmentation only when ``train=True``).
"""

from engine.train.datasets.common import LayoutError

__all__ = ["LayoutError"]
