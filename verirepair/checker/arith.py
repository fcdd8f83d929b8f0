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

    def sum_lo(self, *terms: np.ndarray) -> np.ndarray:
        """Lower bound of the exact sum of the arrays (same shape)."""
        stacked = np.stack(terms, axis=-1)
        return self.rowdot_lo(stacked.reshape(-1, len(terms)),
                              np.ones((stacked.size // len(terms), len(terms)))
                              ).reshape(stacked.shape[:-1])

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
    def sum_lo(*terms: np.ndarray) -> np.ndarray:
        """The exact sum."""
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total

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
