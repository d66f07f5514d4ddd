"""Where the bundled resources (default weights, demo exam, icons) live, from source, install or frozen app.

Order: ``$GV_RESOURCES`` if set; the PyInstaller bundle (``sys._MEIPASS/resources``) when frozen; the
repository's ``resources/`` next to the ``engine`` package otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_dir() -> Path:
    """The resources folder (it may be missing in a bare install: callers say so clearly)."""
    override = os.environ.get("GV_RESOURCES")
    if override:
        return Path(override)
    bundle = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def models_dir() -> Path:
    """Default weights and their model cards: ``<resources>/models``."""
    return resources_dir() / "models"


def demo_exam_dir() -> Path:
    """The bundled demo exam folder (GAMMA layout): ``<resources>/demo/DEMO01``."""
    return resources_dir() / "demo" / "DEMO01"


def icon_path() -> Path:
    """The application icon, 256x256 PNG."""
    return resources_dir() / "icons" / "glaucoma-viewer.png"


def is_frozen() -> bool:
    """True inside a PyInstaller build (DataLoader workers must then be 0)."""
    return bool(getattr(sys, "frozen", False))
