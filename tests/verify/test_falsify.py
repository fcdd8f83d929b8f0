"""Specification of the falsifier (verirepair.verify.falsify)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from verirepair.network.model import AffineLayer, Network, random_network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.verify.bounds import interval_bounds
from verirepair.verify.falsify import adam_attack, deepen, falsify, pgd_attack
from verirepair.verify.result import VerifyConfig


def _net_and_box() -> tuple[Network, Box]:
    return random_network([4, 16, 16, 3], seed=11), Box(-np.ones(4), np.ones(4))


def _threshold_prop(net: Network, box: Box, quantile: float) -> Property:
    """Unsafe: y0 - y1 >= the given quantile of sampled values."""
    y = net.forward(box.sample(np.random.default_rng(5), 5000))
    level = float(np.quantile(y[:, 0] - y[:, 1], quantile))
    return Property((box,), (HalfSpaces(np.array([[-1.0, 1.0, 0.0]]), np.array([-level])),))


def test_finds_confirmed_counterexamples_of_an_easy_violation() -> None:
    net, box = _net_and_box()
    prop = _threshold_prop(net, box, 0.9)
    found = falsify(net, prop, VerifyConfig(max_counterexamples=3))
    assert 1 <= len(found) <= 3
    for cex in found:
        assert cex.confirmed and box.contains(cex.x[None])[0]
        np.testing.assert_allclose(cex.y, net.forward(cex.x))
        assert cex.score == prop.violation_score(cex.y[None])[0] >= 0.0
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)


def test_pgd_finds_what_sampling_misses() -> None:
    """A violation above every sampled value is still reached by gradient ascent."""
    net, box = _net_and_box()
    y = net.forward(box.sample(np.random.default_rng(0), 200000))
    top = float((y[:, 0] - y[:, 1]).max())
    prop = Property((box,), (HalfSpaces(np.array([[-1.0, 1.0, 0.0]]), np.array([-top])),))
    found = falsify(net, prop, VerifyConfig(falsify_samples=100, pgd_steps=100))
    assert found and found[0].source == "pgd" and found[0].score >= 0.0


def test_nothing_found_when_bounds_prove_safety() -> None:
    net, box = _net_and_box()
    ib = interval_bounds(net, box.lower[None], box.upper[None])
    unreachable = ib.output_upper[0, 0] + 1.0
    prop = Property((box,), (HalfSpaces(np.array([[-1.0, 0.0, 0.0]]), np.array([-unreachable])),))
    assert falsify(net, prop, VerifyConfig()) == []


def test_pgd_never_leaves_the_box_and_never_worsens() -> None:
    net, box = _net_and_box()
    prop = _threshold_prop(net, box, 0.999)
    x0 = box.sample(np.random.default_rng(1), 16)
    lo, hi = np.tile(box.lower, (16, 1)), np.tile(box.upper, (16, 1))
    x_best, score = pgd_attack(net, prop, x0, lo, hi, steps=30)
    assert np.all(x_best >= lo) and np.all(x_best <= hi)
    assert np.all(score >= prop.violation_score(net.forward(x0)))
    np.testing.assert_allclose(score, prop.violation_score(net.forward(x_best)))


def test_deepen_increases_the_margin() -> None:
    net, box = _net_and_box()
    prop = _threshold_prop(net, box, 0.95)
    found = falsify(net, prop, VerifyConfig(max_counterexamples=1))
    pushed = deepen(net, prop, found)
    assert pushed[0].confirmed and pushed[0].score >= found[0].score


def test_union_of_boxes_points_stay_in_the_region() -> None:
    """y = x on 1-D; unsafe y >= 2.5 is only reachable from the second box."""
    net = Network((AffineLayer([[1.0]], [0.0], False),))
    prop = Property((Box([0.0], [1.0]), Box([2.0], [3.0])), (HalfSpaces([[-1.0]], [-2.5]),))
    found = falsify(net, prop, VerifyConfig(max_counterexamples=5))
    assert found and all(2.5 <= c.x[0] <= 3.0 for c in found)


def test_deadline_in_the_past_stops_pgd_immediately() -> None:
    net, box = _net_and_box()
    prop = _threshold_prop(net, box, 0.99999)
    start = time.perf_counter()
    falsify(net, prop, VerifyConfig(pgd_steps=10000, falsify_samples=10), deadline=start - 1.0)
    assert time.perf_counter() - start < 2.0


def test_analytic_gradient_matches_torch_autograd_of_the_shared_score() -> None:
    import torch

    from verirepair.properties.property import violation_score_torch
    from verirepair.verify.falsify import _score_gradient

    net = random_network([4, 12, 12, 3], seed=2)
    prop = Property((Box(-np.ones(4), np.ones(4)),),
                    (HalfSpaces(np.array([[1.0, -2.0, 0.0], [0.0, 1.0, -1.0]]), np.zeros(2)),
                     HalfSpaces(np.array([[-3.0, 0.0, 1.0]]), np.array([0.5]))))
    x = np.random.default_rng(3).uniform(-1, 1, size=(64, 4))
    xt = torch.tensor(x, requires_grad=True)
    h = xt
    for layer in net.layers:
        h = h @ torch.tensor(np.array(layer.weight)).T + torch.tensor(np.array(layer.bias))
        if layer.relu:
            h = torch.relu(h)
    (grad,) = torch.autograd.grad(violation_score_torch(prop, h).sum(), xt)
    np.testing.assert_allclose(_score_gradient(net, prop, x), grad.numpy(), atol=1e-10)


def _tent() -> tuple[Network, Property]:
    """y = x - 2 relu(x - 0.3) on [0, 1]: slope 1 then -1, maximum y = 0.3 at x = 0.3.

    Unsafe: y >= 0.25, so the score is y - 0.25 (a single row ``-y <= -0.25``).
    """
    net = Network((AffineLayer([[1.0], [1.0]], [0.0, -0.3], True),
                   AffineLayer([[1.0, -2.0]], [0.0], False)))
    prop = Property((Box([0.0], [1.0]),), (HalfSpaces(np.array([[-1.0]]), np.array([-0.25])),))
    return net, prop


def test_adam_reaches_the_interior_maximiser_of_a_tent() -> None:
    net, prop = _tent()
    x0 = np.array([[0.9], [0.05]])            # one start on each side of the peak
    lower, upper = np.zeros((2, 1)), np.ones((2, 1))
    iterates = adam_attack(net, prop, x0, lower, upper, steps=300, lr=0.01)
    assert len(iterates) == 30
    np.testing.assert_allclose(iterates[-1], 0.3, atol=0.01)
    assert np.all(prop.violation_score(net.forward(iterates[-1])) >= 0.0)
    # first kept iterate (step 10): 10 steps of ~lr towards the peak, none overshooting it
    assert 0.3 < iterates[0][0, 0] < 0.9 and 0.05 < iterates[0][1, 0] < 0.3


def test_adam_stays_in_the_box_and_stops_at_the_corner() -> None:
    """y = relu(x0) + relu(x1) grows towards the corner (1, 1) of [0, 1]^2."""
    net = Network((AffineLayer(np.eye(2), np.zeros(2), True),
                   AffineLayer([[1.0, 1.0]], [0.0], False)))
    prop = Property((Box([0, 0], [1, 1]),), (HalfSpaces([[-1.0]], [-1.5]),))
    x0 = np.random.default_rng(0).uniform(0.0, 1.0, size=(8, 2))
    lower, upper = np.zeros((8, 2)), np.ones((8, 2))
    iterates = adam_attack(net, prop, x0, lower, upper, steps=25, lr=0.1, every=10)
    assert len(iterates) == 3                 # steps 10, 20 and the last one, 25
    for x in iterates:
        assert np.all((x >= 0.0) & (x <= 1.0))
    np.testing.assert_array_equal(iterates[-1], np.ones((8, 2)))


def test_adam_keeps_flat_box_edges_and_honours_the_deadline() -> None:
    net = Network((AffineLayer(np.eye(2), np.zeros(2), True),
                   AffineLayer([[1.0, 1.0]], [0.0], False)))
    prop = Property((Box([0, 0.5], [1, 0.5]),), (HalfSpaces([[-1.0]], [-1.5]),))
    x0, lower, upper = np.array([[0.2, 0.5]]), np.array([[0.0, 0.5]]), np.array([[1.0, 0.5]])
    (last,) = adam_attack(net, prop, x0, lower, upper, steps=10, lr=0.2)
    np.testing.assert_array_equal(last, [[1.0, 0.5]])
    past = time.perf_counter() - 1.0
    assert adam_attack(net, prop, x0, lower, upper, steps=10, lr=0.2, deadline=past) == []
    with pytest.raises(ValueError, match="every"):
        adam_attack(net, prop, x0, lower, upper, steps=10, every=0)


def test_adam_matches_torch_adam_on_the_same_score() -> None:
    """The numpy ascent is the torch.optim.Adam ascent it replaced, iterate for iterate."""
    import torch

    from verirepair.properties.property import violation_score_torch

    net = random_network([4, 12, 12, 3], seed=4)
    prop = Property((Box(-np.ones(4), np.ones(4)),),
                    (HalfSpaces(np.array([[1.0, -2.0, 0.0], [0.0, 1.0, -1.0]]), np.zeros(2)),))
    x0 = np.random.default_rng(6).uniform(-1, 1, size=(16, 4))
    lower, width = -np.ones((16, 4)), 2.0 * np.ones((16, 4))
    ours = adam_attack(net, prop, x0, lower, lower + width, steps=30, lr=0.01, every=1)
    u = torch.tensor((x0 - lower) / width, requires_grad=True)
    optimizer = torch.optim.Adam([u], lr=0.01)
    for step in range(30):
        h = torch.tensor(lower) + u * torch.tensor(width)
        for layer in net.layers:
            h = h @ torch.tensor(np.array(layer.weight)).T + torch.tensor(np.array(layer.bias))
            h = torch.relu(h) if layer.relu else h
        optimizer.zero_grad()
        (-violation_score_torch(prop, h).sum()).backward()
        optimizer.step()
        with torch.no_grad():
            u.clamp_(0.0, 1.0)
        theirs = lower + u.detach().numpy() * width
        np.testing.assert_allclose(ours[step], theirs, rtol=0, atol=1e-9, err_msg=f"step {step}")
