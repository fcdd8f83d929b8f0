"""Specification of the LP/MILP backends: hand-known optima on every backend,
infeasible/unbounded detection and status translation at the boundary."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from verirepair.errors import SolverUnavailableError
from verirepair.solvers import LinearProblem, SolveStatus, get_backend, list_backends, problem_from_inequalities
from verirepair.solvers.cbc import translate_pulp_status
from verirepair.solvers.gurobi import licence_error, translate_gurobi_status
from verirepair.solvers.highs import translate_highs_status


def _backend_params() -> list:
    params = []
    for name in ("cbc", "highs", "gurobi"):
        marks = [pytest.mark.gurobi] if name == "gurobi" else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=_backend_params())
def backend(request):
    name = request.param
    if name not in list_backends(only_available=True):
        pytest.skip(f"backend {name} not available")
    return get_backend(name)


# max x + y  s.t.  x + 2y <= 4,  3x + y <= 6,  x, y >= 0.
# The two rows intersect at (1.6, 1.2), value 2.8 (a vertex, the LP optimum).
# With x, y integer: candidates (2,0),(1,1),(0,2) all give 2; (2,1) violates 3x+y<=6
# (7 > 6) and (1,2) violates x+2y<=4 (5 > 4), so the MILP optimum is 2.
LP_TOY = problem_from_inequalities([-1.0, -1.0], [[1, 2], [3, 1]], [4, 6])
MILP_TOY = problem_from_inequalities([-1.0, -1.0], [[1, 2], [3, 1]], [4, 6],
                                     integrality=[True, True])


def test_lp_optimum(backend):
    sol = backend.solve(LP_TOY, time_limit_s=30)
    assert sol.status is SolveStatus.OPTIMAL
    np.testing.assert_allclose(sol.x, [1.6, 1.2], atol=1e-7)
    assert sol.objective == pytest.approx(-2.8, abs=1e-7)
    assert sol.time_s >= 0


def test_milp_optimum(backend):
    sol = backend.solve(MILP_TOY, time_limit_s=30)
    assert sol.status is SolveStatus.OPTIMAL
    assert sol.objective == pytest.approx(-2.0, abs=1e-7)
    np.testing.assert_allclose(sol.x, np.round(sol.x), atol=1e-6)
    assert MILP_TOY.max_violation(sol.x) <= 1e-6


def test_equality_and_ranged_rows(backend):
    # min x0 + 2 x1 + 3 x2  s.t.  x0 + x1 + x2 = 1,  0.25 <= x1 <= 0.5 (as a ranged row),
    # x >= 0: put as much weight as allowed on the cheapest x0 -> x = (0.75, 0.25, 0), value 1.25.
    A = sp.csr_matrix(np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]))
    prob = LinearProblem(np.array([1.0, 2.0, 3.0]), A, np.array([1.0, 0.25]),
                         np.array([1.0, 0.5]), np.zeros(3), np.full(3, np.inf),
                         np.zeros(3, dtype=bool))
    sol = backend.solve(prob, time_limit_s=30)
    assert sol.status is SolveStatus.OPTIMAL
    np.testing.assert_allclose(sol.x, [0.75, 0.25, 0.0], atol=1e-7)
    assert sol.objective == pytest.approx(1.25, abs=1e-7)


def test_free_variable_without_rows(backend):
    # x1 appears nowhere (cost 0) but has bounds [2, 3]: the solution must respect them.
    A = sp.csr_matrix(np.array([[1.0, 0.0]]))
    prob = LinearProblem(np.array([1.0, 0.0]), A, np.array([1.0]), np.array([np.inf]),
                         np.array([-np.inf, 2.0]), np.array([np.inf, 3.0]),
                         np.zeros(2, dtype=bool))
    sol = backend.solve(prob, time_limit_s=30)
    assert sol.status is SolveStatus.OPTIMAL
    assert sol.x[0] == pytest.approx(1.0, abs=1e-7)
    assert 2.0 - 1e-9 <= sol.x[1] <= 3.0 + 1e-9


def test_infeasible(backend):
    # x + y <= -1 with x, y >= 0 has no solution.
    sol = backend.solve(problem_from_inequalities([1.0, 1.0], [[1, 1]], [-1]), time_limit_s=30)
    assert sol.status is SolveStatus.INFEASIBLE
    assert sol.x is None and sol.objective is None


def test_infeasible_milp(backend):
    # 2x = 1 with x integer.
    prob = problem_from_inequalities([1.0], A_eq=[[2.0]], b_eq=[1.0], integrality=[True])
    assert backend.solve(prob, time_limit_s=30).status is SolveStatus.INFEASIBLE


def test_unbounded(backend):
    # min -x with x >= 0 and only y <= 1 constrained.
    sol = backend.solve(problem_from_inequalities([-1.0, 0.0], [[0, 1]], [1]), time_limit_s=30)
    assert sol.status is SolveStatus.UNBOUNDED
    assert sol.x is None


def test_unknown_backend_names_alternatives():
    with pytest.raises(SolverUnavailableError, match="known backends: cbc, gurobi, highs"):
        get_backend("cplex")


def test_list_backends_contains_the_free_ones():
    assert {"cbc", "highs"} <= set(list_backends(only_available=True))
    assert set(list_backends(only_available=False)) == {"cbc", "gurobi", "highs"}


@pytest.mark.parametrize(("status", "sol_status", "expected"), [
    (1, 1, SolveStatus.OPTIMAL),
    # CBC stopped by its time limit with an incumbent: PuLP says "Optimal" (1) but
    # sol_status 2 ("integer feasible") -- it must not be reported as optimal.
    (1, 2, SolveStatus.FEASIBLE),
    (0, 2, SolveStatus.FEASIBLE),
    (0, 0, SolveStatus.TIME_LIMIT),
    (-1, -1, SolveStatus.INFEASIBLE),
    (-2, -2, SolveStatus.UNBOUNDED),
    (-3, 0, SolveStatus.ERROR),
])
def test_pulp_status_translation(status, sol_status, expected):
    assert translate_pulp_status(status, sol_status) is expected


def test_cbc_time_limit_with_incumbent_is_not_optimal(monkeypatch):
    """A mocked CBC run that ends like a time-limited one (status 1, sol_status 2)."""
    import pulp

    def fake_solve(self, solver=None, **kwargs):
        for var in self.variables():
            var.varValue = 0.0
        self.status, self.sol_status = 1, 2
        return 1

    monkeypatch.setattr(pulp.LpProblem, "solve", fake_solve)
    sol = get_backend("cbc").solve(MILP_TOY, time_limit_s=1)
    assert sol.status is SolveStatus.FEASIBLE
    np.testing.assert_array_equal(sol.x, [0.0, 0.0])


@pytest.mark.parametrize(("name", "has_primal", "expected"), [
    ("kOptimal", True, SolveStatus.OPTIMAL),
    ("kInfeasible", False, SolveStatus.INFEASIBLE),
    ("kUnbounded", False, SolveStatus.UNBOUNDED),
    ("kTimeLimit", True, SolveStatus.FEASIBLE),
    ("kTimeLimit", False, SolveStatus.TIME_LIMIT),
    ("kSolveError", False, SolveStatus.ERROR),
])
def test_highs_status_translation(name, has_primal, expected):
    assert translate_highs_status(name, has_primal) is expected


@pytest.mark.parametrize(("code", "sol_count", "expected"), [
    (2, 1, SolveStatus.OPTIMAL), (3, 0, SolveStatus.INFEASIBLE), (5, 0, SolveStatus.UNBOUNDED),
    (9, 1, SolveStatus.FEASIBLE), (9, 0, SolveStatus.TIME_LIMIT), (12, 0, SolveStatus.ERROR),
])
def test_gurobi_status_translation(code, sol_count, expected):
    assert translate_gurobi_status(code, sol_count) is expected


def test_gurobi_licence_errors_are_translated():
    class FakeGurobiError(Exception):
        def __init__(self, errno):
            super().__init__("licence")
            self.errno = errno

    for errno in (10009, 10010):
        err = licence_error(FakeGurobiError(errno))
        assert isinstance(err, SolverUnavailableError)
        assert "highs" in str(err) and "cbc" in str(err) and str(errno) in str(err)
    assert licence_error(FakeGurobiError(10005)) is None


def _knapsack(n: int, seed: int = 0) -> LinearProblem:
    rng = np.random.default_rng(seed)
    weights = rng.integers(10, 100, size=n).astype(float)
    values = weights + rng.integers(0, 10, size=n)
    return problem_from_inequalities(-values, weights[None, :], [weights.sum() / 2],
                                     bounds=(np.zeros(n), np.ones(n)),
                                     integrality=np.ones(n, dtype=bool))


@pytest.mark.parametrize("backend_name", ["cbc", "highs"])
def test_time_limited_milp_is_optimal_or_feasible(backend_name):
    prob = _knapsack(200)
    sol = get_backend(backend_name).solve(prob, time_limit_s=1)
    assert sol.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)
    assert prob.max_violation(sol.x) <= 1e-6


@pytest.mark.gurobi
def test_gurobi_size_limit_is_a_clear_error_or_a_solution():
    if "gurobi" not in list_backends(only_available=True):
        pytest.skip("gurobi not available")
    n = 2100  # beyond the 2000-variable limit of the licence-free gurobipy
    prob = problem_from_inequalities(np.ones(n), -np.eye(n)[:1], [-1.0],
                                     bounds=(np.zeros(n), np.ones(n)))
    try:
        sol = get_backend("gurobi").solve(prob, time_limit_s=30)
    except SolverUnavailableError as exc:
        assert "size limit" in str(exc) and "highs" in str(exc)
    else:  # a full licence: then the answer must be right (x0 = 1, others 0)
        assert sol.status is SolveStatus.OPTIMAL
        assert sol.objective == pytest.approx(1.0)


def test_highs_session_adds_rows_and_resolves_warm():
    backend = get_backend("highs")
    session = backend.open_session(LP_TOY)
    first = session.solve(30)
    assert first.status is SolveStatus.OPTIMAL and first.objective == pytest.approx(-2.8)
    # Adding x <= 1 moves the optimum to (1, 1.5): x + 2y <= 4 gives y <= 1.5; value 2.5.
    session.add_rows(sp.csr_matrix(np.array([[1.0, 0.0]])), np.array([-np.inf]), np.array([1.0]))
    second = session.solve(30)
    assert second.status is SolveStatus.OPTIMAL
    np.testing.assert_allclose(second.x, [1.0, 1.5], atol=1e-7)
    # A contradicting row (x + y >= 10) makes it infeasible.
    session.add_rows(sp.csr_matrix(np.array([[1.0, 1.0]])), np.array([10.0]), np.array([np.inf]))
    assert session.solve(30).status is SolveStatus.INFEASIBLE


def test_backends_without_sessions_return_none():
    assert get_backend("cbc").open_session(LP_TOY) is None


def test_problem_without_rows(backend):
    # min x0 - x1 with x0 in [1.5, 4] integer, x1 in [0, 2.5]: x = (2, 2.5), value -0.5.
    prob = LinearProblem(np.array([1.0, -1.0]), sp.csr_matrix((0, 2)), np.zeros(0), np.zeros(0),
                         np.array([1.5, 0.0]), np.array([4.0, 2.5]), np.array([True, False]))
    sol = backend.solve(prob, time_limit_s=30)
    assert sol.status is SolveStatus.OPTIMAL
    np.testing.assert_allclose(sol.x, [2.0, 2.5], atol=1e-7)


def test_highs_session_time_limit_is_per_solve():
    """A warm re-solve gets its own budget, not what is left after the first solve.

    HiGHS compares its time limit with the instance's cumulative run time; the
    first solve below takes longer than the second budget, so without the
    adjustment the (instant, warm) second solve would stop at the time limit.
    """
    rng = np.random.default_rng(0)
    n = 500
    prob = problem_from_inequalities(-np.ones(n), rng.uniform(0, 1, (n, n)), np.ones(n))
    session = get_backend("highs").open_session(prob)
    first = session.solve(60)
    assert first.status is SolveStatus.OPTIMAL
    # Less than the first solve took (so the cumulative clock alone would stop
    # the second solve at once), far more than a warm re-solve after one cut needs.
    budget = first.time_s / 2
    # Cut off the current optimum a little: a few warm dual simplex iterations.
    cut = sp.csr_matrix(np.ones((1, n)))
    session.add_rows(cut, np.array([-np.inf]), np.array([cut @ first.x - 1e-3]).ravel())
    second = session.solve(budget)
    assert second.status is SolveStatus.OPTIMAL
    assert second.objective > first.objective


def test_linear_problem_validates_shapes_and_bounds():
    A = sp.csr_matrix(np.ones((1, 2)))
    ok = dict(c=np.ones(2), A=A, row_lower=np.zeros(1), row_upper=np.ones(1),
              col_lower=np.zeros(2), col_upper=np.ones(2), integrality=np.zeros(2, bool))
    assert LinearProblem(**ok).n_constraints == 1
    with pytest.raises(ValueError, match="columns"):
        LinearProblem(**{**ok, "A": sp.csr_matrix(np.ones((1, 3)))})
    with pytest.raises(ValueError, match="row_upper"):
        LinearProblem(**{**ok, "row_upper": np.ones(2)})
    with pytest.raises(ValueError, match="lower bound above"):
        LinearProblem(**{**ok, "col_lower": np.full(2, 2.0)})
    with pytest.raises(ValueError, match="NaN"):
        LinearProblem(**{**ok, "c": np.array([np.nan, 1.0])})
    assert LinearProblem(**ok).max_violation(np.array([0.5, 0.5])) == 0.0
    assert LinearProblem(**ok).max_violation(np.array([1.0, 1.0])) == pytest.approx(1.0)
