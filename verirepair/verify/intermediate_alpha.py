"""Optimised intermediate bounds (alpha-CROWN on the hidden layers, not only the specification).

Pipeline position: :class:`verirepair.verify.bab.BranchAndBound` calls
:func:`tighten_intermediate` on the sub-boxes that plain CROWN and the
specification's alpha-CROWN (:mod:`verirepair.verify.alpha_crown`) leave open
once a search is large (see :data:`verirepair.verify.bab.INTERMEDIATE_ALPHA_AFTER`).
The tightened bounds stay with the box and are inherited by its children, so
the work is done once per box, not once per descendant.

Why.  The input-splitting search bounds every hidden unit by one CROWN
back-substitution with CROWN's adaptive lower slopes.  On the 6-layer ACAS Xu
networks those bounds degrade layer after layer: on sub-boxes of N1,9 at split
depth 19 (edges about 1/16 of the domain), sampling shows 8 units of the last
hidden layer that really change sign, while the bounds call all 50 unstable,
and the property's bound fails (-0.90 .. -0.07) on six boxes whose sampled
margin is +0.18.  Optimising the lower slopes of the earlier layers' unstable
units for each hidden unit's bound, layer by layer, as alpha-CROWN does (Xu et
al., "Fast and complete", ICLR 2021), proved five of the six (+0.14 .. +0.36;
6 steps, about 35 ms a box).  It costs about ten plain boxes, so it is off by
default (:data:`verirepair.verify.bab.INTERMEDIATE_ALPHA_AFTER`); see
benchmarks/results/thin_margins.md.

Method, per hidden ReLU layer ``j = 1 .. L-2`` in order: the units that are
unstable under the current bounds get two rows each (``+z_i`` and ``-z_i``),
and :func:`~verirepair.verify.alpha_crown.optimize_spec_slopes` maximises
their CROWN lower bounds over the lower slopes of layers ``0 .. j-1`` on the
network truncated after layer ``j`` (made linear), using the bounds already
tightened for those layers.  Layer 0 is exact and needs nothing.

Soundness: every iterate of the slope ascent is a valid CROWN bound (slopes
in their sound range), so each result is a sound bound of ``z_i`` on the box;
it is intersected with the bound it replaces, so nothing gets looser.  No
tolerance is added here: these are intermediate bounds, and the specification
bound computed from them keeps ``BOUND_TOL`` before it proves anything.
"""

from __future__ import annotations

import numpy as np

from verirepair.network.model import AffineLayer, Network
from verirepair.verify.alpha_crown import optimize_spec_slopes

#: Slope-ascent steps per hidden layer.  Measured on six depth-19 sub-boxes of
#: N1,9 phi7 (biases of outputs 3 and 4 raised by 0.18): 3 steps proved four of
#: them at half the cost of 6 steps, which proved five.
STEPS = 6


def _truncated(network: Network, layer_index: int) -> Network:
    """Layers ``0 .. layer_index`` with the last one's activation dropped (its output is ``z_j``)."""
    last = network.layers[layer_index]
    return Network(network.layers[:layer_index] + (AffineLayer(last.weight, last.bias, False),))


def tighten_intermediate(network: Network, lower: np.ndarray, upper: np.ndarray,
                         pre_l: list[np.ndarray], pre_u: list[np.ndarray], steps: int | None = None
                         ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Tighter pre-activation bounds of the hidden ReLU layers' unstable units.

    Parameters
    ----------
    network : Network -- with a linear last layer
    lower, upper : array, shape (n, d) -- the boxes
    pre_l, pre_u : lists of arrays, shapes (n, m_j) -- sound bounds of every
        affine layer on each box (e.g. :func:`~verirepair.verify.bounds.intermediate_bounds`)
    steps : int or None -- slope-ascent steps per layer (default :data:`STEPS`; 0: plain
        CROWN from the tightened earlier layers, still never looser than the input)

    Returns
    -------
    pre_l, pre_u : new lists of arrays, same shapes -- never looser than the
        inputs; the last (output) layer is returned unchanged
    """
    steps = STEPS if steps is None else steps
    new_l = [np.array(a, dtype=np.float64) for a in pre_l]
    new_u = [np.array(a, dtype=np.float64) for a in pre_u]
    n = lower.shape[0]
    for j in range(1, network.n_layers - 1):
        if not network.layers[j].relu:
            continue
        zl, zu = new_l[j], new_u[j]
        unstable = (zl < 0.0) & (zu > 0.0)
        counts = unstable.sum(axis=1)
        kmax = int(counts.max(initial=0))
        if kmax == 0:
            continue
        m = zl.shape[1]
        # per box its unstable units first, padded with units whose rows stay zero
        order = np.argsort(~unstable, axis=1, kind="stable")[:, :kmax]
        valid = np.arange(kmax)[None, :] < counts[:, None]
        rows = np.zeros((n, 2 * kmax, m))
        box = np.arange(n)[:, None]
        rows[box, np.arange(kmax)[None, :], order] = np.where(valid, 1.0, 0.0)
        rows[box, kmax + np.arange(kmax)[None, :], order] = np.where(valid, -1.0, 0.0)
        bound, _, _ = optimize_spec_slopes(_truncated(network, j), new_l[:j], new_u[:j], rows,
                                           lower, upper, steps, keep_slopes=False)
        sel_b, sel_k = np.nonzero(valid)
        units = order[sel_b, sel_k]
        zl[sel_b, units] = np.maximum(zl[sel_b, units], bound[sel_b, sel_k])
        zu[sel_b, units] = np.minimum(zu[sel_b, units], -bound[sel_b, kmax + sel_k])
    return new_l, new_u
