"""Convert a :class:`Network` to a PyTorch module for gradient-based work.

Pipeline position: used by stages that need gradients (counterexample search
by attack, fine-tuning baselines).  ``torch`` is imported lazily so that the
rest of the package loads without paying for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from verirepair.network.activation import Activation, ActivationKind
from verirepair.network.model import Network

if TYPE_CHECKING:
    import torch

__all__ = ["to_torch", "torch_activation"]

#: Where torch's softplus switches to the identity (see :func:`torch_activation`).
SOFTPLUS_LINEAR_FROM = 40.0


def torch_activation(activation: Activation) -> torch.nn.Module | None:
    """The torch module computing ``activation`` (None for the identity).

    ELU and LeakyReLU keep their ``alpha``; softplus is torch's with
    ``beta=1`` and its linear regime from ``z > 40`` only (torch's default 20
    differs from ``log(1 + exp(z))`` by ``exp(-20) = 2e-9``; above 40 the two
    are equal in float64, and ``exp(40)`` does not overflow even in float32).
    """
    import torch

    kind, alpha = activation.kind, float(activation.alpha or 0.0)
    if kind is ActivationKind.IDENTITY:
        return None
    if kind is ActivationKind.RELU:
        return torch.nn.ReLU()
    if kind is ActivationKind.LEAKY_RELU:
        return torch.nn.LeakyReLU(alpha)
    if kind is ActivationKind.ELU:
        return torch.nn.ELU(alpha)
    if kind is ActivationKind.TANH:
        return torch.nn.Tanh()
    if kind is ActivationKind.SIGMOID:
        return torch.nn.Sigmoid()
    return torch.nn.Softplus(beta=1.0, threshold=SOFTPLUS_LINEAR_FROM)


def to_torch(network: Network, dtype: torch.dtype | None = None) -> torch.nn.Sequential:
    """Build ``Sequential(Linear, activation, ..., Linear)`` with ``network``'s parameters.

    Parameters
    ----------
    network : Network
    dtype : torch.dtype, optional
        Parameter dtype; ``torch.float64`` (the default) matches
        :meth:`Network.forward` exactly up to summation order.

    Returns
    -------
    torch.nn.Sequential
        Maps ``(n, n_inputs)`` to ``(n, n_outputs)``.  The parameters are
        copies: training the module never changes ``network``.
    """
    import torch

    dtype = torch.float64 if dtype is None else dtype
    modules: list[torch.nn.Module] = []
    for layer in network.layers:
        linear = torch.nn.Linear(layer.in_features, layer.out_features, dtype=dtype)
        with torch.no_grad():
            # np.array(...) makes a writable copy: torch refuses read-only buffers
            linear.weight.copy_(torch.from_numpy(np.array(layer.weight)).to(dtype))
            linear.bias.copy_(torch.from_numpy(np.array(layer.bias)).to(dtype))
        modules.append(linear)
        module = torch_activation(layer.activation)
        if module is not None:
            modules.append(module)
    return torch.nn.Sequential(*modules)
