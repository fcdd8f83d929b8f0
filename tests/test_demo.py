"""The shipped demo files are exactly what the generator produces, and the fault is real."""

from __future__ import annotations

import numpy as np

from verirepair.demo import build_demo_network, demo_paths, demo_properties
from verirepair.network import load_network
from verirepair.properties import parse_vnnlib


def test_shipped_demo_network_matches_generator():
    net_path, _ = demo_paths()
    shipped = load_network(net_path)
    built, _ = build_demo_network()
    x = np.random.default_rng(0).uniform(-0.5, 0.5, size=(500, 5))
    # The file stores float32 weights: agreement to float32 precision.
    assert np.max(np.abs(shipped.forward(x) - built.forward(x))) < 1e-5


def test_shipped_properties_match_generator():
    _, prop_paths = demo_paths()
    for path, expected in zip(prop_paths, demo_properties(), strict=True):
        (parsed,) = parse_vnnlib(path)
        assert parsed.canonical() == expected.canonical()


def test_demo_fault_is_planted_and_prop2_is_clean():
    net, unit = build_demo_network()
    prop1, prop2 = demo_properties()
    rng = np.random.default_rng(3)
    x1 = prop1.sample_inputs(rng, 20000)
    x2 = prop2.sample_inputs(rng, 20000)
    assert prop1.is_violated_by(net.forward(x1)).mean() > 0.005
    assert not prop2.is_violated_by(net.forward(x2)).any()
    assert 0 <= unit < 12
