"""Fixtures shared by tests/verify."""

from __future__ import annotations

import builtins

import pytest


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    """Run the test in its own temporary folder (Marabou may leave log files in the working directory)."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def no_maraboupy(monkeypatch):
    """Make ``import maraboupy`` fail, as on a machine without it."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("maraboupy"):
            raise ImportError("no maraboupy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
