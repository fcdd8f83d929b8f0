"""Specification of repair_layer on toy networks with hand-computed optima.

Notation: ``need = 1 + ESCAPE`` is how much ``y1 - y0`` must grow at the
counterexample x = (2, 1) (from -1 to ESCAPE = MARGIN * sqrt(2)).
"""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.network.model import random_network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.repair import RepairConfig, RepairStatus, apply_patch, repair_layer
from verirepair.solvers import list_backends
from verirepair.tolerances import MARGIN

#: Leaving the row -y0 + y1 <= 0 (norm sqrt 2) by MARGIN in Euclidean distance.
ESCAPE = MARGIN * np.sqrt(2.0)

NEED = 1.0 + ESCAPE
NO_POINTS = np.zeros((0, 2))


def _backends() -> list:
    out = []
    for name in ("cbc", "highs", "gurobi"):
        marks = [pytest.mark.gurobi] if name == "gurobi" else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.fixture(params=_backends())
def solver(request) -> str:
    if request.param not in list_backends(only_available=True):
        pytest.skip(f"{request.param} not available")
    return request.param


# Last layer of identity_net: h = (2, 1) is constant, so with a~ = (2, 1, 1)
#   y1 - y0 = -1 + (dW[1] - dW[0]) . a~  (six variables, coefficients +-2, +-1, +-1).
# L1:   the cheapest lever is a weight with |coefficient| 2: min L1 = NEED / 2.
# Linf: every variable moves by t in its helpful direction: (2+1+1) * 2 * t = NEED,
#       so min Linf = NEED / 8.
@pytest.mark.parametrize(("norm", "expected"), [("l1", NEED / 2), ("linf", NEED / 8)])
def test_last_layer_exact_lp_optimum(identity_net, y0_max_prop, cex, solver, norm, expected):
    config = RepairConfig(norm=norm, solver=solver)
    result = repair_layer(identity_net, [y0_max_prop], cex, NO_POINTS, 1, config)
    assert result.status is RepairStatus.REPAIRED
    assert result.objective == pytest.approx(expected, abs=1e-7)
    patch = result.patch
    assert (patch.l1 if norm == "l1" else patch.linf) == pytest.approx(expected, abs=1e-7)
    y = apply_patch(identity_net, patch).forward(cex)[0]
    assert y[1] - y[0] >= ESCAPE - 1e-9
    assert y0_max_prop.violation_score(y[None, :])[0] < 0
    assert result.stats.cex_fixed == 1 and result.stats.rounds >= 1
    assert result.stats.n_vars > 0 and result.stats.n_constraints > 0


def test_mix_norm_is_l1_plus_weighted_linf(identity_net, y0_max_prop, cex):
    result = repair_layer(identity_net, [y0_max_prop], cex, NO_POINTS, 1,
                          RepairConfig(norm="mix", mix_weight=2.0, solver="highs"))
    assert result.status is RepairStatus.REPAIRED
    assert result.objective == pytest.approx(result.patch.l1 + 2.0 * result.patch.linf, abs=1e-7)
    # Never better than either pure optimum allows: L1 >= NEED/2 and Linf >= NEED/8.
    assert result.patch.l1 >= NEED / 2 - 1e-7 and result.patch.linf >= NEED / 8 - 1e-7


# Hidden layer 0 of gated_net with the pattern (on, on, off) held fixed:
#   z1 - z0 must grow by NEED (h2 stays 0); a~ = (2, 1, 1) gives the lever 2, so
#   min L1 = NEED / 2, e.g. dW[1, 0] = NEED / 2 (z1 = 2 + ESCAPE... stays active).
# With the MILP encoding the off unit may switch on: raising z2 from -0.2 to t costs
# (0.2 + t) / 2 and gains 10 t, so t = NEED / 10 and min L1 = 0.1 + NEED / 20.
def test_hidden_layer_fixed_pattern_lp(gated_net, y0_max_prop, cex, solver):
    result = repair_layer(gated_net, [y0_max_prop], cex, NO_POINTS, 0,
                          RepairConfig(solver=solver))
    assert result.status is RepairStatus.REPAIRED
    assert result.objective == pytest.approx(NEED / 2, abs=1e-7)
    assert result.stats.pattern_changes == 0
    assert abs(result.patch.delta_weight[2]).max() < 1e-9  # the off unit is untouched


def test_hidden_layer_milp_beats_lp(gated_net, y0_max_prop, cex):
    lp = repair_layer(gated_net, [y0_max_prop], cex, NO_POINTS, 0, RepairConfig(solver="highs"))
    milp = repair_layer(gated_net, [y0_max_prop], cex, NO_POINTS, 0,
                        RepairConfig(solver="highs", encoding="milp"))
    assert milp.status is RepairStatus.REPAIRED
    assert milp.objective == pytest.approx(0.1 + NEED / 20, abs=1e-6)
    assert milp.objective < lp.objective - 0.3
    assert milp.stats.n_binaries >= 1
    assert milp.stats.pattern_changes == 1  # h2 switched on


def test_neuron_restriction(gated_net, y0_max_prop, cex):
    # Only the off unit may change: impossible with its pattern fixed, cheap with MILP.
    lp = repair_layer(gated_net, [y0_max_prop], cex, NO_POINTS, 0,
                      RepairConfig(solver="highs", neurons=(2,)))
    assert lp.status is RepairStatus.INFEASIBLE and lp.patch is None
    milp = repair_layer(gated_net, [y0_max_prop], cex, NO_POINTS, 0,
                        RepairConfig(solver="highs", encoding="milp", neurons=(2,)))
    assert milp.status is RepairStatus.REPAIRED
    assert milp.patch.changed_units == (2,)
    assert milp.objective == pytest.approx(0.1 + NEED / 20, abs=1e-6)


@pytest.mark.parametrize("encoding", ["lp", "milp"])
@pytest.mark.parametrize("disjunct", ["cheapest", "exact"])
def test_tiny_max_delta_is_infeasible(identity_net, y0_max_prop, cex, encoding, disjunct):
    # Six variables of at most 1e-3 move y1 - y0 by at most 6 * 2 * 1e-3 << NEED.
    config = RepairConfig(solver="highs", max_delta=1e-3, encoding=encoding, disjunct=disjunct)
    result = repair_layer(identity_net, [y0_max_prop], cex, NO_POINTS, 1, config)
    assert result.status is RepairStatus.INFEASIBLE
    assert result.patch is None and "max_delta" in result.message


def test_not_needed_when_no_counterexample_violates(identity_net, y0_max_prop):
    safe = np.array([[1.0, 2.0]])  # y = (1, 2): y0 < y1
    result = repair_layer(identity_net, [y0_max_prop], safe, NO_POINTS, 1, RepairConfig())
    assert result.status is RepairStatus.NOT_NEEDED and result.patch is None


def test_bad_layer_index_and_shapes(identity_net, y0_max_prop, cex):
    with pytest.raises(ValueError, match="layer_index"):
        repair_layer(identity_net, [y0_max_prop], cex, NO_POINTS, 2, RepairConfig())
    with pytest.raises(ValueError, match="cex_x"):
        repair_layer(identity_net, [y0_max_prop], np.zeros((1, 3)), NO_POINTS, 1, RepairConfig())
    with pytest.raises(ValueError, match="neurons"):
        repair_layer(identity_net, [y0_max_prop], cex, NO_POINTS, 1, RepairConfig(neurons=(5,)))


# ---------------------------------------------------------------- random toys
MAX_PROP = Property((Box(-np.ones(2), np.ones(2)),),
                    (HalfSpaces(np.array([[-1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]]), np.zeros(2)),),
                    "y0_is_max")


def _random_case(seed: int, n_cex: int = 4):
    net = random_network([2, 4, 3], seed=seed)
    x = np.random.default_rng(seed).uniform(-1, 1, (400, 2))
    return net, x[MAX_PROP.is_violated_by(net.forward(x))][:n_cex]


def test_exact_disjunction_beats_cheapest_choice():
    # Seed 30: four counterexamples whose individually cheapest rows conflict in layer 0.
    net, bad = _random_case(30)
    cheap = repair_layer(net, [MAX_PROP], bad, NO_POINTS, 0, RepairConfig(solver="highs"))
    exact = repair_layer(net, [MAX_PROP], bad, NO_POINTS, 0,
                         RepairConfig(solver="highs", disjunct="exact"))
    assert cheap.status is RepairStatus.REPAIRED and exact.status is RepairStatus.REPAIRED
    assert exact.stats.n_binaries == 2 * len(bad)
    assert exact.objective < cheap.objective - 0.5


@pytest.mark.parametrize("seed", [16, 19, 20])
def test_milp_never_worse_than_lp(seed):
    # With exact disjunctions both encodings choose rows freely, and the MILP only
    # drops the fixed-pattern restriction, so its optimum can only be lower.
    # ("cheapest" row choices may differ between the encodings' retries.)
    net, bad = _random_case(seed)
    lp = repair_layer(net, [MAX_PROP], bad, NO_POINTS, 0,
                      RepairConfig(solver="highs", disjunct="exact"))
    milp = repair_layer(net, [MAX_PROP], bad, NO_POINTS, 0,
                        RepairConfig(solver="highs", disjunct="exact", encoding="milp"))
    assert lp.status is RepairStatus.REPAIRED and milp.status is RepairStatus.REPAIRED
    assert milp.objective <= lp.objective + 1e-6


def test_backends_agree_on_exact_disjunction(solver):
    net, bad = _random_case(30)
    reference = repair_layer(net, [MAX_PROP], bad, NO_POINTS, 0,
                             RepairConfig(solver="highs", disjunct="exact"))
    result = repair_layer(net, [MAX_PROP], bad, NO_POINTS, 0,
                          RepairConfig(solver=solver, disjunct="exact"))
    assert result.status is RepairStatus.REPAIRED
    assert result.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("encoding", ["lp", "milp"])
def test_preservation_points_keep_their_advisory(encoding):
    net, bad = _random_case(16)
    points = np.random.default_rng(7).uniform(-1, 1, (300, 2))
    advisory = np.argmin(net.forward(points), axis=1)
    free = repair_layer(net, [MAX_PROP], bad, NO_POINTS, 1, RepairConfig(solver="highs"))
    kept_free = np.argmin(apply_patch(net, free.patch).forward(points), axis=1) == advisory
    assert not kept_free.all()  # without preservation the repair does move advisories
    config = RepairConfig(solver="highs", encoding=encoding)
    result = repair_layer(net, [MAX_PROP], bad, points, 1, config)
    assert result.status is RepairStatus.REPAIRED
    assert result.stats.preserve_agreement == 1.0
    y = apply_patch(net, result.patch).forward(points)
    assert (np.argmin(y, axis=1) == advisory).all()
    assert result.objective >= free.objective - 1e-7  # more constraints, never cheaper


def test_bounded_output_change():
    net, bad = _random_case(20)
    points = np.random.default_rng(7).uniform(-1, 1, (200, 2))
    result = repair_layer(net, [MAX_PROP], bad, points, 1,
                          RepairConfig(solver="highs", bound_output_change=0.5))
    assert result.status is RepairStatus.REPAIRED
    change = apply_patch(net, result.patch).forward(points) - net.forward(points)
    assert np.abs(change).max() <= 0.5 + 1e-6


def test_milp_repairs_where_fixed_pattern_lp_is_infeasible():
    # Seed 16, layer 0, 50 preservation points: no change keeps every pattern and
    # every advisory, but switching ReLUs (MILP) finds a repair.
    net, bad = _random_case(16)
    points = np.random.default_rng(7).uniform(-1, 1, (50, 2))
    lp = repair_layer(net, [MAX_PROP], bad, points, 0, RepairConfig(solver="highs", max_delta=1.0))
    milp = repair_layer(net, [MAX_PROP], bad, points, 0,
                        RepairConfig(solver="highs", encoding="milp", time_limit_s=60, max_delta=1.0))
    assert lp.status is RepairStatus.INFEASIBLE
    assert milp.status is RepairStatus.REPAIRED
    assert milp.stats.preserve_agreement == 1.0 and milp.stats.pattern_changes > 0


def test_unconverged_row_generation_is_reported_honestly(monkeypatch):
    # No preservation row in the first round and only one round allowed: the LP
    # solution ignores the preservation points, and the float64 check must say so.
    from verirepair.repair import lp_repair

    monkeypatch.setattr(lp_repair, "INITIAL_PRESERVE_ROWS", 0)
    net, bad = _random_case(16)
    points = np.random.default_rng(7).uniform(-1, 1, (300, 2))
    result = repair_layer(net, [MAX_PROP], bad, points, 1,
                          RepairConfig(solver="highs", max_lazy_rounds=1))
    assert result.status is RepairStatus.SOLVER_FAILED
    assert result.patch is not None and result.stats.preserve_agreement < 1.0
    assert "did not converge" in result.message
    converged = repair_layer(net, [MAX_PROP], bad, points, 1, RepairConfig(solver="highs"))
    assert converged.status is RepairStatus.REPAIRED and converged.stats.rounds >= 2


# Two copies of the same property with margins 0.01 and 0.1: the counterexample
# must leave the unsafe set by the larger one, so min L1 = (1 + 0.1 sqrt 2) / 2
# (see test_last_layer_exact_lp_optimum for the derivation).
@pytest.mark.parametrize("margins", [(0.01, 0.1), (0.1, 0.01)])
def test_property_margins_apply_per_property(identity_net, y0_max_prop, cex, margins):
    config = RepairConfig(solver="highs", property_margins=margins)
    result = repair_layer(identity_net, [y0_max_prop, y0_max_prop], cex, NO_POINTS, 1, config)
    assert result.status is RepairStatus.REPAIRED
    assert result.objective == pytest.approx((1.0 + 0.1 * np.sqrt(2.0)) / 2.0, abs=1e-7)


def test_property_margins_must_match_the_properties(identity_net, y0_max_prop, cex):
    with pytest.raises(ValueError, match="property_margins"):
        repair_layer(identity_net, [y0_max_prop], cex, NO_POINTS, 1,
                     RepairConfig(property_margins=(0.1, 0.2)))
    with pytest.raises(ValueError, match="property_margins"):
        RepairConfig(property_margins=(-1.0,))


# Only the weights from h1 (= 1 at the counterexample) and the biases may change:
# every variable then has coefficient +-1 in y1 - y0, so min L1 = NEED (twice the
# unrestricted optimum NEED / 2) and min Linf = NEED / 4 (four variables).
@pytest.mark.parametrize("encoding", ["lp", "milp"])
@pytest.mark.parametrize(("norm", "expected"), [("l1", NEED), ("linf", NEED / 4)])
def test_input_column_restriction(identity_net, y0_max_prop, cex, encoding, norm, expected):
    config = RepairConfig(solver="highs", encoding=encoding, norm=norm, inputs=(1,))
    result = repair_layer(identity_net, [y0_max_prop], cex, NO_POINTS, 1, config)
    assert result.status is RepairStatus.REPAIRED
    assert result.objective == pytest.approx(expected, abs=1e-7)
    assert np.all(result.patch.delta_weight[:, 0] == 0.0)
    assert np.any(result.patch.delta_weight[:, 1] != 0.0) or np.any(result.patch.delta_bias != 0.0)


def test_input_column_restriction_is_validated(identity_net, y0_max_prop, cex):
    with pytest.raises(ValueError, match="inputs"):
        repair_layer(identity_net, [y0_max_prop], cex, NO_POINTS, 1, RepairConfig(inputs=(5,)))
    with pytest.raises(ValueError, match="inputs"):
        RepairConfig(inputs=())
