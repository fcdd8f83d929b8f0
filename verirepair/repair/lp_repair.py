"""The fixed-activation-pattern repair LP, solved with lazy row generation.

Pipeline position: called by :func:`verirepair.repair.repair_layer` when
``RepairConfig.encoding == "lp"``.

Why lazy rows: for a hidden layer every output row of a sample is dense in the
``out * (in + 1)`` change variables (ACAS Xu: 2550), so thousands of
preservation points give tens of millions of nonzeros.  At the minimal change
almost all of those rows are slack.  We therefore solve with the counterexample
rows (and their sign rows) plus the tightest preservation rows, evaluate every
remaining row at the solution in closed form (:meth:`FixedPatternModel.linear_pre`),
add the violated ones and re-solve.  When nothing is violated, the solution is
feasible for the full LP and optimal for a relaxation of it, hence optimal.
Backends with sessions (HiGHS) keep the model between rounds and re-solve warm;
the others rebuild it.

Measured (ACAS Xu N2,1, prop 2, 300 sampled counterexamples, 5000 preservation
points, HiGHS, 2 shared cores): layer 6 (255 change variables) 0.1-0.3 s in
4-5 rounds; layer 5 (2550 variables) L1 8-20 s in 8 rounds, final LP 26,739 rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from verirepair.repair.config import RepairConfig
from verirepair.repair.constraints import (
    EscapeTargets,
    add_disjunctions,
    choose_cheapest,
    output_change_family,
    preservation_family,
)
from verirepair.repair.encoding import (
    FixedPatternModel,
    ProblemBuilder,
    RowFamily,
    add_norm_objective,
    pattern_families,
)
from verirepair.solvers.backend import Backend
from verirepair.solvers.model import LinearProblem, SolveStatus
from verirepair.tolerances import FEAS_TOL

logger = logging.getLogger(__name__)

#: A lazily-held row counts as violated when it is off by more than this
#: (ten times the solvers' primal feasibility tolerance, so rows the solver
#: already satisfies up to its own tolerance are not re-added forever).
LAZY_TOL = 10 * FEAS_TOL

#: The exact disjunct encoding's data: coefficient rows (sparse, one per disjunct row),
#: their constants and their lower bounds over the allowed change (see :func:`_exact_rows`).
ExactRows = tuple[sp.csr_matrix, np.ndarray, np.ndarray]

#: Preservation rows in the first round (the ones with the least original slack).
INITIAL_PRESERVE_ROWS = 1000
#: At most this many violated rows (the most violated) are added per round.
ROWS_PER_ROUND = 5000


@dataclass
class SolveOutcome:
    """What one encoding's solve loop found (internal to the repair stage)."""

    status: SolveStatus
    d: np.ndarray | None
    objective: float | None
    n_vars: int = 0
    n_constraints: int = 0
    n_binaries: int = 0
    build_time_s: float = 0.0
    solve_time_s: float = 0.0
    rounds: int = 0
    message: str = ""


class _RowPool:
    """Families of rows with the coefficient blocks of the rows already added."""

    def __init__(self, model: FixedPatternModel, slack: tuple[int, int] | None = None) -> None:
        self.model = model
        self.families: list[RowFamily] = []
        self.blocks: list[tuple[sp.csr_matrix, np.ndarray, np.ndarray]] = []
        # Soft preservation: (first slack column, n_cex); sample s >= n_cex owns
        # slack column first + s - n_cex.
        self.slack = slack

    def add_family(self, family: RowFamily, initial: np.ndarray | None = None) -> None:
        self.families.append(family)
        if initial is not None:
            self.add_rows(family, initial)

    def add_rows(self, family: RowFamily, idx: np.ndarray) -> None:
        idx = np.asarray(idx, dtype=np.int64)
        idx = idx[~family.added[idx]]
        if idx.size == 0:
            return
        family.added[idx] = True
        rows, const = self.model.coefficient_rows(family.samples[idx], family.layer, family.c[idx])
        if self.slack is not None:
            rows = self._with_slack(rows, family, idx, self.slack)
        self.blocks.append((rows, family.lower[idx] - const, family.upper[idx] - const))

    def _with_slack(self, rows: sp.csr_matrix, family: RowFamily, idx: np.ndarray,
                    slack: tuple[int, int]) -> sp.csr_matrix:
        """Append each preservation row's slack: ``+s`` on ``>=`` rows, ``-s`` on ``<=`` rows."""
        first, n_cex = slack
        samples = family.samples[idx]
        lower_only = np.isfinite(family.lower[idx]) & ~np.isfinite(family.upper[idx])
        upper_only = np.isfinite(family.upper[idx]) & ~np.isfinite(family.lower[idx])
        soft = (samples >= n_cex) & (lower_only | upper_only)
        width = first + self.model.n_samples - n_cex
        line = np.flatnonzero(soft)
        extra = sp.csr_matrix((np.where(lower_only[line], 1.0, -1.0),
                               (line, first + samples[line] - n_cex)), shape=(rows.shape[0], width))
        rows = sp.csr_matrix(rows)
        rows.resize(rows.shape[0], width)
        return (rows + extra).tocsr()

    def add_violated(self, d: np.ndarray) -> int:
        """Add the most violated rows not yet in the problem; returns how many."""
        pre = self.model.linear_pre(d)
        values, owners, indices = [np.zeros(0)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for f_index, family in enumerate(self.families):
            viol = family.violation(pre, self.model.k)
            idx = np.flatnonzero((viol > LAZY_TOL) & ~family.added)
            values.append(viol[idx])
            owners.append(np.full(idx.shape[0], f_index, dtype=np.int64))
            indices.append(idx)
        order = np.argsort(-np.concatenate(values), kind="stable")[:ROWS_PER_ROUND]
        owner, index = np.concatenate(owners)[order], np.concatenate(indices)[order]
        for f_index, family in enumerate(self.families):
            self.add_rows(family, index[owner == f_index])
        return int(order.shape[0])


def _initial_preserve_rows(model: FixedPatternModel, family: RowFamily) -> np.ndarray:
    """Indices of the preservation rows with the least original slack."""
    slack = family.violation(model.pre0, model.k)  # negative slack; largest = tightest
    count = min(INITIAL_PRESERVE_ROWS, slack.shape[0])
    return np.argsort(-slack)[:count]


def _exact_rows(model: FixedPatternModel, targets: EscapeTargets, max_delta: float) -> ExactRows:
    """Coefficient rows, constants and lower bounds of every disjunct (LP encoding)."""
    out_layer = model.network.n_layers - 1
    rows, const = model.coefficient_rows(targets.samples, out_layer, targets.A)
    lower = const - max_delta * np.asarray(abs(rows).sum(axis=1)).ravel()
    return rows, const, lower


def solve_lp_encoding(model: FixedPatternModel, n_cex: int, targets: EscapeTargets,
                      config: RepairConfig, backend: Backend, deadline: float,
                      rule: str = "slack") -> SolveOutcome:
    """Solve the fixed-pattern repair problem for ``model``'s samples.

    Parameters
    ----------
    model : FixedPatternModel
        Over all samples: the first ``n_cex`` are counterexamples, the rest
        preservation points.
    n_cex : int
    targets : EscapeTargets
        The counterexamples' disjunctions.
    config : RepairConfig
    backend : Backend
    deadline : float
        ``time.perf_counter()`` value by which the solver must stop.
    rule : {"slack", "cost"}
        Row-choice rule of the "cheapest" disjunct encoding (see
        :func:`~verirepair.repair.constraints.choose_cheapest`).

    Returns
    -------
    SolveOutcome
    """
    n_delta = model.layout.n_vars
    start = time.perf_counter()
    pool, exact = _make_pool(model, n_cex, targets, config, rule)
    outcome = SolveOutcome(SolveStatus.ERROR, None, None)
    outcome.build_time_s += time.perf_counter() - start
    session, n_sent = None, 0
    for round_index in range(1, config.max_lazy_rounds + 1):
        start = time.perf_counter()
        if session is None:
            problem, n_bin = _assemble(pool, model, targets, exact, config, round_index)
            session = backend.open_session(problem)
            n_sent = len(pool.blocks)
            outcome.n_vars, outcome.n_binaries = problem.n_vars, n_bin
            outcome.n_constraints = problem.n_constraints
        else:
            for rows, lower, upper in pool.blocks[n_sent:]:
                session.add_rows(rows, lower, upper)
                outcome.n_constraints += rows.shape[0]
            n_sent = len(pool.blocks)
        outcome.build_time_s += time.perf_counter() - start
        outcome.rounds = round_index
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            outcome.status, outcome.message = SolveStatus.TIME_LIMIT, "time budget used up"
            return outcome
        solution = session.solve(remaining) if session else backend.solve(problem, remaining)
        outcome.solve_time_s += solution.time_s
        outcome.status, outcome.message = solution.status, solution.message
        logger.debug("repair LP round %d (%s rule): %d rows, %s, objective %s, %.2f s",
                     round_index, rule, outcome.n_constraints, solution.status.value,
                     solution.objective, solution.time_s)
        if not solution.status.has_solution or solution.x is None:
            return outcome
        outcome.d, outcome.objective = solution.x[:n_delta], solution.objective
        start = time.perf_counter()
        added = pool.add_violated(outcome.d)
        outcome.build_time_s += time.perf_counter() - start
        if added == 0:
            return outcome
    # Still a solution (checked in float64 by the caller), but of a relaxation:
    # not proven minimal for the full problem.
    outcome.status = SolveStatus.FEASIBLE
    outcome.message = (f"lazy row generation did not converge in {config.max_lazy_rounds} rounds; "
                       "the last solution may violate preservation or pattern rows")
    return outcome


def _make_pool(model: FixedPatternModel, n_cex: int, targets: EscapeTargets,
               config: RepairConfig, rule: str) -> tuple[_RowPool, ExactRows | None]:
    """All row families, with the first round's rows added; plus exact-disjunct data."""
    out_layer = model.network.n_layers - 1
    n_all = model.n_samples
    slack = None
    if config.preserve_penalty is not None and n_cex < model.n_samples:
        slack = (_norm_columns(model.layout.n_vars, config.norm), n_cex)
    pool = _RowPool(model, slack)
    exact: ExactRows | None = None
    if config.disjunct == "cheapest":
        chosen = choose_cheapest(model, targets, config.norm, rule)
        pool.add_family(chosen, np.arange(chosen.samples.shape[0]))
    else:
        exact = _exact_rows(model, targets, config.max_delta)
    for family in pattern_families(model, np.arange(n_all)):
        pool.add_family(family, np.flatnonzero(family.samples < n_cex))
    preserve = np.arange(n_cex, n_all)
    if preserve.size:
        keep = preservation_family(model.pre0[-1], preserve, config.preserve_margin, out_layer,
                                   config.decision)
        pool.add_family(keep, _initial_preserve_rows(model, keep))
        if config.bound_output_change is not None:
            pool.add_family(output_change_family(model.pre0[-1], preserve,
                                                 config.bound_output_change, out_layer))
    return pool, exact


def _norm_columns(n_delta: int, norm: str) -> int:
    """Columns used by :func:`add_norm_objective`: ``d``, then ``t`` (L1) and ``s`` (L-inf)."""
    return n_delta + (n_delta if norm in ("l1", "mix") else 0) + (1 if norm in ("linf", "mix") else 0)


def _assemble(pool: _RowPool, model: FixedPatternModel, targets: EscapeTargets,
              exact: ExactRows | None, config: RepairConfig, round_index: int
              ) -> tuple[LinearProblem, int]:
    """Build the whole current problem; returns (problem, n_binaries)."""
    builder = ProblemBuilder()
    add_norm_objective(builder, model.layout.n_vars, config.norm, config.mix_weight,
                       config.max_delta)
    if pool.slack is not None:
        assert config.preserve_penalty is not None, "slack columns exist only for soft preservation"
        first = builder.add_columns(model.n_samples - pool.slack[1], 0.0, np.inf,
                                    cost=config.preserve_penalty)
        if first != pool.slack[0]:
            raise ValueError("slack columns must follow the norm's columns")
    for rows, lower, upper in pool.blocks:
        builder.add_rows(rows, lower, upper)
    n_bin = 0
    if exact is not None:
        n_bin = add_disjunctions(builder, exact[0], exact[1], exact[2], targets.rhs, targets.group)
    return builder.build(f"repair_layer{model.k}_round{round_index}"), n_bin
