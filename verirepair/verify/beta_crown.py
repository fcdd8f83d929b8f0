"""Bounds of a ReLU network on a sub-domain fixed by ReLU splits (beta-CROWN style).

Pipeline position: :mod:`verirepair.verify.relu_bab` (activation splitting)
calls :func:`split_intermediate` and :func:`optimize_split_lower` on batches of
sub-domains.  A sub-domain is the input box intersected with *split
constraints*: per split hidden unit ``z_j`` a sign ``s_j`` in ``{+1, -1}``
asking ``s_j z_j(x) >= 0`` (active / inactive).

How the splits enter the bounds:

* **Clamping.**  An active split unit gets the pre-activation lower bound 0, an
  inactive one the upper bound 0, so its ReLU relaxation is exact
  (:func:`split_intermediate`).  The bounds of later layers may be
  recomputed from the clamped ones (``recompute=True``, CROWN
  back-substitution through :func:`~verirepair.verify.bounds.intermediate_bounds`)
  or kept from the parent.  A unit whose lower bound then exceeds its upper
  bound (by more than ``BOUND_TOL``) proves the sub-domain empty.
* **Lagrangian (beta) terms.**  Clamping alone forgets that ``z_j`` is a
  function of the earlier layers.  For multipliers ``beta_j >= 0``,
  ``c.y(x) >= c.y(x) - sum_j beta_j s_j z_j(x)`` on the sub-domain, so any
  lower bound of the right-hand side over the box (computed by CROWN, with the
  relaxations valid on the sub-domain) is a lower bound of ``c.y`` on the
  sub-domain.  In the back-substitution this adds ``-beta_j s_j`` to the
  coefficient of ``z_j``.  The multipliers are optimised together with the
  lower slopes ``alpha`` of the unstable units (as in
  :mod:`~verirepair.verify.alpha_crown`) by projected Adam ascent on the bound,
  per sub-domain and per specification row; the gradient is one reverse pass
  (``d bound / d beta_j = -s_j * d bound / d A_j``, with ``A_j`` the
  coefficient of ``z_j``).  Every iterate is sound (``alpha`` clipped to
  ``[0, 1]``, ``beta`` to ``>= 0``), and the best bound seen is returned.

Soundness in float64 is as for plain CROWN: the caller adds ``BOUND_TOL``
before a bound proves anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from verirepair.network.model import Network
from verirepair.tolerances import BOUND_TOL
from verirepair.verify.bounds import Bounds, intermediate_bounds, relu_relaxation

#: Adam steps of the joint alpha/beta ascent and their learning rates (alpha
#: lives in [0, 1]; beta is unbounded above, in units of the bound per unit of ``z``).
SPLIT_STEPS = 10
ALPHA_LR = 0.1
BETA_LR = 0.05
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8


@dataclass(frozen=True, slots=True)
class Relaxation:
    """One hidden layer's fixed ReLU relaxation, shapes (n, 1, m) to broadcast over the rows.

    ``s, t``: the upper line ``s z + t``; ``unstable``: where the lower slope
    ``alpha`` is free; ``fixed``: CROWN's adaptive lower slope (1 or 0; for
    stable units 1 active, 0 inactive).  The split units are stable here
    (their bounds are clamped), so their relaxation is exact on the sub-domain.
    """

    s: np.ndarray
    t: np.ndarray
    unstable: np.ndarray
    fixed: np.ndarray


def relaxations(network: Network, pre_l: list[np.ndarray], pre_u: list[np.ndarray]
                ) -> list[Relaxation]:
    """One :class:`Relaxation` per hidden layer (a hidden layer without ReLU is the identity)."""
    out = []
    for j in range(network.n_layers - 1):
        alpha0, s, t = relu_relaxation(pre_l[j], pre_u[j])
        unstable = (pre_l[j] < 0.0) & (pre_u[j] > 0.0)
        if not network.layers[j].relu:
            alpha0, s, t = np.ones_like(s), np.ones_like(s), np.zeros_like(t)
            unstable = np.zeros_like(unstable)
        out.append(Relaxation(s[:, None, :], t[:, None, :], unstable[:, None, :], alpha0[:, None, :]))
    return out


def clamp_to_splits(pre_l: list[np.ndarray], pre_u: list[np.ndarray], signs: list[np.ndarray]
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Copies of the bounds with active units' lower and inactive units' upper bound set to 0.

    Parameters
    ----------
    pre_l, pre_u : list of arrays, shapes (n, m_j) -- bounds of every affine layer
    signs : list of int arrays, shapes (n, m_j) -- +1 active, -1 inactive, 0 unsplit
    """
    new_l = [np.where(s > 0, np.maximum(lo, 0.0), lo) for lo, s in zip(pre_l, signs, strict=True)]
    new_u = [np.where(s < 0, np.minimum(hi, 0.0), hi) for hi, s in zip(pre_u, signs, strict=True)]
    return new_l, new_u


def split_intermediate(network: Network, lower: np.ndarray, upper: np.ndarray,
                       pre_l: list[np.ndarray], pre_u: list[np.ndarray], signs: list[np.ndarray],
                       recompute: bool) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Intermediate bounds of every layer on split sub-domains.

    Parameters
    ----------
    network : Network -- with a linear last layer
    lower, upper : array, shape (n, d) -- the input box of each sub-domain
    pre_l, pre_u : list of arrays, shapes (n, m_j) -- sound bounds on the
        parent domain (the root box's, or the parent's), hence on this one
    signs : list of int arrays, shapes (n, m_j) -- the split constraints
    recompute : bool -- back-substitute the layers again from the clamped bounds

    Returns
    -------
    pre_l, pre_u : lists of arrays -- never looser than the inputs
    empty : array, shape (n,) bool -- sub-domains proven empty (some unit's
        lower bound exceeds its upper bound by more than ``BOUND_TOL``)
    """
    new_l, new_u = clamp_to_splits(pre_l, pre_u, signs)
    if recompute:
        # intermediate_bounds intersects the prior layer by layer before it
        # relaxes a layer, so the clamps shape every later layer's bounds.
        new_l, new_u = intermediate_bounds(network, lower, upper, "backward",
                                           Bounds(tuple(new_l), tuple(new_u)))
        new_l, new_u = clamp_to_splits(new_l, new_u, signs)
    empty = np.zeros(lower.shape[0], dtype=bool)
    for lo, hi in zip(new_l, new_u, strict=True):
        empty |= (lo - hi > BOUND_TOL).any(axis=1)
    return new_l, new_u, empty


@dataclass(slots=True)
class SplitBound:
    """Result of :func:`optimize_split_lower` (first axis n sub-domains, k rows).

    bound : (n, k) -- sound lower bounds of ``C @ y`` on each sub-domain
    coef : (n, k, d) -- input coefficients of the best bound's linear function
        (its minimising box corner is a counterexample candidate)
    alphas, betas : lists of (n, k, m_j) -- the parameters of the best bound
        (warm start for the children)
    lambdas : list of (n, k, m_j) -- coefficients of each hidden layer's
        post-activation in the best bound (used by the branching scores)
    """

    bound: np.ndarray
    coef: np.ndarray
    alphas: list[np.ndarray]
    betas: list[np.ndarray]
    lambdas: list[np.ndarray]


def _pass(network: Network, relax: list[Relaxation], alphas: list[np.ndarray],
          betas: list[np.ndarray], signs: list[np.ndarray], C: np.ndarray, lower: np.ndarray,
          upper: np.ndarray, want_grad: bool
          ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """CROWN lower bound with split multipliers, and its gradients in alpha and beta.

    Back-substitution as in alpha-CROWN (:mod:`verirepair.verify.alpha_crown`)
    with one extra term: after relaxing hidden layer ``j``, ``A_j -= beta_j * s_j``.
    Returns ``bound (n, k)``, ``coef (n, k, d)``, ``lambdas`` (the coefficients
    ``P`` on each hidden layer's post-activation), and the gradients in alpha
    and beta (empty lists when ``want_grad`` is False).
    """
    n, k, _ = C.shape
    last = network.n_layers - 1
    A = C
    const = np.zeros((n, k))
    lambdas: list[np.ndarray] = [np.zeros(0)] * last
    slopes: list[np.ndarray] = [np.zeros(0)] * last
    for j in range(last, -1, -1):
        layer = network.layers[j]
        const += A @ layer.bias
        P = (A.reshape(n * k, -1) @ layer.weight).reshape(n, k, -1)
        if j == 0:
            A = P
            break
        r = relax[j - 1]
        slope = np.where(r.unstable, alphas[j - 1], r.fixed)
        neg = np.minimum(P, 0.0)
        const += np.einsum("nkp,nkp->nk", neg, np.broadcast_to(r.t, neg.shape))
        lambdas[j - 1], slopes[j - 1] = P, slope
        A = np.maximum(P, 0.0) * slope + neg * r.s - betas[j - 1] * signs[j - 1]
    lo, hi = lower[:, None, :], upper[:, None, :]
    bound = const + (np.maximum(A, 0.0) * lo + np.minimum(A, 0.0) * hi).sum(axis=-1)
    if not want_grad:
        return bound, A, lambdas, [], []
    g_alpha: list[np.ndarray] = [np.zeros(0)] * last
    g_beta: list[np.ndarray] = [np.zeros(0)] * last
    g_p = np.where(A > 0.0, lo, hi)                     # d bound / d P_0
    for j in range(last):
        layer = network.layers[j]
        g_a = (g_p.reshape(n * k, -1) @ layer.weight.T).reshape(n, k, -1) + layer.bias
        P, r = lambdas[j], relax[j]
        g_alpha[j] = np.where(r.unstable, g_a * np.maximum(P, 0.0), 0.0)
        g_beta[j] = -g_a * signs[j]
        g_p = g_a * np.where(P > 0.0, slopes[j], r.s) + np.where(P < 0.0, r.t, 0.0)
    return bound, A, lambdas, g_alpha, g_beta


def initial_alphas(network: Network, pre_l: list[np.ndarray], pre_u: list[np.ndarray],
                   k: int) -> list[np.ndarray]:
    """CROWN's adaptive lower slopes, repeated per row: list of (n, k, m_j)."""
    return [np.repeat(r.fixed, k, axis=1) for r in relaxations(network, pre_l, pre_u)]


def split_lower(network: Network, pre_l: list[np.ndarray], pre_u: list[np.ndarray],
                signs: list[np.ndarray], C: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                alphas: list[np.ndarray], betas: list[np.ndarray]) -> np.ndarray:
    """One bound pass with fixed slopes and multipliers (no optimisation): (n, k)."""
    relax = relaxations(network, pre_l, pre_u)
    s3 = [s[:, None, :].astype(np.float64) for s in signs]
    Cn = np.broadcast_to(C, (lower.shape[0],) + C.shape[-2:]) if C.ndim == 2 else C
    bound, _, _, _, _ = _pass(network, relax, alphas, betas, s3, Cn, lower, upper, want_grad=False)
    return bound


def optimize_split_lower(network: Network, pre_l: list[np.ndarray], pre_u: list[np.ndarray],
                         signs: list[np.ndarray], C: np.ndarray, lower: np.ndarray,
                         upper: np.ndarray, steps: int = SPLIT_STEPS,
                         alphas: list[np.ndarray] | None = None,
                         betas: list[np.ndarray] | None = None,
                         done: Callable[[np.ndarray], bool] | None = None) -> SplitBound:
    """Lower bounds of ``C @ y`` on split sub-domains, alpha and beta optimised.

    Parameters
    ----------
    network : Network -- with a linear last layer
    pre_l, pre_u : list of arrays, shapes (n, m_j) -- sound (clamped) bounds on the sub-domains
    signs : list of int arrays, shapes (n, m_j) for the hidden layers ``0 .. L-2``
    C : array, shape (k, n_outputs)
    lower, upper : array, shape (n, d)
    steps : int -- Adam steps (0: one pass with the given or adaptive parameters)
    alphas, betas : optional warm starts, lists of (n, k, m_j); betas of
        unsplit units are ignored (zeroed)
    done : optional callable ``(best bound (n, k)) -> bool``; the ascent stops
        early once it returns True (e.g. every sub-domain already proven)

    Returns
    -------
    SplitBound
    """
    n, k = lower.shape[0], C.shape[0]
    relax = relaxations(network, pre_l, pre_u)
    s3 = [s[:, None, :].astype(np.float64) for s in signs]
    if alphas is None:
        alphas = [np.repeat(r.fixed, k, axis=1) for r in relax]
    alphas = [np.clip(np.asarray(a, dtype=np.float64), 0.0, 1.0) for a in alphas]
    if betas is None:
        betas = [np.zeros((n, k, s.shape[-1])) for s in s3]
    betas = [np.maximum(np.asarray(b, dtype=np.float64), 0.0) * (s != 0) for b, s in
             zip(betas, s3, strict=True)]
    Cn = np.broadcast_to(C, (n, k, C.shape[1]))
    bound, coef, lambdas, g_alpha, g_beta = _pass(network, relax, alphas, betas, s3, Cn, lower,
                                                  upper, want_grad=steps > 0)
    best = SplitBound(bound.copy(), coef, [a.copy() for a in alphas], [b.copy() for b in betas],
                      lambdas)
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in alphas + betas]
    for step in range(1, steps + 1):
        if done is not None and done(best.bound):
            break
        if not g_alpha:     # the previous pass skipped its gradient: recompute it
            _, _, _, g_alpha, g_beta = _pass(network, relax, alphas, betas, s3, Cn, lower, upper, True)
        params = alphas + betas
        grads = g_alpha + g_beta
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            m, v = moments[i]
            m *= ADAM_BETA1
            m += (1.0 - ADAM_BETA1) * g
            v *= ADAM_BETA2
            v += (1.0 - ADAM_BETA2) * g * g
            lr = ALPHA_LR if i < len(alphas) else BETA_LR
            p += (lr / (1.0 - ADAM_BETA1 ** step)) * m / (np.sqrt(v / (1.0 - ADAM_BETA2 ** step))
                                                         + ADAM_EPS)
        for a in alphas:
            np.clip(a, 0.0, 1.0, out=a)
        for b, s in zip(betas, s3, strict=True):
            np.maximum(b, 0.0, out=b)
            b *= s != 0
        bound, coef, lambdas, g_alpha, g_beta = _pass(network, relax, alphas, betas, s3, Cn,
                                                      lower, upper, want_grad=step < steps)
        better = bound > best.bound
        if better.any():
            best.bound = np.where(better, bound, best.bound)
            b3 = better[:, :, None]
            best.coef = np.where(b3, coef, best.coef)
            best.alphas = [np.where(b3, a, old) for a, old in zip(alphas, best.alphas, strict=True)]
            best.betas = [np.where(b3, b, old) for b, old in zip(betas, best.betas, strict=True)]
            best.lambdas = [np.where(b3, lam, old) for lam, old in
                            zip(lambdas, best.lambdas, strict=True)]
    return best
