"""Minimal-change repair of one layer: build the LP/MILP, solve, check in float64.

Pipeline position: ``pipeline.py`` calls :func:`repair_layer` with the
counterexamples found by verification, preservation points sampled over the
input domain and the layer chosen by fault localization; the returned
:class:`~verirepair.repair.patch.Patch` is applied with
:func:`~verirepair.repair.patch.apply_patch` and the result re-verified.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Property, violating_mask
from verirepair.repair.config import RepairConfig, RepairResult, RepairStats, RepairStatus
from verirepair.repair.constraints import EscapeTargets, escape_targets
from verirepair.repair.encoding import DeltaLayout, FixedPatternModel
from verirepair.repair.lp_repair import SolveOutcome, solve_lp_encoding
from verirepair.repair.milp import solve_milp_encoding
from verirepair.repair.patch import Patch, apply_patch
from verirepair.solvers.backend import Backend
from verirepair.solvers.model import SolveStatus
from verirepair.solvers.registry import get_backend

logger = logging.getLogger(__name__)

#: A preservation point keeps its advisory when the original argmin output is
#: still within this of the smallest repaired output (ties count as kept).
ADVISORY_TIE_TOL = 1e-9


def _validate(network: Network, props: Sequence[Property], cex_x: np.ndarray,
              preserve_x: np.ndarray, layer_index: int, config: RepairConfig) -> None:
    if not 0 <= layer_index < network.n_layers:
        raise ValueError(f"layer_index {layer_index} outside 0..{network.n_layers - 1}")
    for what, arr in (("cex_x", cex_x), ("preserve_x", preserve_x)):
        if arr.ndim != 2 or arr.shape[1] != network.n_inputs:
            raise ValueError(f"{what} must have shape (n, {network.n_inputs}), got {arr.shape}")
    for prop in props:
        if prop.n_inputs != network.n_inputs or prop.n_outputs != network.n_outputs:
            raise ValueError(f"property {prop.name!r} does not match the network's shape")
    if config.property_margins is not None and len(config.property_margins) != len(props):
        raise ValueError(f"RepairConfig.property_margins has {len(config.property_margins)} "
                         f"entries for {len(props)} properties")
    width = network.layers[layer_index].out_features
    if config.neurons is not None and not all(0 <= n < width for n in config.neurons):
        raise ValueError(f"RepairConfig.neurons must lie in 0..{width - 1} for layer {layer_index}")
    fan_in = network.layers[layer_index].in_features
    if config.inputs is not None and not all(0 <= n < fan_in for n in config.inputs):
        raise ValueError(f"RepairConfig.inputs must lie in 0..{fan_in - 1} for layer {layer_index}")


def check_patch(network: Network, patch: Patch, props: Sequence[Property], cex_x: np.ndarray,
                preserve_x: np.ndarray, decision: str = "argmin") -> tuple[int, float]:
    """Float64 forward check of a patch (``decision``: the rule whose decisions are kept).

    Returns
    -------
    (cex_fixed, preserve_agreement) : (int, float)
        How many counterexamples are safe (violation score ``< 0`` for every
        property whose region contains them) and the fraction of preservation
        points whose original advisory (argmin output) is still a minimiser.
    """
    repaired = apply_patch(network, patch)
    y = repaired.forward(cex_x)
    safe = np.ones(cex_x.shape[0], dtype=bool)
    for prop in props:
        inside = prop.in_region(cex_x)
        safe &= ~inside | (prop.violation_score(y) < 0)
    agreement = 1.0
    if preserve_x.shape[0]:
        from verirepair.decision import get_decision_rule

        kept = get_decision_rule(decision).kept(network.forward(preserve_x), repaired.forward(preserve_x),
                                                ADVISORY_TIE_TOL)
        agreement = float(np.mean(kept))
    return int(np.count_nonzero(safe)), agreement


def _pattern_changes(network: Network, patch: Patch, x: np.ndarray) -> int:
    """Number of (sample, unit) ReLU states the patch flips, layers ``k`` on.

    A unit counts as flipped when its pre-activation crosses zero by more than
    ``ADVISORY_TIE_TOL`` (sign rows allow the boundary itself).
    """
    repaired = apply_patch(network, patch)
    before, after = network.forward_all(x), repaired.forward_all(x)
    changes = 0
    for j in range(patch.layer_index, network.n_layers):
        if not network.layers[j].relu:
            continue
        pre_before = before[j] @ network.layers[j].weight.T + network.layers[j].bias
        pre_after = after[j] @ repaired.layers[j].weight.T + repaired.layers[j].bias
        flipped = ((pre_before > 0) & (pre_after < -ADVISORY_TIE_TOL)) | (
            (pre_before <= 0) & (pre_after > ADVISORY_TIE_TOL))
        changes += int(np.count_nonzero(flipped))
    return changes


_SOLVE_TO_REPAIR = {SolveStatus.INFEASIBLE: RepairStatus.INFEASIBLE,
                    SolveStatus.TIME_LIMIT: RepairStatus.TIMEOUT,
                    SolveStatus.UNBOUNDED: RepairStatus.SOLVER_FAILED,
                    SolveStatus.ERROR: RepairStatus.SOLVER_FAILED}


def repair_layer(network: Network, props: Sequence[Property], cex_x: np.ndarray,
                 preserve_x: np.ndarray, layer_index: int,
                 config: RepairConfig = RepairConfig()) -> RepairResult:
    """Find a minimal change of one layer that repairs the counterexamples.

    Parameters
    ----------
    network : Network
    props : sequence of Property
        Each counterexample must leave the unsafe set of every property whose
        input region contains it.
    cex_x : array, shape (n, n_inputs)
        Counterexamples (inputs violating some property on ``network``).
    preserve_x : array, shape (m, n_inputs)
        Points that must keep their advisory (argmin output); may be empty.
    layer_index : int
        The affine layer to change.
    config : RepairConfig

    Returns
    -------
    RepairResult
        ``REPAIRED`` only if the float64 forward pass of the patched network
        makes every counterexample safe and keeps every preservation advisory.

    Raises
    ------
    ValueError
        On shape mismatches or a bad ``layer_index`` / ``neurons``.
    SolverUnavailableError
        If ``config.solver`` is not usable (or, for Gurobi, too small a licence).
    UnsupportedActivationError
        If ``layer_index`` or a later layer has an activation other than ReLU
        or the identity (see :func:`~verirepair.repair.encoding.check_fixed_pattern`).
    """
    cex_x = np.atleast_2d(np.asarray(cex_x, dtype=np.float64))
    preserve_x = np.asarray(preserve_x, dtype=np.float64).reshape(-1, network.n_inputs)
    _validate(network, props, cex_x, preserve_x, layer_index, config)
    stats = RepairStats(config.solver, "not run", n_counterexamples=cex_x.shape[0],
                        n_preserve=preserve_x.shape[0])
    bad = violating_mask(props, cex_x, network.forward(cex_x)) if cex_x.shape[0] else np.zeros(0, bool)
    if not bad.any():
        return RepairResult(RepairStatus.NOT_NEEDED, None, 0.0, stats,
                            "no counterexample violates a property whose region contains it")
    backend = get_backend(config.solver)
    deadline = time.perf_counter() + config.time_limit_s
    layer = network.layers[layer_index]
    rows = np.arange(layer.out_features) if config.neurons is None else np.array(config.neurons)
    cols = None if config.inputs is None else np.array(config.inputs)
    layout = DeltaLayout(layer_index, rows, layer.in_features, layer.out_features, cols)
    start = time.perf_counter()
    model = FixedPatternModel(network, layout, np.vstack([cex_x, preserve_x]))
    targets = escape_targets(props, cex_x, config.property_margins or config.margin)
    setup_s = time.perf_counter() - start
    outcome = _solve(network, model, cex_x.shape[0], targets, config, backend, deadline)
    return _finish(network, props, cex_x, preserve_x, layout, config, outcome, stats, setup_s)


def _solve(network: Network, model: FixedPatternModel, n_cex: int, targets: EscapeTargets,
           config: RepairConfig, backend: Backend, deadline: float) -> SolveOutcome:
    """Run the configured encoding; "cheapest" retries once with the other row rule.

    The smallest-slack rule goes first: on ACAS Xu N2,1 / prop 2 (300
    counterexamples, 5000 preservation points, layer 5) it was feasible where
    the gradient-cost rule was not, and both gave the same optimum on layer 6.
    """
    def solve(rule: str) -> SolveOutcome:
        if config.encoding == "milp":
            return solve_milp_encoding(network, model, n_cex, targets, config, backend,
                                       deadline, rule)
        return solve_lp_encoding(model, n_cex, targets, config, backend, deadline, rule)

    outcome = solve("slack")
    if outcome.status is SolveStatus.INFEASIBLE and config.disjunct == "cheapest":
        logger.info("smallest-slack row choice infeasible; retrying with the gradient-cost rule")
        retry = solve("cost")
        retry.build_time_s += outcome.build_time_s
        retry.solve_time_s += outcome.solve_time_s
        return retry
    return outcome


def _finish(network: Network, props: Sequence[Property], cex_x: np.ndarray,
            preserve_x: np.ndarray, layout: DeltaLayout, config: RepairConfig,
            outcome: SolveOutcome, stats: RepairStats, setup_s: float) -> RepairResult:
    """Turn a solver outcome into a checked :class:`RepairResult`."""
    solved = RepairStats(solver=config.solver, solver_status=outcome.status.value,
                         n_vars=outcome.n_vars, n_constraints=outcome.n_constraints,
                         n_binaries=outcome.n_binaries, build_time_s=outcome.build_time_s + setup_s,
                         solve_time_s=outcome.solve_time_s, rounds=outcome.rounds,
                         n_counterexamples=stats.n_counterexamples, n_preserve=stats.n_preserve)
    if outcome.d is None or not outcome.status.has_solution:
        status = _SOLVE_TO_REPAIR.get(outcome.status, RepairStatus.SOLVER_FAILED)
        message = {RepairStatus.INFEASIBLE: "no change within max_delta satisfies the "
                   f"{config.encoding} encoding ({outcome.message})"}.get(status, outcome.message)
        return RepairResult(status, None, None, solved, message)
    dw, db = layout.to_matrices(outcome.d)
    patch = Patch(layout.layer_index, dw, db)
    fixed, agreement = check_patch(network, patch, props, cex_x, preserve_x, config.decision)
    changes = _pattern_changes(network, patch, np.vstack([cex_x, preserve_x]))
    stats = dataclasses.replace(solved, cex_fixed=fixed, preserve_agreement=agreement,
                                pattern_changes=changes)
    proven = ("" if outcome.status is SolveStatus.OPTIMAL
              else f" (not proven minimal: {outcome.message})")
    summary = (f"{fixed}/{cex_x.shape[0]} counterexamples fixed, preservation agreement "
               f"{agreement:.4f}, L1 {patch.l1:.6g}, Linf {patch.linf:.6g}, "
               f"{patch.n_changed} parameters changed{proven}")
    # Soft preservation may give up a few preservation points by design.
    kept = agreement == 1.0 or config.preserve_penalty is not None
    if fixed == cex_x.shape[0] and kept:
        return RepairResult(RepairStatus.REPAIRED, patch, outcome.objective, stats, summary)
    reason = outcome.message or "the float64 forward check disagrees with the encoding"
    return RepairResult(RepairStatus.SOLVER_FAILED, patch, outcome.objective, stats,
                        f"patch does not pass the forward check: {summary}; {reason}")
