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
                   start: int, A: np.ndarray, box_of_row: np.ndarray, lower: np.ndarray,
                   upper: np.ndarray, c: np.ndarray, slopes: list[np.ndarray | None] | None = None
                   ) -> np.ndarray:
    """Lower bound over its box of ``A . z_start(x) + c`` for each row.

    Parameters
    ----------
    ops : arithmetic
    layers : list of Layer
    bounds : list of (lo, hi), shapes (n, m_k) -- bounds of ``z_k`` for ``k < start``
    start : int -- the layer whose pre-activation ``A`` multiplies
    A : array, shape (r, m_start); c : array, shape (r,)
    box_of_row : int array, shape (r,) -- the box (index into ``lower``) of each row
    lower, upper : arrays, shape (n, d) -- the boxes
    slopes : list of arrays or None -- per layer ``k < start``, shape (r, m_k): the
        lower slopes of its unstable ReLU units (None: CROWN's adaptive choice)

    Returns
    -------
    array, shape (r,)
    """
    for k in range(start, -1, -1):
        layer = layers[k]
        P, E = ops.dot(A, layer.W)
        terms = [c, ops.dot_lo(A, layer.b)]
        if k == 0:
            lo_x, hi_x = lower[box_of_row], upper[box_of_row]
            if E is not None:
                terms.append(-ops.rowdot_hi(E, _abs_max(lo_x, hi_x)))
            terms += [ops.rowdot_lo(np.maximum(P, 0), lo_x), ops.rowdot_lo(np.minimum(P, 0), hi_x)]
            return ops.sum_lo(*terms)
        lo, hi = bounds[k - 1][0][box_of_row], bounds[k - 1][1][box_of_row]
        if E is not None:
            terms.append(-ops.rowdot_hi(E, _abs_max(*_post(layers[k - 1], lo, hi))))
        if layers[k - 1].relu:
            a_fixed, s, t = (x[box_of_row] for x in bounds[k - 1][2:5])
            a_adaptive = np.where(np.isnan(a_fixed), bounds[k - 1][5][box_of_row], a_fixed)
            given = None if slopes is None else slopes[k - 1]
            a = ops.convert(a_adaptive if given is None else
                            np.where(np.isnan(a_fixed) & ~np.isnan(given), given, a_adaptive))
            neg = np.minimum(P, 0)
            A = np.maximum(P, 0) * a + neg * s
            terms.append(ops.rowdot_lo(neg, t))
            if E is not None:
                # each entry of A is one rounded product: |error| <= 2u|A| + eta
                err = np.nextafter(2.0 ** -52 * np.abs(A) + 2.0 ** -1074, np.inf)
                terms.append(-ops.rowdot_hi(err, _abs_max(lo, hi)))
        else:
            A = P
        c = ops.sum_lo(*terms)
    raise AssertionError("unreachable: the loop returns at layer 0")


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
        F, E = ops.dot(X, sign * np.concatenate([first, second], axis=1))
        terms = [ops.dot_lo(np.concatenate([f_first, f_second], axis=1), X.T), sign * bias]
        if E is not None:
            terms.append(-ops.dot_hi(E, x_abs)[:, :, 0])
        out += [sign * F, sign * ops.sum_lo(*terms)]
    return tuple(out)


def _forward_relu(ops: Arith, sym: tuple[np.ndarray, ...], a: np.ndarray, s: np.ndarray, t: np.ndarray,
                  x_abs: np.ndarray) -> tuple[np.ndarray, ...]:
    """The functions of ``h = relu(z)``: ``a L`` below (``a`` float64 in {0, 1}: exact), ``s U + t`` above."""
    Fl, fl, Fu, fu = sym
    a_ = ops.convert(a)
    Hu = s[:, :, None] * Fu
    terms = [-ops.mul_hi(s, fu), -t]
    if ops.name == "float":
        # each entry of s * Fu is one rounded product: |error| <= 2u|Hu| + eta
        err = np.nextafter(2.0 ** -52 * np.abs(Hu) + 2.0 ** -1074, np.inf)
        terms.append(-ops.dot_hi(err, x_abs)[:, :, 0])
    return a_[:, :, None] * Fl, a_ * fl, Hu, -ops.sum_lo(*terms)


def _sym_lo(ops: Arith, F: np.ndarray, f: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Lower bound over each box of ``F x + f`` (shapes (n, m, d), (n, m); boxes (n, d))."""
    return ops.sum_lo(ops.dot_lo(np.maximum(F, 0), lower[:, :, None])[:, :, 0],
                      ops.dot_lo(np.minimum(F, 0), upper[:, :, None])[:, :, 0], f)


def layer_bounds(ops: Arith, layers: list[Layer], lower: np.ndarray, upper: np.ndarray,
                 prior: list[tuple[np.ndarray, ...]] | None = None) -> list[tuple[np.ndarray, ...]]:
    """Sound bounds ``(lo, hi)`` of every layer's pre-activation over each box, shapes (n, m_k).

    For a ReLU layer the tuple goes on with its relaxation ``(a, s, t, adaptive)``
    (see :func:`_relaxation`; ``adaptive`` is CROWN's slope, 1 where ``hi > -lo``).

    ``prior``: bounds valid on each box already (those of its parent box, which
    contains it), intersected in before the unstable units are chosen, so a
    unit stable on the parent is never back-substituted again.
    """
    bounds: list[tuple[np.ndarray, ...]] = []
    post_lo, post_hi = lower, upper
    n, d = lower.shape
    x_abs = _abs_max(lower, upper)[:, :, None]                       # (n, d, 1)
    eye = ops.convert(np.broadcast_to(np.eye(d), (n, d, d)).copy())
    sym: tuple[np.ndarray, ...] = (eye, ops.convert(np.zeros((n, d))), eye, ops.convert(np.zeros((n, d))))  # x<=x<=x
    for k, layer in enumerate(layers):
        Wp, Wn = np.maximum(layer.W, 0).T, np.minimum(layer.W, 0).T
        bias = np.broadcast_to(layer.b, (lower.shape[0], layer.b.shape[0]))
        lo = ops.sum_lo(ops.dot_lo(post_lo, Wp), ops.dot_lo(post_hi, Wn), bias)
        hi = -ops.sum_lo(-ops.dot_hi(post_hi, Wp), -ops.dot_hi(post_lo, Wn), -bias)
        sym = _forward_affine(ops, layer, sym, x_abs)
        # fmax/fmin: a nan from an overflow in the forward pass must not hide the interval bound
        lo, hi = np.fmax(lo, _sym_lo(ops, sym[0], sym[1], lower, upper)), \
            np.fmin(hi, -_sym_lo(ops, -sym[2], -sym[3], lower, upper))
        if prior is not None:
            lo, hi = np.maximum(lo, prior[k][0]), np.minimum(hi, prior[k][1])
        lo, hi = _no_nan(lo, hi)
        if sum(earlier.relu for earlier in layers[:k]) >= 2 and layer.relu:
            box, unit = np.nonzero(np.asarray((lo < 0) & (hi > 0), dtype=bool))
            if box.size:
                r = box.size
                A = ops.convert(np.zeros((2 * r, layer.W.shape[0])))
                A[np.arange(r), unit] = ops.convert(np.ones(r))
                A[r + np.arange(r), unit] = ops.convert(-np.ones(r))
                rows = np.concatenate([box, box])
                got = backsubstitute(ops, layers, bounds, k, A, rows, lower, upper,
                                     ops.convert(np.zeros(2 * r)))
                lo[box, unit] = np.maximum(lo[box, unit], got[:r])
                hi[box, unit] = np.minimum(hi[box, unit], -got[r:])
        lo, hi = _no_nan(*ops.outward(lo, hi))
        if layer.relu:
            a, s, t = _relaxation(ops, lo, hi)
            adaptive = np.asarray(hi > -lo, dtype=np.float64)
            bounds.append((lo, hi, a, s, t, adaptive))
            sym = _forward_relu(ops, sym, np.where(np.isnan(a), adaptive, a), s, t, x_abs)
        else:
            bounds.append((lo, hi))
        post_lo, post_hi = _post(layer, lo, hi)
    return bounds


def spec_lower(ops: Arith, layers: list[Layer], bounds: list[tuple[np.ndarray, ...]],
               lower: np.ndarray, upper: np.ndarray, G: np.ndarray, box_of_row: np.ndarray,
               slopes: list[np.ndarray | None] | None) -> np.ndarray:
    """Lower bound of ``G . y(x)`` over each row's box; ``y`` is the last layer's output.

    ``layers[-1]`` must be linear (the reader appends an identity after a final ReLU).
    Shapes: ``G`` (r, n_outputs), ``box_of_row`` (r,), ``slopes`` as in :func:`backsubstitute`.
    """
    if layers[-1].relu:
        raise ValueError("the last layer must be linear")
    zero = ops.convert(np.zeros(G.shape[0]))
    return backsubstitute(ops, layers, bounds, len(layers) - 1, G, box_of_row, lower, upper,
                          zero, slopes)
