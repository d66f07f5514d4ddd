"""Training, tuning and evaluation for every model: ``fit`` (loop.py), configs, splits, metrics, datasets, tasks.

Import the pieces from their modules (``from engine.train.loop import fit``); this package imports nothing
heavy itself so that ``python -m engine --help`` stays instant.
"""
