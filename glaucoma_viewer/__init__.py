"""Glaucoma Viewer: the clinician's window (PySide6 + pyqtgraph). Every computation runs through ``engine``
on a worker thread (:mod:`glaucoma_viewer.worker`); torch and MONAI are imported only there."""

from engine import __version__

__all__ = ["__version__"]
