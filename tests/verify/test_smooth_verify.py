"""Verification of smooth and leaky networks: known answers, UNKNOWN below the box width, oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verirepair.errors import UnsupportedActivationError
from verirepair.network import SIGMOID, SOFTPLUS, TANH, Activation, ActivationKind, AffineLayer, Network, random_network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.verify import Verdict, VerifyConfig, bab, lp_tighten, verify
from verirepair.verify.bounds import symbolic_bounds

ELU = Activation(ActivationKind.ELU, 1.0)
LEAKY = Activation(ActivationKind.LEAKY_RELU, 0.1)
MONOTONE = [TANH, SIGMOID, SOFTPLUS, ELU, LEAKY]


def _sum_network(activation: Activation) -> Network:
    """y = f(x0) + f(2 x1 - 0.5): nondecreasing in each input, so its maximum over a box is at the upper corner."""
    return Network((AffineLayer([[1.0, 0.0], [0.0, 2.0]], [0.0, -0.5], activation=activation),
                    AffineLayer([[1.0, 1.0]], [0.0])))


def _at_least(threshold: float, lower: list[float], upper: list[float]) -> Property:
    """Unsafe: y >= threshold over the box."""
    return Property((Box(lower, upper),), (HalfSpaces(np.array([[-1.0]]), np.array([-threshold])),))


@pytest.mark.parametrize("activation", MONOTONE, ids=lambda a: a.label)
def test_known_maximum_decides_both_ways(activation: Activation) -> None:
    net = _sum_network(activation)
    top = float(activation.apply(np.array(1.0)) + activation.apply(np.array(1.5)))  # at x = (1, 1)
    config = VerifyConfig(timeout_s=20.0)
    holds = verify(net, _at_least(top + 1e-4, [-1.0, -1.0], [1.0, 1.0]), config)
    assert holds.verdict is Verdict.HOLDS, holds.message
    violated = verify(net, _at_least(top - 1e-4, [-1.0, -1.0], [1.0, 1.0]), config)
    assert violated.verdict is Verdict.VIOLATED
    cex = violated.counterexamples[0]
    assert cex.confirmed and float(net.forward(cex.x)[0]) >= top - 1e-4


def test_unknown_below_the_minimum_box_width_never_holds(monkeypatch) -> None:
    # y = tanh(x) on [0, 1] never reaches tanh(1) + 1e-13, but no bound can show it
    # with the documented slack: the search must end UNKNOWN, not HOLDS.
    monkeypatch.setattr(bab, "MIN_BOX_WIDTH", 1e-3)
    net = Network((AffineLayer([[1.0]], [0.0], activation=TANH), AffineLayer([[1.0]], [0.0])))
    top = float(np.tanh(1.0))
    result = verify(net, _at_least(top + 1e-13, [0.0], [1.0]), VerifyConfig(timeout_s=20.0))
    assert result.verdict is Verdict.UNKNOWN, result.message
    assert "narrower than" in result.message
    # the same property with a margin the slack allows is proven
    assert verify(net, _at_least(top + 1e-6, [0.0], [1.0]), VerifyConfig(timeout_s=20.0)).verdict is Verdict.HOLDS


@pytest.mark.parametrize("activation", MONOTONE, ids=lambda a: a.label)
def test_verdicts_agree_with_dense_sampling(activation: Activation) -> None:
    """Oracle: HOLDS only where 20k samples see no violation; VIOLATED only with a confirmed point."""
    rng = np.random.default_rng(0)
    decided = 0
    for seed in range(4):
        net = random_network([3, 10, 10, 2], seed=seed, scale=2.0, activation=activation)
        box = Box(-np.ones(3) * 0.5, np.ones(3) * 0.5)
        x = box.sample(rng, 20000)
        margin = net.forward(x) @ np.array([1.0, -1.0])
        for quantile in (0.999, 1.0):
            threshold = float(np.quantile(margin, quantile)) + (0.02 if quantile == 1.0 else 0.0)
            prop = Property((box,), (HalfSpaces(np.array([[-1.0, 1.0]]), np.array([-threshold])),))
            result = verify(net, prop, VerifyConfig(timeout_s=10.0))
            seen = bool(np.any(margin >= threshold))
            if result.verdict is Verdict.HOLDS:
                assert not seen
                decided += 1
            elif result.verdict is Verdict.VIOLATED:
                assert result.counterexamples[0].confirmed
                y = net.forward(result.counterexamples[0].x)
                assert y[0] - y[1] >= threshold
                decided += 1
    assert decided >= 6                                  # the engine decides most of them


@pytest.mark.parametrize("activation", [TANH, SIGMOID, SOFTPLUS, ELU, LEAKY], ids=lambda a: a.label)
def test_falsifier_gradient_is_analytic(activation: Activation) -> None:
    from verirepair.network.torch_export import to_torch
    from verirepair.properties.property import violation_score_torch
    from verirepair.verify.falsify import _score_gradient

    net = random_network([4, 12, 12, 3], seed=2, activation=activation)
    prop = Property((Box(-np.ones(4), np.ones(4)),),
                    (HalfSpaces(np.array([[1.0, -2.0, 0.0], [0.0, 1.0, -1.0]]), np.zeros(2)),))
    x = np.random.default_rng(3).uniform(-1, 1, size=(64, 4))
    xt = torch.tensor(x, requires_grad=True)
    (grad,) = torch.autograd.grad(violation_score_torch(prop, to_torch(net)(xt)).sum(), xt)
    np.testing.assert_allclose(_score_gradient(net, prop, x), grad.numpy(), atol=1e-10)


@pytest.mark.parametrize("activation", [TANH, ELU, LEAKY], ids=lambda a: a.label)
def test_lp_tightening_is_sound_on_smooth_networks(activation: Activation) -> None:
    net = random_network([3, 8, 8, 2], seed=5, scale=2.0, activation=activation)
    lower, upper = -0.3 * np.ones(3), 0.4 * np.ones(3)
    bounds = symbolic_bounds(net, lower[None], upper[None])
    pre_l = [a[0] for a in bounds.pre_lower]
    pre_u = [a[0] for a in bounds.pre_upper]
    new_l, new_u, calls = lp_tighten.tighten_box(net, lower, upper, pre_l, pre_u)
    assert calls > 0
    x = np.random.default_rng(1).uniform(lower, upper, (20000, 3))
    acts = net.forward_all(x)
    for index in range(net.n_layers):
        pre = acts[index] @ net.layers[index].weight.T + net.layers[index].bias
        assert np.all(new_l[index] >= pre_l[index]) and np.all(new_u[index] <= pre_u[index])
        assert np.all(pre >= new_l[index]) and np.all(pre <= new_u[index])
    y = acts[-1]
    A, b = np.array([[1.0, -1.0]]), np.array([float((y[:, 0] - y[:, 1]).max())])
    result, _ = lp_tighten.polytope_margin(net, lower, upper, new_l, new_u, A, b)
    assert result.margin <= 0.0                          # the sampled maximum is reachable


def test_use_lp_search_on_a_smooth_network() -> None:
    net = _sum_network(TANH)
    top = float(np.tanh(1.0) + np.tanh(1.5))
    result = verify(net, _at_least(top + 1e-4, [-1.0, -1.0], [1.0, 1.0]), VerifyConfig(timeout_s=20.0, use_lp=True))
    assert result.verdict is Verdict.HOLDS


def test_unsupported_alpha_is_refused_with_the_layer() -> None:
    net = random_network([2, 3, 1], seed=0, activation=Activation(ActivationKind.ELU, 2.0))
    with pytest.raises(UnsupportedActivationError, match=r"ELU\(alpha=2\).*alpha must lie in \[0, 1\]"):
        symbolic_bounds(net, -np.ones((1, 2)), np.ones((1, 2)))


def test_marabou_backend_refuses_smooth_networks() -> None:
    from verirepair.verify.marabou_backend import build_query

    net = random_network([2, 3, 1], seed=0, activation=TANH)
    with pytest.raises(UnsupportedActivationError, match="ReLU networks only; layer 0 has Tanh"):
        build_query(net, Box(-np.ones(2), np.ones(2)), [HalfSpaces(np.array([[1.0]]), np.zeros(1))])
