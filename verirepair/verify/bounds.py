"""Sound output bounds of a network over batches of input boxes.

Pipeline position: the branch-and-bound search (:mod:`verirepair.verify.bab`)
calls :func:`symbolic_bounds` on thousands of sub-boxes at once to prove them
safe; :mod:`verirepair.verify.lp_tighten` refines the intermediate bounds these
functions return.

Three methods, from cheap to tight:

* :func:`interval_bounds` -- plain interval arithmetic (centre/radius form).
* :func:`symbolic_bounds` -- linear relaxation of every unstable ReLU.  The
  intermediate (pre-activation) bounds come either from a *forward* symbolic
  pass (lower and upper linear functions of the input, as in ReluVal/Neurify;
  cheap because ACAS Xu has only 5 inputs) or from full *backward*
  back-substitution (DeepPoly/CROWN; tighter, ``O(layers^2)`` costlier).  The
  bounds of the specification rows ``C @ y`` always come from one backward
  (CROWN) pass, with the adaptive lower slope (1 when ``u > -l``, else 0).

Shapes (batch-first, float64): ``lower``/``upper`` are ``(n, d)``; the
pre-activation bounds of affine layer ``i`` are ``(n, layers[i].out_features)``;
a specification matrix ``C`` is ``(k, n_outputs)`` (shared) or
``(n, k, n_outputs)`` (per box); its bounds are ``(n, k)``.

Other activations (LeakyReLU, ELU, tanh, sigmoid, softplus) are relaxed by
the lines of :mod:`verirepair.verify.activation_bounds` (``la z + lc <= f(z) <=
ua z + uc``, nondecreasing); every ReLU computation is the same as without
them, so ReLU networks get bit-identical bounds.

Soundness: all bounds are mathematically sound in exact arithmetic; float64
rounding is covered by the outward slack :data:`verirepair.tolerances.BOUND_TOL`
that callers add before they use a bound in a proof (and, for the smooth
activations, by the outward intercepts of ``activation_bounds``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verirepair.network.model import AffineLayer, Network
from verirepair.verify.activation_bounds import activation_interval, activation_relaxation, refine_mask

#: Modes of computing intermediate bounds in :func:`symbolic_bounds`.
INTERMEDIATE_MODES = ("forward", "backward")


@dataclass(frozen=True, slots=True)
class Bounds:
    """Bounds of one network over a batch of ``n`` input boxes.

    Parameters
    ----------
    pre_lower, pre_upper : tuple of arrays, each shape (n, layers[i].out_features)
        Bounds of the pre-activation values ``W_i h_{i-1} + b_i`` of every
        affine layer ``i``; the last entry bounds the network outputs.
    spec_lower, spec_upper : array, shape (n, k), or None
        Bounds of ``C @ y`` when a specification matrix was given.
    spec_coef : array, shape (n, k, d), or None
        Linear lower bound of ``C @ y`` in the input:
        ``C @ y(x) >= spec_coef @ x + spec_const`` for every ``x`` in the box
        (None for interval bounds).  Used to pick split dimensions and the
        most promising corner of a box.
    spec_const : array, shape (n, k), or None
    """

    pre_lower: tuple[np.ndarray, ...]
    pre_upper: tuple[np.ndarray, ...]
    spec_lower: np.ndarray | None = None
    spec_upper: np.ndarray | None = None
    spec_coef: np.ndarray | None = None
    spec_const: np.ndarray | None = None

    @property
    def output_lower(self) -> np.ndarray:
        """Lower bounds of the outputs, shape (n, n_outputs)."""
        return self.pre_lower[-1]

    @property
    def output_upper(self) -> np.ndarray:
        """Upper bounds of the outputs, shape (n, n_outputs)."""
        return self.pre_upper[-1]


def with_linear_output(network: Network) -> Network:
    """The same function with a linear last layer (identity appended if needed).

    Back-substitution starts from the pre-activation of the last affine layer;
    when that layer has an activation, the outputs are ``f(z)`` and an identity
    layer after it makes them the pre-activation of a new, linear last layer.
    """
    if not network.layers[-1].nonlinear:
        return network
    m = network.n_outputs
    return Network(network.layers + (AffineLayer(np.eye(m), np.zeros(m), False),),
                   network.name, network.normalization, network.source)


def _check_boxes(network: Network, lower: np.ndarray, upper: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    lower = np.atleast_2d(np.asarray(lower, dtype=np.float64))
    upper = np.atleast_2d(np.asarray(upper, dtype=np.float64))
    if lower.shape != upper.shape or lower.shape[1] != network.n_inputs:
        raise ValueError(
            f"boxes must have shape (n, {network.n_inputs}); got {lower.shape} and {upper.shape}"
        )
    if np.any(lower > upper):
        raise ValueError("some box has a lower bound above its upper bound")
    return lower, upper


def _check_spec(network: Network, C: np.ndarray | None, n: int) -> np.ndarray | None:
    if C is None:
        return None
    C = np.asarray(C, dtype=np.float64)
    if C.ndim == 2:
        C = np.broadcast_to(C, (n,) + C.shape)
    if C.ndim != 3 or C.shape[0] != n or C.shape[2] != network.n_outputs:
        raise ValueError(f"C must have shape (k, {network.n_outputs}) or (n, k, {network.n_outputs})"
                         f" with n = {n}; got {C.shape}")
    return C


def _interval_step(layer: AffineLayer, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval image ``W [lo, hi] + b`` in centre/radius form; shapes (n, in) -> (n, out)."""
    mid, rad = (lo + hi) / 2.0, (hi - lo) / 2.0
    z_mid = mid @ layer.weight.T + layer.bias
    z_rad = rad @ np.abs(layer.weight).T
    return z_mid - z_rad, z_mid + z_rad


def _post_activation(network: Network, index: int, pre_l: list[np.ndarray],
                     pre_u: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the output of layer ``index`` (after its activation)."""
    layer = network.layers[index]
    if layer.relu:
        return np.maximum(pre_l[index], 0.0), np.maximum(pre_u[index], 0.0)
    if layer.nonlinear:
        return activation_interval(layer.activation, pre_l[index], pre_u[index])
    return pre_l[index], pre_u[index]


def interval_bounds(network: Network, lower: np.ndarray, upper: np.ndarray,
                    C: np.ndarray | None = None) -> Bounds:
    """Interval-arithmetic bounds of every layer over a batch of boxes.

    Parameters
    ----------
    network : Network
    lower, upper : array, shape (n, d)
        The boxes ``lower <= x <= upper``.
    C : array, shape (k, n_outputs) or (n, k, n_outputs), optional
        A specification matrix; ``C @ y`` is bounded from the output intervals.

    Returns
    -------
    Bounds
        ``spec_coef`` / ``spec_const`` are None.
    """
    lower, upper = _check_boxes(network, lower, upper)
    C = _check_spec(network, C, lower.shape[0])
    pre_l, pre_u = [], []
    lo, hi = lower, upper
    for layer in network.layers:
        zl, zu = _interval_step(layer, lo, hi)
        pre_l.append(zl)
        pre_u.append(zu)
        if layer.relu:
            lo, hi = np.maximum(zl, 0.0), np.maximum(zu, 0.0)
        elif layer.nonlinear:
            lo, hi = activation_interval(layer.activation, zl, zu)
        else:
            lo, hi = zl, zu
    spec_l = spec_u = None
    if C is not None:
        Cp, Cn = np.maximum(C, 0.0), np.minimum(C, 0.0)
        spec_l = np.einsum("nkm,nm->nk", Cp, lo) + np.einsum("nkm,nm->nk", Cn, hi)
        spec_u = np.einsum("nkm,nm->nk", Cp, hi) + np.einsum("nkm,nm->nk", Cn, lo)
    return Bounds(tuple(pre_l), tuple(pre_u), spec_l, spec_u)


#: Lower-slope choices of unstable ReLUs: CROWN's adaptive rule, or all 0 / all 1.
LOWER_SLOPES = ("adaptive", "zero", "one")


def relu_relaxation(lower: np.ndarray, upper: np.ndarray, lower_slope: str = "adaptive"
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear relaxation ``alpha*z <= relu(z) <= s*z + t`` for ``z in [l, u]``.

    Stable active units get ``alpha = s = 1, t = 0``; stable inactive units
    ``alpha = s = t = 0``; unstable units the triangle's upper edge
    ``s = u/(u-l), t = -s*l`` and the adaptive lower slope ``alpha = 1`` if
    ``u > -l`` else 0 (the choice that minimises the relaxation's area).

    Parameters
    ----------
    lower, upper : array, shape (n, m)
    lower_slope : {"adaptive", "zero", "one"}
        Every choice in [0, 1] is sound; "zero"/"one" force the slope of every
        unstable unit (a caller may take the best of several choices).

    Returns
    -------
    alpha, s, t : arrays, shape (n, m)
    """
    active = lower >= 0.0
    unstable = (lower < 0.0) & (upper > 0.0)
    denom = np.where(unstable, upper - lower, 1.0)
    s = np.where(unstable, upper / denom, active.astype(np.float64))
    t = np.where(unstable, -s * lower, 0.0)
    slope: np.ndarray | float
    if lower_slope == "adaptive":
        slope = (upper > -lower).astype(np.float64)
    else:
        slope = 1.0 if lower_slope == "one" else 0.0
    alpha = np.where(unstable, slope, active.astype(np.float64))
    return alpha, s, t


def backward_lower(network: Network, pre_lower: list[np.ndarray], pre_upper: list[np.ndarray],
                   C: np.ndarray, layer_index: int, lower: np.ndarray, upper: np.ndarray,
                   lower_slope: str = "adaptive"
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CROWN back-substitution: a lower bound of ``C @ z_j`` over each box.

    Parameters
    ----------
    network : Network
    pre_lower, pre_upper : list of arrays, shapes (n, m_i)
        Pre-activation bounds of at least layers ``0 .. layer_index - 1``.
    C : array, shape (n, k, m_j)
        Coefficients on the pre-activation ``z_j`` of layer ``j = layer_index``.
    layer_index : int
    lower, upper : array, shape (n, d)
    lower_slope : str -- see :func:`relu_relaxation` (ReLU layers only)

    Returns
    -------
    bound : array, shape (n, k) -- ``min over the box of the linear bound``
    coef : array, shape (n, k, d) and const : array, shape (n, k)
        ``C @ z_j(x) >= coef @ x + const`` on the box.
    """
    n, k, _ = C.shape
    A = np.ascontiguousarray(C)
    const = np.zeros((n, k))
    for j in range(layer_index, -1, -1):
        layer = network.layers[j]
        const += A @ layer.bias
        A = (A.reshape(n * k, -1) @ layer.weight).reshape(n, k, -1)
        if j > 0 and network.layers[j - 1].relu:
            alpha, s, t = relu_relaxation(pre_lower[j - 1], pre_upper[j - 1], lower_slope)
            # In place on the fresh product (these arrays dominate memory traffic).
            A_neg = np.minimum(A, 0.0)
            const += np.einsum("nkp,np->nk", A_neg, t)
            np.maximum(A, 0.0, out=A)
            A *= alpha[:, None, :]
            A_neg *= s[:, None, :]
            A += A_neg
        elif j > 0 and network.layers[j - 1].nonlinear:
            la, lc, ua, uc = activation_relaxation(network.layers[j - 1].activation,
                                                   pre_lower[j - 1], pre_upper[j - 1])
            A_neg = np.minimum(A, 0.0)
            np.maximum(A, 0.0, out=A)
            const += np.einsum("nkp,np->nk", A, lc) + np.einsum("nkp,np->nk", A_neg, uc)
            A *= la[:, None, :]
            A_neg *= ua[:, None, :]
            A += A_neg
    bound = const + np.einsum("nkd,nd->nk", np.maximum(A, 0.0), lower) \
        + np.einsum("nkd,nd->nk", np.minimum(A, 0.0), upper)
    return bound, A, const


def _concretize(E: np.ndarray, lower: np.ndarray, upper: np.ndarray, d: int, upper_side: bool
                ) -> np.ndarray:
    """Min (or max) over the box of linear functions ``E`` of shape (n, d+1, m)."""
    coef = E[:, :d, :]
    lo_side, hi_side = (upper, lower) if upper_side else (lower, upper)
    return (np.einsum("ndm,nd->nm", np.maximum(coef, 0.0), lo_side)
            + np.einsum("ndm,nd->nm", np.minimum(coef, 0.0), hi_side) + E[:, d, :])


def _refine_unstable(network: Network, pre_l: list[np.ndarray], pre_u: list[np.ndarray],
                     index: int, lower: np.ndarray, upper: np.ndarray) -> None:
    """Tighten the bounds of layer ``index``'s unstable units by back-substitution (in place).

    Only units that the forward pass left unstable are back-substituted: the
    others' relaxation is exact already, and skipping them is what makes the
    backward mode affordable (its cost is proportional to the unstable count).
    For a smooth activation no unit's relaxation is exact, so every unit of
    non-zero width is refined (:func:`~verirepair.verify.activation_bounds.refine_mask`).
    """
    zl, zu = pre_l[index], pre_u[index]
    layer = network.layers[index]
    unstable = (zl < 0.0) & (zu > 0.0) if layer.relu else refine_mask(layer.activation, zl, zu)
    counts = unstable.sum(axis=1)
    kmax = int(counts.max(initial=0))
    if kmax == 0:
        return
    n, m = zl.shape
    order = np.argsort(~unstable, axis=1, kind="stable")[:, :kmax]
    valid = np.arange(kmax)[None, :] < counts[:, None]
    rows = np.zeros((n, 2 * kmax, m))
    box_index = np.arange(n)[:, None]
    rows[box_index, np.arange(kmax)[None, :], order] = 1.0
    rows[box_index, kmax + np.arange(kmax)[None, :], order] = -1.0
    bound, _, _ = backward_lower(network, pre_l, pre_u, rows, index, lower, upper)
    sel_b, sel_k = np.nonzero(valid)
    units = order[sel_b, sel_k]
    zl[sel_b, units] = np.maximum(zl[sel_b, units], bound[sel_b, sel_k])
    zu[sel_b, units] = np.minimum(zu[sel_b, units], -bound[sel_b, kmax + sel_k])


def _symbolic_intermediate(network: Network, lower: np.ndarray, upper: np.ndarray,
                           prior: Bounds | None, refine: bool
                           ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Forward symbolic interval propagation (lower/upper linear functions of x).

    The linear functions are stored as ``(n, d + 1, m)``: rows ``0..d-1`` hold
    the coefficients of ``x`` and row ``d`` the constant.  The first affine
    layer's functions are exact and the same for every box (``W x + b``), so
    they are a broadcast view, never an ``(n, d + 1, d)`` identity (2.5 GB for
    512 boxes of 784 inputs).  An affine layer maps the pair ``(L, U)`` in
    centre/radius form, ``mid W^T -+ rad |W|^T``, which equals
    ``L W+ + U W-`` and ``U W+ + L W-`` with two matrix products instead of
    four.  With ``refine`` the units left unstable are tightened by
    back-substitution before their relaxation is chosen (the "backward" mode).
    """
    n, d = lower.shape
    L = U = None                 # None: the identity, before the first affine layer
    pre_l: list[np.ndarray] = []
    pre_u: list[np.ndarray] = []
    for index, layer in enumerate(network.layers):
        m = layer.out_features
        if L is None:
            exact = np.vstack([layer.weight.T, layer.bias[None, :]])
            Lz = Uz = np.broadcast_to(exact, (n, d + 1, m))
        else:
            p = layer.in_features
            mid = ((L + U) / 2.0).reshape(-1, p)
            rad = ((U - L) / 2.0).reshape(-1, p)
            centre = mid @ layer.weight.T
            spread = rad @ np.abs(layer.weight).T
            Lz = (centre - spread).reshape(n, d + 1, m)
            Uz = (centre + spread).reshape(n, d + 1, m)
            Lz[:, d, :] += layer.bias
            Uz[:, d, :] += layer.bias
        zl = _concretize(Lz, lower, upper, d, upper_side=False)
        zu = _concretize(Uz, lower, upper, d, upper_side=True)
        # One interval step from the previous (already tightened) bounds: cheap,
        # and it makes the result never looser than interval arithmetic.
        il, iu = _interval_step(layer, *(_post_activation(network, index - 1, pre_l, pre_u)
                                         if index else (lower, upper)))
        zl, zu = np.maximum(zl, il), np.minimum(zu, iu)
        if prior is not None:
            zl = np.maximum(zl, prior.pre_lower[index])
            zu = np.minimum(zu, prior.pre_upper[index])
        pre_l.append(zl)
        pre_u.append(zu)
        if not layer.nonlinear:
            L, U = Lz, Uz
            continue
        # Layers 0 and 1 are skipped: layer 0 is exact, and for layer 1 (one
        # ReLU layer behind it) back-substitution picks the same relaxation per
        # weight sign as the forward pass, so it cannot tighten anything
        # (measured: identical sub-box counts on ACAS Xu, 1.5x faster).
        if refine and index > 1:
            _refine_unstable(network, pre_l, pre_u, index, lower, upper)
        if layer.relu:
            alpha, s, t = relu_relaxation(pre_l[index], pre_u[index])
            L = Lz * alpha[:, None, :]
            U = Uz * s[:, None, :]
            U[:, d, :] += t
        else:
            # nondecreasing lines (slopes >= 0), so L/U map to lower/upper lines
            la, lc, ua, uc = activation_relaxation(layer.activation, pre_l[index], pre_u[index])
            L = Lz * la[:, None, :]
            U = Uz * ua[:, None, :]
            L[:, d, :] += lc
            U[:, d, :] += uc
    return pre_l, pre_u


def intermediate_bounds(network: Network, lower: np.ndarray, upper: np.ndarray,
                        intermediate: str = "forward", prior: Bounds | None = None
                        ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pre-activation bounds of every layer (the last entry: the outputs, forward only).

    Parameters
    ----------
    network : Network
    lower, upper : array, shape (n, d)
    intermediate : {"forward", "backward"}
    prior : Bounds, optional -- known bounds to intersect with

    Returns
    -------
    pre_lower, pre_upper : lists of arrays, shapes (n, layers[i].out_features)
    """
    if intermediate not in INTERMEDIATE_MODES:
        raise ValueError(f"intermediate must be one of {INTERMEDIATE_MODES}, got {intermediate!r}")
    return _symbolic_intermediate(network, lower, upper, prior, intermediate == "backward")


def symbolic_bounds(network: Network, lower: np.ndarray, upper: np.ndarray,
                    C: np.ndarray | None = None, *, intermediate: str = "forward",
                    prior: Bounds | None = None, spec_upper: bool = True) -> Bounds:
    """Linear-relaxation (symbolic) bounds of every layer over a batch of boxes.

    Parameters
    ----------
    network : Network
    lower, upper : array, shape (n, d)
    C : array, shape (k, n_outputs) or (n, k, n_outputs), optional
        Specification matrix; defaults to the identity (bounds of the outputs).
    intermediate : {"forward", "backward"}
        How to bound the hidden pre-activations (see the module docstring).
    prior : Bounds, optional
        Known sound pre-activation bounds over the same boxes (e.g. from LP
        tightening); the result is intersected with them.
    spec_upper : bool
        Also compute upper bounds of ``C @ y`` (one more backward pass on
        ``-C``); when False ``spec_upper`` is None.

    Returns
    -------
    Bounds
        ``pre_lower[-1]``/``pre_upper[-1]`` (the outputs) also come from a
        backward pass, so they are never looser than the forward ones.  When
        the network's last layer has a ReLU, one extra entry (the identity layer
        of :func:`with_linear_output`) bounds the outputs after that ReLU.

    Raises
    ------
    ValueError
        On inconsistent shapes or an unknown ``intermediate`` mode.
    """
    lower, upper = _check_boxes(network, lower, upper)
    n = lower.shape[0]
    C = _check_spec(network, C, n)
    network = with_linear_output(network)
    pre_l, pre_u = intermediate_bounds(network, lower, upper, intermediate, prior)
    last = network.n_layers - 1
    m = network.n_outputs
    eye = np.broadcast_to(np.vstack([np.eye(m), -np.eye(m)]), (n, 2 * m, m))
    out, _, _ = backward_lower(network, pre_l, pre_u, eye, last, lower, upper)
    pre_l[last] = np.maximum(pre_l[last], out[:, :m])
    pre_u[last] = np.minimum(pre_u[last], -out[:, m:])
    if C is None:
        return Bounds(tuple(pre_l), tuple(pre_u))
    k = C.shape[1]
    spec = np.concatenate([C, -C], axis=1) if spec_upper else C
    bound, coef, const = backward_lower(network, pre_l, pre_u, spec, last, lower, upper)
    # Intersect with the interval image of the output box (never looser than intervals).
    Cp, Cn = np.maximum(C, 0.0), np.minimum(C, 0.0)
    out_l, out_u = pre_l[last], pre_u[last]
    spec_l = np.maximum(bound[:, :k], np.einsum("nkm,nm->nk", Cp, out_l)
                        + np.einsum("nkm,nm->nk", Cn, out_u))
    spec_u = None
    if spec_upper:
        spec_u = np.minimum(-bound[:, k:], np.einsum("nkm,nm->nk", Cp, out_u)
                            + np.einsum("nkm,nm->nk", Cn, out_l))
    return Bounds(tuple(pre_l), tuple(pre_u), spec_l, spec_u, coef[:, :k], const[:, :k])
