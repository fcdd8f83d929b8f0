"""The 45 ACAS Xu networks: ONNX and .nnet readers against onnxruntime and each other.

Inputs are 1000 points per network, uniform in the normalised domain
[-0.5, 0.5]^5 and rounded to float32 so every engine sees the same point.  The
ONNX files have a fixed batch of 1 (input [1, 1, 1, 5]), so onnxruntime runs
one point at a time on the unmodified file (about 20 us per call).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from network_helpers import assert_same_graph_new_values, float64_copy, ort_forward
from verirepair.network import load_nnet, load_onnx, save_onnx
from verirepair.tasks.acasxu import networks as acasxu_nets
from verirepair.tolerances import FLOAT32_FORWARD_TOL, FORWARD_AGREE_TOL

pytestmark = pytest.mark.acasxu

N_POINTS = 1000
NAMES = acasxu_nets.NETWORK_NAMES
# The .nnet header shared by all 45 networks (shared/reference/acasxu.md, section 1)
INPUT_MIN = (0.0, -3.141593, -3.141593, 100.0, 0.0)
INPUT_MAX = (60760.0, 3.141593, 3.141593, 1200.0, 1200.0)
INPUT_MEAN = (19791.091, 0.0, 0.0, 650.0, 600.0)
INPUT_RANGE = (60261.0, 6.28318530718, 6.28318530718, 1100.0, 1200.0)
OUTPUT_MEAN, OUTPUT_RANGE = 7.5188840201005975, 373.94992


def _points(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 0.5, (N_POINTS, 5)).astype(np.float32).astype(np.float64)


def _worst(diffs: dict[str, float]) -> str:
    name = max(diffs, key=diffs.get)
    return f"worst {name}: {diffs[name]:.3e}"


def test_all_45_onnx_networks_load_and_match_onnxruntime(acasxu_dir: Path) -> None:
    exact, stored = {}, {}
    for seed, name in enumerate(NAMES):
        path = acasxu_dir / "onnx" / f"{name}.onnx"
        network = load_onnx(path)
        assert network.name == name
        assert (network.n_inputs, network.n_outputs, network.hidden_sizes) == (5, 5, (50,) * 6)
        assert [layer.relu for layer in network.layers] == [True] * 6 + [False]
        x = _points(seed)
        ours = network.forward(x)
        exact[name] = np.abs(ours - ort_forward(float64_copy(onnx.load(str(path))), x)).max()
        stored[name] = np.abs(ours - ort_forward(path, x)).max()
    # same graph in float64: the semantics agree (measured: bit for bit)
    assert max(exact.values()) <= FORWARD_AGREE_TOL, _worst(exact)
    # the float32 file: float32 arithmetic error only (measured worst 1.3e-5, N1,3)
    assert max(stored.values()) <= FLOAT32_FORWARD_TOL, _worst(stored)


def test_all_45_nnet_networks_load_and_match_their_onnx_twins(acasxu_dir: Path) -> None:
    diffs = {}
    for seed, name in enumerate(NAMES):
        twin = load_onnx(acasxu_dir / "onnx" / f"{name}.onnx")
        network = load_nnet(acasxu_dir / "nnet" / f"{name}.nnet")
        assert network.name == name
        norm = network.normalization
        assert (norm.input_min, norm.input_max) == (INPUT_MIN, INPUT_MAX)
        assert (norm.input_mean, norm.input_range) == (INPUT_MEAN, INPUT_RANGE)
        assert (norm.output_mean, norm.output_range) == (OUTPUT_MEAN, OUTPUT_RANGE)
        assert [layer.relu for layer in network.layers] == [layer.relu for layer in twin.layers]
        for ours, theirs in zip(network.layers, twin.layers, strict=True):
            # the ONNX file holds the float32 rounding of the .nnet decimals, exactly
            np.testing.assert_array_equal(ours.weight.astype(np.float32), theirs.weight)
            np.testing.assert_array_equal(ours.bias.astype(np.float32), theirs.bias)
        x = _points(seed)
        diffs[name] = np.abs(network.forward(x) - twin.forward(x)).max()
    # parameters differ by float32 rounding (<= 2**-24 relative), measured worst 2.8e-6
    assert max(diffs.values()) <= FLOAT32_FORWARD_TOL, _worst(diffs)


def test_acas_save_round_trip_through_onnxruntime(acasxu_dir: Path, tmp_path: Path) -> None:
    path = acasxu_dir / "onnx" / f"{NAMES[0]}.onnx"
    network = load_onnx(path)
    assert save_onnx(network, tmp_path / "same.onnx").read_bytes() == path.read_bytes()
    rng = np.random.default_rng(7)
    changed = network
    for index in (0, 3, 6):  # float32-representable changes, so the file holds them exactly
        layer = changed.layers[index]
        weight = (layer.weight + rng.normal(0, 0.05, layer.weight.shape)).astype(np.float32)
        bias = (layer.bias + rng.normal(0, 0.05, layer.bias.shape)).astype(np.float32)
        changed = changed.replace_layer(index, weight, bias)
    out = save_onnx(changed, tmp_path / "repaired.onnx")
    assert_same_graph_new_values(onnx.load(str(path)), onnx.load(str(out)))
    reloaded = load_onnx(out)
    for new, old in zip(reloaded.layers, changed.layers, strict=True):
        np.testing.assert_array_equal(new.weight, old.weight)
        np.testing.assert_array_equal(new.bias, old.bias)
    x = _points(99)[:200]
    expected = changed.forward(x)
    assert np.abs(ort_forward(float64_copy(onnx.load(str(out))), x) - expected).max() \
        <= FORWARD_AGREE_TOL
    assert np.abs(ort_forward(out, x) - expected).max() <= FLOAT32_FORWARD_TOL
    assert np.abs(expected - network.forward(x)).max() > 10 * FLOAT32_FORWARD_TOL  # it did change
