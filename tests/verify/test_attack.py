"""Specification of the wide-box attacks (verify/attack.py) and of their budget in the ReLU search.

The planted instance: ``y = sum_i relu(x_i - 0.9)`` over ``[0, 1]^40``, unsafe
``y >= 3``.  A violation needs at least 30 coordinates above 0.9, which a
uniform sample essentially never has, and PGD cannot climb there (the gradient
of a coordinate below 0.9 is zero); the corner that minimises the linear bound
of ``3 - y`` (all ones) is a counterexample.  So the violation is rare for
sampling and gradients, and obvious to the bound's minimiser.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from verirepair.network.model import AffineLayer, Network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.verify import Verdict, VerifyConfig, attack, relu_bab

D = 40


def _planted() -> Network:
    return Network((AffineLayer(np.eye(D), np.full(D, -0.9), True),
                    AffineLayer(np.ones((1, D)), [0.0], False)), "planted")


def _prop(threshold: float) -> Property:
    return Property((Box(np.zeros(D), np.ones(D)),), (HalfSpaces([[-1.0]], [-threshold]),),
                    f"y>={threshold:g}")


def test_bound_minimisers_are_box_centres_and_the_corner_of_each_open_polytope():
    lower = np.array([[0.0, 0.0], [-1.0, 2.0]])
    upper = np.array([[1.0, 1.0], [1.0, 4.0]])
    coef = np.array([[[1.0, -1.0], [0.0, 2.0]],
                     [[-3.0, 1.0], [1.0, 1.0]]])           # (n=2, k=2 rows, d=2)
    best_row = np.array([[0, 1], [0, 1]])                  # polytope p's best row per sub-domain
    open_polys = np.array([[True, False], [True, True]])
    points, owners = attack.bound_minimisers(coef, best_row, open_polys, lower, upper)
    # centres first, then polytope 0 (both open), then polytope 1 (only sub-domain 1)
    expected = np.array([[0.5, 0.5], [0.0, 3.0],
                         [0.0, 1.0], [1.0, 2.0],          # row 0: x1 at lower if coef > 0
                         [-1.0, 2.0]])                     # sub-domain 1, row 1: both at lower
    np.testing.assert_array_equal(points, expected)
    np.testing.assert_array_equal(owners, [0, 1, 0, 1, 1])


def test_restarts_find_the_rare_violation_from_a_bound_minimiser_seed():
    net, prop = _planted(), _prop(3.0)
    lower, upper = np.zeros(D), np.ones(D)
    far = time.perf_counter() + 30.0
    unseeded = attack.restarts(net, prop, lower, upper, np.random.default_rng(0), 0.3, far)
    assert unseeded == []                                   # uniform starts + PGD cannot get there
    found = attack.restarts(net, prop, lower, upper, np.random.default_rng(0), 0.3, far,
                            seeds=np.ones((1, D)))
    assert found and found[0].source == "attack" and found[0].confirmed
    assert net.forward(found[0].x[None])[0, 0] >= 3.0
    assert np.all((found[0].x >= 0.0) & (found[0].x <= 1.0))


def test_restarts_on_a_safe_property_return_nothing_within_the_budget():
    net, prop = _planted(), _prop(5.0)                    # max y is 4: no violation exists
    started = time.perf_counter()
    found = attack.restarts(net, prop, np.zeros(D), np.ones(D), np.random.default_rng(1), 0.4,
                            started + 30.0, seeds=np.ones((1, D)))
    elapsed = time.perf_counter() - started
    assert found == []
    assert 0.4 <= elapsed < 0.4 + 1.0                      # rounds until the budget, then stop


def test_restarts_stop_at_the_deadline_even_with_budget_left():
    net, prop = _planted(), _prop(5.0)
    started = time.perf_counter()
    assert attack.restarts(net, prop, np.zeros(D), np.ones(D), np.random.default_rng(1), 60.0,
                           started + 0.2) == []
    assert time.perf_counter() - started < 0.2 + 1.0


def test_from_minimisers_pushes_a_near_miss_inside_and_confirms_it(monkeypatch):
    net, prop = _planted(), _prop(3.0)
    near = np.full((1, D), 0.5)
    near[0, :35] = 0.95                                     # y = 35 * 0.05 = 1.75 < 3
    lower, upper = np.zeros((1, D)), np.ones((1, D))
    found = attack.from_minimisers(net, prop, near, lower, upper, time.perf_counter() + 30.0)
    assert found and found[0].source == "bab"
    assert found[0].score >= 0.0 and net.forward(found[0].x[None])[0, 0] >= 3.0
    monkeypatch.setattr(attack, "MINIMISER_STEPS", 0)       # corners checked, no PGD
    assert attack.from_minimisers(net, prop, near, lower, upper, time.perf_counter() + 30.0) == []
    exact = np.ones((1, D))
    assert attack.from_minimisers(net, prop, exact, lower, upper, time.perf_counter() + 30.0)


def _cancelling() -> Network:
    """``y = relu(x) - relu(x) = 0`` on [-1, 1]; the root bound cannot see the cancellation."""
    return Network((AffineLayer([[1.0], [1.0]], [0.0, 0.0], True),
                    AffineLayer([[1.0, -1.0]], [0.0], False)), "cancelling")


def _recorder(calls: list) -> object:
    def record(network, prop, lower, upper, rng, budget_s, deadline, seeds=None):
        calls.append((budget_s, deadline - time.perf_counter(), seeds))
        return []
    return record


def test_search_gives_restarts_the_attack_fraction_of_the_time_left(monkeypatch):
    calls: list = []
    monkeypatch.setattr(attack, "restarts", _recorder(calls))
    prop = Property((Box([-1.0], [1.0]),), (HalfSpaces([[-1.0]], [-0.25]),), "y>=0.25")
    timeout = 20.0
    outcome = relu_bab.search(_cancelling(), prop, VerifyConfig(timeout_s=timeout),
                              time.perf_counter() + timeout)
    assert outcome.verdict is Verdict.HOLDS                 # split on the two units, then proven
    assert len(calls) == 1                                  # once, after the unproven root
    budget, left, seeds = calls[0]
    assert budget == pytest.approx(relu_bab.ATTACK_FRACTION * left, rel=0.05, abs=0.05)
    assert seeds is not None and seeds.shape[1] == 1        # seeded by the root's minimisers


def test_search_takes_the_bound_minimiser_corner_before_any_restart(monkeypatch):
    calls: list = []
    monkeypatch.setattr(attack, "restarts", _recorder(calls))
    outcome = relu_bab.search(_planted(), _prop(3.0), VerifyConfig(timeout_s=20.0),
                              time.perf_counter() + 20.0)
    assert outcome.verdict is Verdict.VIOLATED and calls == []
    cex = outcome.counterexamples[0]
    assert cex.source == "bab" and _planted().forward(cex.x[None])[0, 0] >= 3.0
