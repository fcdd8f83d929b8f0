"""Fixtures shared by tests/verify."""

from __future__ import annotations

import pytest


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    """Run the test in its own temporary folder (Marabou may leave log files in the working directory)."""
    monkeypatch.chdir(tmp_path)
