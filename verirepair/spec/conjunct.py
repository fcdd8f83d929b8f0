"""Conjuncts of a VNN-LIB formula, kept compact: bounds on single inputs and output rows.

Pipeline position: the values that :mod:`.formula`'s frames pass up while a
file is read, and the step that turns each disjunctive-normal-form conjunct
into the bounds and rows of one (Box, HalfSpaces) pair for :mod:`.vnnlib`.

A conjunct of a box-and-polytope property is a set of bounds on single inputs
(the tightest wins) and a list of rows ``sum_j a_j y_j <= b`` over the outputs.
Two forms exist:

* :class:`Conjunction`, mutable, used while a list is read.  Merging two of
  them walks the smaller one into the larger, so a conjunction of n atoms
  costs O(n) whatever the nesting;
* :class:`Segment`, sealed, which several conjuncts of a DNF may share: the
  expansion of ``(and BIG (or d_1 ... d_K))`` is K tuples ``(BIG, d_k)``, not
  K copies of BIG.  Combining a conjunct's segments into bound arrays is
  vectorised for large segments (:func:`combine`).

Every bound and row keeps the character offset of the comparison it came from,
for error messages; rows are put back in source order when combined.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verirepair.spec.property import format_number
from verirepair.spec.sexpr import Source

#: ``(value, offset)``: a bound and where its comparison starts.
Bound = tuple[float, int]
#: ``(offset, rank, ((j, a_j), ...), b)``: the row ``sum_j a_j y_j <= b``; ``rank``
#: orders the atoms of one (chained) comparison.
Row = tuple[int, int, tuple[tuple[int, float], ...], float]
#: The atoms of one comparison: bounds ``(i, is_upper, value, offset)`` and rows.
Atoms = tuple[list[tuple[int, bool, float, int]], list[Row]]

#: Segments with more bounds than this are combined with numpy, smaller ones in Python.
_VECTORISE_ABOVE = 32


def _empty_box(source: Source, i: int, low: Bound, high: Bound) -> Exception:
    """The error for ``low > high`` on input ``i``, at the later of the two comparisons."""
    later, earlier = (low, high) if low[1] > high[1] else (high, low)
    return source.error(later[1], f"empty input box: this bound makes X_{i} range over "
                        f"[{format_number(low[0])}, {format_number(high[0])}] (lower > upper), "
                        f"together with the bound at {source.where(earlier[1])}")


def _tighter(new: Bound, old: Bound, is_upper: bool) -> bool:
    """Whether ``new`` replaces ``old``: strictly tighter, or equal and earlier in the file."""
    if new[0] == old[0]:
        return new[1] < old[1]
    return new[0] < old[0] if is_upper else new[0] > old[0]


class Conjunction:
    """A conjunct under construction: ``lower``/``upper`` map input index -> Bound."""

    __slots__ = ("lower", "upper", "rows")

    def __init__(self) -> None:
        self.lower: dict[int, Bound] = {}
        self.upper: dict[int, Bound] = {}
        self.rows: list[Row] = []

    def size(self) -> int:
        """Number of bounds and rows."""
        return len(self.lower) + len(self.upper) + len(self.rows)

    def add_atoms(self, atoms: Atoms, source: Source) -> None:
        """Conjoin the atoms of one comparison.

        Raises
        ------
        SpecError
            When a bound makes an input's range empty.
        """
        bounds, rows = atoms
        for i, is_upper, value, offset in bounds:
            mine, other = (self.upper, self.lower) if is_upper else (self.lower, self.upper)
            new = (value, offset)
            old = mine.get(i)
            if old is None or _tighter(new, old, is_upper):
                mine[i] = new
            opposite = other.get(i)
            if opposite is not None:
                low, high = (opposite, mine[i]) if is_upper else (mine[i], opposite)
                if low[0] > high[0]:
                    raise _empty_box(source, i, low, high)
        self.rows.extend(rows)

    def absorb(self, other: Conjunction, source: Source) -> Conjunction:
        """``self and other``; both are consumed and the merged one is returned.

        The smaller is walked into the larger, so repeated merging is linear.
        """
        big, small = (self, other) if self.size() >= other.size() else (other, self)
        for is_upper in (False, True):
            into = big.upper if is_upper else big.lower
            for i, new in (small.upper if is_upper else small.lower).items():
                old = into.get(i)
                if old is None or _tighter(new, old, is_upper):
                    into[i] = new
        for i in {**small.lower, **small.upper}:
            low, high = big.lower.get(i), big.upper.get(i)
            if low is not None and high is not None and low[0] > high[0]:
                raise _empty_box(source, i, low, high)
        big.rows.extend(small.rows)
        return big

    def seal(self) -> Segment:
        """An immutable :class:`Segment` with this conjunction's content."""
        return Segment(self)


class Segment:
    """A sealed part of one or more DNF conjuncts (see the module docstring)."""

    __slots__ = ("lower", "upper", "rows", "_arrays")

    def __init__(self, conjunction: Conjunction) -> None:
        self.lower = conjunction.lower
        self.upper = conjunction.upper
        self.rows: tuple[Row, ...] = tuple(sorted(conjunction.rows))
        self._arrays: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...] | None = None

    def _as_arrays(self) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
        if self._arrays is None:
            self._arrays = tuple(
                (np.fromiter(side.keys(), np.int64, len(side)),
                 np.fromiter((b[0] for b in side.values()), np.float64, len(side)),
                 np.fromiter((b[1] for b in side.values()), np.int64, len(side)))
                for side in (self.lower, self.upper))
        return self._arrays

    def apply(self, bounds: list[np.ndarray]) -> None:
        """Tighten ``bounds = [lower, lower_at, upper, upper_at]`` (each shape (n,)) in place."""
        if len(self.lower) + len(self.upper) <= _VECTORISE_ABOVE:
            for k, side in ((0, self.lower), (2, self.upper)):
                values, at = bounds[k], bounds[k + 1]
                for i, (value, offset) in side.items():
                    old = (float(values[i]), int(at[i]))
                    if at[i] < 0 or _tighter((value, offset), old, k == 2):
                        values[i], at[i] = value, offset
            return
        for k, (index, value, offset) in zip((0, 2), self._as_arrays()):
            values, at = bounds[k], bounds[k + 1]
            old, old_at = values[index], at[index]
            better = value < old if k == 2 else value > old
            take = (old_at < 0) | better | ((value == old) & (offset < old_at))
            values[index[take]] = value[take]
            at[index[take]] = offset[take]


#: A DNF conjunct: the segments whose conjunction it is.
Conjunct = tuple[Segment, ...]


def combine(parts: Sequence[Segment], n_inputs: int,
            source: Source) -> tuple[np.ndarray, np.ndarray, list[Row]]:
    """Bounds and rows of the conjunction of ``parts``.

    Parameters
    ----------
    parts : sequence of Segment
        Whose input indices are all below ``n_inputs``.
    n_inputs : int
    source : Source
        For error messages.

    Returns
    -------
    lower, upper : array, shape (n_inputs,)
        ``-inf`` / ``+inf`` where an input has no bound.
    rows : list of Row
        In source order.

    Raises
    ------
    SpecError
        An empty input box (some lower bound above its upper bound).
    """
    bounds = [np.full(n_inputs, -np.inf), np.full(n_inputs, -1, np.int64),
              np.full(n_inputs, np.inf), np.full(n_inputs, -1, np.int64)]
    for part in parts:
        part.apply(bounds)
    lower, lower_at, upper, upper_at = bounds
    empty = np.flatnonzero(lower > upper)
    if empty.size:
        i = int(empty[0])
        raise _empty_box(source, i, (float(lower[i]), int(lower_at[i])),
                         (float(upper[i]), int(upper_at[i])))
    if len(parts) == 1:
        rows = list(parts[0].rows)
    else:
        rows = sorted(row for part in parts for row in part.rows)
    return lower, upper, rows


def rows_to_matrix(rows: Sequence[Row], n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` of shape ``(len(rows), n_outputs)`` and ``(len(rows),)``."""
    A = np.zeros((len(rows), n_outputs))
    b = np.empty(len(rows))
    for k, (_, _, coeffs, rhs) in enumerate(rows):
        for j, c in coeffs:
            A[k, j] = c
        b[k] = rhs
    return A, b
