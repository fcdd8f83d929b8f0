"""Conjuncts of a VNN-LIB formula, kept compact: bounds on single inputs and output rows.

Pipeline position: the values that :mod:`.formula`'s frames pass up while a
file is read, and the step that turns each disjunctive-normal-form conjunct
into the bounds and rows of one (Box, HalfSpaces) pair for :mod:`.vnnlib`.

A conjunct of a box-and-polytope property is a set of bounds on single inputs
(the tightest wins) and a list of rows ``sum_j a_j y_j <= b`` over the outputs.
Two forms exist:

* :class:`Conjunction`, mutable, used while a list is read: an append-only
  log of bounds in typed arrays (25 bytes a bound).  Merging two of them
  appends the smaller to the larger, so a conjunction of n atoms costs O(n)
  whatever the nesting;
* :class:`Segment`, sealed, which several conjuncts of a DNF may share: the
  expansion of ``(and BIG (or d_1 ... d_K))`` is K tuples ``(BIG, d_k)``, not
  K copies of BIG.  Sealing keeps the tightest bound per input (numpy), and
  combining a conjunct's segments into bound arrays is vectorised (:func:`combine`).

Every bound and row keeps the character offset of the comparison it came from.
An empty box (some lower bound above its upper bound) is found when a
conjunction is sealed or segments are combined, and is reported at the first
place in the file where the tightest bounds conflict, naming the other bound;
rows are put back in source order when combined.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np

from verirepair.properties.property import format_number
from verirepair.properties.sexpr import Source

#: ``(value, offset)``: a bound and where its comparison starts.
Bound = tuple[float, int]
#: ``(offset, rank, ((j, a_j), ...), b)``: the row ``sum_j a_j y_j <= b``; ``rank``
#: orders the atoms of one (chained) comparison.
Row = tuple[int, int, tuple[tuple[int, float], ...], float]
#: The atoms of one comparison: bounds ``(i, is_upper, value, offset)`` and rows.
Atoms = tuple[list[tuple[int, bool, float, int]], list[Row]]

def _empty_box(source: Source, i: int, low: Bound, high: Bound) -> Exception:
    """The error for ``low > high`` on input ``i``, at the later of the two comparisons."""
    later, earlier = (low, high) if low[1] > high[1] else (high, low)
    return source.error(later[1], f"empty input box: this bound makes X_{i} range over "
                        f"[{format_number(low[0])}, {format_number(high[0])}] (lower > upper), "
                        f"together with the bound at {source.where(earlier[1])}")


class Conjunction:
    """A conjunct under construction: an append-only log of bounds, and rows.

    Bound ``k`` is ``value[k]`` on input ``index[k]``, an upper bound when
    ``upper[k]``, from the comparison at ``offset[k]``; typed arrays keep it at
    25 bytes per bound.  The tightest bound per input is found when sealing.
    """

    __slots__ = ("index", "upper", "value", "offset", "rows")

    def __init__(self) -> None:
        self.index = array("q")
        self.upper = array("b")
        self.value = array("d")
        self.offset = array("q")
        self.rows: list[Row] = []

    def size(self) -> int:
        """Number of bounds and rows."""
        return len(self.index) + len(self.rows)

    def add_atoms(self, atoms: Atoms) -> None:
        """Conjoin the atoms of one comparison."""
        bounds, rows = atoms
        for i, is_upper, value, offset in bounds:
            self.index.append(i)
            self.upper.append(is_upper)
            self.value.append(value)
            self.offset.append(offset)
        self.rows.extend(rows)

    def absorb(self, other: Conjunction) -> Conjunction:
        """``self and other``; both are consumed and the merged one is returned.

        The smaller is appended to the larger, so repeated merging is linear.
        """
        big, small = (self, other) if self.size() >= other.size() else (other, self)
        big.index.extend(small.index)
        big.upper.extend(small.upper)
        big.value.extend(small.value)
        big.offset.extend(small.offset)
        big.rows.extend(small.rows)
        return big

    def seal(self, source: Source) -> Segment:
        """An immutable :class:`Segment` with this conjunction's content.

        Raises
        ------
        SpecError
            When the bounds make some input's range empty.
        """
        return Segment(self, source)


def _tightest(index: np.ndarray, value: np.ndarray, offset: np.ndarray,
              is_upper: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One bound per input: the tightest, and of equal ones the earliest in the file."""
    order = np.lexsort((offset, value if is_upper else -value, index))
    index, value, offset = index[order], value[order], offset[order]
    first = np.ones(len(index), dtype=bool)
    first[1:] = index[1:] != index[:-1]
    return index[first], value[first], offset[first]


def _check_nonempty(lower: Side, upper: Side, source: Source) -> None:
    """Raise at the first place in the file where some input's range became empty."""
    common, at_low, at_high = np.intersect1d(lower[0], upper[0], assume_unique=True,
                                             return_indices=True)
    bad = np.flatnonzero(lower[1][at_low] > upper[1][at_high])
    if bad.size:
        later = np.maximum(lower[2][at_low[bad]], upper[2][at_high[bad]])
        k = bad[int(np.argmin(later))]
        low, high = at_low[k], at_high[k]
        raise _empty_box(source, int(common[k]), (float(lower[1][low]), int(lower[2][low])),
                         (float(upper[1][high]), int(upper[2][high])))


#: ``(index, value, offset)`` arrays of one side of a segment, sorted by index.
Side = tuple[np.ndarray, np.ndarray, np.ndarray]


class Segment:
    """A sealed part of one or more DNF conjuncts (see the module docstring).

    ``lower`` and ``upper`` hold the tightest bound of each input they bound.
    """

    __slots__ = ("lower", "upper", "rows")

    def __init__(self, conjunction: Conjunction, source: Source) -> None:
        index = np.array(conjunction.index, dtype=np.int64)
        is_upper = np.array(conjunction.upper, dtype=bool)
        value = np.array(conjunction.value, dtype=np.float64)
        offset = np.array(conjunction.offset, dtype=np.int64)
        self.lower: Side = _tightest(index[~is_upper], value[~is_upper], offset[~is_upper], False)
        self.upper: Side = _tightest(index[is_upper], value[is_upper], offset[is_upper], True)
        _check_nonempty(self.lower, self.upper, source)
        self.rows: tuple[Row, ...] = tuple(sorted(conjunction.rows))

    def apply(self, bounds: list[np.ndarray]) -> None:
        """Tighten ``bounds = [lower, lower_at, upper, upper_at]`` (each shape (n,)) in place."""
        for k, (index, value, offset) in ((0, self.lower), (2, self.upper)):
            if not index.size:
                continue
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
    bad = np.flatnonzero(lower > upper) if len(parts) > 1 else ()  # one was checked sealing
    if len(bad):
        i = int(bad[np.argmin(np.maximum(lower_at[bad], upper_at[bad]))])
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
