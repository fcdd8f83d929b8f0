"""Exact big-M MILP oracle for small ReLU networks (tests only).

``exact_min(network, lower, upper, c, signs)`` is ``min c . y(x)`` over the box
``lower <= x <= upper`` intersected with split constraints ``s_j z_j(x) >= 0``
(``signs``: per layer, +1 active, -1 inactive, 0 free), solved by HiGHS through
the project's solver backend.  Big-M constants come from sound CROWN bounds over
the box (:func:`~verirepair.verify.bounds.intermediate_bounds`, backward mode;
units they prove stable get no binary), so the encoding is exact: ``h = relu(z)`` with ``h >= z, h >= 0,
h <= z - l (1 - d), h <= u d`` and ``d`` binary.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from verirepair.network.model import Network
from verirepair.solvers import get_backend
from verirepair.solvers.model import SolveStatus, problem_from_inequalities
from verirepair.verify.bounds import intermediate_bounds


def exact_min(network: Network, lower: np.ndarray, upper: np.ndarray, c: np.ndarray,
              signs: list[np.ndarray] | None = None, time_limit_s: float = 60.0
              ) -> tuple[float, np.ndarray | None]:
    """The exact minimum of ``c . y`` and a minimiser ``x`` (``inf, None`` when infeasible).

    Raises RuntimeError when HiGHS does not prove optimality within ``time_limit_s``.
    """
    pre_l, pre_u = intermediate_bounds(network, lower[None], upper[None], "backward")
    d = network.n_inputs
    cols_lo, cols_hi, ints = [np.asarray(lower, float)], [np.asarray(upper, float)], [np.zeros(d, bool)]
    n = d
    eq_rows: list[tuple[dict[int, float], float]] = []
    ub_rows: list[tuple[dict[int, float], float]] = []
    prev = np.arange(d)
    z_cols = None
    for j, layer in enumerate(network.layers):
        m = layer.out_features
        lo, hi = pre_l[j][0], pre_u[j][0]
        z_cols = np.arange(n, n + m)
        n += m
        cols_lo.append(lo - 1.0)
        cols_hi.append(hi + 1.0)
        ints.append(np.zeros(m, bool))
        for i in range(m):
            row = {int(z_cols[i]): 1.0}
            for p, w in zip(prev, layer.weight[i], strict=True):
                row[int(p)] = row.get(int(p), 0.0) - w
            eq_rows.append((row, float(layer.bias[i])))
        s = np.zeros(m) if signs is None or j >= len(signs) else signs[j]
        for i in range(m):
            if s[i] > 0:
                ub_rows.append(({int(z_cols[i]): -1.0}, 0.0))
            elif s[i] < 0:
                ub_rows.append(({int(z_cols[i]): 1.0}, 0.0))
        if not layer.relu:
            prev = z_cols
            continue
        h_cols = np.arange(n, n + m)
        d_cols = np.arange(n + m, n + 2 * m)
        n += 2 * m
        # a unit the bounds prove stable gets its binary fixed (HiGHS presolve drops it)
        cols_lo += [np.zeros(m), (lo >= 0.0).astype(float)]
        cols_hi += [np.maximum(hi, 0.0) + 1.0, (hi > 0.0).astype(float)]
        ints += [np.zeros(m, bool), np.ones(m, bool)]
        for i in range(m):
            z, h, b = int(z_cols[i]), int(h_cols[i]), int(d_cols[i])
            li, ui = min(lo[i], -1e-6), max(hi[i], 1e-6)
            ub_rows.append(({z: 1.0, h: -1.0}, 0.0))                 # h >= z
            ub_rows.append(({h: 1.0, z: -1.0, b: -li}, -li))          # h <= z - l (1 - d)
            ub_rows.append(({h: 1.0, b: -ui}, 0.0))                   # h <= u d
        prev = h_cols
    assert z_cols is not None
    y_cols = prev

    def matrix(rows: list[tuple[dict[int, float], float]]) -> tuple[sp.csr_matrix, np.ndarray]:
        data, ri, ci = [], [], []
        for r, (row, _) in enumerate(rows):
            for col, v in row.items():
                ri.append(r)
                ci.append(col)
                data.append(v)
        return sp.csr_matrix((data, (ri, ci)), shape=(len(rows), n)), np.array([b for _, b in rows])

    A_eq, b_eq = matrix(eq_rows)
    A_ub, b_ub = matrix(ub_rows) if ub_rows else (None, None)
    cost = np.zeros(n)
    cost[y_cols] = c
    problem = problem_from_inequalities(cost, A_ub, b_ub, A_eq, b_eq,
                                        (np.concatenate(cols_lo), np.concatenate(cols_hi)),
                                        np.concatenate(ints))
    solution = get_backend("highs").solve(problem, time_limit_s=time_limit_s)
    if solution.status is SolveStatus.INFEASIBLE:
        return np.inf, None
    if solution.status is not SolveStatus.OPTIMAL or solution.x is None:
        raise RuntimeError(f"MILP not solved to optimality: {solution.status}")
    return float(cost @ solution.x), np.asarray(solution.x[:d])
