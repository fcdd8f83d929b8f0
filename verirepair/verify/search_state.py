"""The state shared by the sequential and the parallel branch and bound.

Pipeline position: :mod:`verirepair.verify.bab` (the search) and
:mod:`verirepair.verify.parallel` (which deals a paused search's open
sub-boxes to worker processes) both use these pieces: the flattened unsafe
set (:class:`SpecRows`), the depth-first stack of sub-boxes (:class:`BoxStack`)
and the effort counters of one search (:class:`SearchOutcome`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from verirepair.properties.property import Property
from verirepair.verify.result import Counterexample, Verdict

#: Conjunctions with at most this many rows also get all pairwise row sums
#: (quadratic in the rows); larger ones only get the sum of all rows.
MAX_ROWS_FOR_PAIRS = 8


@dataclass(slots=True)
class SearchOutcome:
    """What one branch-and-bound search found (:func:`verirepair.verify.bab.search`).

    Internal to the verify stage: :func:`~verirepair.verify.engine.verify` turns
    it into a :class:`~verirepair.verify.result.VerificationResult`.
    """

    verdict: Verdict
    counterexamples: list[Counterexample] = field(default_factory=list)
    subproblems: int = 0
    splits: int = 0
    lp_calls: int = 0
    max_depth: int = 0
    message: str = ""
    open_lower: np.ndarray | None = None
    open_upper: np.ndarray | None = None

    def open_boxes(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """The undecided sub-boxes as ``(lower, upper)`` pairs, shapes (d,); () when none were kept."""
        if self.open_lower is None or self.open_upper is None:
            return ()
        return tuple(zip(self.open_lower, self.open_upper, strict=True))


@dataclass(slots=True)
class SpecRows:
    """The unsafe set flattened into rows: ``C`` (k, m), ``b`` (k,), row -> polytope.

    ``weights`` (k, q) says how each row combines its polytope's rows
    (``C[r] = weights[r] @ A``, ``q`` the most rows of any polytope): a
    certificate records it as the evidence of an exclusion.
    """

    C: np.ndarray
    b: np.ndarray
    poly_of_row: np.ndarray
    n_polys: int
    weights: np.ndarray

    @classmethod
    def of(cls, prop: Property) -> SpecRows:
        """Rows of every polytope plus, for conjunctions, sums of its rows.

        ``A y <= b`` implies ``(a_i + a_j) y <= b_i + b_j``, so a positive lower
        bound of a summed row also excludes the polytope.  Back-substituting the
        sum directly is tighter than adding the two rows' bounds (the ReLU
        relaxations are chosen for the combined coefficients); on ACAS Xu
        properties 2 and 3 it excludes boxes near the decision boundary where
        no single row does (an LP would too, but costs ~60 ms per box).
        """
        rows, rhs, owner, weights = [], [], [], []
        q_max = max(poly.A.shape[0] for poly in prop.unsafe)
        for index, poly in enumerate(prop.unsafe):
            A, b = poly.A, poly.b
            q = A.shape[0]
            combos = [(i, j) for i in range(q) for j in range(i + 1, q)] \
                if q <= MAX_ROWS_FOR_PAIRS else []
            extra_A = [A[i] + A[j] for i, j in combos]
            extra_b = [b[i] + b[j] for i, j in combos]
            combo_w = np.zeros((q + len(combos) + (q >= 3), q_max))
            combo_w[np.arange(q), np.arange(q)] = 1.0
            for r, (i, j) in enumerate(combos):
                combo_w[q + r, [i, j]] = 1.0
            if A.shape[0] >= 3:
                extra_A.append(A.sum(axis=0))
                extra_b.append(b.sum())
                combo_w[-1, :q] = 1.0
            rows.append(np.vstack([A] + [a[None] for a in extra_A]))
            rhs.append(np.concatenate([b, np.asarray(extra_b, dtype=float)]))
            owner.append(np.full(rows[-1].shape[0], index))
            weights.append(combo_w)
        return cls(np.vstack(rows), np.concatenate(rhs), np.concatenate(owner), len(prop.unsafe),
                   np.vstack(weights))

    def best_rows(self, margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per box and polytope, the largest row margin and the row achieving it.

        Parameters
        ----------
        margin : array, shape (n, k)

        Returns
        -------
        poly_margin : (n, P) and best_row : (n, P) int
        """
        n = margin.shape[0]
        poly_margin = np.full((n, self.n_polys), -np.inf)
        best_row = np.zeros((n, self.n_polys), dtype=np.int64)
        for row, poly in enumerate(self.poly_of_row):
            better = margin[:, row] > poly_margin[:, poly]
            poly_margin[better, poly] = margin[better, row]
            best_row[better, poly] = row
        return poly_margin, best_row


class BoxStack:
    """Depth-first stack of boxes, kept as a list of array chunks.

    Each chunk is a tuple of per-box arrays (all with the same first axis):
    ``lower, upper, depth, open_polys, pre_lower, pre_upper`` where the last two
    hold the parent's bounds of every layer, concatenated (``(n, sum m_j)``).
    Pushing appends a chunk and popping slices the last ones, so a batch never
    copies the whole stack.
    """

    def __init__(self) -> None:
        self.chunks: list[tuple[np.ndarray, ...]] = []
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def push(self, fields: tuple[np.ndarray, ...]) -> None:
        """Push one chunk (a tuple of per-box arrays, first axis n); empty chunks are dropped."""
        if fields[0].shape[0]:
            self.chunks.append(fields)
            self.size += fields[0].shape[0]

    def pop(self, count: int) -> tuple[np.ndarray, ...]:
        """Pop the ``count`` most recently pushed boxes (fewer if the stack is smaller).

        Returns the per-box arrays of the popped boxes, first axis ``min(count, len(self))``.
        """
        taken = []
        need = count
        while need > 0 and self.chunks:
            last = self.chunks[-1]
            size = last[0].shape[0]
            if size <= need:
                taken.append(self.chunks.pop())
                need -= size
            else:
                cut = size - need
                taken.append(tuple(f[cut:] for f in last))
                self.chunks[-1] = tuple(f[:cut] for f in last)
                need = 0
        self.size -= count - need
        if len(taken) == 1:
            return taken[0]
        return tuple(np.concatenate(parts) for parts in zip(*taken, strict=True))
