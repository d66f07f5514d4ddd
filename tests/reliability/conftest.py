"""Fixtures of the reliability suite: the bad-input corpus, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus_kit import Case, build_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> tuple[Path, list[Case]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, build_corpus(root)
