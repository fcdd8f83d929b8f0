"""VNN-LIB files to :class:`Property` objects, and back.

Pipeline position: the entry point for properties (``file.vnnlib --parse_vnnlib-->
list[Property]``).  This is the project's only VNN-LIB parser: text is split by
the tokenizer of :mod:`.sexpr`, asserts are put in disjunctive normal form by
:mod:`.formula`, and this module gives the result its meaning.

Semantics (the VNN-COMP dialect):

* ``(declare-const X_i Real)`` declares input ``i`` and ``(declare-const Y_j Real)``
  output ``j``; the indices must be ``0..n-1`` without gaps, and a variable
  must be declared before it is used.
* The asserts are conjoined and expanded to DNF (at most
  :data:`~verirepair.spec.formula.MAX_DNF_CONJUNCTS` conjuncts).  In each
  conjunct, atoms over one input variable bound that input, atoms over
  outputs only become rows of ``A y <= b``; every input needs a lower and an
  upper bound.  Atoms over several inputs (a non-box input region) and atoms
  mixing inputs and outputs are rejected.  Strict comparisons are read as
  non-strict (the closure), the sound direction for a proof.
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
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verirepair.atomic import write_text_atomic
from verirepair.errors import SpecError
from verirepair.spec.formula import Conjunct, Dnf, FormulaReader, LinearAtom, VarKey
from verirepair.spec.property import Box, HalfSpaces, Property
from verirepair.spec.sexpr import Atom, SExpr, SList, parse_sexprs, position

#: Top-level commands that carry no meaning for a property and are skipped.
IGNORED_COMMANDS = ("check-sat", "get-model", "set-logic", "set-info", "set-option", "exit")


@dataclass(frozen=True, slots=True)
class _Declaration:
    key: VarKey
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class _Problem:
    """What the file says, before grouping: variables and the DNF of its asserts."""

    inputs: tuple[_Declaration, ...]
    n_outputs: int
    dnf: Dnf


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
        Malformed or unsupported content, with line and column.
    """
    path = Path(path)
    return parse_vnnlib_string(path.read_text(encoding="utf-8"), str(path))


def parse_vnnlib_string(text: str, path: str = "<string>") -> list[Property]:
    """Read VNN-LIB text; ``path`` is used for the names and error messages.

    See :func:`parse_vnnlib` for the return value and errors.
    """
    problem = _read_problem(text, path)
    if not problem.dnf:
        raise SpecError(path, 1, 1, "the asserts are unsatisfiable (an empty disjunction "
                        "'(or)'), so the file describes no property")
    pairs = [_conjunct_to_pair(conjunct, problem, path) for conjunct in problem.dnf]
    return _group(pairs, Path(path).stem)


# -- reading -----------------------------------------------------------------

def _command(form: SExpr, path: str) -> tuple[str, SList]:
    if isinstance(form, Atom) or not form.items or not isinstance(form.items[0], Atom):
        line, col = position(form)
        raise SpecError(path, line, col, "expected a command such as (declare-const X_0 Real) "
                        "or (assert ...)")
    return form.items[0].text, form


def _declare(form: SList, path: str) -> _Declaration:
    line, col = position(form)
    items = form.items
    if len(items) != 3 or not all(isinstance(item, Atom) for item in items):
        raise SpecError(path, line, col, "expected (declare-const <name> Real)")
    name, sort = items[1].text, items[2].text  # type: ignore[union-attr]
    if sort != "Real":
        sline, scol = position(items[2])
        raise SpecError(path, sline, scol, f"unsupported sort {sort!r}; expected Real")
    prefix, _, index = name.partition("_")
    if prefix not in ("X", "Y") or not index.isdigit() or (len(index) > 1 and index[0] == "0"):
        nline, ncol = position(items[1])
        raise SpecError(path, nline, ncol, f"unsupported variable name {name!r}; expected X_<i> "
                        "for inputs or Y_<j> for outputs")
    nline, ncol = position(items[1])
    return _Declaration((prefix, int(index)), nline, ncol)


def _check_indices(decls: list[_Declaration], kind: str, path: str) -> None:
    """Indices of ``kind`` must be exactly 0..n-1."""
    mine = sorted((d for d in decls if d.key[0] == kind), key=lambda d: d.key[1])
    if not mine:
        raise SpecError(path, 1, 1, f"no {kind}_<i> variables declared; expected "
                        f"(declare-const {kind}_0 Real) and so on")
    for expected, decl in enumerate(mine):
        if decl.key[1] != expected:
            raise SpecError(path, decl.line, decl.col,
                            f"{kind}_{decl.key[1]} declared but {kind}_{expected} is not; "
                            f"{kind} indices must run 0, 1, 2, ... without gaps")


def _read_problem(text: str, path: str) -> _Problem:
    variables: dict[str, VarKey] = {}
    decls: list[_Declaration] = []
    reader = FormulaReader(variables, path)
    dnf: Dnf = [()]
    for form in parse_sexprs(text, path):
        name, command = _command(form, path)
        if name == "declare-const":
            decl = _declare(command, path)
            var_name = f"{decl.key[0]}_{decl.key[1]}"
            if var_name in variables:
                raise SpecError(path, decl.line, decl.col, f"{var_name} is declared twice")
            variables[var_name] = decl.key
            decls.append(decl)
        elif name == "assert":
            if len(command.items) != 2:
                line, col = position(command)
                raise SpecError(path, line, col, "expected (assert <formula>) with exactly one "
                                "formula")
            dnf = reader.product(dnf, reader.formula(command.items[1]), command)
        elif name not in IGNORED_COMMANDS:
            line, col = position(command.items[0])
            raise SpecError(path, line, col, f"unknown command {name!r}; expected declare-const "
                            f"or assert (ignored: {', '.join(IGNORED_COMMANDS)})")
    _check_indices(decls, "X", path)
    _check_indices(decls, "Y", path)
    inputs = tuple(sorted((d for d in decls if d.key[0] == "X"), key=lambda d: d.key[1]))
    n_outputs = sum(1 for d in decls if d.key[0] == "Y")
    return _Problem(inputs, n_outputs, dnf)


# -- meaning of one conjunct -------------------------------------------------

def _tighten(atom: LinearAtom, lower: np.ndarray, upper: np.ndarray,
             sources: dict[tuple[int, str], LinearAtom], path: str) -> None:
    """Apply a one-input atom ``c * x_i + const <= 0`` to the box bounds."""
    (key, coeff), = atom.coeffs
    i = key[1]
    bound = -atom.const / coeff + 0.0
    if coeff > 0 and bound < upper[i]:
        upper[i] = bound
        sources[(i, "upper")] = atom
    elif coeff < 0 and bound > lower[i]:
        lower[i] = bound
        sources[(i, "lower")] = atom
    if lower[i] > upper[i]:
        other = sources[(i, "upper")] if coeff < 0 else sources[(i, "lower")]
        raise SpecError(path, atom.line, atom.col,
                        f"empty input box: this bound makes X_{i} range over "
                        f"[{lower[i]!r}, {upper[i]!r}] (lower > upper), together with the "
                        f"bound at line {other.line}, column {other.col}")


def _conjunct_to_pair(conjunct: Conjunct, problem: _Problem,
                      path: str) -> tuple[Box, HalfSpaces]:
    """The input box and unsafe polytope of one DNF conjunct."""
    n_in = len(problem.inputs)
    lower, upper = np.full(n_in, -np.inf), np.full(n_in, np.inf)
    sources: dict[tuple[int, str], LinearAtom] = {}
    rows: list[np.ndarray] = []
    rhs: list[float] = []
    for atom in conjunct:
        kinds = atom.kinds
        if kinds == {"X", "Y"}:
            raise SpecError(path, atom.line, atom.col, "unsupported constraint mixing inputs "
                            "(X_i) and outputs (Y_j); expected input bounds or output "
                            "constraints")
        elif kinds == {"X"}:
            if len(atom.coeffs) > 1:
                raise SpecError(path, atom.line, atom.col, "unsupported non-box input "
                                "constraint over several inputs; expected bounds on one X_i")
            _tighten(atom, lower, upper, sources, path)
        else:
            # Output atoms, and constant ones such as (<= 1 0): a constant c <= 0
            # is kept as the row 0 . y <= -c, always true or never, exactly.
            row = np.zeros(problem.n_outputs)
            for (_, j), c in atom.coeffs:
                row[j] = c
            rows.append(row)
            rhs.append(0.0 - atom.const)
    for decl in problem.inputs:
        i = decl.key[1]
        for side, value in (("lower", lower[i]), ("upper", upper[i])):
            if np.isinf(value):
                op = ">=" if side == "lower" else "<="
                raise SpecError(path, decl.line, decl.col, f"input X_{i} has no {side} bound; "
                                f"expected an assert such as ({op} X_{i} <number>)")
    if not rows:
        # No output constraint: every output is unsafe.  Stored as the always-true
        # row 0 . y <= 0 so that every polytope has at least one row.
        rows, rhs = [np.zeros(problem.n_outputs)], [0.0]
    return Box(lower, upper), HalfSpaces(np.array(rows), np.array(rhs))


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
    return [Property(tuple(boxes), unsafe, name) for (boxes, unsafe), name in zip(groups, names)]


# -- writing -----------------------------------------------------------------

def _num(value: float) -> str:
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"cannot write the non-finite number {value!r} to VNN-LIB")
    return repr(value + 0.0)


def _sum(terms: list[str]) -> str:
    return terms[0] if len(terms) == 1 else f"(+ {' '.join(terms)})"


def _row_atom(a: np.ndarray, b: float) -> str:
    """``a @ y <= b`` as a comparison that parses back to exactly ``(a, b)``."""
    def term(j: int, c: float) -> str:
        return f"Y_{j}" if c == 1.0 else f"(* {_num(c)} Y_{j})"

    pos = [term(j, c) for j, c in enumerate(a) if c > 0]
    neg = [term(j, -c) for j, c in enumerate(a) if c < 0]
    if pos:
        right = neg + ([_num(b)] if b != 0.0 or not neg else [])
        return f"(<= {_sum(pos)} {_sum(right)})"
    if neg:
        return f"(>= {_sum(neg)} {_num(-b)})"
    return f"(<= 0.0 {_num(b)})"


def _box_atoms(box: Box) -> list[str]:
    atoms = []
    for i, (lo, hi) in enumerate(zip(box.lower, box.upper)):
        atoms += [f"(>= X_{i} {_num(lo)})", f"(<= X_{i} {_num(hi)})"]
    return atoms


def _poly_atoms(poly: HalfSpaces) -> list[str]:
    return [_row_atom(a, b) for a, b in zip(poly.A, poly.b)]


def _disjunction(conjuncts: list[list[str]]) -> str:
    lines = "\n".join(f"    (and {' '.join(atoms)})" for atoms in conjuncts)
    return f"(assert (or\n{lines}\n))"


def write_vnnlib(props: Property | Sequence[Property], comment: str | None = None) -> str:
    """VNN-LIB text for one property or a union of properties.

    Numbers are written with ``repr(float)``, so parsing the text gives back
    exactly the same arrays (for a single property, and for several whose
    boxes are pairwise distinct; otherwise a semantically equal grouping).

    Parameters
    ----------
    props : Property or sequence of Property
        All with the same input and output dimensions.
    comment : str, optional
        Written as ``;`` comment lines at the top.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        No property, mismatched dimensions, or a non-finite number.
    """
    props = [props] if isinstance(props, Property) else list(props)
    if not props:
        raise ValueError("write_vnnlib needs at least one property")
    n_in, n_out = props[0].n_inputs, props[0].n_outputs
    if any(p.n_inputs != n_in or p.n_outputs != n_out for p in props):
        raise ValueError("all properties written to one file need the same input and output "
                         "dimensions")
    out: list[str] = []
    if comment:
        out += [f"; {line}".rstrip() for line in comment.splitlines()] + [""]
    out += [f"(declare-const X_{i} Real)" for i in range(n_in)] + [""]
    out += [f"(declare-const Y_{j} Real)" for j in range(n_out)] + [""]
    if len(props) > 1:
        out.append(_disjunction([_box_atoms(box) + _poly_atoms(poly) for p in props
                                 for box in p.input_boxes for poly in p.unsafe]))
        return "\n".join(out) + "\n"
    (prop,) = props
    if len(prop.input_boxes) == 1:
        out += [f"(assert {atom})" for atom in _box_atoms(prop.input_boxes[0])]
    else:
        out.append(_disjunction([_box_atoms(box) for box in prop.input_boxes]))
    out.append("")
    if len(prop.unsafe) == 1:
        out += [f"(assert {atom})" for atom in _poly_atoms(prop.unsafe[0])]
    else:
        out.append(_disjunction([_poly_atoms(poly) for poly in prop.unsafe]))
    return "\n".join(out) + "\n"


def save_vnnlib(props: Property | Sequence[Property], path: str | os.PathLike[str],
                comment: str | None = None) -> Path:
    """Write :func:`write_vnnlib` output to ``path`` atomically; returns the path."""
    return write_text_atomic(Path(path), write_vnnlib(props, comment))
