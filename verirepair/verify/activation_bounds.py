"""Sound linear relaxations of the non-ReLU activations, for bound propagation.

Pipeline position: :mod:`verirepair.verify.bounds` (forward symbolic pass,
back-substitution), :mod:`verirepair.verify.alpha_crown`,
:mod:`verirepair.verify.lp_tighten` and the split heuristic of
:mod:`verirepair.verify.bab` call these for every layer whose activation is
neither the identity nor the ReLU (the ReLU keeps its own, exact-as-before
code in :func:`verirepair.verify.bounds.relu_relaxation`).

Supported (:func:`check_supported`): LeakyReLU with ``0 <= alpha <= 1``, ELU
with ``0 <= alpha <= 1``, tanh, sigmoid and softplus -- exactly the
nondecreasing ones whose shape is convex (LeakyReLU, ELU, softplus) or
S-shaped, convex below 0 and concave above (tanh, sigmoid).  Anything else
raises :class:`~verirepair.errors.UnsupportedActivationError`.

Relaxation of ``f`` on ``[l, u]`` (arrays of any one shape):
``la z + lc <= f(z) <= ua z + uc``.  The *slopes* follow CROWN (Zhang et al.
2018):

* S-shaped, ``u <= 0`` (convex part): upper = chord, lower = tangent at the
  midpoint; ``l >= 0`` (concave part): lower = chord, upper = tangent at the
  midpoint; ``l < 0 < u``: upper = the tangent through ``(l, f(l))`` touching
  ``f`` at some ``d in [0, u]`` (found by bisection), or the chord when the chord
  is already above ``f``; the lower line is the mirror image.
* convex smooth (ELU, softplus): upper = chord, lower = tangent at the midpoint.
* LeakyReLU: upper = chord; lower slope 1 when ``u > -l`` else ``alpha`` (the
  adaptive choice CROWN makes for the ReLU).

The *intercepts* are not taken from these constructions but computed for the
chosen slope ``a`` as the exact extremes of ``g(z) = f(z) - a z`` over
``[l, u]``: ``g`` is extremal at ``l``, ``u`` or a critical point ``f'(z) = a``
or a kink, all of which are known in closed form (tanh:
``z = +-log((1 + t) / sqrt(a))`` with ``t = sqrt(1 - a)``; sigmoid:
``z = +-log(s / (1 - s))`` with ``s = (1 + sqrt(1 - 4a)) / 2``; softplus:
``z = log(a / (1 - a))``; ELU: ``z = log(a / alpha)`` and the kink 0;
LeakyReLU: the kink 0).  So the lines are sound *for any slope*: a slope that
is off because of rounding or an inexact bisection only makes the line looser,
never wrong.  The same makes every slope admissible for optimisation.

Floating-point slack.  ``f``, the critical points and ``g`` are evaluated in
float64 (error a few ulps; a critical point off by ``e`` changes ``g`` by
``O(e^2)``), and the line ``a z + c`` itself is evaluated with rounding.  Every
intercept is therefore moved outward by
``ACTIVATION_RELAX_TOL * (1 + |c| + |a| * max(|l|, |u|))`` and every interval
bound ``f(l), f(u)`` by ``ACTIVATION_RELAX_TOL * (1 + |f|)``
(:data:`verirepair.tolerances.ACTIVATION_RELAX_TOL`, 1e-12: about 4000 ulps of
the largest term).  The tests sample millions of points per activation over
random tiny, huge, one-sided and symmetric intervals against these lines.
"""

from __future__ import annotations

import numpy as np

from verirepair.errors import UnsupportedActivationError
from verirepair.network.activation import Activation, ActivationKind
from verirepair.network.model import Network
from verirepair.tolerances import ACTIVATION_RELAX_TOL

__all__ = ["activation_interval", "activation_relaxation", "check_supported", "derivative_range",
           "refine_mask"]

_S_SHAPED = (ActivationKind.TANH, ActivationKind.SIGMOID)
_CONVEX_SMOOTH = (ActivationKind.ELU, ActivationKind.SOFTPLUS)
#: Largest derivative of each supported function (slopes are clipped to [0, this]).
_MAX_SLOPE = {ActivationKind.TANH: 1.0, ActivationKind.SIGMOID: 0.25, ActivationKind.SOFTPLUS: 1.0,
              ActivationKind.ELU: 1.0, ActivationKind.LEAKY_RELU: 1.0}
#: Bisection steps for the tangent point of the mixed S-shaped case (the slope
#: only needs to be close: the intercept is exact for whatever slope results).
TANGENT_BISECTION_STEPS = 30


def check_supported(activation: Activation, where: str = "") -> None:
    """Raise :class:`UnsupportedActivationError` unless the verifier can bound ``activation``.

    Parameters
    ----------
    activation : Activation
    where : str -- e.g. ``"layer 3"``, put in the message
    """
    kind, alpha = activation.kind, float(activation.alpha or 0.0)
    prefix = f"{where}: " if where else ""
    if kind in (ActivationKind.LEAKY_RELU, ActivationKind.ELU) and not 0.0 <= alpha <= 1.0:
        raise UnsupportedActivationError(
            f"{prefix}{activation.label} is not supported by the verifier: alpha must lie in "
            "[0, 1] (the function is then nondecreasing and convex)")


def check_network(network: Network) -> None:
    """:func:`check_supported` for every layer of ``network``."""
    for index, layer in enumerate(network.layers):
        check_supported(layer.activation, f"layer {index}")


def _outward(value: np.ndarray, scale: np.ndarray, up: bool) -> np.ndarray:
    slack = ACTIVATION_RELAX_TOL * (1.0 + np.abs(value) + scale)
    return value + slack if up else value - slack


def activation_interval(activation: Activation, lower: np.ndarray, upper: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Sound bounds of ``f(z)`` for ``z in [lower, upper]`` (f nondecreasing): ``f(l)``, ``f(u)`` outward.

    Parameters
    ----------
    activation : Activation -- supported, not ReLU/identity (those need no slack)
    lower, upper : arrays of one shape

    Returns
    -------
    lo, hi : arrays of that shape
    """
    check_supported(activation)
    f_l, f_u = activation.apply(lower), activation.apply(upper)
    zero = np.zeros_like(f_l)
    return _outward(f_l, zero, up=False), _outward(f_u, zero, up=True)


def _critical_points(activation: Activation, a: np.ndarray) -> list[np.ndarray]:
    """Every ``z`` with ``f'(z) = a`` or a kink of ``f`` (arrays like ``a``; may be +-inf)."""
    kind, alpha = activation.kind, float(activation.alpha or 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind is ActivationKind.TANH:
            ac = np.clip(a, 1e-300, 1.0)
            t = np.sqrt(1.0 - ac)
            z = np.log1p(t) - 0.5 * np.log(ac)            # log((1 + t) / sqrt(a)) = atanh(t)
            return [z, -z]
        if kind is ActivationKind.SIGMOID:
            ac = np.clip(a, 1e-300, 0.25)
            root = np.sqrt(np.maximum(1.0 - 4.0 * ac, 0.0))
            s, one_minus_s = (1.0 + root) / 2.0, 2.0 * ac / (1.0 + root)
            z = np.log(s) - np.log(one_minus_s)
            return [z, -z]
        if kind is ActivationKind.SOFTPLUS:
            ac = np.clip(a, 1e-300, 1.0)
            return [np.log(ac) - np.log1p(-ac)]            # logit(a); +inf at a = 1
        zero = np.zeros_like(a)
        if kind is ActivationKind.ELU:
            if alpha <= 0.0:
                return [zero]
            return [np.minimum(np.log(np.clip(a, 1e-300, None) / alpha), 0.0), zero]
        return [zero]                                       # LeakyReLU: the kink


def _gap_extremes(activation: Activation, a: np.ndarray, lower: np.ndarray, upper: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``min`` and ``max`` of ``f(z) - a z`` over ``[lower, upper]`` (exact up to rounding)."""
    points = [lower, upper] + [np.clip(np.nan_to_num(c, nan=0.0), lower, upper)
                               for c in _critical_points(activation, a)]
    gaps = [activation.apply(p) - a * p for p in points]
    return np.minimum.reduce(gaps), np.maximum.reduce(gaps)


def _chord_slope(activation: Activation, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    width = upper - lower
    # A chord over a (relatively) tiny interval is all rounding: use the derivative there.
    narrow = width <= 1e-9 * (1.0 + np.abs(lower) + np.abs(upper))
    with np.errstate(divide="ignore", invalid="ignore"):
        chord = (activation.apply(upper) - activation.apply(lower)) / np.where(narrow, 1.0, width)
    return np.where(narrow, activation.derivative((lower + upper) / 2.0), chord)


def _tangent_through(activation: Activation, anchor: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Slope of the line through ``(anchor, f(anchor))``, ``anchor < 0``, tangent to the concave part.

    Bisection on ``d in [0, upper]`` for ``h(d) = f(d) - f(anchor) - f'(d) (d - anchor) = 0``
    (``h`` is nondecreasing there since ``f'' <= 0``); ``d = upper`` when ``h(upper) <= 0``
    (then no tangent point lies in the interval and the chord is the upper line).
    """
    f_anchor = activation.apply(anchor)

    def h(d: np.ndarray) -> np.ndarray:
        return activation.apply(d) - f_anchor - activation.derivative(d) * (d - anchor)

    lo, hi = np.zeros_like(upper), upper.copy()
    for _ in range(TANGENT_BISECTION_STEPS):
        mid = (lo + hi) / 2.0
        below = h(mid) < 0.0
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return activation.derivative(hi)


def _s_shaped_slopes(activation: Activation, lower: np.ndarray, upper: np.ndarray,
                     chord: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CROWN slopes (lower, upper) for tanh/sigmoid (inflection at 0, symmetric derivative)."""
    mid_slope = activation.derivative((lower + upper) / 2.0)
    convex, concave = upper <= 0.0, lower >= 0.0
    mixed = ~(convex | concave)
    la = np.where(convex, mid_slope, chord)
    ua = np.where(concave, mid_slope, chord)
    if mixed.any():
        l_m, u_m, k_m = lower[mixed], upper[mixed], chord[mixed]
        # upper: chord if it stays above f (k <= f'(u)), else the tangent from (l, f(l))
        up = np.where(k_m <= activation.derivative(u_m), k_m, _tangent_through(activation, l_m, u_m))
        # lower: the mirror image (f'(-z) = f'(z) for tanh and sigmoid)
        down = np.where(k_m <= activation.derivative(l_m), k_m,
                        _tangent_through(activation, -u_m, -l_m))
        ua[mixed], la[mixed] = up, down
    return la, ua


def activation_relaxation(activation: Activation, lower: np.ndarray, upper: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lines ``la z + lc <= f(z) <= ua z + uc`` valid for every ``z in [lower, upper]``.

    Parameters
    ----------
    activation : Activation -- supported by :func:`check_supported`; not ReLU/identity
    lower, upper : arrays of one shape, ``lower <= upper``, finite for useful lines

    Returns
    -------
    la, lc, ua, uc : arrays of that shape; the slopes lie in ``[0, max f']``,
        so the lines are nondecreasing (the forward symbolic pass relies on it).
        Intercepts include the outward slack of the module docstring.
    """
    check_supported(activation)
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    kind = activation.kind
    finite = np.isfinite(lower) & np.isfinite(upper)
    lo = np.where(finite, lower, 0.0)
    hi = np.where(finite, upper, 0.0)
    chord = _chord_slope(activation, lo, hi)
    if kind in _S_SHAPED:
        la, ua = _s_shaped_slopes(activation, lo, hi, chord)
    elif kind in _CONVEX_SMOOTH:
        la, ua = activation.derivative((lo + hi) / 2.0), chord
    else:                                                   # LeakyReLU
        alpha = float(activation.alpha or 0.0)
        # stable units: the exact line (slope 1 or alpha, intercept 0)
        exact = np.where(lo >= 0.0, 1.0, alpha)
        stable = (lo >= 0.0) | (hi <= 0.0)
        la = np.where(stable, exact, np.where(hi > -lo, 1.0, alpha))
        ua = np.where(stable, exact, chord)
    top = _MAX_SLOPE[kind]
    la = np.clip(np.nan_to_num(la, nan=0.0), 0.0, top)
    ua = np.clip(np.nan_to_num(ua, nan=0.0), 0.0, top)
    g_min, _ = _gap_extremes(activation, la, lo, hi)
    _, g_max = _gap_extremes(activation, ua, lo, hi)
    reach = np.maximum(np.abs(lo), np.abs(hi))
    lc = _outward(g_min, la * reach, up=False)
    uc = _outward(g_max, ua * reach, up=True)
    if not finite.all():
        # unbounded: the constant lines f(l) <= f(z) <= f(u) of a nondecreasing f
        f_lo, f_hi = activation_interval(activation, lower, upper)
        la, ua = np.where(finite, la, 0.0), np.where(finite, ua, 0.0)
        lc, uc = np.where(finite, lc, f_lo), np.where(finite, uc, f_hi)
    return la, lc, ua, uc


def derivative_range(activation: Activation, lower: np.ndarray, upper: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``0 <= dmin <= f'(z) <= dmax`` over ``[lower, upper]`` (for split heuristics).

    S-shaped: ``f'`` peaks at 0; convex: ``f'`` is nondecreasing.
    """
    d_l, d_u = activation.derivative(lower), activation.derivative(upper)
    if activation.kind in _S_SHAPED:
        peak = activation.derivative(np.clip(0.0, lower, upper))
        return np.minimum(d_l, d_u), peak
    return np.minimum(d_l, d_u), np.maximum(d_l, d_u)


def refine_mask(activation: Activation, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Units whose relaxation tighter bounds can improve: every non-degenerate unit
    of a smooth layer, the ones straddling the kink for LeakyReLU."""
    if activation.kind is ActivationKind.LEAKY_RELU:
        return (lower < 0.0) & (upper > 0.0)
    return upper > lower
