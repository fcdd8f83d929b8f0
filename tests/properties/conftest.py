"""Fixtures for the property tests: the ACAS Xu data folder, or a clean skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from verirepair.tasks.acasxu import networks as acasxu_nets


@pytest.fixture(scope="session")
def acasxu_data() -> Path:
    """The ACAS Xu data folder (``acasxu_nets.acasxu_dir()``) with its VNN-LIB files, or skip."""
    return acasxu_nets.data_or_skip(formats=())
