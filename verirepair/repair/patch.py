"""A weight patch of one layer and its application.

Pipeline position: :func:`verirepair.repair.repair_layer` returns a
:class:`Patch`; :func:`apply_patch` turns it into a *new* :class:`Network`
(the original is never mutated), which is then re-verified and saved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verirepair.network.model import Network
from verirepair.tolerances import PATCH_ZERO_TOL


@dataclass(frozen=True, slots=True)
class Patch:
    """An additive change of one affine layer: ``W += delta_weight``, ``b += delta_bias``.

    Parameters
    ----------
    layer_index : int
        Which affine layer is changed.
    delta_weight : array, shape (out, in)
    delta_bias : array, shape (out,)
    """

    layer_index: int
    delta_weight: np.ndarray
    delta_bias: np.ndarray

    def __post_init__(self) -> None:
        dw = np.array(self.delta_weight, dtype=np.float64, copy=True)
        db = np.array(self.delta_bias, dtype=np.float64, copy=True)
        if dw.ndim != 2 or db.ndim != 1 or db.shape[0] != dw.shape[0]:
            raise ValueError(f"patch shapes do not match: weight {dw.shape}, bias {db.shape}")
        if not (np.all(np.isfinite(dw)) and np.all(np.isfinite(db))):
            raise ValueError("patch contains NaN or infinite values")
        dw.setflags(write=False)
        db.setflags(write=False)
        object.__setattr__(self, "delta_weight", dw)
        object.__setattr__(self, "delta_bias", db)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Patch) and self.layer_index == other.layer_index
                and np.array_equal(self.delta_weight, other.delta_weight)
                and np.array_equal(self.delta_bias, other.delta_bias))

    def __hash__(self) -> int:
        return hash((self.layer_index, self.delta_weight.tobytes(), self.delta_bias.tobytes()))

    def _flat(self) -> np.ndarray:
        return np.concatenate([self.delta_weight.ravel(), self.delta_bias])

    @property
    def l1(self) -> float:
        """Sum of absolute changes of weights and biases."""
        return float(np.abs(self._flat()).sum())

    @property
    def linf(self) -> float:
        """Largest absolute change of any weight or bias."""
        return float(np.abs(self._flat()).max(initial=0.0))

    @property
    def n_changed(self) -> int:
        """Number of parameters changed by more than ``PATCH_ZERO_TOL``."""
        return int(np.count_nonzero(np.abs(self._flat()) > PATCH_ZERO_TOL))

    @property
    def changed_units(self) -> tuple[int, ...]:
        """Output units (rows) of the layer with at least one changed parameter."""
        rows = (np.abs(self.delta_weight) > PATCH_ZERO_TOL).any(axis=1)
        rows |= np.abs(self.delta_bias) > PATCH_ZERO_TOL
        return tuple(int(i) for i in np.flatnonzero(rows))


def apply_patch(network: Network, patch: Patch) -> Network:
    """Return a new network with ``patch`` added to layer ``patch.layer_index``.

    Parameters
    ----------
    network : Network
    patch : Patch

    Returns
    -------
    Network
        A new network; ``network`` itself is unchanged.

    Raises
    ------
    ValueError
        If the layer index or the patch shape does not fit the network.
    """
    if not 0 <= patch.layer_index < network.n_layers:
        raise ValueError(f"patch layer_index {patch.layer_index} outside 0..{network.n_layers - 1}")
    layer = network.layers[patch.layer_index]
    if patch.delta_weight.shape != layer.weight.shape:
        raise ValueError(f"patch weight shape {patch.delta_weight.shape} does not match layer "
                         f"{patch.layer_index} weight shape {layer.weight.shape}")
    return network.replace_layer(patch.layer_index, layer.weight + patch.delta_weight,
                                 layer.bias + patch.delta_bias)
