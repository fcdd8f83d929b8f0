"""Specification of the samplers that supply counterexamples and correct inputs."""

from __future__ import annotations

import numpy as np

from verirepair.localize import pgd_counterexamples, sample_correct, sample_counterexamples
from verirepair.localize.scoring import combined_scores, violating
from verirepair.network.model import AffineLayer, Network
from verirepair.properties.property import Box, HalfSpaces, Property


def _sum_network() -> Network:
    """y = relu(x0) + relu(x1) on [0, 1]^2."""
    return Network((AffineLayer(np.eye(2), np.zeros(2), True),
                    AffineLayer([[1.0, 1.0]], [0.0], False)))


def _prop(threshold: float) -> Property:
    return Property((Box([0, 0], [1, 1]),), (HalfSpaces([[-1.0]], [-threshold]),))


def test_sampled_counterexamples_violate_and_correct_inputs_do_not():
    net, prop = _sum_network(), _prop(1.5)
    rng = np.random.default_rng(0)
    cex = sample_counterexamples(net, [prop], 50, rng)
    correct = sample_correct(net, [prop], 50, rng)
    assert cex.shape == (50, 2) and correct.shape == (50, 2)
    assert np.all(cex.sum(axis=1) >= 1.5) and np.all(correct.sum(axis=1) < 1.5)
    assert np.all(prop.in_region(cex)) and np.all(prop.in_region(correct))


def test_sampling_gives_up_after_max_draws():
    net, prop = _sum_network(), _prop(2.5)          # unreachable: y <= 2
    cex = sample_counterexamples(net, [prop], 10, np.random.default_rng(0), max_draws=1000)
    assert cex.shape == (0, 2)


def test_pgd_finds_a_tiny_unsafe_corner():
    net, prop = _sum_network(), _prop(1.999)        # only the corner (1, 1) region violates
    rng = np.random.default_rng(0)
    assert sample_counterexamples(net, [prop], 1, rng, max_draws=200).shape[0] == 0
    cex = pgd_counterexamples(net, [prop], 5, rng, restarts=16, steps=40, n_seed_samples=2000)
    assert 1 <= cex.shape[0] <= 5
    assert np.all(violating([prop], cex, net.forward(cex)))
    scores = combined_scores([prop], cex, net.forward(cex))
    assert np.all(np.diff(scores) <= 0)           # most violating first


def test_combined_score_is_max_over_containing_regions():
    left = Property((Box([0, 0], [0.5, 1]),), (HalfSpaces([[-1.0]], [-1.0]),))    # y >= 1
    right = Property((Box([0.5, 0], [1, 1]),), (HalfSpaces([[1.0]], [0.2]),))     # y <= 0.2
    x = np.array([[0.25, 0.5], [0.75, 0.5], [0.5, 0.5]])
    y = np.array([[0.75], [1.5], [1.0]])
    # first: only left applies, 0.75 - 1; second: only right, 0.2 - 1.5; third: both.
    np.testing.assert_allclose(combined_scores([left, right], x, y), [-0.25, -1.3, 0.0])
    outside = combined_scores([left], np.array([[0.9, 0.5]]), np.array([[5.0]]))
    assert outside[0] == -np.inf
