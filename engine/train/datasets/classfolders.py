"""Class-per-folder image sets (``ROOT/<class>/<image>``), e.g. the dental panoramic set or any ImageNet-style
folder.

``ROOT/<class>/`` holds the images of one class (any of .jpg .jpeg .png .tif .tiff .bmp; sub-folders of a class
folder are read too, so ``<class>/<patient>/<image>`` groups by patient). Classes are the folder names in
sorted order unless a ``classes.txt`` (one name per line) in ROOT gives the order. Hidden folders and folders
without images are ignored.

Items: ``{"id": "<class>/<relative path>", "image": path, "label": int, "patient": str}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

from engine.train.datasets.common import IMAGE_SUFFIXES, LayoutError

EXPECTED = "one sub-folder per class (ROOT/<class>/<image>.png|jpg|...), at least two classes"


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def read_classfolders(root: Union[str, Path], classes: Optional[Sequence[str]] = None) -> tuple[list[dict[str, Any]], list[str]]:
    """``(items, classes)`` of a class-per-folder set.

    Raises:
        LayoutError: missing folder, fewer than two class folders with images, a class in ``classes`` /
            ``classes.txt`` without a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(root, "folder not found", EXPECTED)
    folders = {d.name: d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    listing = root / "classes.txt"
    if classes is None and listing.is_file():
        classes = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
    if classes is not None:
        missing = [c for c in classes if c not in folders]
        if missing:
            raise LayoutError(root, f"class folder(s) {', '.join(missing)} missing", EXPECTED)
        names = list(classes)
    else:
        names = [name for name, folder in folders.items() if _images_under(folder)]
    if len(names) < 2:
        raise LayoutError(root, f"found {len(names)} class folder(s) with images ({', '.join(names) or 'none'})", EXPECTED)
    items = []
    for label, name in enumerate(names):
        folder = folders[name]
        for path in _images_under(folder):
            rel = path.relative_to(folder)
            patient = rel.parts[0] if len(rel.parts) > 1 else f"{name}/{path.stem}"
            items.append({"id": f"{name}/{rel.as_posix()}", "image": str(path), "label": label, "patient": patient})
    return items, names
