"""Optimised lower slopes for the specification bound (alpha-CROWN, final layer only).

Pipeline position: :mod:`verirepair.verify.bab` calls :func:`optimize_spec_lower`
on the sub-boxes that plain CROWN left open.  The intermediate bounds stay
fixed (those of :func:`verirepair.verify.bounds.intermediate_bounds`); only the
lower slopes ``alpha`` of the unstable ReLUs used while back-substituting the
specification rows are optimised, per box and per row, by projected gradient
ascent on the bound itself (torch autograd, float64).

Soundness: for any ``alpha`` in ``[0, 1]`` the relaxation ``relu(z) >= alpha z``
holds on ``[l, u]``, so every iterate's bound is sound; slopes are clamped to
``[0, 1]`` after each step and the final bound is the best seen per row.
"""

from __future__ import annotations

import numpy as np

from verirepair.network.model import Network
from verirepair.verify.bounds import relu_relaxation

#: Gradient steps on the slopes and their step size (slopes live in [0, 1]).
ALPHA_STEPS = 12
ALPHA_LR = 0.25


def optimize_spec_lower(network: Network, pre_lower: list[np.ndarray],
                        pre_upper: list[np.ndarray], C: np.ndarray, lower: np.ndarray,
                        upper: np.ndarray, steps: int = ALPHA_STEPS
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Lower bounds of ``C @ y`` with optimised ReLU lower slopes.

    Parameters
    ----------
    network : Network -- with a linear last layer (see ``bounds.with_linear_output``)
    pre_lower, pre_upper : list of arrays, shapes (n, m_j) -- intermediate bounds
    C : array, shape (k, n_outputs)
    lower, upper : array, shape (n, d)
    steps : int -- gradient steps (0 gives plain adaptive CROWN)

    Returns
    -------
    bound : array, shape (n, k) -- the best sound lower bound seen per row
    coef : array, shape (n, k, d) -- the input coefficients of that bound
    """
    import torch

    n, k = lower.shape[0], C.shape[0]
    last = network.n_layers - 1
    relax = []
    alphas = []
    for j in range(last):
        alpha0, s, t = relu_relaxation(pre_lower[j], pre_upper[j])
        unstable = (pre_lower[j] < 0.0) & (pre_upper[j] > 0.0)
        if not network.layers[j].relu:      # a linear hidden layer: identity, no slopes
            alpha0, s, t = np.ones_like(s), np.ones_like(s), np.zeros_like(t)
            unstable = np.zeros_like(unstable)
        relax.append((torch.from_numpy(s)[:, None, :], torch.from_numpy(t)[:, None, :],
                      torch.from_numpy(unstable)[:, None, :],
                      torch.from_numpy(alpha0)[:, None, :]))
        alphas.append(torch.from_numpy(np.repeat(alpha0[:, None, :], k, axis=1)).requires_grad_())
    weights = [(torch.from_numpy(np.array(layer.weight)), torch.from_numpy(np.array(layer.bias)))
               for layer in network.layers]
    lo, hi = torch.from_numpy(lower)[:, None, :], torch.from_numpy(upper)[:, None, :]
    Ct = torch.from_numpy(np.broadcast_to(C, (n, k, C.shape[1])).copy())

    def evaluate() -> tuple[torch.Tensor, torch.Tensor]:
        A, const = Ct, torch.zeros(n, k, dtype=torch.float64)
        for j in range(last, -1, -1):
            W, b = weights[j]
            const = const + A @ b
            A = A @ W
            if j > 0:
                s, t, unstable, fixed = relax[j - 1]
                slope = torch.where(unstable, alphas[j - 1], fixed)
                A_neg = torch.clamp(A, max=0.0)
                const = const + (A_neg * t).sum(-1)
                A = torch.clamp(A, min=0.0) * slope + A_neg * s
        bound = const + (torch.clamp(A, min=0.0) * lo + torch.clamp(A, max=0.0) * hi).sum(-1)
        return bound, A

    best, best_coef = None, None
    for step in range(steps + 1):
        bound, A = evaluate()
        with torch.no_grad():
            if best is None:
                best, best_coef = bound.clone(), A.detach().clone()
            else:
                better = bound > best
                best = torch.where(better, bound, best)
                best_coef = torch.where(better[:, :, None], A.detach(), best_coef)
        if step == steps:
            break
        grads = torch.autograd.grad(bound.sum(), alphas)
        with torch.no_grad():
            for alpha, grad in zip(alphas, grads):
                alpha.add_(ALPHA_LR * torch.sign(grad)).clamp_(0.0, 1.0)
    return best.numpy(), best_coef.numpy()
