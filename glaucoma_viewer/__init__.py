"""Glaucoma Viewer: the clinician's window (PySide6 + pyqtgraph). Every computation runs through ``engine``
on a worker thread (:mod:`glaucoma_viewer.worker`); torch and MONAI are imported only there."""

from engine import __version__
from glaucoma_viewer.refcount_guard import guard as _guard_refcounts

_guard_refcounts()  # before any Qt call: see glaucoma_viewer.refcount_guard

__all__ = ["__version__"]
