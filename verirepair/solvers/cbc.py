"""CBC backend through PuLP's bundled ``PULP_CBC_CMD`` (the project default).

Pipeline position: one of the backends behind
:func:`verirepair.solvers.get_backend` (name ``"cbc"``).  PuLP needs one Python
expression per row; they are built from the CSR arrays in one pass per row
(no per-term ``+=``), which keeps a few hundred thousand nonzeros in seconds.

Status caveat (DEPENDENCY-NOTES.md): on a time limit CBC reports LpStatus
"Optimal" for an incumbent that is not proven optimal; ``prob.sol_status == 2``
tells the difference, and :func:`translate_pulp_status` maps it to FEASIBLE.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING

import numpy as np

from verirepair.solvers.backend import Backend
from verirepair.solvers.model import LinearProblem, Solution, SolveStatus

if TYPE_CHECKING:  # PuLP is imported lazily, by the functions that solve (it has no types: Any)
    import pulp

# PuLP's numeric codes (pulp.constants), kept here so nothing else sees them.
_LP_STATUS_OPTIMAL, _LP_STATUS_NOT_SOLVED = 1, 0
_LP_STATUS_INFEASIBLE, _LP_STATUS_UNBOUNDED = -1, -2
_SOL_OPTIMAL, _SOL_INTEGER_FEASIBLE, _SOL_NO_SOLUTION = 1, 2, 0
_SOL_INFEASIBLE, _SOL_UNBOUNDED = -1, -2


def translate_pulp_status(status: int, sol_status: int) -> SolveStatus:
    """Map PuLP's ``(prob.status, prob.sol_status)`` to :class:`SolveStatus`.

    Parameters
    ----------
    status : int
        ``prob.status`` (1 optimal, 0 not solved, -1 infeasible, -2 unbounded,
        -3 undefined).
    sol_status : int
        ``prob.sol_status`` (1 optimal, 2 solution found but not proven optimal,
        0 no solution, -1 infeasible, -2 unbounded).
    """
    if sol_status == _SOL_INTEGER_FEASIBLE:
        return SolveStatus.FEASIBLE
    if status == _LP_STATUS_OPTIMAL and sol_status == _SOL_OPTIMAL:
        return SolveStatus.OPTIMAL
    if status == _LP_STATUS_INFEASIBLE or sol_status == _SOL_INFEASIBLE:
        return SolveStatus.INFEASIBLE
    if status == _LP_STATUS_UNBOUNDED or sol_status == _SOL_UNBOUNDED:
        return SolveStatus.UNBOUNDED
    if status == _LP_STATUS_NOT_SOLVED and sol_status == _SOL_NO_SOLUTION:
        return SolveStatus.TIME_LIMIT
    return SolveStatus.ERROR


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def build_pulp_problem(problem: LinearProblem) -> tuple[pulp.LpProblem, list[pulp.LpVariable]]:
    """Translate ``problem`` into a ``pulp.LpProblem``; returns it and its variables."""
    import pulp

    prob = pulp.LpProblem(problem.name.replace(" ", "_") or "problem", pulp.LpMinimize)
    variables = [
        pulp.LpVariable(f"x{j}", _finite_or_none(lo), _finite_or_none(hi),
                        pulp.LpInteger if integer else pulp.LpContinuous)
        for j, (lo, hi, integer) in enumerate(zip(problem.col_lower, problem.col_upper,
                                                  problem.integrality, strict=True))
    ]
    nz = np.flatnonzero(problem.c)
    prob.setObjective(pulp.LpAffineExpression([(variables[j], float(problem.c[j])) for j in nz]))
    A = problem.A
    for i in range(problem.n_constraints):
        cols = A.indices[A.indptr[i]:A.indptr[i + 1]]
        vals = A.data[A.indptr[i]:A.indptr[i + 1]]
        terms = [(variables[j], float(v)) for j, v in zip(cols, vals, strict=True)]
        lo, hi = problem.row_lower[i], problem.row_upper[i]
        if lo == hi:
            prob.addConstraint(pulp.LpConstraint(pulp.LpAffineExpression(terms),
                                                 pulp.LpConstraintEQ, f"r{i}", float(lo)))
            continue
        if np.isfinite(lo):
            prob.addConstraint(pulp.LpConstraint(pulp.LpAffineExpression(terms),
                                                 pulp.LpConstraintGE, f"r{i}_lo", float(lo)))
        if np.isfinite(hi):
            prob.addConstraint(pulp.LpConstraint(pulp.LpAffineExpression(terms),
                                                 pulp.LpConstraintLE, f"r{i}_hi", float(hi)))
    return prob, variables


class CbcBackend(Backend):
    """Solve with COIN-OR CBC, the binary bundled with PuLP."""

    name = "cbc"

    def available(self) -> bool:
        try:
            import pulp
        except ImportError:
            return False
        return bool(pulp.PULP_CBC_CMD(msg=False).available())

    def solve(self, problem: LinearProblem, time_limit_s: float | None = None) -> Solution:
        import pulp

        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PuLP 3.x announces its 4.0 API on every call
            prob, variables = build_pulp_problem(problem)
            limit = None if time_limit_s is None else max(1, int(np.ceil(time_limit_s)))
            try:
                prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=limit))
            except pulp.PulpSolverError as exc:
                return Solution(SolveStatus.ERROR, None, None, time.perf_counter() - start,
                                f"CBC failed: {exc}")
        status = translate_pulp_status(prob.status, prob.sol_status)
        message = f"{pulp.LpStatus.get(prob.status, prob.status)} (sol_status {prob.sol_status})"
        x = objective = None
        if status.has_solution:
            # Variables that appear in no row are dropped by PuLP (varValue None):
            # any value within their bounds is optimal only if their cost is 0,
            # which is the only way they can be absent from the objective too.
            x = np.array([np.nan if v.varValue is None else v.varValue for v in variables],
                         dtype=np.float64)
            missing = np.isnan(x)
            x[missing] = np.clip(0.0, problem.col_lower[missing], problem.col_upper[missing])
            objective = float(problem.c @ x)
        return Solution(status, x, objective, time.perf_counter() - start, message)

