"""A change of several layers at once (the trained strategies' patches).

Pipeline position: :mod:`verirepair.repair.imitation` retrains every layer and
:mod:`verirepair.repair.finetune` may adjust neurons of several layers; both
return a :class:`NetworkPatch`, a tuple of one-layer
:class:`~verirepair.repair.patch.Patch` objects.  The certify loop applies
either kind with :func:`apply_change`; the report reads the layers of either
kind with :func:`layer_patches`.  The graph never changes: only weights and
biases of existing layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verirepair.network.model import Network
from verirepair.repair.patch import Patch, apply_patch
from verirepair.tolerances import PATCH_ZERO_TOL


@dataclass(frozen=True, slots=True)
class NetworkPatch:
    """Additive changes of several affine layers (each layer at most once).

    Parameters
    ----------
    patches : tuple of Patch -- in increasing ``layer_index``, at least one
    """

    patches: tuple[Patch, ...]

    def __post_init__(self) -> None:
        patches = tuple(sorted(self.patches, key=lambda p: p.layer_index))
        indices = [p.layer_index for p in patches]
        if not patches or len(set(indices)) != len(indices):
            raise ValueError(f"a NetworkPatch needs at least one patch and each layer once, got layers {indices}")
        object.__setattr__(self, "patches", patches)

    @classmethod
    def between(cls, original: Network, changed: Network) -> NetworkPatch | None:
        """The patch that turns ``original`` into ``changed`` (same shapes); None if they are equal."""
        patches = []
        for index, (a, b) in enumerate(zip(original.layers, changed.layers, strict=True)):
            dw, db = b.weight - a.weight, b.bias - a.bias
            if np.any(np.abs(dw) > PATCH_ZERO_TOL) or np.any(np.abs(db) > PATCH_ZERO_TOL):
                patches.append(Patch(index, dw, db))
        return cls(tuple(patches)) if patches else None

    @property
    def layer_indices(self) -> tuple[int, ...]:
        """The changed layers, increasing."""
        return tuple(p.layer_index for p in self.patches)

    @property
    def l1(self) -> float:
        """Sum of absolute changes over every layer."""
        return float(sum(p.l1 for p in self.patches))

    @property
    def linf(self) -> float:
        """Largest absolute change of any weight or bias."""
        return float(max(p.linf for p in self.patches))

    @property
    def n_changed(self) -> int:
        """Parameters changed by more than ``PATCH_ZERO_TOL``, over every layer."""
        return int(sum(p.n_changed for p in self.patches))


#: What a repair strategy delivers: one layer's patch or several layers'.
Change = Patch | NetworkPatch


def layer_patches(change: Change) -> tuple[Patch, ...]:
    """The one-layer patches a change is made of."""
    return change.patches if isinstance(change, NetworkPatch) else (change,)


def apply_change(network: Network, change: Change) -> Network:
    """A new network with every layer patch of ``change`` added (the original is unchanged)."""
    for patch in layer_patches(change):
        network = apply_patch(network, patch)
    return network
