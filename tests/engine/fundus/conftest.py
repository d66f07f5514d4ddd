"""Fixtures for the disc/cup tests: a colour-threshold "oracle" segmenter for synthetic fundi."""

from __future__ import annotations

import pytest

from fundus_helpers import ColourOracle


@pytest.fixture
def oracle() -> ColourOracle:
    return ColourOracle()
