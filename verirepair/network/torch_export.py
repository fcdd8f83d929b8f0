"""Convert a :class:`Network` to a PyTorch module for gradient-based work.

Pipeline position: used by stages that need gradients (counterexample search
by attack, fine-tuning baselines).  ``torch`` is imported lazily so that the
rest of the package loads without paying for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from verirepair.network.model import Network

if TYPE_CHECKING:
    import torch

__all__ = ["to_torch"]


def to_torch(network: Network, dtype: torch.dtype | None = None) -> torch.nn.Sequential:
    """Build ``Sequential(Linear, ReLU, ..., Linear)`` with ``network``'s parameters.

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
        if layer.relu:
            modules.append(torch.nn.ReLU())
    return torch.nn.Sequential(*modules)
