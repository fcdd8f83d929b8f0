"""Localization on ACAS Xu networks (needs the shared data; skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest

from localize_helpers import acasxu_folder
from verirepair.harness.planted_faults import plant_fault
from verirepair.localize import LocalizeConfig, localize, sample_correct, sample_counterexamples
from verirepair.localize.scoring import combined_scores
from verirepair.network.loader import load_network
from verirepair.properties.vnnlib import parse_vnnlib
from verirepair.tasks.acasxu import networks as acasxu_nets


@pytest.mark.acasxu
def test_planted_fault_on_acasxu_phi1_is_found():
    acasxu_folder()
    net = load_network(acasxu_nets.onnx_path((3, 3)))
    props = parse_vnnlib(acasxu_nets.vnnlib_path(1))
    rng = np.random.default_rng(0)
    # unit 49 of the last hidden layer is active in the phi1 region and feeds COC positively
    assert net.layers[6].weight[0, 49] > 0
    fault = plant_fault(net, props, 5, 49, "weights", rng, n_counterexamples=128)
    correct = sample_correct(fault.network, props, 128, rng)
    loc = localize(fault.network, props, fault.cex_x, correct, LocalizeConfig(seed=0))
    assert len(loc.ranking) == 300
    assert loc.rank_of(5, 49) <= 3
    assert loc.layer_scores[6] == 0.0 and loc.time_s < 30.0


@pytest.mark.acasxu
def test_real_violation_n29_phi8_top_neuron_reduces_the_violation():
    acasxu_folder()
    net = load_network(acasxu_nets.onnx_path((2, 9)))
    props = parse_vnnlib(acasxu_nets.vnnlib_path(8))
    rng = np.random.default_rng(8)
    cex = sample_counterexamples(net, props, 64, rng, max_draws=200_000)
    assert cex.shape[0] > 0
    correct = sample_correct(net, props, 128, rng)
    loc = localize(net, props, cex, correct, LocalizeConfig(seed=0, k_values=8))
    top = loc.ranking[0]
    assert top.effect_violation > 0
    # the top neuron's activity is a cause: switching it off lowers the mean violation score
    layer = net.layers[top.layer_index]
    weight, bias = np.array(layer.weight), np.array(layer.bias)
    weight[top.unit], bias[top.unit] = 0.0, 0.0
    ablated = net.replace_layer(top.layer_index, weight, bias)
    before = combined_scores(props, cex, net.forward(cex)).mean()
    after = combined_scores(props, cex, ablated.forward(cex)).mean()
    assert after < before
