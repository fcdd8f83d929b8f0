"""VNN-LIB files to :class:`Property` objects (writing: :mod:`.vnnlib_write`).

Pipeline position: the entry point for properties (``file.vnnlib --parse_vnnlib-->
list[Property]``).  This is the project's only VNN-LIB parser: the bytes are
decoded and checked by :mod:`.sexpr`, whose iterative reader feeds each list to
a frame; the frames of this module read the commands, those of :mod:`.formula`
reduce each assert to disjunctive normal form, and this module gives the result
its meaning.  Time is linear in the file size and memory a small multiple of
it; every malformed input is a :class:`SpecError` naming file, line and column.

Semantics (the VNN-COMP dialect):

* ``(declare-const X_i Real)`` declares input ``i`` and ``(declare-const Y_j Real)``
  output ``j``; the indices must be ``0..n-1`` without gaps (``X_0`` and ``X_2``
  without ``X_1`` is an error at ``X_2``), and a variable must be declared
  before it is used.
* The asserts are conjoined and expanded to DNF (at most
  :data:`~verirepair.properties.formula.MAX_DNF_CONJUNCTS` conjuncts).  In each
  conjunct, atoms over one input variable bound that input, atoms over
  outputs only become rows of ``A y <= b``; every input needs a lower and an
  upper bound (an unbounded input is an error at its declaration) and the
  box must not be empty (an error at the bound that empties it).  Atoms over
  several inputs (a non-box input region) and atoms mixing inputs and outputs
  are rejected.  Strict comparisons are read as non-strict (the closure), the
  sound direction for a proof.  A zero-width input (lower == upper) is fine.
* Numbers are finite: no literal, coefficient or bound may leave the float64
  range (VNN-LIB has no NaN or infinity literals; ``nan`` is an unknown symbol).
* Conjuncts with the same input box form one :class:`Property` whose unsafe
  set is the union of their polytopes; then properties with the same unsafe
  set are merged into one property whose input region is the union of their
  boxes (VNN-COMP ``prop_6``: 2 boxes, 4 unsafe polytopes).
* A constant comparison such as ``(<= 1 0)`` becomes the output row
  ``0 . y <= -1`` (never satisfied), so it is kept exactly; a conjunct without
  any output atom gets the always-true row ``0 . y <= 0`` (every output is
  unsafe there).
* A property is named after the file's stem; when a file yields several
  properties they are named ``stem[0]``, ``stem[1]``, ...
* Commands ``check-sat``, ``get-model``, ``set-logic``, ``set-info``,
  ``set-option`` and ``exit`` are skipped with whatever they contain.
"""

from __future__ import annotations

import os
import re
from array import array
from pathlib import Path

import numpy as np

from verirepair.errors import SpecError
from verirepair.properties.conjunct import Conjunct, Conjunction, combine, rows_to_matrix
from verirepair.properties.formula import Conjoiner, Scope, formula_frame, not_a_formula
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.properties.sexpr import Frame, Source, check_structure, decode, quote, read
from verirepair.properties.vnnlib_write import save_vnnlib, write_vnnlib

__all__ = ["IGNORED_COMMANDS", "parse_vnnlib", "parse_vnnlib_bytes", "parse_vnnlib_string",
           "save_vnnlib", "write_vnnlib"]

#: Top-level commands that carry no meaning for a property and are skipped.
IGNORED_COMMANDS = ("check-sat", "get-model", "set-logic", "set-info", "set-option", "exit")

#: ``X_<i>`` / ``Y_<j>`` with a decimal index of at most 12 digits, no leading zero.
_VARIABLE = re.compile(r"([XY])_(0|[1-9][0-9]{0,11})")


def parse_vnnlib(path: str | os.PathLike[str]) -> list[Property]:
    """Read a VNN-LIB file.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    list of Property
        Usually one; each property's boxes have shape (n_inputs,) and its
        polytopes ``A`` shape (k, n_outputs).

    Raises
    ------
    SpecError
        Malformed or unsupported content (including bytes that are not UTF-8
        outside comments), with line and column.
    OSError
        The file cannot be read.
    """
    path = Path(path)
    text = decode(path.read_bytes())  # the bytes are freed before parsing
    return parse_vnnlib_string(text, str(path))


def parse_vnnlib_bytes(data: bytes, path: str = "<bytes>") -> list[Property]:
    """Read VNN-LIB bytes (UTF-8); ``path`` is used for the names and error messages.

    See :func:`parse_vnnlib` for the return value and errors.
    """
    return parse_vnnlib_string(decode(data), path)


def parse_vnnlib_string(text: str, path: str = "<string>") -> list[Property]:
    """Read VNN-LIB text; ``path`` is used for the names and error messages.

    See :func:`parse_vnnlib` for the return value and errors.  Lone surrogates
    U+DC80..U+DCFF (undecodable bytes, see :func:`~verirepair.properties.sexpr.decode`)
    are errors outside comments.
    """
    source = Source(text, _printable(path))
    check_structure(source)
    scope = Scope(source)
    file_frame = _FileFrame(scope)
    read(source, file_frame)
    n_inputs, n_outputs = file_frame.check_declarations()
    dnf = file_frame.conjoiner.result()
    if isinstance(dnf, Conjunction):
        dnf = [(dnf.seal(source),)]
    if not dnf:
        raise source.error(0, "the asserts are unsatisfiable (an empty disjunction '(or)'), "
                           "so the file describes no property")
    pairs = [_pair(conjunct, n_inputs, n_outputs, file_frame) for conjunct in dnf]
    return _group(pairs, Path(path).stem)


def _printable(path: str) -> str:
    """``path`` for messages: escaped if it holds line breaks or other unprintables."""
    return path if path.isprintable() else ascii(path)[1:-1]


# -- the commands of a file ---------------------------------------------------------

class _Declarations:
    """Declared indices of one kind (``X`` or ``Y``) and where each is declared."""

    __slots__ = ("kind", "indices", "offsets")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.indices = array("q")
        self.offsets = array("q")

    def check(self, source: Source) -> np.ndarray:
        """Declaration offsets by index, shape (n,); the indices must be 0..n-1.

        Raises
        ------
        SpecError
            None declared, or a gap (at the first index whose predecessor is missing).
        """
        kind = self.kind
        if not self.indices:
            raise source.error(0, f"no {kind}_<i> variables declared; expected "
                               f"(declare-const {kind}_0 Real) and so on")
        indices = np.frombuffer(self.indices, dtype=np.int64)
        order = np.argsort(indices, kind="stable")
        offsets = np.frombuffer(self.offsets, dtype=np.int64)[order]
        gaps = np.flatnonzero(indices[order] != np.arange(len(order)))
        if gaps.size:
            k = int(gaps[0])
            index = int(indices[order][k])
            raise source.error(int(offsets[k]), f"{kind}_{index} declared but {kind}_{k} is "
                               f"not; {kind} indices must run 0, 1, 2, ... without gaps")
        return offsets


class _FileFrame:
    """The top level of a file: commands only."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.conjoiner = Conjoiner(scope)
        self.inputs = _Declarations("X")
        self.outputs = _Declarations("Y")
        self.input_offsets = np.zeros(0, dtype=np.int64)

    def child(self, head: str | None, open_offset: int, head_offset: int) -> Frame:
        if head == "assert":
            return _AssertFrame(self.scope, open_offset)
        if head == "declare-const":
            return _DeclareFrame(self, open_offset)
        if head in IGNORED_COMMANDS:
            return _IGNORED
        source = self.scope.source
        if head is None:
            raise source.error(open_offset, "expected a command such as (declare-const X_0 "
                               "Real) or (assert ...)")
        raise source.error(head_offset, f"unknown command {quote(head)}; expected "
                           f"declare-const or assert (ignored: {', '.join(IGNORED_COMMANDS)})")

    def atom(self, word: str, offset: int) -> None:
        raise self.scope.source.error(offset, "expected a command such as (declare-const X_0 "
                                      "Real) or (assert ...)")

    def value(self, value: object, offset: int) -> None:
        if value is not None:  # an assert's Formula (declarations and ignored commands give None)
            self.conjoiner.add(value, offset)  # type: ignore[arg-type]

    def close(self, offset: int) -> None:
        return None

    def declare(self, name: str, name_offset: int) -> None:
        """Register ``X_i`` or ``Y_j`` (``name`` already checked by :data:`_VARIABLE`)."""
        variables = self.scope.variables
        if name in variables:
            raise self.scope.source.error(name_offset, f"{name} is declared twice")
        index = int(name[2:])
        declarations = self.inputs if name[0] == "X" else self.outputs
        declarations.indices.append(index)
        declarations.offsets.append(name_offset)
        variables[name] = index if name[0] == "X" else ~index

    def check_declarations(self) -> tuple[int, int]:
        """``(n_inputs, n_outputs)`` after the whole file; see :meth:`_Declarations.check`."""
        source = self.scope.source
        self.input_offsets = self.inputs.check(source)
        return len(self.input_offsets), len(self.outputs.check(source))


class _DeclareFrame:
    """``(declare-const <name> Real)``."""

    __slots__ = ("file", "offset", "words")

    def __init__(self, file: _FileFrame, offset: int) -> None:
        self.file, self.offset = file, offset
        self.words: list[tuple[str, int]] = []

    def _malformed(self) -> SpecError:
        return self.file.scope.source.error(self.offset, "expected (declare-const <name> Real)")

    def child(self, head: str | None, open_offset: int, head_offset: int) -> Frame:
        raise self._malformed()

    def atom(self, word: str, offset: int) -> None:
        self.words.append((word, offset))

    def value(self, value: object, offset: int) -> None:
        raise self._malformed()

    def close(self, offset: int) -> None:
        if len(self.words) != 2:
            raise self._malformed()
        (name, name_offset), (sort, sort_offset) = self.words
        source = self.file.scope.source
        if sort != "Real":
            raise source.error(sort_offset, f"unsupported sort {quote(sort)}; expected Real")
        if not _VARIABLE.fullmatch(name):
            raise source.error(name_offset, f"unsupported variable name {quote(name)}; expected "
                               "X_<i> for inputs or Y_<j> for outputs (i, j decimal, at most "
                               "12 digits)")
        self.file.declare(name, name_offset)


class _AssertFrame:
    """``(assert <formula>)``; its value is the formula's."""

    __slots__ = ("scope", "offset", "formula", "seen")

    def __init__(self, scope: Scope, offset: int) -> None:
        self.scope, self.offset = scope, offset
        self.formula: object = None
        self.seen = False

    def _one_formula(self) -> SpecError:
        return self.scope.source.error(self.offset, "expected (assert <formula>) with exactly "
                                       "one formula")

    def child(self, head: str | None, open_offset: int, head_offset: int) -> Frame:
        if self.seen:
            raise self._one_formula()
        return formula_frame(self.scope, head, open_offset, head_offset)

    def atom(self, word: str, offset: int) -> None:
        if self.seen:
            raise self._one_formula()
        raise not_a_formula(self.scope.source, word, offset)

    def value(self, value: object, offset: int) -> None:
        self.formula, self.seen = value, True

    def close(self, offset: int) -> object:
        if not self.seen:
            raise self._one_formula()
        return self.formula


class _Ignored:
    """A skipped command and everything inside it."""

    def child(self, head: str | None, open_offset: int, head_offset: int) -> Frame:
        return self

    def atom(self, word: str, offset: int) -> None:
        pass

    def value(self, value: object, offset: int) -> None:
        pass

    def close(self, offset: int) -> None:
        return None


_IGNORED = _Ignored()


# -- meaning of one conjunct ------------------------------------------------------

def _pair(conjunct: Conjunct, n_inputs: int, n_outputs: int,
          file_frame: _FileFrame) -> tuple[Box, HalfSpaces]:
    """The input box and unsafe polytope of one DNF conjunct."""
    source = file_frame.scope.source
    lower, upper, rows = combine(conjunct, n_inputs, source)
    for side, values in (("lower", lower), ("upper", upper)):
        missing = np.flatnonzero(np.isinf(values))
        if missing.size:
            i = int(missing[0])
            op = ">=" if side == "lower" else "<="
            raise source.error(int(file_frame.input_offsets[i]), f"input X_{i} has no {side} "
                               f"bound; expected an assert such as ({op} X_{i} <number>)")
    if not rows:
        # No output constraint: every output is unsafe.  Stored as the always-true
        # row 0 . y <= 0 so that every polytope has at least one row.
        return Box(lower, upper), HalfSpaces(np.zeros((1, n_outputs)), np.zeros(1))
    return Box(lower, upper), HalfSpaces(*rows_to_matrix(rows, n_outputs))


def _group(pairs: list[tuple[Box, HalfSpaces]], stem: str) -> list[Property]:
    """Same box -> one unsafe union; then same unsafe union -> one box union."""
    # dicts as insertion-ordered sets: first appearance fixes the order, hashing
    # keeps this linear in the number of conjuncts.
    by_box: dict[Box, dict[HalfSpaces, None]] = {}
    for box, poly in pairs:
        by_box.setdefault(box, {})[poly] = None
    by_unsafe: dict[frozenset[HalfSpaces], tuple[list[Box], tuple[HalfSpaces, ...]]] = {}
    for box, polys in by_box.items():
        entry = by_unsafe.setdefault(frozenset(polys), ([], tuple(polys)))
        entry[0].append(box)
    groups = list(by_unsafe.values())
    names = [stem] if len(groups) == 1 else [f"{stem}[{k}]" for k in range(len(groups))]
    return [Property(tuple(boxes), unsafe, name) for (boxes, unsafe), name in zip(groups, names, strict=True)]
