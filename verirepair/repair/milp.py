"""The big-M MILP encoding of a layer repair (downstream ReLUs exact).

Pipeline position: called by :func:`verirepair.repair.repair_layer` when
``RepairConfig.encoding == "milp"``; meant for small sample sets.

Each encoded sample gets variables for the pre-activations ``u_j`` of the
repaired layer ``k`` and every later layer, and post-activations ``h_j``.
``u_k = pre0_k + D~ a~`` is linear in the change ``d``; ``u_j = W_j h_{j-1} + b_j``
for ``j > k``; an unstable ReLU (interval ``lo < 0 < hi``, from interval
arithmetic over ``|d| <= max_delta``) gets a binary ``delta`` with
``h >= u, h <= u - lo (1 - delta), h <= hi delta, h >= 0``.  Preservation
points are added lazily: a point enters the MILP only when the current
solution (checked by a float64 forward pass) breaks its advisory.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from verirepair.network.model import Network
from verirepair.repair.config import RepairConfig
from verirepair.repair.constraints import (
    EscapeTargets,
    add_disjunctions,
    choose_cheapest,
    output_change_family,
    preservation_family,
)
from verirepair.repair.encoding import FixedPatternModel, ProblemBuilder, RowFamily, add_norm_objective
from verirepair.repair.lp_repair import LAZY_TOL, SolveOutcome
from verirepair.repair.patch import Patch, apply_patch
from verirepair.solvers.backend import Backend
from verirepair.solvers.model import LinearProblem, SolveStatus

#: Preservation points encoded from the start (those with the smallest gap).
INITIAL_MILP_PRESERVE = 20
#: At most this many preservation points join per round.
SAMPLES_PER_ROUND = 50


def _relu_block(builder: ProblemBuilder, u_start: int, lo: np.ndarray,
                hi: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, int]:
    """Add ``h = relu(u)`` for a block of pre-activation columns; returns its bounds."""
    lo, hi = lo.ravel(), hi.ravel()
    n = lo.shape[0]
    h_start = builder.add_columns(n, np.maximum(lo, 0.0), np.maximum(hi, 0.0))
    idx = np.arange(n)
    active = np.flatnonzero(lo >= 0)
    if active.size:  # h - u = 0
        r = np.arange(active.size)
        builder.add_triplets(active.size, np.concatenate([r, r]),
                             np.concatenate([h_start + active, u_start + active]),
                             np.concatenate([np.ones(active.size), -np.ones(active.size)]),
                             np.zeros(active.size), np.zeros(active.size))
    unstable = idx[(lo < 0) & (hi > 0)]
    m = unstable.size
    if m:
        delta = builder.add_columns(m, 0.0, 1.0, integer=True)
        h, u, dl = h_start + unstable, u_start + unstable, delta + np.arange(m)
        r = np.arange(m)
        ones = np.ones(m)
        # h - u >= 0
        builder.add_triplets(m, np.concatenate([r, r]), np.concatenate([h, u]),
                             np.concatenate([ones, -ones]), np.zeros(m), np.full(m, np.inf))
        # h - u - lo * delta <= -lo
        builder.add_triplets(m, np.concatenate([r, r, r]), np.concatenate([h, u, dl]),
                             np.concatenate([ones, -ones, -lo[unstable]]),
                             np.full(m, -np.inf), -lo[unstable])
        # h - hi * delta <= 0
        builder.add_triplets(m, np.concatenate([r, r]), np.concatenate([h, dl]),
                             np.concatenate([ones, -hi[unstable]]), np.full(m, -np.inf),
                             np.zeros(m))
    return h_start, np.maximum(lo, 0.0), np.maximum(hi, 0.0), m


def _encode_network(builder: ProblemBuilder, network: Network, model: FixedPatternModel,
                    samples: np.ndarray,
                    max_delta: float) -> tuple[int, np.ndarray, np.ndarray, int]:
    """Encode layers ``k..L-1`` for ``samples``; returns (y_start, y_lo, y_hi, n_binaries)."""
    k, layout = model.k, model.layout
    n, n_aug, sel = samples.shape[0], layout.n_aug, layout.rows
    a_aug = model.a_sel[samples]
    width = layout.n_out
    radius = np.zeros((n, width))
    radius[:, sel] = max_delta * np.abs(a_aug).sum(axis=1)[:, None]
    lo, hi = model.pre0[0][samples] - radius, model.pre0[0][samples] + radius
    u_start = builder.add_columns(n * width, lo.ravel(), hi.ravel())
    # u[i, r] - sum_l a~[i, l] d[pos(r), l] = pre0[i, r]   for r in sel
    i_grid, p_grid = np.meshgrid(np.arange(n), np.arange(sel.size), indexing="ij")
    i_flat, p_flat = i_grid.ravel(), p_grid.ravel()
    row_ids = np.arange(i_flat.size)
    d_cols = (p_flat[:, None] * n_aug + np.arange(n_aug)[None, :]).ravel()
    builder.add_triplets(i_flat.size,
                         np.concatenate([row_ids, np.repeat(row_ids, n_aug)]),
                         np.concatenate([u_start + i_flat * width + sel[p_flat], d_cols]),
                         np.concatenate([np.ones(i_flat.size), -a_aug[i_flat].ravel()]),
                         model.pre0[0][samples][i_flat, sel[p_flat]],
                         model.pre0[0][samples][i_flat, sel[p_flat]])
    n_bin = 0
    post, post_lo, post_hi = u_start, lo.ravel(), hi.ravel()
    if network.layers[k].relu:
        post, post_lo, post_hi, m = _relu_block(builder, u_start, lo, hi)
        n_bin += m
    for j in range(k + 1, network.n_layers):
        layer = network.layers[j]
        w_in, w_out = layer.in_features, layer.out_features
        plo, phi = post_lo.reshape(n, w_in), post_hi.reshape(n, w_in)
        centre = (plo + phi) / 2 @ layer.weight.T + layer.bias
        rad = (phi - plo) / 2 @ np.abs(layer.weight).T
        lo, hi = centre - rad, centre + rad
        u_start = builder.add_columns(n * w_out, lo.ravel(), hi.ravel())
        # u[i, o] - sum_m W[o, m] post[i, m] = b[o]
        rows = np.arange(n * w_out)
        i_of, o_of = rows // w_out, rows % w_out
        post_cols = post + (i_of[:, None] * w_in + np.arange(w_in)[None, :])
        builder.add_triplets(rows.size,
                             np.concatenate([rows, np.repeat(rows, w_in)]),
                             np.concatenate([u_start + rows, post_cols.ravel()]),
                             np.concatenate([np.ones(rows.size), -layer.weight[o_of].ravel()]),
                             layer.bias[o_of], layer.bias[o_of])
        post, post_lo, post_hi = u_start, lo.ravel(), hi.ravel()
        if layer.relu:
            post, post_lo, post_hi, m = _relu_block(builder, u_start, lo, hi)
            n_bin += m
    n_out = network.n_outputs
    return post, post_lo.reshape(n, n_out), post_hi.reshape(n, n_out), n_bin


def _output_rows(family: RowFamily, local: np.ndarray, y_start: int,
                 n_out: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Rows of an output-layer family over the ``y`` columns of encoded samples."""
    keep = np.flatnonzero(local[family.samples] >= 0)
    r = np.repeat(np.arange(keep.size), n_out)
    cols = (y_start + local[family.samples[keep]][:, None] * n_out + np.arange(n_out)).ravel()
    matrix = sp.csr_matrix((family.c[keep].ravel(), (r, cols)),
                           shape=(keep.size, cols.max(initial=0) + 1))
    return matrix, family.lower[keep], family.upper[keep]


def _build(network: Network, model: FixedPatternModel, samples: np.ndarray,
           targets: EscapeTargets, families: list[RowFamily],
           config: RepairConfig) -> tuple[LinearProblem, int]:
    """Build the MILP for the encoded ``samples``; returns (problem, n_binaries)."""
    builder = ProblemBuilder()
    add_norm_objective(builder, model.layout.n_vars, config.norm, config.mix_weight,
                       config.max_delta)
    y_start, y_lo, y_hi, n_bin = _encode_network(builder, network, model, samples,
                                                 config.max_delta)
    n_out = network.n_outputs
    local = np.full(model.n_samples, -1)
    local[samples] = np.arange(samples.size)
    for family in families:
        rows, lower, upper = _output_rows(family, local, y_start, n_out)
        builder.add_rows(rows, lower, upper)
    if config.disjunct == "exact":
        li = local[targets.samples]
        r = np.repeat(np.arange(li.size), n_out)
        cols = (y_start + li[:, None] * n_out + np.arange(n_out)).ravel()
        rows = sp.csr_matrix((targets.A.ravel(), (r, cols)), shape=(li.size, builder.n_cols))
        lower = (np.maximum(targets.A, 0) * y_lo[li] + np.minimum(targets.A, 0) * y_hi[li]).sum(1)
        n_bin += add_disjunctions(builder, rows, np.zeros(li.size), lower, targets.rhs,
                                  targets.group)
    return builder.build(f"repair_milp_layer{model.k}"), n_bin


def _violated_samples(network: Network, model: FixedPatternModel, d: np.ndarray,
                      families: list[RowFamily], encoded: np.ndarray,
                      n_cex: int) -> np.ndarray:
    """Preservation samples (not yet encoded) whose float64 outputs break a row."""
    dw, db = model.layout.to_matrices(d)
    repaired = apply_patch(network, Patch(model.k, dw, db))
    y = repaired.forward_from(model.k - 1, model.a_aug[:, :-1])
    bad = np.zeros(model.n_samples)
    for family in families:
        values = np.einsum("rw,rw->r", family.c, y[family.samples])
        viol = np.maximum(family.lower - values, values - family.upper)
        np.maximum.at(bad, family.samples, viol)
    bad[:n_cex] = 0.0
    bad[encoded] = 0.0
    order = np.argsort(-bad)
    return order[bad[order] > LAZY_TOL][:SAMPLES_PER_ROUND]


def solve_milp_encoding(network: Network, model: FixedPatternModel, n_cex: int,
                        targets: EscapeTargets, config: RepairConfig, backend: Backend,
                        deadline: float, rule: str = "slack") -> SolveOutcome:
    """Solve the big-M repair MILP, adding preservation points lazily.

    Parameters are as for :func:`verirepair.repair.lp_repair.solve_lp_encoding`.
    """
    out_layer = network.n_layers - 1
    start = time.perf_counter()
    families: list[RowFamily] = []
    if config.disjunct == "cheapest":
        families.append(choose_cheapest(model, targets, config.norm, rule))
    preserve = np.arange(n_cex, model.n_samples)
    check: list[RowFamily] = []
    if preserve.size:
        check.append(preservation_family(model.pre0[-1], preserve, config.preserve_margin,
                                         out_layer, config.decision))
        if config.bound_output_change is not None:
            check.append(output_change_family(model.pre0[-1], preserve,
                                              config.bound_output_change, out_layer))
    y0 = np.sort(model.pre0[-1][preserve], axis=1)
    gaps = y0[:, 1] - y0[:, 0] if y0.shape[1] > 1 else np.zeros(preserve.size)
    encoded = np.concatenate([np.arange(n_cex),
                              preserve[np.argsort(gaps)[:INITIAL_MILP_PRESERVE]]])
    outcome = SolveOutcome(SolveStatus.ERROR, None, None)
    for round_index in range(1, config.max_lazy_rounds + 1):
        problem, n_bin = _build(network, model, encoded, targets, families + check, config)
        outcome.build_time_s += time.perf_counter() - start
        outcome.n_vars, outcome.n_constraints = problem.n_vars, problem.n_constraints
        outcome.n_binaries, outcome.rounds = n_bin, round_index
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            outcome.status, outcome.message = SolveStatus.TIME_LIMIT, "time budget used up"
            return outcome
        solution = backend.solve(problem, remaining)
        outcome.solve_time_s += solution.time_s
        outcome.status, outcome.message = solution.status, solution.message
        if not solution.status.has_solution or solution.x is None:
            return outcome
        outcome.d = solution.x[:model.layout.n_vars]
        outcome.objective = solution.objective
        start = time.perf_counter()
        new = _violated_samples(network, model, outcome.d, check, encoded, n_cex)
        if new.size == 0:
            outcome.build_time_s += time.perf_counter() - start
            return outcome
        encoded = np.concatenate([encoded, new])
    outcome.status = SolveStatus.FEASIBLE  # a solution, but of a relaxation
    outcome.message = f"lazy sample generation did not converge in {config.max_lazy_rounds} rounds"
    return outcome
