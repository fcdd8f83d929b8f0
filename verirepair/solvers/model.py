"""A tiny solver-neutral description of a linear (mixed-integer) program.

Pipeline position: the repair stage (:mod:`verirepair.repair`) builds a
:class:`LinearProblem`; a backend from :func:`verirepair.solvers.get_backend`
solves it and returns a :class:`Solution`.  Backend-specific status codes are
translated into :class:`SolveStatus` inside each adapter and go no further.

The problem is always a minimisation::

    minimise    c @ x
    subject to  row_lower <= A @ x <= row_upper
                col_lower <= x <= col_upper
                x[j] integer where integrality[j]

Infinite bounds are written as ``-np.inf`` / ``np.inf``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


class SolveStatus(enum.Enum):
    """Outcome of one solve, identical for every backend."""

    OPTIMAL = "optimal"
    #: A feasible solution that is not proven optimal (e.g. time limit with incumbent).
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    #: The time limit was hit before any feasible solution was found.
    TIME_LIMIT = "time_limit"
    ERROR = "error"

    @property
    def has_solution(self) -> bool:
        """Whether a solution vector accompanies this status."""
        return self in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)


def _vector(values: object, n: int, what: str) -> np.ndarray:
    out = np.array(values, dtype=np.float64, copy=True).reshape(-1)
    if out.shape[0] != n:
        raise ValueError(f"{what} must have {n} entries, got {out.shape[0]}")
    if np.any(np.isnan(out)):
        raise ValueError(f"{what} contains NaN")
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True)
class LinearProblem:
    """A minimisation LP/MILP in row-bounded form.

    Parameters
    ----------
    c : array, shape (n_vars,)
        Objective coefficients (minimised).
    A : scipy.sparse matrix, shape (n_rows, n_vars)
        Constraint matrix; stored as CSR.
    row_lower, row_upper : array, shape (n_rows,)
        Row bounds (``-inf`` / ``inf`` for one-sided rows).
    col_lower, col_upper : array, shape (n_vars,)
        Variable bounds.
    integrality : array of bool, shape (n_vars,)
        True for integer variables (binaries are integers with bounds [0, 1]).
    name : str
        A label passed to solvers that accept one.
    """

    c: np.ndarray
    A: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    integrality: np.ndarray
    name: str = "problem"

    def __post_init__(self) -> None:
        c = _vector(self.c, np.size(self.c), "c")
        n = c.shape[0]
        A = sp.csr_matrix(self.A, dtype=np.float64)
        if A.shape[1] != n:
            raise ValueError(f"A has {A.shape[1]} columns but c has {n} entries")
        A.sum_duplicates()
        A.sort_indices()
        m = A.shape[0]
        row_lower = _vector(self.row_lower, m, "row_lower")
        row_upper = _vector(self.row_upper, m, "row_upper")
        col_lower = _vector(self.col_lower, n, "col_lower")
        col_upper = _vector(self.col_upper, n, "col_upper")
        if np.any(row_lower > row_upper):
            raise ValueError("some row has lower bound above its upper bound")
        if np.any(col_lower > col_upper):
            raise ValueError("some variable has lower bound above its upper bound")
        integrality = np.array(self.integrality, dtype=bool).reshape(-1)
        if integrality.shape[0] != n:
            raise ValueError(f"integrality must have {n} entries, got {integrality.shape[0]}")
        integrality.setflags(write=False)
        for attr, value in (("c", c), ("A", A), ("row_lower", row_lower),
                            ("row_upper", row_upper), ("col_lower", col_lower),
                            ("col_upper", col_upper), ("integrality", integrality)):
            object.__setattr__(self, attr, value)

    @property
    def n_vars(self) -> int:
        """Number of variables (columns)."""
        return int(self.c.shape[0])

    @property
    def n_constraints(self) -> int:
        """Number of constraint rows."""
        return int(self.A.shape[0])

    @property
    def n_integer(self) -> int:
        """Number of integer variables."""
        return int(np.count_nonzero(self.integrality))

    @property
    def is_mip(self) -> bool:
        """Whether any variable is integer."""
        return self.n_integer > 0

    def max_violation(self, x: np.ndarray) -> float:
        """Largest violation of any row, bound or integrality by ``x`` (shape (n_vars,))."""
        x = np.asarray(x, dtype=np.float64)
        ax = self.A @ x
        parts = [np.zeros(1),
                 self.row_lower - ax, ax - self.row_upper,
                 self.col_lower - x, x - self.col_upper,
                 np.abs(x[self.integrality] - np.round(x[self.integrality]))]
        return float(max(np.max(p) if p.size else 0.0 for p in parts))


def problem_from_inequalities(c: np.ndarray, A_ub: sp.spmatrix | np.ndarray | None = None,
                              b_ub: np.ndarray | None = None,
                              A_eq: sp.spmatrix | np.ndarray | None = None,
                              b_eq: np.ndarray | None = None,
                              bounds: tuple[np.ndarray, np.ndarray] | None = None,
                              integrality: np.ndarray | None = None,
                              name: str = "problem") -> LinearProblem:
    """Build a :class:`LinearProblem` from ``A_ub x <= b_ub`` and ``A_eq x = b_eq``.

    Parameters
    ----------
    c : array, shape (n,)
    A_ub : matrix, shape (m1, n), optional
    b_ub : array, shape (m1,), optional
    A_eq : matrix, shape (m2, n), optional
    b_eq : array, shape (m2,), optional
    bounds : (lower, upper), each shape (n,), optional
        Defaults to ``x >= 0`` (as in ``scipy.optimize.linprog``).
    integrality : array of bool, shape (n,), optional

    Returns
    -------
    LinearProblem
    """
    c = np.asarray(c, dtype=np.float64).reshape(-1)
    n = c.shape[0]
    blocks, lower, upper = [], [], []
    if A_ub is not None:
        b_ub = np.asarray(b_ub, dtype=np.float64).reshape(-1)
        blocks.append(sp.csr_matrix(A_ub))
        lower.append(np.full(b_ub.shape[0], -np.inf))
        upper.append(b_ub)
    if A_eq is not None:
        b_eq = np.asarray(b_eq, dtype=np.float64).reshape(-1)
        blocks.append(sp.csr_matrix(A_eq))
        lower.append(b_eq)
        upper.append(b_eq)
    A = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, n))
    lb, ub = bounds if bounds is not None else (np.zeros(n), np.full(n, np.inf))
    ints = np.zeros(n, dtype=bool) if integrality is None else integrality
    return LinearProblem(c, A, np.concatenate(lower) if lower else np.zeros(0),
                         np.concatenate(upper) if upper else np.zeros(0),
                         np.broadcast_to(lb, (n,)), np.broadcast_to(ub, (n,)), ints, name)


@dataclass(frozen=True, slots=True)
class Solution:
    """What a backend returns.

    Parameters
    ----------
    status : SolveStatus
    x : array, shape (n_vars,), or None
        Present exactly when ``status.has_solution``.
    objective : float or None
        ``c @ x`` of the returned solution.
    time_s : float
        Wall-clock time of the solve call, seconds.
    message : str
        The backend's own status wording, for reports.
    """

    status: SolveStatus
    x: np.ndarray | None
    objective: float | None
    time_s: float
    message: str = ""
