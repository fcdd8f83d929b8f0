"""Specification of the planted-fault generator."""

from __future__ import annotations

import numpy as np
import pytest

from localize_helpers import safe_random_case
from verirepair.harness.planted_faults import FaultKind, fault_candidates, plant_fault
from verirepair.localize import LocalizeConfig, localize, sample_correct
from verirepair.localize.scoring import violating


@pytest.mark.parametrize("kind", ["weights", "bias"])
def test_planted_fault_produces_a_violating_network(kind):
    net, props = safe_random_case(4)
    rng = np.random.default_rng(0)
    candidates = fault_candidates(net, props, 2, rng, min_active=0.0)
    assert candidates.size > 0
    unit = int(candidates[0])
    fault = plant_fault(net, props, 2, unit, kind, rng)
    assert fault.kind is FaultKind(kind) and (fault.layer_index, fault.unit) == (2, unit)
    assert fault.cex_x.shape[0] >= 10
    assert np.all(violating(props, fault.cex_x, fault.network.forward(fault.cex_x)))
    assert not np.any(violating(props, fault.cex_x, net.forward(fault.cex_x)))
    # only the planted neuron's row and bias changed, and the original is untouched
    for index, (old, new) in enumerate(zip(net.layers, fault.network.layers, strict=True)):
        rows = np.flatnonzero(np.any(old.weight != new.weight, axis=1) | (old.bias != new.bias))
        assert list(rows) == ([unit] if index == 2 else [])
    assert fault.scale > 1.0


def test_causal_finds_a_planted_fault_in_the_last_hidden_layer():
    net, props = safe_random_case(4)
    rng = np.random.default_rng(1)
    unit = int(fault_candidates(net, props, 2, rng)[0])
    fault = plant_fault(net, props, 2, unit, "weights", rng)
    correct = sample_correct(fault.network, props, 200, rng)
    loc = localize(fault.network, props, fault.cex_x, correct, LocalizeConfig(seed=0))
    assert loc.rank_of(2, unit) <= 3


def test_plant_fault_rejects_an_already_violated_network():
    net, props = safe_random_case(4)
    flipped = [type(props[0])(props[0].input_boxes,
                              (type(props[0].unsafe[0])([[1.0, 0.0, 0.0]], [1e9]),))]
    with pytest.raises(ValueError, match="already violates"):
        plant_fault(net, flipped, 2, 0, "bias", np.random.default_rng(0))
    with pytest.raises(ValueError, match="not a hidden neuron"):
        plant_fault(net, props, 3, 0, "bias", np.random.default_rng(0))
