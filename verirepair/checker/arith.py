"""The two arithmetics of the certificate checker: float64 rounded outward, and exact rationals.

Pipeline position: :mod:`verirepair.checker.leaf_bounds` writes its bound
computation once against the small interface below; :class:`Outward` makes it a
fast float64 proof, :class:`Exact` makes it an exact one (Python ``Fraction``s
in numpy object arrays).  Nothing here knows about networks.

The interface: every function returns a value that is *at most* (``*_lo``) or
*at least* (``*_hi``) the exact real result of the operation on its (exact)
arguments.

Why :class:`Outward` is sound (numpy has no rounding modes).  With unit
roundoff ``u = 2**-53`` and ``eta = 2**-1074`` (the smallest subnormal):

* a sum of ``k`` products evaluated in float64 in *any* order (BLAS blocking,
  FMA included) differs from the exact sum by at most ``gamma_k S + k eta``,
  where ``S`` is the exact sum of the absolute products and ``gamma_k =
  k u / (1 - k u)`` (Higham, *Accuracy and Stability of Numerical Algorithms*,
  2nd ed., Thm. 3.5 and sec. 2.1 for underflow);
* the computed ``M = fl(|X| @ |Y|)`` satisfies ``S <= (M + k eta) / (1 - gamma_k)``;
  for ``k u <= 0.01`` this makes the error at most ``1.03 k u M + 2 k eta``,
  and :func:`Outward.dot` returns ``3 k u M + 2 k eta``, rounded up with
  :func:`numpy.nextafter` (one ulp above a round-to-nearest result is above
  the exact value);
* a sum of ``T`` floats is handled the same way (products by 1, ``k = T``).

So ``Outward.dot_lo(X, Y) = R - E`` with ``R = fl(X @ Y)`` and ``E`` that bound,
and the subtraction is itself followed by one ``nextafter`` toward ``-inf``.

The bound computation never needs the error of a matrix product entry by
entry, only summed against a bound ``h`` of the vector it multiplies:
``sum_j |E_rj| h_j <= gamma_m sum_i |A_ri| (|W| h)_i + m eta sum_j h_j``, an
exact regrouping.  So :meth:`Outward.step_weights` turns the errors of a whole
back-substitution step into weights on ``|A|`` (one small product ``|W| h`` per
box instead of the product ``|A| @ |W|`` per row), and :meth:`Outward.step_error_hi`
sums them in one pass; :meth:`Outward.nonneg_sum_hi` bounds a float sum of
non-negative terms from above without a second sum of absolute values.

Overflow to ``inf`` or ``nan`` anywhere makes the bound useless, never wrong:
a check then fails (``nan > 0`` is False).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

U = 2.0 ** -53
ETA = 2.0 ** -1074


class Outward:
    """float64 arithmetic with every result rounded outward (see the module docstring)."""

    name = "float"
    rounds = True

    @staticmethod
    def convert(array: np.ndarray) -> np.ndarray:
        """Float64 input data, unchanged (float64 values are exact binary rationals)."""
        return np.asarray(array, dtype=np.float64)

    @staticmethod
    def _error(abs_sum: np.ndarray, k: int) -> np.ndarray:
        if k * U > 0.01:
            raise ValueError(f"inner dimension {k} too large for the rounding-error bound")
        return np.nextafter(3.0 * k * U * abs_sum + 2.0 * k * ETA, np.inf)

    def dot(self, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(R, E)`` with the exact ``X @ Y`` in ``[R - E, R + E]`` entrywise."""
        k = X.shape[-1]
        return X @ Y, self._error(np.abs(X) @ np.abs(Y), k)

    def dot_lo(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """A lower bound of every entry of ``X @ Y``."""
        R, E = self.dot(X, Y)
        return np.nextafter(R - E, -np.inf)

    def dot_hi(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """An upper bound of every entry of ``X @ Y``."""
        R, E = self.dot(X, Y)
        return np.nextafter(R + E, np.inf)

    def rowdot_lo(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Lower bound of ``sum(X * Y, axis=-1)`` (row-wise dot products, shapes (r, k))."""
        k = X.shape[-1]
        R = np.einsum("rk,rk->r", X, Y)
        E = self._error(np.einsum("rk,rk->r", np.abs(X), np.abs(Y)), k)
        return np.nextafter(R - E, -np.inf)

    def rowdot_hi(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Upper bound of ``sum(X * Y, axis=-1)``."""
        return -self.rowdot_lo(-X, Y)

    @staticmethod
    def nonneg_sum_hi(value: np.ndarray, k: int) -> np.ndarray:
        """An upper bound of the exact sum ``S`` of ``k`` products of *non-negative* numbers,
        from ``value``, the float64 result of that sum evaluated in any order.

        ``|value - S| <= gamma_k S + k eta`` gives ``S <= (value + k eta) / (1 - gamma_k)
        <= value (1 + 1.03 k u) + 1.03 k eta`` for ``k u <= 0.01``; the float product
        ``value * (1 + 4 k u)`` (the constant itself rounded to nearest) is at least
        ``value (1 + 1.03 k u) - eta / 2`` for every ``k >= 1``, so adding ``2 k eta`` and
        rounding up with :func:`numpy.nextafter` (one ulp, at least the rounding error
        of the addition) covers ``S``.
        """
        if k * U > 0.01:
            raise ValueError(f"inner dimension {k} too large for the rounding-error bound")
        return np.nextafter(value * (1.0 + 4.0 * k * U) + 2.0 * k * ETA, np.inf)

    def nonneg_rowdot_hi(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Upper bound of ``sum(X * Y, axis=-1)`` for ``X, Y >= 0`` (one pass: no separate error sum)."""
        return self.nonneg_sum_hi(np.einsum("rk,rk->r", X, Y), X.shape[-1])

    @staticmethod
    def up(x: np.ndarray) -> np.ndarray:
        """One ulp up: at least the exact value of the rounded-to-nearest operation that gave ``x``."""
        return np.nextafter(x, np.inf)

    def step_weights(self, W_abs: np.ndarray, b_abs: np.ndarray, h_abs: np.ndarray,
                     z_abs: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Rounding error of one back-substitution step as weights on ``|A|``: ``(w, e)`` with

        ``error(r) <= sum_i |A_ri| w_i + e``  per box (``w`` shape (n, m), ``e`` shape (n,)),

        where the step computes ``P = fl(A @ W)`` and ``fl(A @ b)`` for ``A`` of shape
        (rows, m) and uses ``P . h`` for ``|h| <= h_abs`` (n, p): the error of every
        entry of ``P`` (a dot product of length ``m``) is at most ``gamma_m S + m eta``
        with ``S = sum_i |A_i| |W_ij|``, and ``sum_j S_j h_j = sum_i |A_i| (|W| h)_i``
        (regrouped exactly), so ``w`` gets ``2 m u (|W| h_abs)`` (``2 m u >= gamma_m``);
        ``fl(A @ b)`` adds ``2 m u |b|``.  With ``z_abs`` (bounds of ``|z|`` at the
        step's input), ``A`` itself came from a relaxation with one rounded product
        per entry (``|error| <= 2 u |A| + eta``), which adds ``2 u z_abs``.  The eta
        terms go into ``e``.  Every operation on these bounds is rounded up.
        """
        m, p = W_abs.shape
        V = self.nonneg_sum_hi(h_abs @ W_abs.T, p)                         # (n, m) >= |W| h
        w = self.up(2.0 * m * U * self.up(V + b_abs))
        e = self.up(m * ETA * self.up(self.nonneg_sum_hi(h_abs.sum(axis=-1), p) + 2.0))
        if z_abs is not None:
            w = self.up(w + self.up(2.0 * U * z_abs))
            e = self.up(e + self.up(ETA * self.nonneg_sum_hi(z_abs.sum(axis=-1), m)))
        return w, e

    def step_error_hi(self, A: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """``sum_i |A_ri| w_i + e`` rounded up, for ``A`` (n, R, m) and :meth:`step_weights` (n, m), (n,)."""
        w, e = weights
        total = self.nonneg_sum_hi(np.einsum("nrm,nm->nr", np.abs(A), w), A.shape[-1])
        return self.up(total + e[:, None])

    def input_error_hi(self, P: np.ndarray, x_abs: np.ndarray) -> np.ndarray:
        """Error bound of ``rowdot3(max(P, 0), lo) + rowdot3(min(P, 0), hi)`` (P (n, R, d), ``|x| <= x_abs``):
        two dot products of length ``d`` over disjoint entries, so at most ``gamma_d sum |P| x_abs + 2 d eta``."""
        d = P.shape[-1]
        return self.step_error_hi(P, (self.up(2.0 * d * U * x_abs), np.full(P.shape[0], 2.0 * d * ETA)))

    def entry_error_hi(self, X: np.ndarray, x_abs: np.ndarray) -> np.ndarray:
        """Upper bound of ``sum_d |fl(X) - X|[n, r, d] x_abs[n, d]`` when each entry of ``X`` (n, R, d)
        is one rounded product (round to nearest: ``|error| <= 2 u |X| + eta``)."""
        x_sum = self.nonneg_sum_hi(x_abs.sum(axis=-1), x_abs.shape[-1])
        return self.step_error_hi(X, (self.up(2.0 * U * x_abs), self.up(ETA * x_sum)))

    def forward_error_hi(self, X_abs: np.ndarray, G: np.ndarray, g: np.ndarray, x_abs: np.ndarray) -> np.ndarray:
        """Error bound, per box and unit, of the forward pass's affine step ``F = fl(X @ G)``, ``fl(g @ X^T)``
        as used in ``F x + g X^T`` with ``|x| <= x_abs``.

        ``X_abs = |X|`` (m, K), ``G`` (n, K, d), ``g`` (n, K), ``x_abs`` (n, d).  Each entry
        of either product is a dot product of length ``K`` (error ``gamma_K S + K eta``),
        and regrouping exactly, ``sum_d sum_i |X_mi| |G_nid| x_d = sum_i |X_mi| V_ni`` with
        ``V = |G| x_abs``: so ``2 K u |X| (V + |g|) + K eta (sum x_abs + 1)`` bounds the
        total, every operation rounded up.
        """
        K, d = X_abs.shape[1], x_abs.shape[-1]
        V = self.nonneg_sum_hi(np.einsum("nkd,nd->nk", np.abs(G), x_abs), d)
        Q = self.nonneg_sum_hi(self.up(V + np.abs(g)) @ X_abs.T, K)
        x_sum = self.nonneg_sum_hi(x_abs.sum(axis=-1), d)
        return self.up(self.up(2.0 * K * U * Q) + self.up(K * ETA * self.up(x_sum + 1.0))[:, None])

    @staticmethod
    def rowdot3(X: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``sum_m X[n, r, m] v[n, m]`` in float64 (callers bound its error)."""
        return np.einsum("nrm,nm->nr", X, v)

    def nonpos_sum_lo(self, value: np.ndarray, k: int) -> np.ndarray:
        """A lower bound of a sum of ``k`` products that are all ``<= 0``, from its float64 value."""
        return -self.nonneg_sum_hi(-value, k)

    def sum_lo(self, *terms: np.ndarray) -> np.ndarray:
        """Lower bound of the exact sum of the arrays (same shape).

        ``k`` floats summed left to right differ from the exact sum by at most
        ``gamma_{k-1} sum |t_i|`` (additions have no underflow error), and the float
        sum of the ``|t_i|`` is at least ``(1 - gamma_{k-1})`` times the exact one, so
        :meth:`_error` of it (``3 k u`` times it) covers the error.
        """
        total, magnitude = terms[0], abs(terms[0])
        for term in terms[1:]:
            total = total + term
            magnitude = magnitude + abs(term)
        return np.nextafter(total - self._error(magnitude, len(terms)), -np.inf)

    def interval_affine(self, W: np.ndarray, W_abs: np.ndarray, b: np.ndarray, lo: np.ndarray,
                        hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of ``W h + b`` over the boxes ``lo <= h <= hi`` (shapes (n, p)), centre and radius form.

        ``mid`` is any float (here near the centre) and ``rad`` is rounded up so that
        ``|h - mid| <= rad`` on the box; ``W h = W mid + W (h - mid)`` with
        ``|W (h - mid)| <= |W| rad``, and ``fl(W mid)`` is within ``2 p u |W| |mid| + p eta``
        of ``W mid``: one product with ``|W|`` bounds both.
        """
        p = W.shape[1]
        mid = (lo + hi) / 2.0
        rad = np.maximum(self.up(hi - mid), self.up(mid - lo))
        centre = mid @ W.T
        spread = self.nonneg_sum_hi(self.up(rad + self.up(2.0 * p * U * abs(mid))) @ W_abs.T, p)
        spread = self.up(spread + p * ETA)
        return self.sum_lo(centre, -spread, np.broadcast_to(b, centre.shape)), \
            -self.sum_lo(-centre, -spread, -np.broadcast_to(b, centre.shape))

    def mul_hi(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Upper bound of the elementwise product."""
        return np.nextafter(a * b, np.inf)

    def sub_hi(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Upper bound of the elementwise difference ``a - b``."""
        return np.nextafter(a - b, np.inf)

    @staticmethod
    def outward(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds kept as they are (they are float64 already)."""
        return lo, hi

    @staticmethod
    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        """Some value near ``num / den`` (callers clip it; any value is sound)."""
        return np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)

    @staticmethod
    def positive(x: np.ndarray) -> np.ndarray:
        """Elementwise ``x > 0`` as a bool array (False for nan)."""
        return np.asarray(x > 0, dtype=bool)


class Exact:
    """Exact rational arithmetic: ``Fraction`` entries in numpy object arrays; no rounding."""

    name = "exact"
    rounds = False

    @staticmethod
    def convert(array: np.ndarray) -> np.ndarray:
        """Exact rationals of float64 data (``Fraction(float)`` is exact)."""
        flat = np.asarray(array, dtype=np.float64)
        out = np.empty(flat.shape, dtype=object)
        out.flat[:] = [Fraction(float(v)) for v in flat.flat]
        return out

    @staticmethod
    def dot(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, None]:
        """The exact product; no error term."""
        return X @ Y, None

    @staticmethod
    def dot_lo(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """``X @ Y`` exactly."""
        return X @ Y

    dot_hi = dot_lo

    @staticmethod
    def rowdot_lo(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """``sum(X * Y, axis=-1)`` exactly."""
        return (X * Y).sum(axis=-1)

    rowdot_hi = rowdot_lo

    @staticmethod
    def nonneg_rowdot_hi(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """``sum(X * Y, axis=-1)`` exactly."""
        return (X * Y).sum(axis=-1)

    @staticmethod
    def step_weights(W_abs: np.ndarray, b_abs: np.ndarray, h_abs: np.ndarray, z_abs: np.ndarray | None) -> None:
        """No rounding error to account for."""
        return None

    @staticmethod
    def step_error_hi(A: np.ndarray, weights: None) -> None:
        """No rounding error to account for."""
        return None

    @staticmethod
    def rowdot3(X: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``sum_m X[n, r, m] v[n, m]`` exactly."""
        return (X * v[:, None, :]).sum(axis=-1)

    @staticmethod
    def nonpos_sum_lo(value: np.ndarray, k: int) -> np.ndarray:
        """The exact sum."""
        return value

    @staticmethod
    def sum_lo(*terms: np.ndarray) -> np.ndarray:
        """The exact sum."""
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total

    @staticmethod
    def interval_affine(W: np.ndarray, W_abs: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of ``W h + b`` over the boxes ``lo <= h <= hi``, exactly (centre and radius)."""
        mid, rad = (lo + hi) / 2, (hi - lo) / 2
        centre, spread = mid @ W.T + b, rad @ W_abs.T
        return centre - spread, centre + spread

    @staticmethod
    def mul_hi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The exact product."""
        return a * b

    @staticmethod
    def sub_hi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The exact difference."""
        return a - b

    @staticmethod
    def outward(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds widened to the nearest float64 values outside them (compared exactly).

        A looser bound is still a bound; short dyadic bounds keep the numbers of
        the next layers' relaxations small (exact mode stays exact: the
        rounding direction is decided by exact comparisons, not by the FPU).
        """
        def widen(values: np.ndarray, below: bool) -> np.ndarray:
            out = np.empty(values.shape, dtype=object)
            for index, v in np.ndenumerate(values):
                f = float(v)
                if (below and Fraction(f) > v) or (not below and Fraction(f) < v):
                    f = float(np.nextafter(f, -np.inf if below else np.inf))
                out[index] = Fraction(f)
            return out

        return widen(lo, True), widen(hi, False)

    @staticmethod
    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        """A dyadic rational near ``num / den`` (the float64 quotient; any value is sound)."""
        q = np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)
        return Exact.convert(q)

    @staticmethod
    def positive(x: np.ndarray) -> np.ndarray:
        """Elementwise ``x > 0`` as a bool array."""
        return np.asarray(x > 0, dtype=bool)
