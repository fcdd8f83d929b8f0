"""Specification of verirepair.verify.bounds and lp_tighten: every bound is sound.

Oracles: hand-computed bounds on a toy network, and sampled outputs that must
lie inside interval, symbolic (forward and backward) and LP-tightened bounds on
random networks; symbolic bounds are never looser than interval bounds.
"""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.network.model import AffineLayer, Network, random_network
from verirepair.tolerances import BOUND_TOL
from verirepair.verify.bounds import (
    interval_bounds,
    relu_relaxation,
    symbolic_bounds,
)
from verirepair.verify.lp_tighten import polytope_margin, tighten_box

MODES = ("forward", "backward")


def _toy() -> Network:
    """y = relu(x) + relu(-x) = |x| on one input, as two hidden units."""
    return Network((AffineLayer([[1.0], [-1.0]], [0.0, 0.0], True),
                    AffineLayer([[1.0, 1.0]], [0.0], False)), "abs")


def _random_boxes(rng: np.random.Generator, n: int, d: int, scale: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    centre = rng.uniform(-1.0, 1.0, size=(n, d))
    radius = rng.uniform(0.0, scale, size=(n, d))
    return centre - radius, centre + radius


def _samples(rng: np.random.Generator, lower: np.ndarray, upper: np.ndarray, per_box: int
             ) -> np.ndarray:
    """(n, per_box, d) points inside each box, corners included."""
    n, d = lower.shape
    u = rng.uniform(size=(n, per_box, d))
    u[:, : per_box // 4] = np.round(u[:, : per_box // 4])      # some corners
    return lower[:, None, :] + (upper - lower)[:, None, :] * u


def test_toy_interval_and_symbolic_bounds_by_hand() -> None:
    net = _toy()
    lower, upper = np.array([[-1.0]]), np.array([[2.0]])
    ib = interval_bounds(net, lower, upper)
    np.testing.assert_allclose(ib.pre_lower[0], [[-1.0, -2.0]])
    np.testing.assert_allclose(ib.pre_upper[0], [[2.0, 1.0]])
    np.testing.assert_allclose(ib.output_lower, [[0.0]])
    np.testing.assert_allclose(ib.output_upper, [[3.0]])
    sb = symbolic_bounds(net, lower, upper, C=np.array([[1.0]]), intermediate="backward")
    # Triangle upper edges: h1 <= 2/3 (x + 1), h2 <= 1/3 (2 - x); the sum is
    # (x + 4)/3 <= 2 at x = 2.  The lower slopes are 1 (h1: u=2 > 1) and 0 (h2),
    # so y >= x >= -1, intersected with the interval bound 0.
    np.testing.assert_allclose(sb.spec_upper, [[2.0]])
    np.testing.assert_allclose(sb.spec_lower, [[0.0]])


def test_relu_relaxation_cases() -> None:
    alpha, s, t = relu_relaxation(np.array([[1.0, -3.0, -1.0, -2.0]]),
                                  np.array([[2.0, -1.0, 3.0, 1.0]]))
    np.testing.assert_allclose(alpha, [[1.0, 0.0, 1.0, 0.0]])
    np.testing.assert_allclose(s, [[1.0, 0.0, 0.75, 1.0 / 3.0]])
    np.testing.assert_allclose(t, [[0.0, 0.0, 0.75, 2.0 / 3.0]])


@pytest.mark.parametrize("seed", range(8))
def test_sampled_outputs_inside_all_bounds(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(2, 6))] + [int(rng.integers(4, 12)) for _ in range(3)] + [3]
    net = random_network(sizes, seed=seed)
    lower, upper = _random_boxes(rng, 16, sizes[0], scale=0.8)
    C = rng.normal(size=(4, 3))
    x = _samples(rng, lower, upper, 64)
    acts = net.forward_all(x.reshape(-1, sizes[0]))
    pre = [a @ layer.weight.T + layer.bias for a, layer in zip(acts[:-1], net.layers, strict=True)]
    cy = (acts[-1] @ C.T).reshape(16, 64, 4)
    results = [interval_bounds(net, lower, upper, C)]
    results += [symbolic_bounds(net, lower, upper, C, intermediate=m) for m in MODES]
    for res in results:
        for index, z in enumerate(pre):
            z = z.reshape(16, 64, -1)
            assert np.all(z >= res.pre_lower[index][:, None, :] - BOUND_TOL)
            assert np.all(z <= res.pre_upper[index][:, None, :] + BOUND_TOL)
        assert np.all(cy >= res.spec_lower[:, None, :] - BOUND_TOL)
        assert np.all(cy <= res.spec_upper[:, None, :] + BOUND_TOL)
    for res in results[1:]:   # the linear lower bound itself holds pointwise
        lin = np.einsum("nkd,nsd->nsk", res.spec_coef, x) + res.spec_const[:, None, :]
        assert np.all(cy >= lin - BOUND_TOL)


@pytest.mark.parametrize("seed", range(6))
def test_symbolic_never_looser_than_interval(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    net = random_network([4, 10, 10, 10, 2], seed=seed)
    lower, upper = _random_boxes(rng, 32, 4, scale=0.6)
    C = rng.normal(size=(3, 2))
    ib = interval_bounds(net, lower, upper, C)
    forward = symbolic_bounds(net, lower, upper, C, intermediate="forward")
    backward = symbolic_bounds(net, lower, upper, C, intermediate="backward")
    for sb in (forward, backward):
        for index in range(net.n_layers):
            assert np.all(sb.pre_lower[index] >= ib.pre_lower[index] - 1e-12)
            assert np.all(sb.pre_upper[index] <= ib.pre_upper[index] + 1e-12)
        assert np.all(sb.spec_lower >= ib.spec_lower - 1e-12)
        assert np.all(sb.spec_upper <= ib.spec_upper + 1e-12)
    # back-substitution is at least as tight as the forward pass on the hidden layers
    for index in range(net.n_layers - 1):
        assert np.all(backward.pre_lower[index] >= forward.pre_lower[index] - 1e-12)
    # and strictly tighter somewhere on these wide boxes (the point of the method)
    assert np.mean(backward.spec_upper - backward.spec_lower) < \
        np.mean(ib.spec_upper - ib.spec_lower)


def test_per_box_spec_matrix_matches_shared() -> None:
    net = random_network([3, 8, 8, 2], seed=3)
    rng = np.random.default_rng(3)
    lower, upper = _random_boxes(rng, 5, 3, 0.5)
    C = rng.normal(size=(2, 2))
    shared = symbolic_bounds(net, lower, upper, C)
    per_box = symbolic_bounds(net, lower, upper, np.broadcast_to(C, (5, 2, 2)))
    np.testing.assert_allclose(shared.spec_lower, per_box.spec_lower)
    assert shared.spec_lower.shape == (5, 2) and shared.spec_coef.shape == (5, 2, 3)


def test_bad_shapes_raise() -> None:
    net = random_network([3, 4, 2], seed=0)
    with pytest.raises(ValueError, match="shape"):
        interval_bounds(net, np.zeros((2, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="lower bound above"):
        symbolic_bounds(net, np.ones((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="C must have shape"):
        symbolic_bounds(net, np.zeros((1, 3)), np.ones((1, 3)), C=np.ones((2, 5)))
    with pytest.raises(ValueError, match="intermediate"):
        symbolic_bounds(net, np.zeros((1, 3)), np.ones((1, 3)), intermediate="sideways")


@pytest.mark.parametrize("seed", range(3))
def test_lp_tightened_bounds_sound_and_not_looser(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    net = random_network([3, 8, 8, 8, 2], seed=seed)
    lower, upper = _random_boxes(rng, 1, 3, 0.7)
    sb = symbolic_bounds(net, lower, upper, intermediate="backward")
    pre_l = [a[0] for a in sb.pre_lower]
    pre_u = [a[0] for a in sb.pre_upper]
    new_l, new_u, calls = tighten_box(net, lower[0], upper[0], pre_l, pre_u)
    unstable = sum(int(((lo < 0) & (hi > 0)).sum()) for lo, hi in zip(pre_l[1:-1], pre_u[1:-1], strict=True))
    assert calls <= 2 * unstable
    x = _samples(rng, lower, upper, 2000)[0]
    acts = net.forward_all(x)
    for index, layer in enumerate(net.layers[:-1]):
        z = acts[index] @ layer.weight.T + layer.bias
        assert np.all(new_l[index] >= pre_l[index] - 1e-12)
        assert np.all(new_u[index] <= pre_u[index] + 1e-12)
        assert np.all(z >= new_l[index] - BOUND_TOL)
        assert np.all(z <= new_u[index] + BOUND_TOL)


def test_polytope_margin_is_a_sound_lower_bound() -> None:
    rng = np.random.default_rng(7)
    net = random_network([3, 8, 8, 2], seed=7)
    lower, upper = _random_boxes(rng, 1, 3, 0.5)
    sb = symbolic_bounds(net, lower, upper)
    A, b = np.array([[1.0, -1.0], [-1.0, 0.0]]), np.array([0.0, 0.5])
    result, calls = polytope_margin(net, lower[0], upper[0], [a[0] for a in sb.pre_lower],
                                    [a[0] for a in sb.pre_upper], A, b)
    assert calls == 1 and result.x is not None and result.x.shape == (3,)
    y = net.forward(_samples(rng, lower, upper, 3000)[0])
    true_min = np.max(y @ A.T - b, axis=1).min()
    assert result.margin <= true_min + BOUND_TOL


@pytest.mark.parametrize("seed", range(3))
def test_alpha_optimised_spec_bound_is_sound_and_not_looser(seed: int) -> None:
    from verirepair.verify.alpha_crown import optimize_spec_lower
    from verirepair.verify.bounds import backward_lower, intermediate_bounds

    rng = np.random.default_rng(300 + seed)
    net = random_network([4, 12, 12, 12, 3], seed=seed)
    lower, upper = _random_boxes(rng, 12, 4, scale=0.5)
    C = rng.normal(size=(3, 3))
    pre_l, pre_u = intermediate_bounds(net, lower, upper, "backward")
    plain, _, _ = backward_lower(net, pre_l, pre_u, np.broadcast_to(C, (12, 3, 3)),
                                 net.n_layers - 1, lower, upper)
    best, coef = optimize_spec_lower(net, pre_l, pre_u, C, lower, upper, steps=10)
    assert best.shape == (12, 3) and coef.shape == (12, 3, 4)
    assert np.all(best >= plain - 1e-12)
    assert np.any(best > plain + 1e-9)          # the optimisation does something here
    x = _samples(rng, lower, upper, 500)
    cy = (net.forward(x.reshape(-1, 4)) @ C.T).reshape(12, 500, 3)
    assert np.all(cy >= best[:, None, :] - BOUND_TOL)


def test_bounds_sound_with_output_relu_and_linear_hidden_layer() -> None:
    rng = np.random.default_rng(9)
    net = Network((AffineLayer(rng.normal(size=(7, 3)), rng.normal(size=7) * 0.1, True),
                   AffineLayer(rng.normal(size=(7, 7)) / 2, rng.normal(size=7) * 0.1, False),
                   AffineLayer(rng.normal(size=(2, 7)) / 2, rng.normal(size=2) * 0.1, True)))
    lower, upper = _random_boxes(rng, 8, 3, 0.6)
    C = np.array([[1.0, 0.0], [0.0, -1.0], [1.0, -1.0]])
    x = _samples(rng, lower, upper, 400)
    cy = (net.forward(x.reshape(-1, 3)) @ C.T).reshape(8, 400, 3)
    for mode in MODES:
        sb = symbolic_bounds(net, lower, upper, C, intermediate=mode)
        assert len(sb.pre_lower) == net.n_layers + 1       # the appended identity layer
        assert np.all(sb.output_lower >= -1e-12)            # outputs after a ReLU
        assert np.all(cy >= sb.spec_lower[:, None, :] - BOUND_TOL)
        assert np.all(cy <= sb.spec_upper[:, None, :] + BOUND_TOL)
