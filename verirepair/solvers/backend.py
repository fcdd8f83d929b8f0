"""The interface every LP/MILP backend implements (:class:`Backend`, :class:`Session`).

Pipeline position: the adapters (:mod:`.cbc`, :mod:`.highs`, :mod:`.gurobi`)
subclass these; :mod:`.registry` hands them out by name.
"""

from __future__ import annotations

import abc

import numpy as np
import scipy.sparse as sp

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
