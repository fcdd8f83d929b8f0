"""Registry of LP/MILP backends (CONVENTIONS.md, 6).

Pipeline position: the repair stage asks :func:`get_backend` for the solver
named in its :class:`~verirepair.repair.config.RepairConfig`.  Each backend
module registers itself here; optional solver packages are imported only inside
the adapter's methods, so a missing package never breaks ``import verirepair``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from verirepair.errors import SolverUnavailableError
from verirepair.solvers.model import LinearProblem, Solution


class Backend(abc.ABC):
    """An LP/MILP solver adapter."""

    #: Registry name, e.g. ``"highs"``.
    name: str = ""

    @abc.abstractmethod
    def available(self) -> bool:
        """Whether the solver can be imported (and, if relevant, is licensed)."""

    @abc.abstractmethod
    def solve(self, problem: LinearProblem, time_limit_s: float | None = None) -> Solution:
        """Solve ``problem`` (a minimisation).

        Parameters
        ----------
        problem : LinearProblem
        time_limit_s : float or None
            Wall-clock budget in seconds; None means no limit.

        Returns
        -------
        Solution
            With a :class:`~verirepair.solvers.model.SolveStatus`; solver
            failures are reported as ``ERROR``, never raised.

        Raises
        ------
        SolverUnavailableError
            If the solver is missing or its licence does not allow this problem.
        """


    def open_session(self, problem: LinearProblem) -> Session | None:
        """Start an incremental session on ``problem``, or None if unsupported.

        A session lets a caller add rows and re-solve with a warm start (row
        generation); backends without that ability return None and the caller
        re-solves from scratch.
        """
        return None


class Session(abc.ABC):
    """A solver instance that keeps its model (and basis) between solves."""

    @abc.abstractmethod
    def add_rows(self, rows: sp.csr_matrix, lower: np.ndarray, upper: np.ndarray) -> None:
        """Append rows ``lower <= rows @ x <= upper``; ``rows`` has shape (r, n_vars)."""

    @abc.abstractmethod
    def solve(self, time_limit_s: float | None = None) -> Solution:
        """Re-solve the current model (same contract as :meth:`Backend.solve`)."""


_FACTORIES: dict[str, Callable[[], Backend]] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Register a backend factory under ``name`` (lower case)."""
    _FACTORIES[name.lower()] = factory


def _ensure_builtin() -> None:
    # Importing the adapter modules registers them; none of them imports its
    # solver package at module level.
    from verirepair.solvers import cbc, gurobi, highs  # noqa: F401


def get_backend(name: str) -> Backend:
    """Return a fresh backend instance by name.

    Parameters
    ----------
    name : str
        ``"cbc"`` (default solver of the project), ``"highs"`` or ``"gurobi"``.

    Returns
    -------
    Backend

    Raises
    ------
    SolverUnavailableError
        For an unknown name, or a known one whose package is not installed.
    """
    _ensure_builtin()
    key = name.lower()
    if key not in _FACTORIES:
        raise SolverUnavailableError(
            f"unknown LP/MILP backend {name!r}; known backends: {', '.join(sorted(_FACTORIES))}"
        )
    backend = _FACTORIES[key]()
    if not backend.available():
        others = [n for n in list_backends(only_available=True) if n != key]
        raise SolverUnavailableError(
            f"LP/MILP backend {name!r} is not available (package missing or unlicensed); "
            f"available alternatives: {', '.join(others) or 'none'}"
        )
    return backend


def list_backends(only_available: bool = True) -> list[str]:
    """Names of the registered backends, optionally only the usable ones."""
    _ensure_builtin()
    names = sorted(_FACTORIES)
    if only_available:
        names = [n for n in names if _FACTORIES[n]().available()]
    return names
