"""Fixtures for the network file-format tests (helpers live in network_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from network_helpers import acasxu_folder


@pytest.fixture(scope="session")
def acasxu_dir() -> Path:
    """The ACAS Xu data folder, or skip when it is absent."""
    return acasxu_folder()


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator."""
    return np.random.default_rng(1234)
