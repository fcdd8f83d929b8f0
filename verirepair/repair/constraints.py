"""Output-side constraints of the repair problem: leave the unsafe sets, keep advisories.

Pipeline position: used by :mod:`verirepair.repair.repair` (LP encoding) and
:mod:`verirepair.repair.milp` (MILP encoding) to turn properties and
preservation points into rows over the network outputs ``y``.

Leaving a polytope ``{y : A y <= b}`` means violating at least one of its rows:
``a_i . y >= b_i + margin * ||a_i||`` (the margin is a Euclidean distance, as in
:meth:`Property.violation_score`, so the float64 check ``score < 0`` holds with
room to spare).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from verirepair.properties.property import Property
from verirepair.repair.encoding import FixedPatternModel, ProblemBuilder, RowFamily


@dataclass(frozen=True, slots=True)
class EscapeTargets:
    """All (sample, polytope row) pairs of the counterexamples' disjunctions.

    Row ``r`` asks ``A[r] . y(samples[r]) >= rhs[r]``; rows with the same
    ``group`` form one disjunction (one sample, one unsafe polytope), at least
    one of which must hold.

    Attributes
    ----------
    samples : int array, shape (R,)
    A : array, shape (R, n_outputs)
    rhs : array, shape (R,)
    group : int array, shape (R,)
    """

    samples: np.ndarray
    A: np.ndarray
    rhs: np.ndarray
    group: np.ndarray

    @property
    def n_groups(self) -> int:
        """Number of disjunctions."""
        return int(self.group.max(initial=-1)) + 1


def escape_targets(props: Sequence[Property], cex_x: np.ndarray,
                   margin: float | Sequence[float]) -> EscapeTargets:
    """Collect the disjunctions for every counterexample and applicable property.

    Parameters
    ----------
    props : sequence of Property
    cex_x : array, shape (n, n_inputs)
        Sample ``i`` of the result refers to row ``i`` of ``cex_x``.
    margin : float, or one float per property

    Returns
    -------
    EscapeTargets
    """
    margins = np.broadcast_to(np.asarray(margin, dtype=float), (len(props),))
    samples, rows, rhs, group = [], [], [], []
    n_groups = 0
    for prop, prop_margin in zip(props, margins, strict=True):
        inside = np.flatnonzero(prop.in_region(cex_x))
        for poly in prop.unsafe:
            norms = np.linalg.norm(poly.A, axis=1)
            for s in inside:
                samples.append(np.full(poly.A.shape[0], s))
                rows.append(poly.A)
                rhs.append(poly.b + prop_margin * norms)
                group.append(np.full(poly.A.shape[0], n_groups))
                n_groups += 1
    if not samples:
        n_out = props[0].n_outputs if props else 0
        return EscapeTargets(np.zeros(0, int), np.zeros((0, n_out)), np.zeros(0), np.zeros(0, int))
    return EscapeTargets(np.concatenate(samples), np.vstack(rows), np.concatenate(rhs),
                         np.concatenate(group))


def choose_cheapest(model: FixedPatternModel, targets: EscapeTargets, norm: str,
                    rule: str = "slack") -> RowFamily:
    """Pick one row per disjunction and return them as an output-layer row family.

    ``rule == "cost"`` estimates the smallest change that violates the row,
    ``need / ||grad||_*`` with ``need = rhs - a.y0`` and the dual norm of the
    objective (L-inf for an L1 objective, L1 for L-inf); ``rule == "slack"``
    picks the row with the smallest ``need / ||a||`` (closest to violated).
    """
    out_layer = model.network.n_layers - 1
    y0 = model.pre0[-1][targets.samples]
    need = targets.rhs - np.einsum("rw,rw->r", targets.A, y0)
    if rule == "cost":
        grads, _ = model.coefficient_rows(targets.samples, out_layer, targets.A)
        grads = abs(grads)
        dual = (grads.sum(axis=1) if norm == "linf" else grads.max(axis=1).toarray())
        dual = np.asarray(dual).ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(need <= 0, need, np.where(dual > 0, need / dual, np.inf))
    else:
        score = need / np.maximum(np.linalg.norm(targets.A, axis=1), 1e-300)
    picked: list[int] = []
    for g in range(targets.n_groups):
        members = np.flatnonzero(targets.group == g)
        picked.append(int(members[np.argmin(score[members])]))
    chosen = np.array(picked, dtype=np.int64)
    return RowFamily(out_layer, targets.samples[chosen], targets.A[chosen], targets.rhs[chosen],
                     np.full(chosen.shape[0], np.inf))


def add_disjunctions(builder: ProblemBuilder, rows: sp.csr_matrix, const: np.ndarray,
                     lower_bound: np.ndarray, rhs: np.ndarray, group: np.ndarray) -> int:
    """Add big-M disjunctions ``OR_{r in group} (const_r + rows_r . x >= rhs_r)``.

    Parameters
    ----------
    builder : ProblemBuilder
    rows : CSR, shape (R, ncols)
        Coefficients over the builder's first ``ncols`` columns.
    const : array, shape (R,)
    lower_bound : array, shape (R,)
        A valid lower bound of ``const + rows . x`` over the variable bounds.
    rhs : array, shape (R,)
    group : int array, shape (R,)

    Returns
    -------
    int
        Number of binaries added.
    """
    n = rows.shape[0]
    if n == 0:
        return 0
    big_m = np.maximum(rhs - lower_bound, 0.0)
    beta = builder.add_columns(n, 0.0, 1.0, integer=True)
    # rows . x - M beta >= rhs - const - M   (beta = 1 enforces the row; 0 relaxes it)
    coo = sp.coo_matrix(rows)
    builder.add_triplets(n, np.concatenate([coo.row, np.arange(n)]),
                         np.concatenate([coo.col, beta + np.arange(n)]),
                         np.concatenate([coo.data, -big_m]),
                         rhs - const - big_m, np.full(n, np.inf))
    n_groups = int(group.max()) + 1
    builder.add_triplets(n_groups, group, beta + np.arange(n), np.ones(n),
                         np.ones(n_groups), np.full(n_groups, np.inf))
    return n


def preservation_family(y0: np.ndarray, samples: np.ndarray, preserve_margin: float,
                        out_layer: int, decision: str = "argmin") -> RowFamily:
    """Rows keeping each preservation point's decision (by the named decision rule).

    For ``argmin`` and advisory ``k``: ``y_j - y_k >= m`` for every other
    output ``j``, with ``m = min(preserve_margin, gap / 2)`` and ``gap`` the
    original distance to the runner-up, so the original network satisfies
    every row (see :meth:`verirepair.decision.DecisionRule.keep_rows`).

    Parameters
    ----------
    y0 : array, shape (n_samples_total, n_outputs)
        Original outputs of all samples.
    samples : int array, shape (m,)
        Which samples are preservation points.
    decision : str -- a registered decision rule
    """
    from verirepair.decision import get_decision_rule

    rows = get_decision_rule(decision).keep_rows(y0[samples], preserve_margin)
    return RowFamily(out_layer, samples[rows.sample], rows.c, rows.lower, rows.upper)


def output_change_family(y0: np.ndarray, samples: np.ndarray, bound: float,
                         out_layer: int) -> RowFamily:
    """Rows ``|y_o - y0_o| <= bound`` for every output of every given sample."""
    n_out = y0.shape[1]
    s_rep = np.repeat(samples, n_out)
    o_rep = np.tile(np.arange(n_out), len(samples))
    c = np.zeros((s_rep.shape[0], n_out))
    c[np.arange(s_rep.shape[0]), o_rep] = 1.0
    centre = y0[s_rep, o_rep]
    return RowFamily(out_layer, s_rep, c, centre - bound, centre + bound)
