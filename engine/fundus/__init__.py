"""Optic disc and cup: localisation, segmentation, disc-region crop and cup-to-disc biomarkers.

Entry point: :func:`analyse_disc` (photo -> masks + biomarkers). Torch is imported only when a segmenter loads.
"""

from engine.fundus.analysis import DiscAnalysis, analyse_disc, label_mask

__all__ = ["DiscAnalysis", "analyse_disc", "label_mask"]
