"""Lower bounds of linear functions of a ReLU network's outputs over boxes (the checker's own).

Pipeline position: :mod:`verirepair.checker.check` calls :func:`layer_bounds`
and :func:`spec_lower` on the boxes of a certificate.  The code is written once
against an arithmetic (:mod:`verirepair.checker.arith`): with ``Outward`` every
result is a float64 value rounded to the safe side, with ``Exact`` it is the
exact rational.  It shares no code with ``verirepair.verify``.

The method is CROWN back-substitution.  A network is a chain of affine layers
``z_k = W_k h_{k-1} + b_k`` (``h_{-1} = x``), each optionally followed by
``h_k = relu(z_k)``.  For ``z`` in ``[l, u]`` with ``l < 0 < u``:
``relu(z) >= a z`` for any slope ``a`` in ``[0, 1]`` and ``relu(z) <= s z + t``
for any ``s`` with ``t = max(-s l, (1 - s) u)`` (the line lies above ``relu``
at both ends, hence on the whole interval; ``s`` near ``u / (u - l)`` makes it
tight).  Back-substitution keeps the invariant ``f(x) >= A . z_k(x) + c`` and
walks it down to the input, where the minimum over the box is read off the
signs of ``A``.  With ``Outward`` the computed ``A`` is simply *some*
coefficient vector: each step's rounding error is moved into ``c`` using
bounds on ``|h|`` and ``|z|`` (the intermediate bounds), so the invariant holds
for the coefficients actually computed.

Intermediate bounds: interval arithmetic for every unit, intersected with a
forward symbolic pass (below), then, for every unit of a ReLU layer that is
still unstable, the lower bounds of ``+z_j`` and ``-z_j`` by back-substitution
(CROWN's adaptive lower slope, 1 when ``u > -l``) -- from the second ReLU layer
on: behind a single ReLU layer back-substitution builds the same linear
function as the forward pass (same slopes per weight sign), so it cannot
tighten anything there.

The forward symbolic pass keeps, per box, two affine functions of the input
with ``L(x) <= z_k(x) <= U(x)`` on the box (DeepPoly-style): through an affine
layer ``L' = W+ L + W- U + b`` (and ``U'`` alike); through a ReLU, ``relu(z) >=
a z >= a L`` with ``a`` in ``{0, 1}`` (CROWN's adaptive choice, stable units
exact) and ``relu(z) <= s z + t <= s U + t`` (the same upper line as above,
``s >= 0``).  The concrete bounds are the minimum of ``L`` and the maximum of
``U`` over the box.  With ``Outward`` the computed coefficient matrices are
again treated as *given*: the rounding error ``E`` of each matrix product (or
of each product by ``s``, at most ``2u|.| + eta`` per entry) is moved into the
constant as ``-/+ E . |x|max``, where ``|x|max`` bounds ``|x|`` on the box, so
the inequalities hold for the coefficients actually computed; the constants
are themselves computed with the outward ``*_lo``/``*_hi`` operations.  Every
bound so obtained is a bound, so intersecting them is sound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Arith = Any  #: :class:`~verirepair.checker.arith.Outward` or :class:`~verirepair.checker.arith.Exact`


@dataclass(frozen=True, slots=True)
class Layer:
    """``z = W h + b`` (``W`` shape (out, in)), then ``relu`` if set; entries in the arithmetic's number type."""

    W: np.ndarray
    b: np.ndarray
    relu: bool


def _no_nan(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A NaN bound (an overflow, inf - inf) becomes the unbounded one, -inf or +inf.

    Without this a NaN pre-activation bound would make its unit look stable and
    inactive (``lo < 0`` and ``hi > 0`` are both false for NaN), which is unsound;
    an infinite bound only makes later bounds useless (the proof then fails).
    Exact (rational) arrays have no NaN and pass through.
    """
    if lo.dtype.kind != "f":
        return lo, hi
    return np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)


def _abs_max(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.maximum(abs(lo), abs(hi))


def _post(layer: Layer, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if layer.relu:
        return np.maximum(lo, 0), np.maximum(hi, 0)
    return lo, hi


def _relaxation(ops: Arith, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower slope ``a`` (float64: 0, 1, or CROWN's adaptive choice), upper line ``s z + t`` on ``[lo, hi]``.

    Shapes (n, m); ``a`` is NaN at unstable units, where the caller picks it.
    """
    unstable = np.asarray((lo < 0) & (hi > 0), dtype=bool)
    active = np.asarray(lo >= 0, dtype=np.float64)
    a = np.where(unstable, np.nan, active)
    width = np.where(unstable, hi - lo, 1)
    s_raw = np.clip(np.where(unstable, ops.ratio(hi, width), active), 0.0, 1.0)
    s = ops.convert(s_raw)
    t_left = ops.mul_hi(-s, lo)                            # -s l, upper bound
    t_right = ops.mul_hi(ops.sub_hi(ops.convert(np.ones(s.shape)), s), hi)   # (1 - s) u, upper bound
    t = np.where(unstable, np.maximum(t_left, t_right), ops.convert(np.zeros(s.shape)))
    return a, s, t


def backsubstitute(ops: Arith, layers: list[Layer], bounds: list[tuple[np.ndarray, ...]],
                   start: int, A: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                   slopes: list[np.ndarray | None] | None = None) -> np.ndarray:
    """Lower bound over box ``n`` of ``A[n, r] . z_start(x)`` for each row ``r``.

    Parameters
    ----------
    ops : arithmetic
    layers : list of Layer
    bounds : list of (lo, hi, ...) per layer ``k < start``, shapes (n, m_k) -- from :func:`layer_bounds`
    start : int -- the layer whose pre-activation ``A`` multiplies
    A : array, shape (n, R, m_start) -- R rows per box (exact numbers: unit vectors, spec rows)
    lower, upper : arrays, shape (n, d) -- the boxes
    slopes : list of arrays or None -- per layer ``k < start``, shape (n, R or 1, m_k): the
        lower slopes of its unstable ReLU units, NaN for CROWN's adaptive choice (None: adaptive)

    Returns
    -------
    array, shape (n, R)

    Each step keeps ``f(x) >= A . z_k(x) + c`` for the coefficients ``A`` actually
    computed; its rounding errors (see :meth:`~verirepair.checker.arith.Outward.step_weights`)
    are subtracted from ``c``.
    """
    c = ops.convert(np.zeros(A.shape[:2]))
    relaxed = False
    for k in range(start, -1, -1):
        layer = layers[k]
        weights = None
        if ops.rounds:
            z_abs = _abs_max(bounds[k][0], bounds[k][1]) if relaxed else None
            h_abs = _abs_max(lower, upper) if k == 0 else \
                _abs_max(*_post(layers[k - 1], bounds[k - 1][0], bounds[k - 1][1]))
            weights = ops.step_weights(abs(layer.W), abs(layer.b), h_abs, z_abs)
        terms = [c, A @ layer.b]
        if weights is not None:
            terms.append(-ops.step_error_hi(A, weights))
        P = _matmul(A, layer.W)
        if k == 0:
            return _box_min(ops, P, terms, lower, upper)
        relaxed = layers[k - 1].relu
        if relaxed:
            a_fixed, s, t, adaptive = bounds[k - 1][2:6]
            a = np.where(np.isnan(a_fixed), adaptive, a_fixed)[:, None, :]
            given = None if slopes is None else slopes[k - 1]
            if given is not None:
                a = np.where(np.isnan(a_fixed)[:, None, :] & ~np.isnan(given), given, a)
            A_neg = np.minimum(P, 0)
            terms.append(ops.nonpos_sum_lo(ops.rowdot3(A_neg, t), P.shape[-1]))    # A_neg <= 0, t >= 0
            # A = max(P, 0) a + min(P, 0) s, in place: one rounded product per entry (the other
            # summand is 0); its rounding error is charged at the next step
            A = np.maximum(P, 0, out=P)
            A *= ops.convert(a)
            A_neg *= s[:, None, :]
            A += A_neg
        else:
            A = P
        c = ops.sum_lo(*terms)
    raise AssertionError("unreachable: the loop returns at layer 0")


def _matmul(A: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``A @ W`` for ``A`` of shape (n, R, m) as one matrix product (numpy loops over ``n`` otherwise)."""
    n, R, m = A.shape
    return (A.reshape(n * R, m) @ W).reshape(n, R, W.shape[1])


def _box_min(ops: Arith, F: np.ndarray, terms: list[np.ndarray], lower: np.ndarray, upper: np.ndarray
             ) -> np.ndarray:
    """Lower bound over box ``n`` of ``F[n, r] . x + sum(terms)[n, r]`` (``F`` shape (n, R, d))."""
    terms = terms + [ops.rowdot3(np.maximum(F, 0), lower), ops.rowdot3(np.minimum(F, 0), upper)]
    if ops.rounds:      # the two sums have mixed signs: bound their rounding error
        terms.append(-ops.input_error_hi(F, _abs_max(lower, upper)))
    return ops.sum_lo(*terms)


def _forward_affine(ops: Arith, layer: Layer, sym: tuple[np.ndarray, ...], x_abs: np.ndarray
                    ) -> tuple[np.ndarray, ...]:
    """``(Fl, fl, Fu, fu)`` of ``z = W h + b`` from those of ``h`` (``F`` shape (n, m, d), ``f`` (n, m))."""
    Hl, hl, Hu, hu = sym
    Wp, Wn = np.maximum(layer.W, 0), np.minimum(layer.W, 0)
    X = np.concatenate([Wp, Wn], axis=1)                                # (m, 2 m_prev)
    bias = np.broadcast_to(layer.b, (hl.shape[0], layer.b.shape[0]))
    out = []
    for sign, first, second, f_first, f_second in ((1, Hl, Hu, hl, hu), (-1, Hu, Hl, -hu, -hl)):
        # lower function of z (sign 1), then the negated upper function: -U' = W+ (-U) + W- (-L) - b
        G, g = sign * np.concatenate([first, second], axis=1), np.concatenate([f_first, f_second], axis=1)
        terms = [g @ X.T, sign * bias]
        if ops.rounds:
            terms.append(-ops.forward_error_hi(abs(X), G, g, x_abs))
        F = _matmul(G.transpose(0, 2, 1), X.T).transpose(0, 2, 1)          # X @ G per box
        out += [sign * F, sign * ops.sum_lo(*terms)]
    return tuple(out)


def _forward_relu(ops: Arith, sym: tuple[np.ndarray, ...], a: np.ndarray, s: np.ndarray, t: np.ndarray,
                  x_abs: np.ndarray) -> tuple[np.ndarray, ...]:
    """The functions of ``h = relu(z)``: ``a L`` below (``a`` float64 in {0, 1}: exact), ``s U + t`` above."""
    Fl, fl, Fu, fu = sym
    a_ = ops.convert(a)
    Hu = s[:, :, None] * Fu
    terms = [-ops.mul_hi(s, fu), -t]
    if ops.rounds:      # each entry of s * Fu is one rounded product
        terms.append(-ops.entry_error_hi(Hu, x_abs))
    return a_[:, :, None] * Fl, a_ * fl, Hu, -ops.sum_lo(*terms)


def _refine_unstable(ops: Arith, layers: list[Layer], bounds: list[tuple[np.ndarray, ...]], k: int,
                     lo: np.ndarray, hi: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
    """Tighten layer ``k``'s unstable units (``lo < 0 < hi``, in place) by back-substituting ``+z_j`` and ``-z_j``.

    Rows are grouped per box, ``2 R`` of them for a box with ``R`` unstable units
    (boxes with fewer are padded with zero rows, whose results are dropped).
    """
    unstable = np.asarray((lo < 0) & (hi > 0), dtype=bool)
    counts = unstable.sum(axis=1)
    boxes = np.flatnonzero(counts)
    if not boxes.size:
        return
    R = int(counts.max())
    order = np.argsort(~unstable[boxes], axis=1, kind="stable")[:, :R]      # unstable units first
    valid = np.arange(R)[None, :] < counts[boxes][:, None]
    rows = np.zeros((boxes.size, 2 * R, lo.shape[1]))
    pick = np.arange(boxes.size)[:, None]
    rows[pick, np.arange(R)[None, :], order] = np.where(valid, 1.0, 0.0)
    rows[pick, R + np.arange(R)[None, :], order] = np.where(valid, -1.0, 0.0)
    sub = [tuple(x[boxes] for x in layer) for layer in bounds]
    got = backsubstitute(ops, layers, sub, k, ops.convert(rows), lower[boxes], upper[boxes])
    b_sel, r_sel = np.nonzero(valid)
    units = order[b_sel, r_sel]
    lo[boxes[b_sel], units] = np.maximum(lo[boxes[b_sel], units], got[b_sel, r_sel])
    hi[boxes[b_sel], units] = np.minimum(hi[boxes[b_sel], units], -got[b_sel, R + r_sel])


def layer_bounds(ops: Arith, layers: list[Layer], lower: np.ndarray, upper: np.ndarray,
                 prior: list[tuple[np.ndarray, ...]] | None = None, full_forward: bool = True
                 ) -> list[tuple[np.ndarray, ...]]:
    """Sound bounds ``(lo, hi)`` of every layer's pre-activation over each box, shapes (n, m_k).

    For a ReLU layer the tuple goes on with its relaxation ``(a, s, t, adaptive)``
    (see :func:`_relaxation`; ``adaptive`` is CROWN's slope, 1 where ``hi > -lo``).

    ``prior``: bounds valid on each box already (those of its parent box, which
    contains it), intersected in before the unstable units are chosen, so a
    unit stable on the parent is never back-substituted again.

    ``full_forward``: run the forward symbolic pass through every layer; when
    False it stops after the first layer whose unstable units are back-substituted
    (cheaper; those deeper bounds come from intervals and back-substitution).
    """
    bounds: list[tuple[np.ndarray, ...]] = []
    post_lo, post_hi = lower, upper
    n, d = lower.shape
    x_abs = _abs_max(lower, upper)                                    # (n, d)
    eye = ops.convert(np.broadcast_to(np.eye(d), (n, d, d)).copy())
    zero = ops.convert(np.zeros((n, d)))
    sym: tuple[np.ndarray, ...] | None = (eye, zero, eye, zero)                # x <= x <= x
    for k, layer in enumerate(layers):
        lo, hi = ops.interval_affine(layer.W, abs(layer.W), layer.b, post_lo, post_hi)
        refined = sum(earlier.relu for earlier in layers[:k]) >= 2 and layer.relu
        if sym is not None:
            sym = _forward_affine(ops, layer, sym, x_abs)
            # fmax/fmin: a nan from an overflow in the forward pass must not hide the interval bound
            lo, hi = np.fmax(lo, _box_min(ops, sym[0], [sym[1]], lower, upper)), \
                np.fmin(hi, -_box_min(ops, -sym[2], [-sym[3]], lower, upper))
            if refined and not full_forward:
                sym = None
        if prior is not None:
            lo, hi = np.maximum(lo, prior[k][0]), np.minimum(hi, prior[k][1])
        lo, hi = _no_nan(lo, hi)
        if refined:
            _refine_unstable(ops, layers, bounds, k, lo, hi, lower, upper)
        lo, hi = _no_nan(*ops.outward(lo, hi))
        if layer.relu:
            a, s, t = _relaxation(ops, lo, hi)
            adaptive = np.asarray(hi > -lo, dtype=np.float64)
            bounds.append((lo, hi, a, s, t, adaptive))
            if sym is not None:
                sym = _forward_relu(ops, sym, np.where(np.isnan(a), adaptive, a), s, t, x_abs)
        else:
            bounds.append((lo, hi))
        post_lo, post_hi = _post(layer, lo, hi)
    return bounds


def spec_lower(ops: Arith, layers: list[Layer], bounds: list[tuple[np.ndarray, ...]],
               lower: np.ndarray, upper: np.ndarray, G: np.ndarray,
               slopes: list[np.ndarray | None] | None) -> np.ndarray:
    """Lower bound of ``G[n] . y(x)`` over box ``n``; ``y`` is the last layer's output.

    ``layers[-1]`` must be linear (the reader appends an identity after a final ReLU).
    Shapes: ``G`` (n, n_outputs); ``bounds``, ``lower``, ``upper`` per box (first axis n);
    ``slopes`` per layer (n, m_k) or None, as in :func:`backsubstitute`.
    """
    if layers[-1].relu:
        raise ValueError("the last layer must be linear")
    per_row = None if slopes is None else [None if x is None else x[:, None, :] for x in slopes]
    return backsubstitute(ops, layers, bounds, len(layers) - 1, G[:, None, :], lower, upper, per_row)[:, 0]
