"""Specification: nothing in the verifier assumes few inputs (VNN-COMP MNIST, 784 pixels).

Instances: :mod:`wide_instances` (784-256-256-10, L-inf balls read from
VNN-LIB text).  Oracles: random points of the ball and a gradient attack
(never violating where we prove HOLDS), a float64 forward pass of the
counterexample (VIOLATED), the clock (a clean TIMEOUT within the budget) and
tracemalloc (a batch of 784-input boxes used to take 2 GB).
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from verirepair.verify import Verdict, VerifyConfig, verify
from verirepair.verify.bab import BATCH_MEMORY_BYTES, batch_limit
from verirepair.verify.falsify import pgd_attack
from wide_instances import linf_property, mnist_like_network


@pytest.fixture(scope="module")
def network():
    return mnist_like_network()


def test_small_ball_holds_by_bounds_alone(network) -> None:
    prop, _ = linf_property(network, 0.002)
    result = verify(network, prop, VerifyConfig(timeout_s=10.0))
    assert result.verdict is Verdict.HOLDS, result.message
    assert result.stats.subproblems == 1             # the ball's own bounds prove it
    box = prop.input_boxes[0]
    rng = np.random.default_rng(0)
    x = np.vstack([box.sample(rng, 2000), box.lower, box.upper])
    assert np.all(prop.violation_score(network.forward(x)) < 0.0)
    starts = box.sample(rng, 64)
    lo, hi = np.tile(box.lower, (64, 1)), np.tile(box.upper, (64, 1))
    _, attacked = pgd_attack(network, prop, starts, lo, hi, steps=50)
    assert np.all(attacked < 0.0)


def test_large_ball_is_violated_with_a_confirmed_counterexample(network) -> None:
    prop, true_class = linf_property(network, 0.02)
    result = verify(network, prop, VerifyConfig(timeout_s=10.0))
    assert result.verdict is Verdict.VIOLATED
    cex = result.counterexamples[0]
    assert cex.confirmed and prop.in_region(cex.x[None])[0]
    y = network.forward(cex.x[None])[0]
    np.testing.assert_allclose(y, cex.y, rtol=0, atol=1e-12)      # batch vs single BLAS rounding
    assert np.max(np.delete(y, true_class)) >= y[true_class]     # another class wins


@pytest.mark.parametrize("use_lp", [False, True], ids=["crown", "lp"])
def test_undecided_ball_times_out_cleanly_within_budget(network, use_lp: bool) -> None:
    prop, _ = linf_property(network, 0.004)
    tracemalloc.start()
    try:
        start = time.perf_counter()
        result = verify(network, prop, VerifyConfig(timeout_s=3.0, use_lp=use_lp))
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.verdict in (Verdict.TIMEOUT, Verdict.HOLDS, Verdict.VIOLATED)
    assert elapsed < 3.0 + 1.5
    assert peak < 2 * BATCH_MEMORY_BYTES
    if result.verdict is Verdict.TIMEOUT:
        box = prop.input_boxes[0]
        assert result.open_boxes
        for lower, upper in result.open_boxes:
            assert np.all(box.lower <= lower) and np.all(upper <= box.upper)


def test_batches_of_wide_boxes_fit_the_memory_budget(network) -> None:
    rows = 9
    limit = batch_limit(network, rows, 512)
    assert 1 <= limit < 512
    d, width = 784, 256
    per_box = 8 * (8 * (d + 1) * width + 4 * (2 * width + rows) * max(width, d))
    assert limit * per_box <= BATCH_MEMORY_BYTES
