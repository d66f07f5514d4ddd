"""Glaucoma Viewer engine: exam model, loaders, segmentation, grading, training. No Qt below this package."""

__version__ = "0.1.0"
