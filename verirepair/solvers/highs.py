"""HiGHS backend through ``highspy``'s direct API (no PuLP in between).

Pipeline position: one of the backends behind
:func:`verirepair.solvers.get_backend` (name ``"highs"``).  The CSR matrix of a
:class:`~verirepair.solvers.model.LinearProblem` is handed to HiGHS as is, so
building the model costs no Python loop over constraints.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from verirepair.solvers.backend import Backend, Session
from verirepair.solvers.model import LinearProblem, Solution, SolveStatus
from verirepair.solvers.quiet import quiet_highs

if TYPE_CHECKING:  # highspy is imported lazily, by the functions that solve
    import highspy

#: LPs with at least this many rows start with the interior-point solver (plus
#: crossover to a vertex).  Measured on a 26,739-row, 237k-nonzero repair LP of
#: an ACAS Xu hidden layer: dual simplex 32 s, IPM 5.3 s, PDLP > 120 s.  Smaller
#: LPs use HiGHS's default choice; so do session re-solves unless the added rows
#: are this many and at least half as many as the rows solved before.
IPM_MIN_ROWS = 5000


def _build_lp(problem: LinearProblem) -> highspy.HighsLp:
    """Translate ``problem`` into a ``highspy.HighsLp``."""
    import highspy

    lp = highspy.HighsLp()
    lp.num_col_ = problem.n_vars
    lp.num_row_ = problem.n_constraints
    lp.col_cost_ = problem.c
    lp.col_lower_ = problem.col_lower
    lp.col_upper_ = problem.col_upper
    lp.row_lower_ = problem.row_lower
    lp.row_upper_ = problem.row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = problem.n_vars
    lp.a_matrix_.num_row_ = problem.n_constraints
    lp.a_matrix_.start_ = problem.A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = problem.A.indices.astype(np.int32)
    lp.a_matrix_.value_ = problem.A.data
    if problem.is_mip:
        kinds = [highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
                 for flag in problem.integrality]
        lp.integrality_ = kinds
    return lp


def translate_highs_status(model_status: str, has_primal: bool) -> SolveStatus:
    """Map a HiGHS model status name (e.g. ``"kOptimal"``) to :class:`SolveStatus`.

    Parameters
    ----------
    model_status : str
        Member name of ``highspy.HighsModelStatus``.
    has_primal : bool
        Whether HiGHS reports a feasible primal solution.
    """
    if model_status == "kOptimal":
        return SolveStatus.OPTIMAL
    if model_status == "kInfeasible":
        return SolveStatus.INFEASIBLE
    if model_status == "kUnbounded":
        return SolveStatus.UNBOUNDED
    if model_status in ("kTimeLimit", "kIterationLimit", "kSolutionLimit", "kInterrupt",
                        "kHighsInterrupt", "kObjectiveBound", "kObjectiveTarget", "kUnknown"):
        if has_primal:
            return SolveStatus.FEASIBLE
        return SolveStatus.TIME_LIMIT if model_status != "kUnknown" else SolveStatus.ERROR
    return SolveStatus.ERROR


class HighsBackend(Backend):
    """Solve with HiGHS (simplex / branch-and-cut) via ``highspy``."""

    name = "highs"

    def available(self) -> bool:
        try:
            import highspy  # noqa: F401
        except ImportError:
            return False
        return True

    def _run(self, problem: LinearProblem, time_limit_s: float | None) -> tuple[highspy.Highs, str]:
        solver = quiet_highs()
        if time_limit_s is not None:
            solver.setOptionValue("time_limit", float(max(time_limit_s, 1e-3)))
        if not problem.is_mip and problem.n_constraints >= IPM_MIN_ROWS:
            solver.setOptionValue("solver", "ipm")
        solver.passModel(_build_lp(problem))
        solver.run()
        return solver, solver.getModelStatus().name

    def open_session(self, problem: LinearProblem) -> Session:
        return HighsSession(self, problem)

    def solve(self, problem: LinearProblem, time_limit_s: float | None = None) -> Solution:
        start = time.perf_counter()
        try:
            solver, status_name = self._run(problem, time_limit_s)
        except Exception as exc:  # highspy raises plain RuntimeError on bad models
            return Solution(SolveStatus.ERROR, None, None, time.perf_counter() - start,
                            f"highspy failed: {exc}")
        return self._read(solver, status_name, problem, time_limit_s, start)

    def _read(self, solver: highspy.Highs, status_name: str, problem: LinearProblem,
              time_limit_s: float | None, start: float) -> Solution:
        """Translate the state of a finished ``Highs`` run into a :class:`Solution`."""
        import highspy

        info = solver.getInfo()
        has_primal = info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
        if status_name == "kModelEmpty" and problem.n_constraints == 0:
            return self._solve_bounds_only(problem, start)
        status = translate_highs_status(status_name, has_primal)
        if status_name == "kUnboundedOrInfeasible":
            status = self._infeasible_or_unbounded(problem, time_limit_s)
        x = objective = None
        if status.has_solution:
            x = np.array(solver.getSolution().col_value, dtype=np.float64)
            objective = float(problem.c @ x)
        return Solution(status, x, objective, time.perf_counter() - start, status_name)

    def _infeasible_or_unbounded(self, problem: LinearProblem,
                                 time_limit_s: float | None) -> SolveStatus:
        """Decide an ambiguous status by solving the feasibility problem (zero cost)."""
        zero = LinearProblem(np.zeros(problem.n_vars), problem.A, problem.row_lower,
                             problem.row_upper, problem.col_lower, problem.col_upper,
                             problem.integrality, problem.name)
        _, name = self._run(zero, time_limit_s)
        if name == "kOptimal":
            return SolveStatus.UNBOUNDED
        if name == "kInfeasible":
            return SolveStatus.INFEASIBLE
        return SolveStatus.ERROR

    @staticmethod
    def _solve_bounds_only(problem: LinearProblem, start: float) -> Solution:
        """A problem without rows: each variable sits at its cheaper bound."""
        lower, upper = problem.col_lower.copy(), problem.col_upper.copy()
        ints = problem.integrality
        lower[ints], upper[ints] = np.ceil(lower[ints]), np.floor(upper[ints])
        if np.any(lower > upper):
            return Solution(SolveStatus.INFEASIBLE, None, None, time.perf_counter() - start,
                            "kModelEmpty")
        x = np.where(problem.c >= 0, lower, upper)
        x = np.where(problem.c == 0, np.clip(0.0, lower, upper), x)
        if not np.all(np.isfinite(x)):
            return Solution(SolveStatus.UNBOUNDED, None, None, time.perf_counter() - start,
                            "kModelEmpty")
        return Solution(SolveStatus.OPTIMAL, x, float(problem.c @ x),
                        time.perf_counter() - start, "kModelEmpty")


class HighsSession(Session):
    """A ``Highs`` instance kept alive between solves: added rows re-solve warm.

    Parameters
    ----------
    backend : HighsBackend
    problem : LinearProblem
        The initial model; rows added later are appended to it.
    """

    def __init__(self, backend: HighsBackend, problem: LinearProblem) -> None:
        self._backend = backend
        self._problem = problem
        self._added: list[tuple[sp.csr_matrix, np.ndarray, np.ndarray]] = []
        self._solver = quiet_highs()
        self._solver.passModel(_build_lp(problem))
        self._rows_since_solve = problem.n_constraints
        self._rows_solved = 0

    def add_rows(self, rows: sp.csr_matrix, lower: np.ndarray, upper: np.ndarray) -> None:
        rows = sp.csr_matrix(rows)
        rows.resize(rows.shape[0], self._problem.n_vars)
        if rows.shape[0] == 0:
            return
        self._solver.addRows(rows.shape[0], np.asarray(lower, dtype=np.float64),
                             np.asarray(upper, dtype=np.float64), rows.nnz,
                             rows.indptr[:-1].astype(np.int32), rows.indices.astype(np.int32),
                             rows.data.astype(np.float64))
        self._added.append((rows, lower, upper))
        self._rows_since_solve += rows.shape[0]

    def _current_problem(self) -> LinearProblem:
        p = self._problem
        if not self._added:
            return p
        return LinearProblem(p.c, sp.vstack([p.A] + [a[0] for a in self._added], format="csr"),
                             np.concatenate([p.row_lower] + [a[1] for a in self._added]),
                             np.concatenate([p.row_upper] + [a[2] for a in self._added]),
                             p.col_lower, p.col_upper, p.integrality, p.name)

    def solve(self, time_limit_s: float | None = None) -> Solution:
        start = time.perf_counter()
        try:
            # HiGHS measures its time limit against the instance's cumulative run
            # time, so a warm re-solve gets the time already spent on top.
            limit = (float("inf") if time_limit_s is None
                     else self._solver.getRunTime() + float(max(time_limit_s, 1e-3)))
            self._solver.setOptionValue("time_limit", limit)
            # A big LP, or a big batch of new rows: interior point (measured on
            # ACAS Xu layer 5, L-inf: 22,825 added rows took 169 s of warm dual
            # simplex).  A few added rows: the simplex warm-starts from the basis.
            new = self._rows_since_solve
            big = (not self._problem.is_mip and new >= IPM_MIN_ROWS
                   and new >= self._rows_solved / 2)
            self._solver.setOptionValue("solver", "ipm" if big else "choose")
            self._rows_solved += new
            self._rows_since_solve = 0
            self._solver.run()
            status_name = self._solver.getModelStatus().name
        except Exception as exc:  # highspy raises plain RuntimeError on bad models
            return Solution(SolveStatus.ERROR, None, None, time.perf_counter() - start,
                            f"highspy failed: {exc}")
        # Only the ambiguous "infeasible or unbounded" status needs the full
        # current model (to re-solve it); otherwise avoid re-stacking A.
        ambiguous = status_name == "kUnboundedOrInfeasible"
        problem = self._current_problem() if ambiguous else self._problem
        return self._backend._read(self._solver, status_name, problem, time_limit_s, start)

