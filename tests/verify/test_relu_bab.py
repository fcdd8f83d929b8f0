"""Specification of activation splitting: split-constrained bounds, branching, the ReLU search.

Oracles: an exact big-M MILP (:mod:`milp_oracle`, HiGHS) over the box with the
same split constraints; random points of the box that satisfy the split signs
(they must stay inside every computed bound); finite differences for the
multipliers' gradient; hand-computable networks; and verdicts compared with the
MILP's exact maximum on random small instances.
"""

from __future__ import annotations

import numpy as np
import pytest

from milp_oracle import exact_min
from verirepair.network.activation import Activation, ActivationKind
from verirepair.network.model import AffineLayer, Network, random_network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.verify import Verdict, VerifyConfig, verify
from verirepair.verify.beta_crown import _pass, optimize_split_lower, relaxations, split_intermediate
from verirepair.verify.bounds import intermediate_bounds, with_linear_output
from verirepair.verify.branching import babsr_scores, choose_units
from verirepair.verify.relu_bab import ACTIVATION_SPLIT_MIN_INPUTS, use_activation_splitting


def _instance(seed: int, sizes: list[int] = (6, 10, 10, 3)) -> tuple[Network, np.ndarray, np.ndarray]:
    net = with_linear_output(random_network(list(sizes), seed=seed, scale=1.5))
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-1, 1, sizes[0])
    return net, centre - 0.6, centre + 0.6


def _signs_from_point(net: Network, x: np.ndarray, rng: np.random.Generator, count: int,
                      pre_l: list[np.ndarray], pre_u: list[np.ndarray]) -> list[np.ndarray]:
    """Split signs on ``count`` unstable hidden units, chosen to agree with ``x`` (so feasible)."""
    h = x[None]
    z = []
    for layer in net.layers:
        zz = h @ layer.weight.T + layer.bias
        z.append(zz[0])
        h = np.maximum(zz, 0.0) if layer.relu else zz
    signs = [np.zeros((1, layer.out_features), dtype=np.int8) for layer in net.layers]
    cand = [(j, i) for j in range(net.n_layers - 1) for i in range(net.layers[j].out_features)
            if pre_l[j][0, i] < 0 < pre_u[j][0, i]]
    for pick in rng.permutation(len(cand))[:count]:
        j, i = cand[pick]
        signs[j][0, i] = 1 if z[j][i] >= 0 else -1
    return signs


def _satisfies(net: Network, x: np.ndarray, signs: list[np.ndarray]) -> np.ndarray:
    h, ok = x, np.ones(x.shape[0], bool)
    for j, layer in enumerate(net.layers):
        z = h @ layer.weight.T + layer.bias
        s = signs[j][0]
        ok &= np.all((s == 0) | (s * z >= 0), axis=1)
        h = np.maximum(z, 0.0) if layer.relu else z
    return ok


@pytest.mark.parametrize("seed", range(5))
def test_split_bounds_are_below_the_exact_milp_minimum_and_every_sample(seed: int) -> None:
    net, lower, upper = _instance(seed)
    rng = np.random.default_rng(100 + seed)
    pre_l, pre_u = intermediate_bounds(net, lower[None], upper[None], "backward")
    x_feasible = rng.uniform(lower, upper)
    signs = _signs_from_point(net, x_feasible, rng, 4, pre_l, pre_u)
    new_l, new_u, empty = split_intermediate(net, lower[None], upper[None], pre_l, pre_u, signs, True)
    assert not empty[0]                                  # x_feasible lies in the sub-domain
    C = rng.normal(size=(3, net.n_outputs))
    res = optimize_split_lower(net, new_l, new_u, signs[:-1], C, lower[None], upper[None], steps=20)
    plain = optimize_split_lower(net, new_l, new_u, signs[:-1], C, lower[None], upper[None], steps=0)
    assert np.all(res.bound >= plain.bound - 1e-12)      # best-so-far never loses the start
    for row in range(C.shape[0]):
        exact, _ = exact_min(net, lower, upper, C[row], [s[0] for s in signs])
        assert res.bound[0, row] <= exact + 1e-7, (row, res.bound[0, row], exact)
    x = rng.uniform(lower, upper, size=(20000, lower.shape[0]))
    x = x[_satisfies(net, x, signs)]
    assert x.shape[0] > 0
    y = net.forward(x)
    assert np.all(y @ C.T >= res.bound[0] - 1e-9)
    h = x
    for j, layer in enumerate(net.layers):
        z = h @ layer.weight.T + layer.bias
        assert np.all(z >= new_l[j][0] - 1e-9) and np.all(z <= new_u[j][0] + 1e-9)
        h = np.maximum(z, 0.0) if layer.relu else z


def test_multipliers_tighten_some_split_bound() -> None:
    """beta = 0 is clamping alone; optimised multipliers must beat it somewhere (else they are dead code)."""
    gains = []
    for seed in range(6):
        net, lower, upper = _instance(seed)
        rng = np.random.default_rng(seed)
        pre_l, pre_u = intermediate_bounds(net, lower[None], upper[None], "backward")
        signs = _signs_from_point(net, rng.uniform(lower, upper), rng, 6, pre_l, pre_u)
        new_l, new_u, _ = split_intermediate(net, lower[None], upper[None], pre_l, pre_u, signs, True)
        C = rng.normal(size=(2, net.n_outputs))
        relax = relaxations(net, new_l, new_u)
        alphas = [np.repeat(r.fixed, 2, axis=1) for r in relax]
        res = optimize_split_lower(net, new_l, new_u, signs[:-1], C, lower[None], upper[None], 30,
                                   alphas=[a.copy() for a in alphas])
        no_beta = optimize_split_lower(net, new_l, new_u, signs[:-1], C, lower[None], upper[None], 0,
                                       alphas=[a.copy() for a in alphas])
        gains.append(float((res.bound - no_beta.bound).max()))
    assert max(gains) > 1e-6


def test_multiplier_gradient_matches_finite_differences() -> None:
    net, lower, upper = _instance(3)
    rng = np.random.default_rng(3)
    pre_l, pre_u = intermediate_bounds(net, lower[None], upper[None], "backward")
    signs = _signs_from_point(net, rng.uniform(lower, upper), rng, 6, pre_l, pre_u)
    new_l, new_u, _ = split_intermediate(net, lower[None], upper[None], pre_l, pre_u, signs, True)
    relax = relaxations(net, new_l, new_u)
    C = rng.normal(size=(1, 1, net.n_outputs))
    s3 = [s[:, None, :].astype(float) for s in signs[:-1]]
    alphas = [np.repeat(r.fixed, 1, axis=1) * 0.5 + 0.25 * r.unstable for r in relax]
    betas = [rng.uniform(0.1, 1.0, size=s.shape) * (s != 0) for s in s3]
    _, _, _, _, g_beta = _pass(net, relax, alphas, betas, s3, C, lower[None], upper[None], True)
    checked = 0
    for j, s in enumerate(s3):
        for i in np.flatnonzero(s[0, 0]):
            h = 1e-6
            plus = [b.copy() for b in betas]
            minus = [b.copy() for b in betas]
            plus[j][0, 0, i] += h
            minus[j][0, 0, i] -= h
            fp = _pass(net, relax, alphas, plus, s3, C, lower[None], upper[None], False)[0][0, 0]
            fm = _pass(net, relax, alphas, minus, s3, C, lower[None], upper[None], False)[0][0, 0]
            assert g_beta[j][0, 0, i] == pytest.approx((fp - fm) / (2 * h), rel=1e-4, abs=1e-6)
            checked += 1
    assert checked >= 3


def test_contradictory_split_proves_the_sub_domain_empty() -> None:
    # x in [0, 1]; z0 = x, z1 = -x - 1 <= -1 < 0: asking z1 >= 0 is impossible.
    net = Network((AffineLayer(np.array([[1.0], [-1.0]]), np.array([0.0, -1.0]), True),
                   AffineLayer(np.array([[1.0, 1.0]]), np.zeros(1), False)))
    lower, upper = np.zeros((1, 1)), np.ones((1, 1))
    pre_l, pre_u = intermediate_bounds(net, lower, upper, "backward")
    signs = [np.array([[0, 1]], dtype=np.int8), np.zeros((1, 1), dtype=np.int8)]
    _, _, empty = split_intermediate(net, lower, upper, pre_l, pre_u, signs, True)
    assert empty[0]
    signs[0][0, 1] = -1
    _, _, empty = split_intermediate(net, lower, upper, pre_l, pre_u, signs, True)
    assert not empty[0]


def test_babsr_prefers_the_unit_with_the_larger_intercept_cost() -> None:
    lam = [np.array([[[-1.0, -1.0, 2.0]]])]
    lo, hi = [np.array([[-1.0, -3.0, -1.0]])], [np.array([[1.0, 3.0, 1.0]])]
    scores = babsr_scores(lam, np.ones((1, 1)), lo, hi, [np.ones(3, bool)])[0][0]
    # intercepts: -u l / (u - l) = 0.5 and 1.5; the positive-lambda unit only gets 0.25 * 2 * 1
    assert scores == pytest.approx([0.5, 1.5, 0.5])
    stable = babsr_scores(lam, np.ones((1, 1)), [np.array([[0.0, -3.0, 1.0]])],
                          [np.array([[1.0, 3.0, 2.0]])], [np.ones(3, bool)])[0][0]
    assert stable[0] == -np.inf and stable[2] == -np.inf


def test_fsb_choice_is_an_unstable_unit_and_minus_one_without_one() -> None:
    net, lower, upper = _instance(1)
    pre_l, pre_u = intermediate_bounds(net, lower[None], upper[None], "backward")
    signs = [np.zeros_like(a, dtype=np.int8) for a in pre_l]
    C, b = np.array([[1.0, -1.0, 0.0]]), np.array([0.0])
    res = optimize_split_lower(net, pre_l, pre_u, signs[:-1], C, lower[None], upper[None], 0)
    hidden = net.n_layers - 1
    split_ok = [np.ones(layer.out_features, bool) for layer in net.layers[:-1]]
    unit = choose_units(net, pre_l, pre_u, signs, C, b, np.zeros(1, int), np.ones((1, 1), bool),
                        lower[None], upper[None], res.alphas, res.betas, res.lambdas,
                        np.zeros((1, 1), int), split_ok)
    flat_l, flat_u = np.hstack(pre_l[:hidden])[0], np.hstack(pre_u[:hidden])[0]
    assert flat_l[unit[0]] < 0 < flat_u[unit[0]]
    tiny_l = [np.maximum(a, 0.0) for a in pre_l]          # every unit stable
    res = optimize_split_lower(net, tiny_l, pre_u, signs[:-1], C, lower[None], upper[None], 0)
    unit = choose_units(net, tiny_l, pre_u, signs, C, b, np.zeros(1, int), np.ones((1, 1), bool),
                        lower[None], upper[None], res.alphas, res.betas, res.lambdas,
                        np.zeros((1, 1), int), split_ok)
    assert unit[0] == -1


TANH = Activation(ActivationKind.TANH)
LEAKY = Activation(ActivationKind.LEAKY_RELU, 0.1)


def test_rule_splits_activations_only_for_many_inputs_and_relu_networks() -> None:
    def prop(d: int) -> Property:
        return Property((Box(np.zeros(d), np.ones(d)),), (HalfSpaces(np.array([[1.0, -1.0]]), np.zeros(1)),))

    few, many = ACTIVATION_SPLIT_MIN_INPUTS - 1, ACTIVATION_SPLIT_MIN_INPUTS
    assert not use_activation_splitting(random_network([few, 8, 2]), prop(few))
    assert use_activation_splitting(random_network([many, 8, 2]), prop(many))
    assert use_activation_splitting(random_network([few, 8, 2]), prop(few), "relu")
    assert not use_activation_splitting(random_network([many, 8, 2]), prop(many), "input")
    linear = Network((AffineLayer(np.ones((2, many)), np.zeros(2), False),))
    assert not use_activation_splitting(linear, prop(many), "relu")   # nothing to split
    with pytest.raises(ValueError, match="split mode"):
        use_activation_splitting(linear, prop(many), "both")
    # beta-CROWN relaxes ReLUs only: any other activation keeps input splitting, even when forced
    for other in (TANH, LEAKY):
        smooth = random_network([many, 8, 2], activation=other)
        assert not use_activation_splitting(smooth, prop(many))
        assert not use_activation_splitting(smooth, prop(many), "relu")


def _exact_max_gap(net: Network, lower: np.ndarray, upper: np.ndarray) -> float:
    """max over the box of y_1 - y_0, by MILP."""
    value, _ = exact_min(net, lower, upper, np.array([1.0, -1.0, 0.0]))
    return -value


@pytest.mark.parametrize("seed", range(4))
def test_verdicts_agree_with_the_exact_milp(seed: int) -> None:
    """Unsafe: y_1 - y_0 >= t.  t just above the exact maximum holds; just below it is violated."""
    d = ACTIVATION_SPLIT_MIN_INPUTS + 4
    net = random_network([d, 12, 12, 3], seed=seed, scale=1.5)
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-1, 1, d)
    lower, upper = centre - 0.3, centre + 0.3
    top = _exact_max_gap(net, lower, upper)
    for t, expected in ((top + 0.02 * (1 + abs(top)), Verdict.HOLDS),
                        (top - 0.02 * (1 + abs(top)), Verdict.VIOLATED)):
        # the row reads (y_0 - y_1) <= -t, i.e. y_1 - y_0 >= t
        prop = Property((Box(lower, upper),), (HalfSpaces(np.array([[1.0, -1.0, 0.0]]), np.array([-t])),))
        result = verify(net, prop, VerifyConfig(timeout_s=10.0, falsify_samples=50, pgd_steps=5))
        assert result.verdict is expected, (t, top, result.message)
        if expected is Verdict.VIOLATED:
            cex = result.counterexamples[0]
            y = net.forward(cex.x[None])[0]
            assert y[1] - y[0] >= t and prop.in_region(cex.x[None])[0]
    assert use_activation_splitting(net, prop)


def test_relu_splitting_proves_what_input_splitting_cannot_and_never_disagrees() -> None:
    d = ACTIVATION_SPLIT_MIN_INPUTS
    verdicts, splits = {}, {}
    for seed in range(3):
        net = random_network([d, 10, 10, 3], seed=10 + seed, scale=1.5)
        centre = np.random.default_rng(seed).uniform(-1, 1, d)
        lower, upper = centre - 0.25, centre + 0.25
        top = _exact_max_gap(net, lower, upper)
        t = top + 0.01 * (1 + abs(top))
        prop = Property((Box(lower, upper),), (HalfSpaces(np.array([[1.0, -1.0, 0.0]]), np.array([-t])),))
        for engine, budget in (("own-input", 3.0), ("own-relu", 20.0)):
            result = verify(net, prop, VerifyConfig(timeout_s=budget), engine=engine)
            verdicts[(seed, engine)] = result.verdict
            splits[engine] = splits.get(engine, 0) + result.stats.splits
    assert all(verdicts[(seed, "own-relu")] is Verdict.HOLDS for seed in range(3)), verdicts
    assert all(verdicts[(seed, "own-input")] in (Verdict.HOLDS, Verdict.TIMEOUT) for seed in range(3))
    assert splits["own-relu"] > 0
