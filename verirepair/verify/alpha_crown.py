"""Optimised lower slopes for the specification bound (alpha-CROWN, final layer only).

Pipeline position: :mod:`verirepair.verify.bab` calls :func:`optimize_spec_lower`
on the sub-boxes that plain CROWN left open.  The intermediate bounds stay
fixed (those of :func:`verirepair.verify.bounds.intermediate_bounds`); only the
lower slopes ``alpha`` of the unstable ReLUs used while back-substituting the
specification rows are optimised, per box and per row, by projected signed
gradient ascent on the bound itself.

Why numpy, with a hand-written gradient, and not torch autograd: torch's
import costs 1.5-4 s on a loaded machine and cannot be interrupted, so a
search with a short budget either skipped alpha-CROWN (ACAS Xu N1,9 phi7 timed
out at 5 s but was violated in 2 s at 6 s) or overran its deadline while
importing.  The bound is a composition of matrix products and ``max/min(., 0)``,
so its gradient is one more pass through the layers in the opposite
direction (:func:`_bound_and_slope_gradients`); the test suite checks it
against finite differences.

Soundness: for any ``alpha`` in ``[0, 1]`` the relaxation ``relu(z) >= alpha z``
holds on ``[l, u]``, so every iterate's bound is sound; slopes are clamped to
``[0, 1]`` after each step and the final bound is the best seen per row.

Other activations: a LeakyReLU unit straddling 0 is optimised like a ReLU,
with its slope in ``[alpha, 1]`` (``leaky(z) >= a z`` on ``[l, u]`` for every such
``a``).  Smooth units (tanh, sigmoid, ELU, softplus) keep the fixed sound lines
of :mod:`verirepair.verify.activation_bounds`, lower intercept included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verirepair.network.activation import ActivationKind
from verirepair.network.model import Network
from verirepair.verify.activation_bounds import activation_relaxation
from verirepair.verify.bounds import relu_relaxation

#: Gradient steps on the slopes and their step size (slopes live in [0, 1]).
ALPHA_STEPS = 12
ALPHA_LR = 0.25


@dataclass(frozen=True, slots=True)
class _Relaxation:
    """The fixed part of one hidden layer's ReLU relaxation, shapes (n, 1, m) for broadcasting.

    ``s, t``: upper line ``s z + t``; ``unstable``: where the lower slope is
    free; ``fixed``: the lower slope of the stable units (1 active, 0 inactive),
    and the starting slope of the free ones; ``lower_t``: the lower line's
    intercept (None: zero, as for every ReLU); ``slope_min``: the smallest free
    slope (0 for a ReLU, alpha for a LeakyReLU).
    """

    s: np.ndarray
    t: np.ndarray
    unstable: np.ndarray
    fixed: np.ndarray
    lower_t: np.ndarray | None = None
    slope_min: float = 0.0


def _relaxations(network: Network, pre_lower: list[np.ndarray], pre_upper: list[np.ndarray]
                 ) -> list[_Relaxation]:
    """One :class:`_Relaxation` per hidden layer (a linear hidden layer is the identity)."""
    relax = []
    for j in range(network.n_layers - 1):
        activation = network.layers[j].activation
        if activation.kind is ActivationKind.LEAKY_RELU or not activation.is_piecewise_linear:
            la, lc, s, t = activation_relaxation(activation, pre_lower[j], pre_upper[j])
            if activation.kind is ActivationKind.LEAKY_RELU:     # free slope, zero intercepts
                unstable = (pre_lower[j] < 0.0) & (pre_upper[j] > 0.0)
                relax.append(_Relaxation(s[:, None, :], t[:, None, :], unstable[:, None, :],
                                         la[:, None, :], None, float(activation.alpha or 0.0)))
            else:
                relax.append(_Relaxation(s[:, None, :], t[:, None, :],
                                         np.zeros((la.shape[0], 1, la.shape[1]), bool),
                                         la[:, None, :], lc[:, None, :]))
            continue
        alpha0, s, t = relu_relaxation(pre_lower[j], pre_upper[j])
        unstable = (pre_lower[j] < 0.0) & (pre_upper[j] > 0.0)
        if not network.layers[j].relu:
            alpha0, s, t = np.ones_like(s), np.ones_like(s), np.zeros_like(t)
            unstable = np.zeros_like(unstable)
        relax.append(_Relaxation(s[:, None, :], t[:, None, :], unstable[:, None, :],
                                 alpha0[:, None, :]))
    return relax


def _bound_and_slope_gradients(network: Network, relax: list[_Relaxation],
                               alphas: list[np.ndarray], C: np.ndarray, lower: np.ndarray,
                               upper: np.ndarray, want_grad: bool
                               ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """CROWN lower bound of ``C @ y`` for the given slopes, and its gradient in them.

    The bound is computed by back-substitution: ``A_L = C``, and for each layer
    ``j`` from the last, ``const += A_j b_j``, ``P_j = A_j W_j``, then (below a
    hidden layer) ``A_{j-1} = max(P_j, 0) * slope + min(P_j, 0) * s`` with
    ``const += min(P_j, 0) . t``; finally ``bound = const + max(P_0, 0) . lower
    + min(P_0, 0) . upper``.  Reverse mode runs the same chain from the input
    side: ``dB/dP_0`` is ``lower`` where ``P_0 > 0`` and ``upper`` elsewhere,
    ``dB/dA_j = dB/dP_j W_j^T + b_j``, and through a relaxation
    ``dB/dslope = dB/dA * max(P, 0)``, ``dB/dP = dB/dA * (slope or s) + (0 or t)``
    by the sign of ``P``.

    Parameters
    ----------
    network : Network -- with a linear last layer
    relax : list of _Relaxation, one per hidden layer
    alphas : list of arrays, shapes (n, k, m_j) -- the free lower slopes
    C : array, shape (n, k, n_outputs)
    lower, upper : array, shape (n, d)
    want_grad : bool -- skip the reverse pass when False

    Returns
    -------
    bound : array, shape (n, k)
    coef : array, shape (n, k, d) -- ``P_0``, the bound's input coefficients
    grads : list of arrays, shapes (n, k, m_j) -- ``d bound / d alpha_j`` (zero
        where the unit is stable); empty when ``want_grad`` is False
    """
    n, k, _ = C.shape
    last = network.n_layers - 1
    A = C
    const = np.zeros((n, k))
    pre_relax: dict[int, np.ndarray] = {}
    slopes: dict[int, np.ndarray] = {}
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
        if r.lower_t is not None:
            pos = np.maximum(P, 0.0)
            const += np.einsum("nkp,nkp->nk", pos, np.broadcast_to(r.lower_t, pos.shape))
        pre_relax[j], slopes[j - 1] = P, slope
        A = np.maximum(P, 0.0) * slope + neg * r.s
    lo, hi = lower[:, None, :], upper[:, None, :]
    bound = const + (np.maximum(A, 0.0) * lo + np.minimum(A, 0.0) * hi).sum(axis=-1)
    if not want_grad:
        return bound, A, []
    grads: list[np.ndarray] = [np.zeros(0)] * last
    g_p = np.where(A > 0.0, lo, hi)                             # dB/dP_0, (n, k, d)
    for j in range(last):
        layer = network.layers[j]
        g_a = (g_p.reshape(n * k, -1) @ layer.weight.T).reshape(n, k, -1) + layer.bias
        P, r = pre_relax[j + 1], relax[j]
        positive = P > 0.0
        grads[j] = np.where(r.unstable, g_a * np.maximum(P, 0.0), 0.0)
        g_p = g_a * np.where(positive, slopes[j], r.s) + np.where(P < 0.0, r.t, 0.0)
        if r.lower_t is not None:
            g_p = g_p + np.where(positive, r.lower_t, 0.0)
    return bound, A, grads


def optimize_spec_lower(network: Network, pre_lower: list[np.ndarray],
                        pre_upper: list[np.ndarray], C: np.ndarray, lower: np.ndarray,
                        upper: np.ndarray, steps: int = ALPHA_STEPS
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Lower bounds of ``C @ y`` with optimised ReLU lower slopes (see :func:`optimize_spec_slopes`).

    Returns the best bound (n, k) and its input coefficients (n, k, d).
    """
    best, best_coef, _ = optimize_spec_slopes(network, pre_lower, pre_upper, C, lower, upper,
                                              steps, keep_slopes=False)
    return best, best_coef


def optimize_spec_slopes(network: Network, pre_lower: list[np.ndarray],
                         pre_upper: list[np.ndarray], C: np.ndarray, lower: np.ndarray,
                         upper: np.ndarray, steps: int = ALPHA_STEPS, keep_slopes: bool = True
                         ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Lower bounds of ``C @ y`` with optimised ReLU lower slopes.

    Parameters
    ----------
    network : Network -- with a linear last layer (see ``bounds.with_linear_output``)
    pre_lower, pre_upper : list of arrays, shapes (n, m_j) -- intermediate bounds
    C : array, shape (k, n_outputs), or (n, k, n_outputs) for rows that differ per box
    lower, upper : array, shape (n, d)
    steps : int -- gradient steps (0 gives plain adaptive CROWN)

    Returns
    -------
    bound : array, shape (n, k) -- the best sound lower bound seen per row
    coef : array, shape (n, k, d) -- the input coefficients of that bound
    slopes : list of arrays, shapes (n, k, m_j), one per hidden layer -- the lower
        slopes that gave the best bound (the fixed 1/0 at stable units); empty
        unless ``keep_slopes`` (a certificate records them, :mod:`certificate_recorder`)
    """
    n, k = lower.shape[0], C.shape[-2]
    relax = _relaxations(network, pre_lower, pre_upper)
    alphas = [np.repeat(r.fixed, k, axis=1) for r in relax]   # CROWN's adaptive start
    Cn = C if C.ndim == 3 else np.broadcast_to(C, (n, k, C.shape[1]))
    bound, coef, grads = _bound_and_slope_gradients(network, relax, alphas, Cn, lower, upper,
                                                    want_grad=steps > 0)
    best, best_coef = bound.copy(), coef.copy()
    best_slopes = [a.copy() for a in alphas] if keep_slopes else []
    for step in range(1, steps + 1):
        for alpha, grad, r in zip(alphas, grads, relax, strict=True):
            np.clip(alpha + ALPHA_LR * np.sign(grad), r.slope_min, 1.0, out=alpha)
        # the last bound needs no gradient: no step comes after it
        bound, coef, grads = _bound_and_slope_gradients(network, relax, alphas, Cn, lower,
                                                        upper, want_grad=step < steps)
        better = bound > best
        best = np.where(better, bound, best)
        best_coef = np.where(better[:, :, None], coef, best_coef)
        for kept, alpha in zip(best_slopes, alphas, strict=False):
            kept[better] = alpha[better]
    return best, best_coef, best_slopes
