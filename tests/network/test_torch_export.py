"""to_torch: a Sequential that computes the same function, with copied parameters."""

from __future__ import annotations

import numpy as np
import torch

from verirepair.network import AffineLayer, Network, random_network, to_torch
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
