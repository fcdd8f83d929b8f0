"""Specification: localization works for wide inputs (784 pixels, VNN-COMP MNIST-sized).

Oracles: the one-shot seed ranking (chunked seeding must pick the same
starts), a float64 forward pass (every counterexample violates), tracemalloc
(500,000 seeds of 784 pixels used to be drawn at once: 3.1 GB).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from verirepair.localize import (
    LocalizeConfig,
    localize,
    pgd_counterexamples,
    sample_correct,
    sample_counterexamples,
    samples,
)
from verirepair.localize.scoring import violating
from verirepair.network.model import random_network
from verirepair.properties.property import Box, HalfSpaces, Property

N_PIXELS = 784


def _wide_case(eps: float = 0.3):
    """784-32-32-10 random network; unsafe: another class beats the centre's class."""
    net = random_network([N_PIXELS, 32, 32, 10], seed=4)
    x0 = np.random.default_rng(2).uniform(0.0, 1.0, N_PIXELS)
    true_class = int(np.argmax(net.forward(x0[None])[0]))
    polys = []
    for j in range(10):
        if j != true_class:
            row = np.zeros((1, 10))
            row[0, true_class], row[0, j] = 1.0, -1.0            # y_true - y_j <= 0
            polys.append(HalfSpaces(row, [0.0]))
    box = Box(np.clip(x0 - eps, 0.0, 1.0), np.clip(x0 + eps, 0.0, 1.0))
    return net, Property((box,), tuple(polys), "linf")


def test_chunked_seeding_picks_the_same_starts_as_one_draw(monkeypatch) -> None:
    net, prop = _wide_case()
    kwargs = dict(restarts=8, steps=20, n_seed_samples=20_000)
    whole = pgd_counterexamples(net, [prop], 50, np.random.default_rng(0), **kwargs)
    monkeypatch.setattr(samples, "SEED_CHUNK_VALUES", 1)       # chunks of SAMPLE_BATCH seeds
    chunked = pgd_counterexamples(net, [prop], 50, np.random.default_rng(0), **kwargs)
    assert whole.shape[0] > 0
    np.testing.assert_array_equal(whole, chunked)


def test_wide_localization_end_to_end_in_bounded_memory() -> None:
    net, prop = _wide_case()
    rng = np.random.default_rng(0)
    tracemalloc.start()
    try:
        cex = pgd_counterexamples(net, [prop], 64, rng, restarts=16, steps=30,
                                  n_seed_samples=100_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20                    # all 100,000 seeds at once: 630 MB
    assert cex.shape[1] == N_PIXELS and cex.shape[0] > 0
    assert np.all(violating([prop], cex, net.forward(cex)))
    assert np.all(prop.in_region(cex))
    cex = np.vstack([cex, sample_counterexamples(net, [prop], 64, rng, max_draws=20_000)])
    correct = sample_correct(net, [prop], 128, rng)
    assert correct.shape[0] > 0
    result = localize(net, [prop], cex, correct, LocalizeConfig(seed=0))
    assert len(result.ranking) == 64 and result.suggested_layer in (0, 1)
    assert all(np.isfinite(e.effect_violation) for e in result.ranking)


@pytest.mark.parametrize("method", ["activation", "gradient"])
def test_baseline_methods_accept_wide_inputs(method: str) -> None:
    net, prop = _wide_case()
    rng = np.random.default_rng(1)
    cex = sample_counterexamples(net, [prop], 32, rng, max_draws=20_000)
    correct = sample_correct(net, [prop], 64, rng)
    assert cex.shape[0] > 0
    result = localize(net, [prop], cex, correct, LocalizeConfig(method=method))
    assert len(result.ranking) == 64
