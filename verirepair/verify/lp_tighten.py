"""LP tightening with the triangle relaxation, solved by HiGHS (``highspy``).

Pipeline position: optional (``VerifyConfig.use_lp``) refinement inside branch
and bound (:mod:`verirepair.verify.bab`): for one sub-box it tightens the
bounds of unstable ReLUs layer by layer (:func:`tighten_box`) and decides
whether an unsafe polytope can be reached at all under the relaxation
(:func:`polytope_margin`).  It sees all rows of a polytope together, so it can
exclude a conjunction that no single row excludes.

The LP of one box has, per affine layer ``j``, the pre-activation columns
``z_j`` (bounded by the known ``[l_j, u_j]``) with rows ``z_j - W_j h_{j-1} = b_j``,
and per ReLU layer the columns ``h_j`` with ``h = z`` (stable active),
``h = 0`` (stable inactive) or the triangle ``h >= 0, h >= z,
h <= u (z - l) / (u - l)`` (unstable).  ``h_{-1}`` is the input ``x`` within
the box.  A layer with another activation ``f`` (LeakyReLU, ELU, tanh,
sigmoid, softplus) gets ``f(l) <= h <= f(u)`` and the two sound lines
``la z + lc <= h <= ua z + uc`` of :mod:`verirepair.verify.activation_bounds`.

Soundness: an LP optimum is trusted only up to :data:`LP_BOUND_TOL`
(relative to its magnitude), because the simplex solution satisfies the
constraints only to within HiGHS's feasibility tolerance; every bound returned
here is moved outward by that slack.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from verirepair.errors import SolverUnavailableError
from verirepair.network.activation import Activation
from verirepair.network.model import Network
from verirepair.solvers.quiet import quiet_highs
from verirepair.tolerances import LP_BOUND_TOL
from verirepair.verify.activation_bounds import (
    activation_interval,
    activation_relaxation,
    refine_mask,
)

if TYPE_CHECKING:  # highspy is imported lazily, when an LP is built
    import highspy


@dataclass(frozen=True, slots=True)
class PolytopeLpResult:
    """Outcome of :func:`polytope_margin`.

    Parameters
    ----------
    margin : float
        A sound lower bound of ``min over the relaxation of max_i (a_i y - b_i)``;
        the polytope is unreachable from the box when it is positive.
    x : array, shape (d,), or None
        The LP's input point (a candidate counterexample when ``margin <= 0``).
    """

    margin: float
    x: np.ndarray | None


def _highs() -> tuple[ModuleType, highspy.Highs]:
    """The ``highspy`` module (for its enums and constants) and a quiet solver."""
    try:
        import highspy
    except ImportError as exc:  # pragma: no cover - highspy is a hard dependency
        raise SolverUnavailableError(
            "LP tightening needs highspy (pip install highspy); run without use_lp instead"
        ) from exc
    return highspy, quiet_highs()


#: A cold solve (first solve, or after the model grew by half its nonzeros) of a
#: model with at least this many nonzeros uses the interior-point solver (with
#: crossover, so later solves warm-start the simplex from its basis).  Measured
#: on the root LP of a 784-256-256-10 network over an L-inf ball: dual simplex
#: 5 s for the polytope LP and over 20 s for a unit bound, IPM 0.3-0.6 s, and
#: the warm simplex re-solves after it 0.03-0.05 s.  ACAS Xu models (~15k
#: nonzeros) stay below it and keep the simplex they were tuned with.
LP_IPM_MIN_NONZEROS = 50_000


class _Relaxation:
    """The triangle-relaxation LP of one box, built layer by layer in one HiGHS model."""

    def __init__(self, network: Network, lower: np.ndarray, upper: np.ndarray,
                 deadline: float | None = None) -> None:
        self.highspy, self.h = _highs()
        self.network = network
        self.deadline = deadline
        self.n_cols = 0
        self.x = self._add_cols(np.asarray(lower, float), np.asarray(upper, float))
        self.prev = self.x
        self.z: list[np.ndarray] = []
        self.lp_calls = 0
        self.nonzeros = 0
        self.nonzeros_solved = 0

    def _add_cols(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        count = lower.shape[0]
        self.h.addCols(count, np.zeros(count), lower, upper, 0, np.zeros(count, dtype=np.int32),
                       np.zeros(0, dtype=np.int32), np.zeros(0))
        cols = np.arange(self.n_cols, self.n_cols + count, dtype=np.int32)
        self.n_cols += count
        return cols

    def _add_rows(self, lower: np.ndarray, upper: np.ndarray, coefs: np.ndarray,
                  cols: np.ndarray) -> None:
        """Dense rows ``lower <= coefs @ v[cols] <= upper``; coefs shape (r, len(cols))."""
        r = coefs.shape[0]
        starts = np.arange(r, dtype=np.int32) * cols.shape[0]
        index = np.tile(cols.astype(np.int32), r)
        self.h.addRows(r, lower, upper, coefs.size, starts, index, coefs.reshape(-1))
        self.nonzeros += coefs.size

    def add_affine(self, index: int, zl: np.ndarray, zu: np.ndarray) -> np.ndarray:
        """Columns ``z`` of affine layer ``index`` with ``z - W h_prev = b``."""
        layer = self.network.layers[index]
        z = self._add_cols(np.asarray(zl, float), np.asarray(zu, float))
        m = layer.out_features
        coefs = np.hstack([np.eye(m), -layer.weight])
        self._add_rows(layer.bias, layer.bias, coefs, np.concatenate([z, self.prev]))
        self.z.append(z)
        self.prev = z
        return z

    def add_relu(self, zl: np.ndarray, zu: np.ndarray) -> None:
        """Columns ``h = relu(z)`` of the last affine layer, relaxed by the triangle."""
        z = self.prev
        inf = self.highspy.kHighsInf
        h = self._add_cols(np.zeros_like(zl), np.maximum(zu, 0.0))
        one = np.array([[1.0, -1.0]])
        for unit in range(z.shape[0]):
            pair = np.array([h[unit], z[unit]])
            if zl[unit] >= 0.0:
                self._add_rows(np.zeros(1), np.zeros(1), one, pair)
            elif zu[unit] <= 0.0:
                self.h.changeColBounds(int(h[unit]), 0.0, 0.0)
            else:
                slope = zu[unit] / (zu[unit] - zl[unit])
                self._add_rows(np.zeros(1), np.array([inf]), one, pair)
                self._add_rows(np.array([-inf]), np.array([-slope * zl[unit]]),
                               np.array([[1.0, -slope]]), pair)
        self.prev = h

    def add_activation(self, activation: Activation, zl: np.ndarray, zu: np.ndarray) -> None:
        """Columns ``h = f(z)`` of the last affine layer, within the sound lines of ``f``."""
        z = self.prev
        inf = self.highspy.kHighsInf
        zl, zu = np.asarray(zl, float), np.asarray(zu, float)
        h_lo, h_hi = activation_interval(activation, zl, zu)
        h = self._add_cols(h_lo, h_hi)
        la, lc, ua, uc = activation_relaxation(activation, zl, zu)
        for unit in range(z.shape[0]):
            pair = np.array([h[unit], z[unit]])
            # h - la z >= lc  and  h - ua z <= uc
            self._add_rows(np.array([lc[unit]]), np.array([inf]),
                           np.array([[1.0, -la[unit]]]), pair)
            self._add_rows(np.array([-inf]), np.array([uc[unit]]),
                           np.array([[1.0, -ua[unit]]]), pair)
        self.prev = h

    def add_nonlinear(self, index: int, zl: np.ndarray, zu: np.ndarray) -> None:
        """The relaxation of layer ``index``'s activation (triangle for ReLU, lines otherwise)."""
        layer = self.network.layers[index]
        if layer.relu:
            self.add_relu(zl, zu)
        else:
            self.add_activation(layer.activation, zl, zu)

    def minimize(self, cols: np.ndarray, coefs: np.ndarray) -> tuple[float, np.ndarray] | None:
        """Minimise ``coefs @ v[cols]``; returns (value, x) or None when not solved.

        With a deadline, HiGHS gets the time left as its limit (an LP over 784
        inputs can take seconds) and nothing is solved once it has passed;
        either way the answer is None, which callers treat as "no tightening".
        """
        if self.deadline is not None:
            left = self.deadline - time.perf_counter()
            if left <= 0.0:
                return None
            # HiGHS compares its limit with the instance's cumulative run time.
            self.h.setOptionValue("time_limit", self.h.getRunTime() + left)
        self.h.changeColsCost(self.n_cols, np.arange(self.n_cols, dtype=np.int32),
                              np.zeros(self.n_cols))
        self.h.changeColsCost(cols.shape[0], cols.astype(np.int32), np.asarray(coefs, float))
        self.h.changeObjectiveSense(self.highspy.ObjSense.kMinimize)
        cold = self.nonzeros - self.nonzeros_solved >= max(self.nonzeros_solved, 1) / 2
        big = self.nonzeros >= LP_IPM_MIN_NONZEROS
        self.h.setOptionValue("solver", "ipm" if big and cold else "choose")
        self.nonzeros_solved = self.nonzeros
        self.h.run()
        self.lp_calls += 1
        status = self.h.getModelStatus()
        if status != self.highspy.HighsModelStatus.kOptimal:
            if status == self.highspy.HighsModelStatus.kInfeasible:
                return np.inf, np.zeros(0)
            return None
        value = float(self.h.getInfo().objective_function_value)
        x = np.asarray(self.h.getSolution().col_value)[self.x]
        return value, x


def _outward(value: float) -> float:
    """Move an LP minimum down by the documented slack."""
    if np.isinf(value):
        return value
    return value - LP_BOUND_TOL * (1.0 + abs(value))


def tighten_box(network: Network, lower: np.ndarray, upper: np.ndarray,
                pre_lower: list[np.ndarray], pre_upper: list[np.ndarray],
                deadline: float | None = None
                ) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Tighten the hidden units' bounds of one box by LP, layer by layer.

    Parameters
    ----------
    network : Network
    lower, upper : array, shape (d,) -- the box
    pre_lower, pre_upper : list of arrays, shape (layers[i].out_features,)
        Sound starting bounds (e.g. from :func:`~verirepair.verify.bounds.symbolic_bounds`).
    deadline : float, optional
        ``time.perf_counter()`` value after which no LP is started (and the
        running one is stopped); the units not reached keep their bounds.

    Returns
    -------
    pre_lower, pre_upper : lists of arrays -- tightened copies (never looser)
    lp_calls : int -- LPs solved (two per unstable hidden unit)
    """
    model = _Relaxation(network, lower, upper, deadline)
    new_l = [np.array(a, dtype=float) for a in pre_lower]
    new_u = [np.array(a, dtype=float) for a in pre_upper]
    for index, layer in enumerate(network.layers):
        z = model.add_affine(index, new_l[index], new_u[index])
        if not layer.nonlinear:     # linear layer: nothing to relax, z feeds the next one
            continue
        if index > 0:
            loose = ((new_l[index] < 0.0) & (new_u[index] > 0.0) if layer.relu
                     else refine_mask(layer.activation, new_l[index], new_u[index]))
            unstable = np.flatnonzero(loose)
            for unit in unstable:
                low = model.minimize(z[unit:unit + 1], np.ones(1))
                high = model.minimize(z[unit:unit + 1], -np.ones(1))
                if low is not None:
                    new_l[index][unit] = max(new_l[index][unit], _outward(low[0]))
                if high is not None:
                    new_u[index][unit] = min(new_u[index][unit], -_outward(high[0]))
                model.h.changeColBounds(int(z[unit]), new_l[index][unit], new_u[index][unit])
        model.add_nonlinear(index, new_l[index], new_u[index])
    return new_l, new_u, model.lp_calls


def polytope_margin(network: Network, lower: np.ndarray, upper: np.ndarray,
                    pre_lower: list[np.ndarray], pre_upper: list[np.ndarray],
                    A: np.ndarray, b: np.ndarray, deadline: float | None = None
                    ) -> tuple[PolytopeLpResult, int]:
    """Lower-bound ``max_i (a_i y - b_i)`` over the relaxation of one box (one LP).

    The LP minimises a free variable ``t`` subject to ``a_i y - b_i <= t`` for
    every row, so it is always feasible and its optimum says by how much the
    whole conjunction ``A y <= b`` is out of reach.

    Parameters
    ----------
    network : Network
    lower, upper : array, shape (d,)
    pre_lower, pre_upper : list of arrays -- sound bounds of every layer
    A : array, shape (r, n_outputs) and b : array, shape (r,)
    deadline : float, optional
        ``time.perf_counter()`` value at which HiGHS is stopped; an LP not
        solved by then gives the uninformative margin ``-inf``.

    Returns
    -------
    PolytopeLpResult and the number of LPs run (1, or 0 past the deadline)
    """
    model = _Relaxation(network, lower, upper, deadline)
    for index, layer in enumerate(network.layers):
        model.add_affine(index, pre_lower[index], pre_upper[index])
        if layer.nonlinear:
            model.add_nonlinear(index, pre_lower[index], pre_upper[index])
    inf = model.highspy.kHighsInf
    t = model._add_cols(np.array([-inf]), np.array([inf]))
    y = model.prev
    coefs = np.hstack([A, -np.ones((A.shape[0], 1))])
    model._add_rows(np.full(A.shape[0], -inf), b, coefs, np.concatenate([y, t]))
    solved = model.minimize(t, np.ones(1))
    if solved is None:
        return PolytopeLpResult(-np.inf, None), model.lp_calls
    value, x = solved
    return PolytopeLpResult(_outward(value), x if x.size else None), model.lp_calls
