"""Gurobi backend (optional; ``gurobipy`` is imported only inside this adapter).

Pipeline position: one of the backends behind
:func:`verirepair.solvers.get_backend` (name ``"gurobi"``).

Licensing: without a licence file gurobipy runs a size-limited licence
(2000 variables, 2000 linear constraints); larger models raise ``GurobiError``
10010, an expired licence 10009.  Both become :class:`SolverUnavailableError`
with a message that names the free alternatives.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from verirepair.errors import SolverUnavailableError
from verirepair.solvers.backend import Backend
from verirepair.solvers.model import LinearProblem, Solution, SolveStatus

if TYPE_CHECKING:  # gurobipy is optional and imported only inside this adapter's methods
    import gurobipy

#: Gurobi error numbers that mean "this licence cannot solve this model".
_LICENCE_ERRORS = {10009: "the Gurobi licence is expired or invalid",
                   10010: "the model exceeds the size limit of the Gurobi licence "
                          "(2000 variables / 2000 constraints without a licence file)"}

# Gurobi optimisation status codes (GRB.Status).
_OPTIMAL, _INFEASIBLE, _INF_OR_UNBD, _UNBOUNDED = 2, 3, 4, 5
_LIMIT_CODES = {7, 8, 9, 10, 11, 13, 16, 17}  # iteration/node/time/solution limits, suboptimal...


def translate_gurobi_status(code: int, sol_count: int) -> SolveStatus:
    """Map a Gurobi status code (``model.Status``) and ``model.SolCount``."""
    if code == _OPTIMAL:
        return SolveStatus.OPTIMAL
    if code == _INFEASIBLE:
        return SolveStatus.INFEASIBLE
    if code == _UNBOUNDED:
        return SolveStatus.UNBOUNDED
    if code in _LIMIT_CODES:
        return SolveStatus.FEASIBLE if sol_count > 0 else SolveStatus.TIME_LIMIT
    return SolveStatus.ERROR


def licence_error(exc: Exception) -> SolverUnavailableError | None:
    """Translate a licence-related ``GurobiError`` into a helpful error, else None."""
    errno = getattr(exc, "errno", None)
    if errno not in _LICENCE_ERRORS:
        return None
    return SolverUnavailableError(
        f"Gurobi cannot solve this problem: {_LICENCE_ERRORS[errno]} (GurobiError {errno}). "
        "Use solver 'highs' (fast, free) or 'cbc' (PuLP's bundled CBC) instead."
    )


class GurobiBackend(Backend):
    """Solve with Gurobi through ``gurobipy``'s matrix API."""

    name = "gurobi"

    def available(self) -> bool:
        try:
            import gurobipy
        except ImportError:
            return False
        try:
            with gurobipy.Env(empty=True) as env:
                env.setParam("OutputFlag", 0)
                env.start()
        except gurobipy.GurobiError:
            return False
        return True

    def solve(self, problem: LinearProblem, time_limit_s: float | None = None) -> Solution:
        import gurobipy

        start = time.perf_counter()
        try:
            with gurobipy.Env(empty=True) as env:
                env.setParam("OutputFlag", 0)
                env.start()
                with gurobipy.Model(problem.name, env=env) as model:
                    return self._solve_in(model, problem, time_limit_s, start)
        except gurobipy.GurobiError as exc:
            translated = licence_error(exc)
            if translated is not None:
                raise translated from None
            return Solution(SolveStatus.ERROR, None, None, time.perf_counter() - start,
                            f"GurobiError {getattr(exc, 'errno', '?')}: {exc}")

    @staticmethod
    def _solve_in(model: gurobipy.Model, problem: LinearProblem, time_limit_s: float | None,
                  start: float) -> Solution:
        import gurobipy

        if time_limit_s is not None:
            model.Params.TimeLimit = float(max(time_limit_s, 1e-3))
        vtype = np.where(problem.integrality, gurobipy.GRB.INTEGER, gurobipy.GRB.CONTINUOUS)
        x = model.addMVar(problem.n_vars, lb=problem.col_lower, ub=problem.col_upper,
                          vtype=vtype)
        model.setObjective(problem.c @ x, gurobipy.GRB.MINIMIZE)
        lo, hi = problem.row_lower, problem.row_upper
        eq = lo == hi
        for mask, sense, rhs in ((eq, "=", lo), (~eq & np.isfinite(hi), "<", hi),
                                 (~eq & np.isfinite(lo), ">", lo)):
            rows = np.flatnonzero(mask)
            if rows.size:
                model.addMConstr(problem.A[rows], x, sense, rhs[rows])
        model.optimize()
        if model.Status == _INF_OR_UNBD:
            model.Params.DualReductions = 0  # lets Gurobi tell the two apart
            model.optimize()
        status = translate_gurobi_status(model.Status, model.SolCount)
        values = objective = None
        if status.has_solution:
            values = np.array(x.X, dtype=np.float64)
            objective = float(problem.c @ values)
        return Solution(status, values, objective, time.perf_counter() - start,
                        f"gurobi status {model.Status}")

