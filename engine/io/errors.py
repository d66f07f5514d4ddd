"""Typed, user-readable load errors. Every loader raises one of these and nothing else for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


class ExamLoadError(Exception):
    """Base class: ``str(err)`` is a one-line message fit for a status bar, a stderr line or a CSV row."""

    def __init__(self, message: str, path: Optional[Union[str, Path]] = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
        self.reason = message


class NotFoundError(ExamLoadError):
    """The path does not exist or cannot be read (permissions)."""


class UnsupportedFormatError(ExamLoadError):
    """The file is not an image/volume format we read (or not what its extension claims)."""


class CorruptFileError(ExamLoadError):
    """The file is truncated or its content is inconsistent."""


class ImageTooLargeError(ExamLoadError):
    """Pixel count above the decompression-bomb cap."""


class InconsistentVolumeError(ExamLoadError):
    """B-scans of a volume differ in size, are duplicated or missing."""


class MissingCodecError(ExamLoadError):
    """A DICOM transfer syntax needs a codec that is not installed."""


class EmptyInputError(ExamLoadError):
    """A folder holds no exam at all."""


def os_read_error(exc: OSError, path: Union[str, Path]) -> ExamLoadError:
    """The typed error for an ``OSError`` met while opening or reading ``path`` (missing, denied, a folder)."""
    if isinstance(exc, FileNotFoundError):
        return NotFoundError("does not exist", path)
    if isinstance(exc, PermissionError):
        return NotFoundError("cannot be read (permission denied)", path)
    if isinstance(exc, IsADirectoryError):
        return UnsupportedFormatError("is a folder, not an image file", path)
    return NotFoundError(f"cannot be read ({exc.strerror or type(exc).__name__})", path)
