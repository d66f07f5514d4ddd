"""Exam model and thin readers. Import what you need from the submodules; this package stays light."""

from engine.io.errors import ExamLoadError
from engine.io.exam import Exam, Provenance, SourceFile, Spacing

__all__ = ["Exam", "ExamLoadError", "Provenance", "SourceFile", "Spacing"]
