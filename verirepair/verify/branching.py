"""Which unstable ReLU to split next: BaB-SR scores filtered by a cheap look-ahead (FSB).

Pipeline position: :mod:`verirepair.verify.relu_bab` calls :func:`choose_units`
once per batch of open sub-domains.

BaB-SR-style score (Bunel et al., "Branch and bound for piecewise linear
neural network verification", JMLR 2020), computed from the coefficients
``lambda`` of a hidden layer's post-activation in the sub-domain's bound
(summed over the rows of its open polytopes).  For an unstable unit with
bounds ``l < 0 < u``:

* a negative ``lambda`` means the bound used the upper line ``s z + t`` of
  the triangle, whose intercept ``t = -u l / (u - l)`` costs up to
  ``-lambda * t``; splitting removes it;
* a positive ``lambda`` used a lower line ``alpha z``, off by up to
  ``min(u, -l)`` (for the adaptive slope); a quarter of
  ``lambda * min(u, -l)`` is added as a tie-breaker.

FSB (filtered smart branching, De Palma et al. 2021): the ``FSB_CANDIDATES``
best-scoring units of each sub-domain are tried for real: both children get
their bound from one pass with the parent's slopes and multipliers (the split
unit clamped, its multiplier 0), and the unit whose worse child is best wins.
"""

from __future__ import annotations

import numpy as np

from verirepair.network.model import Network
from verirepair.verify.beta_crown import clamp_to_splits, split_lower

#: Units per sub-domain whose children are bounded for the FSB look-ahead (0: BaB-SR only).
FSB_CANDIDATES = 4


def babsr_scores(lambdas: list[np.ndarray], row_weight: np.ndarray, pre_l: list[np.ndarray],
                 pre_u: list[np.ndarray], splittable: list[np.ndarray]) -> list[np.ndarray]:
    """Per hidden layer, the BaB-SR score of each unit (n, m_j); -inf where not splittable.

    Parameters
    ----------
    lambdas : list of (n, k, m_j) -- post-activation coefficients of the bound rows
    row_weight : (n, k) -- 1 for the rows that count (the open polytopes' best rows)
    pre_l, pre_u : bounds of the hidden layers, (n, m_j)
    splittable : list of bool (m_j,) -- units that are ReLUs
    """
    scores = []
    for lam, lo, hi, ok in zip(lambdas, pre_l, pre_u, splittable, strict=True):
        lam_sum = np.einsum("nkm,nk->nm", lam, row_weight)
        unstable = (lo < 0.0) & (hi > 0.0) & ok[None, :]
        width = np.where(unstable, hi - lo, 1.0)
        intercept = np.where(unstable, -hi * lo / width, 0.0)
        score = np.maximum(-lam_sum, 0.0) * intercept \
            + 0.25 * np.maximum(lam_sum, 0.0) * np.minimum(hi, -lo)
        scores.append(np.where(unstable, score, -np.inf))
    return scores


def _flat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts, axis=1)


def choose_units(network: Network, pre_l: list[np.ndarray], pre_u: list[np.ndarray],
                 signs: list[np.ndarray], C: np.ndarray, rhs: np.ndarray, poly_of_row: np.ndarray,
                 open_polys: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                 alphas: list[np.ndarray], betas: list[np.ndarray], lambdas: list[np.ndarray],
                 best_row: np.ndarray, splittable: list[np.ndarray],
                 candidates: int | None = None) -> np.ndarray:
    """The flat index (over the hidden layers' units) of the unit to split in each sub-domain.

    Parameters
    ----------
    network : Network -- linear last layer
    pre_l, pre_u, signs : lists over *all* layers, (n, m_j)
    C, rhs, poly_of_row : the specification rows (:class:`~verirepair.verify.search_state.SpecRows`)
    open_polys : (n, P) bool and best_row : (n, P) int -- per polytope its best row
    lower, upper : (n, d)
    alphas, betas, lambdas : lists over the hidden layers, (n, k, m_j), from the parent's bound
    splittable : list over the hidden layers of bool (m_j,)
    candidates : int, optional -- FSB look-ahead width (default :data:`FSB_CANDIDATES`)

    Returns
    -------
    array (n,) int -- flat unit index; -1 where no unit is unstable
    """
    candidates = FSB_CANDIDATES if candidates is None else candidates
    n, k = lower.shape[0], C.shape[0]
    hidden = len(lambdas)
    row_weight = np.zeros((n, k))
    for poly in range(open_polys.shape[1]):
        rows = best_row[:, poly]
        row_weight[np.arange(n), rows] += open_polys[:, poly]
    flat = _flat(babsr_scores(lambdas, row_weight, pre_l[:hidden], pre_u[:hidden], splittable))
    any_unstable = np.isfinite(flat).any(axis=1)
    top = np.argsort(-flat, axis=1)[:, :max(candidates, 1)]
    choice = top[:, 0].copy()
    if candidates <= 1 or not any_unstable.any():
        return np.where(any_unstable, choice, -1)
    c = top.shape[1]
    valid = np.isfinite(np.take_along_axis(flat, top, axis=1))         # (n, c)
    widths = [a.shape[1] for a in pre_l[:hidden]]
    offsets = np.cumsum([0, *widths])
    # Children: (n, c, 2) sub-domains, flattened to n * c * 2.
    rep = lambda a: np.repeat(a, 2 * c, axis=0)  # noqa: E731
    child_l = [rep(a) for a in pre_l]
    child_u = [rep(a) for a in pre_u]
    child_s = [rep(a) for a in signs]
    unit = np.repeat(top, 2, axis=1).reshape(-1)                         # (n*c*2,)
    side = np.tile(np.array([1, -1]), n * c)
    for j in range(hidden):
        inside = (unit >= offsets[j]) & (unit < offsets[j + 1])
        idx = np.flatnonzero(inside)
        child_s[j][idx, unit[idx] - offsets[j]] = side[idx]
    child_l, child_u = clamp_to_splits(child_l, child_u, child_s)
    bound = split_lower(network, child_l, child_u, child_s[:hidden], C, rep(lower), rep(upper),
                        [rep(a) for a in alphas], [rep(b) for b in betas])
    margin = bound - rhs                                                # (n*c*2, k)
    # per child: sum over open polytopes of min(best row margin, 0)
    poly_margin = np.full((margin.shape[0], open_polys.shape[1]), -np.inf)
    for row, poly in enumerate(poly_of_row):
        poly_margin[:, poly] = np.maximum(poly_margin[:, poly], margin[:, row])
    value = (np.minimum(poly_margin, 0.0) * rep(open_polys)).sum(axis=1).reshape(n, c, 2)
    worst_child = value.min(axis=2)
    worst_child = np.where(valid, worst_child, -np.inf)
    pick = np.argmax(worst_child, axis=1)
    choice = top[np.arange(n), pick]
    return np.where(any_unstable, choice, -1)
