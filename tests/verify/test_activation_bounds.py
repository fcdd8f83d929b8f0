"""Relaxations of smooth and leaky activations: sampled soundness, tightness, and whole-network oracles."""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.errors import UnsupportedActivationError
from verirepair.network import SIGMOID, SOFTPLUS, TANH, Activation, ActivationKind, random_network
from verirepair.verify.activation_bounds import (
    activation_interval,
    activation_relaxation,
    check_supported,
    derivative_range,
)
from verirepair.verify.alpha_crown import optimize_spec_lower
from verirepair.verify.bounds import (
    backward_lower,
    intermediate_bounds,
    interval_bounds,
    symbolic_bounds,
    with_linear_output,
)

SUPPORTED = [TANH, SIGMOID, SOFTPLUS, Activation(ActivationKind.ELU, 1.0),
             Activation(ActivationKind.ELU, 0.3), Activation(ActivationKind.ELU, 0.0),
             Activation(ActivationKind.LEAKY_RELU, 0.01), Activation(ActivationKind.LEAKY_RELU, 1.0)]
IDS = [a.label for a in SUPPORTED]
#: Intervals and points per interval of the sampled test (2 million points each).
N_INTERVALS, N_POINTS = 20_000, 100


def random_intervals(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mixed intervals: general, symmetric, one-sided (both signs), huge, widths 1e-12..1e3."""
    kind = rng.integers(0, 5, n)
    centre = rng.normal(0, 3, n) * 10 ** rng.uniform(-3, 2, n)
    width = 10 ** rng.uniform(-12, 3, n)
    lower = centre - width * rng.uniform(0, 1, n)
    upper = lower + width
    sym = kind == 1
    lower[sym], upper[sym] = -width[sym], width[sym]
    pos = kind == 2
    lower[pos] = np.abs(lower[pos])
    upper[pos] = lower[pos] + width[pos]
    neg = kind == 3
    upper[neg] = -np.abs(upper[neg])
    lower[neg] = upper[neg] - width[neg]
    huge = kind == 4
    lower[huge] = -10 ** rng.uniform(0, 7, huge.sum())
    upper[huge] = 10 ** rng.uniform(0, 7, huge.sum())
    return lower, upper


@pytest.mark.parametrize("activation", SUPPORTED, ids=IDS)
def test_relaxation_is_sound_on_two_million_points(activation: Activation) -> None:
    rng = np.random.default_rng(abs(hash(activation.label)) % 2**32)
    lower, upper = random_intervals(rng, N_INTERVALS)
    la, lc, ua, uc = activation_relaxation(activation, lower, upper)
    f_lo, f_hi = activation_interval(activation, lower, upper)
    z = lower[:, None] + (upper - lower)[:, None] * rng.uniform(0, 1, (N_INTERVALS, N_POINTS))
    z[:, 0], z[:, 1] = lower, upper                          # the endpoints, where lines touch
    z[:, 2] = np.clip(0.0, lower, upper)                      # the kink / inflection point
    f = activation.apply(z)
    assert np.all(la[:, None] * z + lc[:, None] <= f)
    assert np.all(ua[:, None] * z + uc[:, None] >= f)
    assert np.all((f_lo[:, None] <= f) & (f <= f_hi[:, None]))
    top = activation.derivative(np.array([0.0]))[0] if activation.kind in (
        ActivationKind.TANH, ActivationKind.SIGMOID) else 1.0
    assert np.all((la >= 0) & (la <= top) & (ua >= 0) & (ua <= top))     # nondecreasing lines


@pytest.mark.parametrize("activation", SUPPORTED, ids=IDS)
def test_relaxation_is_tight_on_narrow_intervals(activation: Activation) -> None:
    # On a width-1e-4 interval the two lines differ by O(width^2) for smooth f
    # (O(width) for a LeakyReLU kink): a loose but sound relaxation fails here.
    rng = np.random.default_rng(5)
    lower = rng.uniform(-5, 5, 5000)
    upper = lower + 1e-4
    la, lc, ua, uc = activation_relaxation(activation, lower, upper)
    z = np.linspace(lower, upper, 11)
    gap = (ua * z + uc) - (la * z + lc)
    kink = activation.is_piecewise_linear or activation.kind is ActivationKind.ELU
    straddle = (lower < 0) & (upper > 0)
    smooth_rows = ~straddle if kink else np.ones_like(straddle)
    assert gap[:, smooth_rows].max() < 1e-8
    assert gap.max() < 1e-4 + 1e-9


def test_crown_cases_of_tanh() -> None:
    # convex part: upper line is the chord through both end points
    la, lc, ua, uc = activation_relaxation(TANH, np.array([-2.0]), np.array([-1.0]))
    chord = np.tanh(-1.0) - np.tanh(-2.0)
    assert ua[0] == pytest.approx(chord) and ua[0] * -2.0 + uc[0] == pytest.approx(np.tanh(-2.0))
    # ... and the lower line is the tangent at the midpoint
    assert la[0] == pytest.approx(1 - np.tanh(-1.5) ** 2)
    assert la[0] * -1.5 + lc[0] == pytest.approx(np.tanh(-1.5))
    # concave part: mirror image
    la2, lc2, ua2, uc2 = activation_relaxation(TANH, np.array([1.0]), np.array([2.0]))
    assert (la2[0], ua2[0]) == pytest.approx((ua[0], la[0]))
    # mixed [-3, 3]: the upper line passes through (l, f(l)) and touches tanh at d > 0
    la3, lc3, ua3, uc3 = activation_relaxation(TANH, np.array([-3.0]), np.array([3.0]))
    assert ua3[0] * -3.0 + uc3[0] == pytest.approx(np.tanh(-3.0), abs=1e-6)
    d = np.arctanh(np.sqrt(1 - ua3[0]))
    assert 0 < d < 3 and ua3[0] * d + uc3[0] == pytest.approx(np.tanh(d), abs=1e-9)
    assert (la3[0], lc3[0]) == pytest.approx((ua3[0], -uc3[0]))          # odd symmetry


def test_interval_and_derivative_range() -> None:
    lo, hi = activation_interval(SIGMOID, np.array([-1.0]), np.array([2.0]))
    assert lo[0] < 1 / (1 + np.e) < lo[0] + 1e-11 and hi[0] > 1 / (1 + np.e ** -2)
    d_min, d_max = derivative_range(TANH, np.array([-1.0, 0.5]), np.array([2.0, 1.0]))
    np.testing.assert_allclose(d_min, [1 - np.tanh(2.0) ** 2, 1 - np.tanh(1.0) ** 2])
    np.testing.assert_allclose(d_max, [1.0, 1 - np.tanh(0.5) ** 2])


def test_unsupported_alphas_are_refused() -> None:
    for bad in (Activation(ActivationKind.ELU, 1.5), Activation(ActivationKind.LEAKY_RELU, -0.1),
                Activation(ActivationKind.LEAKY_RELU, 2.0)):
        with pytest.raises(UnsupportedActivationError, match=r"layer 2: .*alpha must lie in \[0, 1\]"):
            check_supported(bad, "layer 2")
        with pytest.raises(UnsupportedActivationError):
            activation_relaxation(bad, np.zeros(1), np.ones(1))


def _boxes(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    centre = rng.normal(0, 1, (n, d))
    radius = 10 ** rng.uniform(-3, 0.3, (n, 1)) * rng.uniform(0.1, 1, (n, d))
    return centre - radius, centre + radius


@pytest.mark.parametrize("activation", SUPPORTED[:5] + [SUPPORTED[6]], ids=IDS[:5] + [IDS[6]])
def test_network_bounds_contain_sampled_outputs(activation: Activation) -> None:
    """Soundness oracle: every sampled output lies inside every computed bound."""
    rng = np.random.default_rng(11)
    for seed in range(4):
        net = random_network([4, 12, 12, 12, 3], seed=seed, scale=2.5, activation=activation)
        lower, upper = _boxes(rng, 6, 4)
        C = rng.normal(size=(4, 3))
        x = lower[:, None, :] + (upper - lower)[:, None, :] * rng.uniform(0, 1, (6, 3000, 4))
        acts = net.forward_all(x.reshape(-1, 4))
        y = acts[-1].reshape(6, 3000, 3)
        spec = np.einsum("km,nsm->nsk", C, y)
        for bounds in (symbolic_bounds(net, lower, upper, C, intermediate="forward"),
                       symbolic_bounds(net, lower, upper, C, intermediate="backward"),
                       interval_bounds(net, lower, upper, C)):
            assert np.all(spec >= bounds.spec_lower[:, None, :])
            assert np.all(spec <= bounds.spec_upper[:, None, :])
            for index in range(net.n_layers):       # every pre-activation too
                pre = (acts[index] @ net.layers[index].weight.T + net.layers[index].bias
                       ).reshape(6, 3000, -1)
                assert np.all(pre >= bounds.pre_lower[index][:, None, :])
                assert np.all(pre <= bounds.pre_upper[index][:, None, :])
        linear = with_linear_output(net)
        pre_l, pre_u = intermediate_bounds(linear, lower, upper, "backward")
        crown, _, _ = backward_lower(linear, pre_l, pre_u, np.broadcast_to(C, (6, 4, 3)),
                                     linear.n_layers - 1, lower, upper)
        optimised, _ = optimize_spec_lower(linear, pre_l, pre_u, C, lower, upper, steps=8)
        assert np.all(optimised >= crown - 1e-9)                # CROWN, up to summation order ...
        assert np.all(spec >= optimised[:, None, :])            # ... and still sound


def test_symbolic_bounds_beat_intervals_on_smooth_networks() -> None:
    rng = np.random.default_rng(3)
    for activation in (TANH, SIGMOID, Activation(ActivationKind.ELU)):
        net = random_network([5, 20, 20, 20, 5], seed=1, activation=activation)
        lower, upper = _boxes(rng, 20, 5)
        sym = symbolic_bounds(net, lower, upper, intermediate="backward")
        ival = interval_bounds(net, lower, upper)
        width_sym = sym.output_upper - sym.output_lower
        width_ival = ival.output_upper - ival.output_lower
        assert np.all(width_sym <= width_ival + 1e-12)
        assert np.median(width_sym / width_ival) < 0.7


def test_leaky_relu_slopes_are_optimised() -> None:
    leaky = Activation(ActivationKind.LEAKY_RELU, 0.05)
    rng = np.random.default_rng(8)
    net = with_linear_output(random_network([3, 16, 16, 2], seed=4, scale=2.0, activation=leaky))
    lower, upper = _boxes(rng, 30, 3)
    pre_l, pre_u = intermediate_bounds(net, lower, upper, "backward")
    C = np.array([[1.0, -1.0], [-1.0, 1.0]])
    crown, _, _ = backward_lower(net, pre_l, pre_u, np.broadcast_to(C, (30, 2, 2)), 2, lower, upper)
    optimised, _ = optimize_spec_lower(net, pre_l, pre_u, C, lower, upper, steps=12)
    assert np.all(optimised >= crown) and np.any(optimised > crown + 1e-6)
    x = lower[:, None, :] + (upper - lower)[:, None, :] * rng.uniform(0, 1, (30, 4000, 3))
    spec = np.einsum("km,nsm->nsk", C, net.forward(x.reshape(-1, 3)).reshape(30, 4000, 2))
    assert np.all(spec >= optimised[:, None, :])
