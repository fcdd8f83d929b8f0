"""to_torch: a Sequential that computes the same function, with copied parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verirepair.network import AffineLayer, Network, load_onnx, random_network, to_torch
from verirepair.tolerances import FORWARD_AGREE_TOL


def test_structure_and_values_match_the_network() -> None:
    network = random_network([5, 7, 6, 3], seed=11)
    module = to_torch(network)
    assert [type(m).__name__ for m in module] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert all(p.dtype == torch.float64 for p in module.parameters())
    x = np.random.default_rng(0).normal(size=(100, 5))
    with torch.no_grad():
        ours = module(torch.from_numpy(x)).numpy()
    assert np.abs(ours - network.forward(x)).max() <= FORWARD_AGREE_TOL


def test_hand_network_and_gradient() -> None:
    # y = relu(x0 - x1) + 2 * relu(x1);  at x = (3, 1): y = 2 + 2 = 4, dy/dx = (1, -1 + 2)
    network = Network((AffineLayer([[1.0, -1.0], [0.0, 1.0]], [0.0, 0.0], relu=True),
                       AffineLayer([[1.0, 2.0]], [0.0], relu=False)))
    x = torch.tensor([[3.0, 1.0]], dtype=torch.float64, requires_grad=True)
    y = to_torch(network)(x)
    y.sum().backward()
    assert y.item() == 4.0
    assert x.grad.tolist() == [[1.0, 1.0]]


def test_dtype_and_parameters_are_copies() -> None:
    network = random_network([3, 4, 2], seed=1)
    module = to_torch(network, dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in module.parameters())
    with torch.no_grad():
        module[0].weight.add_(1.0)
    np.testing.assert_array_equal(network.layers[0].weight, random_network([3, 4, 2], seed=1).layers[0].weight)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                            "ignore::FutureWarning")
def test_torch_onnx_export_of_to_torch_loads_back_unchanged(tmp_path) -> None:
    # a real exporter's graph (Gemm transB=1, dynamic batch) read by load_onnx
    network = random_network([4, 6, 3], seed=5)
    module = to_torch(network, dtype=torch.float32)
    torch.onnx.export(module, (torch.zeros(1, 4),), str(tmp_path / "t.onnx"), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    loaded = load_onnx(tmp_path / "t.onnx")
    assert [layer.relu for layer in loaded.layers] == [True, False]
    for new, old in zip(loaded.layers, network.layers, strict=True):
        np.testing.assert_array_equal(new.weight, old.weight.astype(np.float32))
        np.testing.assert_array_equal(new.bias, old.bias.astype(np.float32))
