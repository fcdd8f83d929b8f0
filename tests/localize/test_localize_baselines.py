"""Specification of the baseline localizers (activation difference, gradient x activation)."""

from __future__ import annotations

import numpy as np
import pytest

from localize_helpers import CULPRIT_CEX, CULPRIT_CORRECT
from verirepair.localize import LocalizeConfig, localize


def test_gradient_times_activation_hand_computed(culprit):
    net, props = culprit
    loc = localize(net, props, CULPRIT_CEX, CULPRIT_CORRECT, LocalizeConfig(method="gradient"))
    effects = {e.unit: e for e in loc.ranking}
    # score = y0 - 8 = 2 h0 + 10 h1 - 8, so g * h is 10 x1 for unit 1 and 2 x0 for unit 0.
    assert effects[1].effect_violation == pytest.approx(10 * 0.825)
    assert effects[0].effect_violation == pytest.approx(2 * 0.7)
    assert effects[1].effect_correct == pytest.approx(10 * 0.3)
    assert effects[0].effect_correct == pytest.approx(2 * 0.5)
    assert [e.unit for e in loc.ranking] == [1, 0]
    assert loc.method == "gradient"


def test_activation_difference_hand_computed(culprit):
    net, props = culprit
    loc = localize(net, props, CULPRIT_CEX, CULPRIT_CORRECT, LocalizeConfig(method="activation"))
    effects = {e.unit: e.effect_violation for e in loc.ranking}
    # unit 1: means 0.825 (cex) vs 0.3 (correct); pooled std of (0.9, 0.75, 0.1, 0.5) is
    # sqrt(0.09171875).  unit 0: 0.7 vs 0.5; pooled std of (0.5, 0.9, 0.9, 0.1) is sqrt(0.11).
    assert effects[1] == pytest.approx(0.525 / np.sqrt(0.09171875), rel=1e-5)
    assert effects[0] == pytest.approx(0.2 / np.sqrt(0.11), rel=1e-5)
    assert loc.ranking[0].unit == 1
    assert loc.suggested_layer == 0


def test_activation_needs_correct_inputs(culprit):
    net, props = culprit
    with pytest.raises(ValueError, match="needs correct inputs"):
        localize(net, props, CULPRIT_CEX, np.zeros((0, 2)), LocalizeConfig(method="activation"))


@pytest.mark.parametrize("method", ["activation", "gradient"])
def test_baselines_return_valid_rankings(method):
    from verirepair.localize import sample_correct, sample_counterexamples
    from verirepair.network.model import random_network
    from verirepair.properties.property import Box, HalfSpaces, Property

    net = random_network([3, 8, 6, 2], seed=11)
    prop = Property((Box(-np.ones(3), np.ones(3)),), (HalfSpaces([[1.0, -1.0]], [0.0]),))
    rng = np.random.default_rng(2)
    cex = sample_counterexamples(net, [prop], 100, rng)
    correct = sample_correct(net, [prop], 100, rng)
    assert cex.shape[0] > 0 and correct.shape[0] > 0
    loc = localize(net, [prop], cex, correct, LocalizeConfig(method=method, top_k=2))
    assert len(loc.ranking) == 14
    assert len({(e.layer_index, e.unit) for e in loc.ranking}) == 14
    effects = [e.effect_violation for e in loc.ranking]
    assert all(np.isfinite(effects)) and min(effects) >= 0.0
    assert effects == sorted(effects, reverse=True)
    assert loc.suggested_layer in (0, 1) and len(loc.suggested_neurons) == 2
    assert loc.layer_scores[2] == 0.0
