"""Linear terms and Boolean formulas of VNN-LIB asserts, in disjunctive normal form.

Pipeline position: the middle stage of :func:`verirepair.spec.vnnlib.parse_vnnlib`.
It reads the s-expressions of one ``assert`` (from :mod:`.sexpr`) and returns
its disjunctive normal form: a list of conjuncts, each a tuple of linear atoms
``sum_v c_v * v + const <= 0`` over the declared variables.

Supported operators:

* comparisons ``<=``, ``>=``, ``<``, ``>``, ``=`` (chains such as
  ``(<= a b c)`` mean ``a <= b and b <= c``).  **Strict comparisons are read
  as non-strict**: the closure of the unsafe set is what a sound proof must
  exclude, and the input boxes are closed anyway.  ``=`` is two atoms;
* Boolean ``and`` / ``or``, nested arbitrarily (``(and)`` is true, ``(or)``
  is false);
* linear terms ``+``, ``-`` (unary and n-ary), ``*`` (any number of
  constant factors and at most one non-constant one), ``/`` by a constant,
  numbers and declared variables anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from verirepair.errors import SpecError
from verirepair.spec.sexpr import Atom, SExpr, SList, position

#: A variable is ``("X", i)`` (input i) or ``("Y", j)`` (output j).
VarKey = tuple[str, int]

#: A VNN-LIB file whose asserts expand to more conjuncts than this is refused,
#: rather than silently exhausting memory: each conjunct becomes one
#: (box, polytope) pair that a verifier has to handle.
MAX_DNF_CONJUNCTS = 10_000

COMPARISONS = ("<=", ">=", "<", ">", "=")
CONNECTIVES = ("and", "or")
ARITHMETIC = ("+", "-", "*", "/")


@dataclass(frozen=True, slots=True)
class LinearAtom:
    """The constraint ``sum(c * v for v, c in coeffs) + const <= 0``.

    Parameters
    ----------
    coeffs : tuple of (VarKey, float)
        Non-zero coefficients, in order of first appearance.
    const : float
    line, col : int
        Where the comparison that produced the atom starts.
    """

    coeffs: tuple[tuple[VarKey, float], ...]
    const: float
    line: int
    col: int

    @property
    def kinds(self) -> frozenset[str]:
        """The variable kinds (``"X"``, ``"Y"``) the atom mentions."""
        return frozenset(key[0] for key, _ in self.coeffs)


@dataclass(slots=True)
class _Linear:
    """A linear term under construction: ``sum coeffs[v] * v + const``."""

    coeffs: dict[VarKey, float]
    const: float

    def scaled(self, factor: float) -> _Linear:
        return _Linear({k: c * factor for k, c in self.coeffs.items()}, self.const * factor)

    def add(self, other: _Linear, sign: float = 1.0) -> _Linear:
        coeffs = dict(self.coeffs)
        for key, c in other.coeffs.items():
            coeffs[key] = coeffs.get(key, 0.0) + sign * c
        return _Linear(coeffs, self.const + sign * other.const)


Conjunct = tuple[LinearAtom, ...]
Dnf = list[Conjunct]


class FormulaReader:
    """Turns assert bodies into DNF over a fixed set of declared variables.

    Parameters
    ----------
    variables : Mapping[str, VarKey]
        Declared names, e.g. ``{"X_0": ("X", 0)}``.
    path : str
        For error messages.
    max_conjuncts : int
        The DNF size cap (see :data:`MAX_DNF_CONJUNCTS`).
    """

    def __init__(self, variables: Mapping[str, VarKey], path: str,
                 max_conjuncts: int = MAX_DNF_CONJUNCTS) -> None:
        self.variables = variables
        self.path = path
        self.max_conjuncts = max_conjuncts

    # -- errors ----------------------------------------------------------
    def error(self, expr: SExpr, message: str) -> SpecError:
        """A :class:`SpecError` located at the start of ``expr``."""
        line, col = position(expr)
        return SpecError(self.path, line, col, message)

    # -- Boolean layer ---------------------------------------------------
    def product(self, left: Dnf, right: Dnf, where: SExpr) -> Dnf:
        """DNF of ``left and right``; refuses results above the size cap."""
        size = len(left) * len(right)
        if size > self.max_conjuncts:
            raise self.error(where, f"formula too large: its disjunctive normal form has {size} "
                             f"conjuncts, more than the limit of {self.max_conjuncts}; split "
                             "the property into several files")
        return [a + b for a in left for b in right]

    def formula(self, expr: SExpr) -> Dnf:
        """DNF of a Boolean formula (an ``and``/``or`` tree of comparisons)."""
        if isinstance(expr, Atom):
            raise self.error(expr, f"expected a formula such as (<= X_0 1.0), got {expr.text!r}")
        op = self.head(expr, COMPARISONS + CONNECTIVES, "a comparison or and/or")
        args = expr.items[1:]
        if op == "and":
            result: Dnf = [()]
            for arg in args:
                result = self.product(result, self.formula(arg), arg)
            return result
        if op == "or":
            result = []
            for arg in args:
                result.extend(self.formula(arg))
                if len(result) > self.max_conjuncts:
                    raise self.error(expr, f"formula too large: more than {self.max_conjuncts} "
                                     "disjuncts in its disjunctive normal form")
            return result
        return [self.comparison(op, expr)]

    def head(self, expr: SList, allowed: tuple[str, ...], what: str) -> str:
        """The operator symbol of ``expr``, checked against ``allowed``."""
        if not expr.items:
            raise self.error(expr, f"empty list '()'; expected {what}")
        first = expr.items[0]
        if not isinstance(first, Atom) or first.is_number or first.text not in allowed:
            shown = first.text if isinstance(first, Atom) else "(...)"
            raise self.error(first, f"unknown operator {shown!r}; expected {what}: "
                             f"one of {' '.join(allowed)}")
        return first.text

    # -- comparisons -----------------------------------------------------
    def comparison(self, op: str, expr: SList) -> Conjunct:
        """Atoms of a (possibly chained) comparison, all of the form ``t <= 0``."""
        args = expr.items[1:]
        if len(args) < 2:
            raise self.error(expr, f"comparison {op!r} needs at least two arguments, "
                             f"got {len(args)}")
        terms = [self.term(arg) for arg in args]
        line, col = position(expr)
        atoms: list[LinearAtom] = []
        for left, right in zip(terms, terms[1:]):
            if op in ("<=", "<", "="):
                atoms.append(self.atom(left.add(right, -1.0), line, col))
            if op in (">=", ">", "="):
                atoms.append(self.atom(right.add(left, -1.0), line, col))
        return tuple(atoms)

    @staticmethod
    def atom(term: _Linear, line: int, col: int) -> LinearAtom:
        """Freeze a term into an atom, dropping zero coefficients."""
        # ``+ 0.0`` turns a negative zero into a positive one, so that equal
        # numbers also have equal bytes (Box and HalfSpaces hash by bytes).
        coeffs = tuple((k, c + 0.0) for k, c in term.coeffs.items() if c != 0.0)
        return LinearAtom(coeffs, term.const + 0.0, line, col)

    # -- linear terms ----------------------------------------------------
    def term(self, expr: SExpr) -> _Linear:
        """A linear term: a number, a declared variable or + - * / of terms."""
        if isinstance(expr, Atom):
            return self.leaf(expr)
        op = self.head(expr, ARITHMETIC, "an arithmetic operator")
        args = expr.items[1:]
        if not args:
            raise self.error(expr, f"operator {op!r} needs at least one argument")
        terms = [self.term(arg) for arg in args]
        if op == "+":
            total = _Linear({}, 0.0)
            for t in terms:
                total = total.add(t)
            return total
        if op == "-":
            if len(terms) == 1:
                return terms[0].scaled(-1.0)
            total = terms[0]
            for t in terms[1:]:
                total = total.add(t, -1.0)
            return total
        if op == "*":
            return self.product_term(expr, terms)
        return self.quotient(expr, terms)

    def leaf(self, atom: Atom) -> _Linear:
        """A number or a declared variable."""
        if atom.is_number:
            value = float(atom.text)
            if not math.isfinite(value):
                raise self.error(atom, f"number {atom.text!r} is out of the float64 range")
            return _Linear({}, value)
        key = self.variables.get(atom.text)
        if key is None:
            declared = ", ".join(self.variables) or "none"
            raise self.error(atom, f"unknown variable {atom.text!r}; declared variables: "
                             f"{declared}")
        return _Linear({key: 1.0}, 0.0)

    def product_term(self, expr: SList, terms: list[_Linear]) -> _Linear:
        """``(* t1 t2 ...)`` with at most one non-constant factor."""
        variable_factors = [t for t in terms if t.coeffs]
        if len(variable_factors) > 1:
            raise self.error(expr, "non-linear term: a product of two terms that both contain "
                             "variables; only a constant times a linear term is supported")
        factor = 1.0
        for t in terms:
            if not t.coeffs:
                factor *= t.const
        if variable_factors:
            return variable_factors[0].scaled(factor)
        return _Linear({}, factor)

    def quotient(self, expr: SList, terms: list[_Linear]) -> _Linear:
        """``(/ t c1 c2 ...)``: a linear term divided by non-zero constants."""
        if len(terms) < 2:
            raise self.error(expr, "operator '/' needs at least two arguments")
        result = terms[0]
        for t in terms[1:]:
            if t.coeffs:
                raise self.error(expr, "non-linear term: division by a term that contains "
                                 "variables; only division by a constant is supported")
            if t.const == 0.0:
                raise self.error(expr, "division by zero")
            # Divide rather than multiply by 1/c: (/ x 3) must equal x / 3 exactly.
            result = _Linear({k: c / t.const for k, c in result.coeffs.items()},
                             result.const / t.const)
        return result
