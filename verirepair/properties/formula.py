"""Linear terms and Boolean formulas of VNN-LIB asserts, reduced to DNF as they are read.

Pipeline position: the middle stage of :func:`verirepair.properties.vnnlib.parse_vnnlib`.
:mod:`.sexpr` feeds the tokens of each list of an ``assert`` to one of the
frames below, and each frame reduces its list when it closes: a term frame to a
linear term, a comparison to its atoms, ``and``/``or`` to a disjunctive normal
form whose conjuncts are :mod:`.conjunct` values.  Nothing recurses, and each
list is reduced in time linear in its size.

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

Every number, coefficient, constant and bound must be a finite float64: a
literal beyond the range or arithmetic that overflows (``(* 1e300 1e300)``) is
an error at the term, never a silent ``inf`` or ``nan``.

Each comparison must be, after moving everything to one side, either a bound
on one input (``c * X_i + d <= 0``) or a constraint over outputs only (or
constant): anything else cannot be part of a box-and-polytope property and is
refused where it is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

from verirepair.properties.conjunct import Atoms, Conjunct, Conjunction, Row
from verirepair.properties.sexpr import Frame, Source, is_number, quote

#: A VNN-LIB file whose asserts expand to more conjuncts than this is refused,
#: rather than silently exhausting memory: each conjunct becomes one
#: (box, polytope) pair that a verifier has to handle.
MAX_DNF_CONJUNCTS = 10_000

COMPARISONS = ("<=", ">=", "<", ">", "=")
CONNECTIVES = ("and", "or")
ARITHMETIC = ("+", "-", "*", "/")

#: The value of a formula: the atoms of one comparison, one conjunction, or a
#: DNF (a list of conjuncts; ``[]`` is false).
Formula = Atoms | Conjunction | list[Conjunct]


class Scope:
    """What the frames of one file share.

    Parameters
    ----------
    source : Source
    max_conjuncts : int
        The DNF size cap (see :data:`MAX_DNF_CONJUNCTS`).

    Attributes
    ----------
    variables : dict of str to int
        Declared names; the code is ``i`` for input ``X_i`` and ``-1 - j`` (``~j``)
        for output ``Y_j``.
    """

    __slots__ = ("source", "variables", "max_conjuncts")

    def __init__(self, source: Source, max_conjuncts: int = MAX_DNF_CONJUNCTS) -> None:
        self.source = source
        self.variables: dict[str, int] = {}
        self.max_conjuncts = max_conjuncts

    def describe_variables(self) -> str:
        """The declared variables for a message, shortened when there are many."""
        names = list(self.variables)
        if len(names) <= 12:
            return ", ".join(names) or "none"
        n_in = sum(1 for code in self.variables.values() if code >= 0)
        return (f"{n_in} inputs and {len(names) - n_in} outputs ({', '.join(names[:4])}, ..., "
                f"{names[-1]})")


# -- linear terms ----------------------------------------------------------------

class Term:
    """``sign * sum(coeffs[v] * v) + const``; ``sign`` is +1 or -1 (negation is O(1)).

    Every coefficient and the constant are finite; the dict may be reused by
    the operation that consumes the term.
    """

    __slots__ = ("coeffs", "const", "sign")

    def __init__(self, coeffs: dict[int, float], const: float, sign: float = 1.0) -> None:
        self.coeffs = coeffs
        self.const = const
        self.sign = sign

    def actual(self) -> dict[int, float]:
        """A new dict of the coefficients with the sign applied."""
        if self.sign == 1.0:
            return dict(self.coeffs)
        return {k: -c for k, c in self.coeffs.items()}


def _accumulate(total: Term, other: Term, sign: float, source: Source, offset: int) -> Term:
    """``total + sign * other``, walking the smaller term into the larger one's dict.

    Each coefficient is computed as ``a + s * b`` exactly as a left-to-right
    sum would (IEEE addition is commutative), only the storage is shared.
    """
    const = total.const + sign * other.const
    if len(total.coeffs) >= len(other.coeffs):
        big, big_sign, small, small_sign = total.coeffs, total.sign, other.coeffs, sign * other.sign
    else:
        big, big_sign, small, small_sign = other.coeffs, sign * other.sign, total.coeffs, total.sign
    for key, c in small.items():
        old = big.get(key)
        value = small_sign * c if old is None else big_sign * old + small_sign * c
        if not math.isfinite(value):
            raise _overflow(source, offset)
        big[key] = value * big_sign
    if not math.isfinite(const):
        raise _overflow(source, offset)
    return Term(big, const, big_sign)


def _overflow(source: Source, offset: int) -> Exception:
    return source.error(offset, "arithmetic overflow: this term has a coefficient or constant "
                        "beyond the float64 range")


def _scaled(term: Term, factor: float, divide: bool, source: Source, offset: int) -> Term:
    """``term * factor`` (or ``/ factor``), checked to stay finite."""
    sign = term.sign
    if divide:
        coeffs = {k: (sign * c) / factor for k, c in term.coeffs.items()}
        const = term.const / factor
    else:
        coeffs = {k: (sign * c) * factor for k, c in term.coeffs.items()}
        const = term.const * factor
    if not (math.isfinite(const) and all(map(math.isfinite, coeffs.values()))):
        raise _overflow(source, offset)
    return Term(coeffs, const)


def leaf(word: str, offset: int, scope: Scope) -> Term:
    """A number or a declared variable.

    Raises
    ------
    SpecError
        A malformed or out-of-range number, or an unknown variable.
    """
    source = scope.source
    if is_number(word, source, offset):
        value = float(word)
        if not math.isfinite(value):
            raise source.error(offset, f"number {quote(word)} is out of the float64 range")
        return Term({}, value)
    code = scope.variables.get(word)
    if code is None:
        raise source.error(offset, f"unknown variable {quote(word)}; declared variables: "
                           f"{scope.describe_variables()}")
    return Term({code: 1.0}, 0.0)


class _TermsFrame:
    """A list whose arguments are terms (arithmetic or comparison); subclasses say what it closes to."""

    __slots__ = ("scope", "op", "offset", "terms")

    def __init__(self, scope: Scope, op: str, offset: int) -> None:
        self.scope, self.op, self.offset = scope, op, offset
        self.terms: list[Term] = []

    def child(self, head: str | None, open_offset: int, head_offset: int) -> Frame:
        return term_frame(self.scope, head, open_offset, head_offset)

    def atom(self, word: str, offset: int) -> None:
        self.terms.append(leaf(word, offset, self.scope))

    def value(self, value: object, offset: int) -> None:
        assert isinstance(value, Term)
        self.terms.append(value)


class _TermFrame(_TermsFrame):
    """``(op t1 t2 ...)`` for an arithmetic ``op``."""

    __slots__ = ()

    def close(self, offset: int) -> Term:
        op, terms, source = self.op, self.terms, self.scope.source
        if not terms:
            raise source.error(self.offset, f"operator {op!r} needs at least one argument")
        if op == "+" or op == "-":
            if op == "-" and len(terms) == 1:
                (only,) = terms
                return Term(only.coeffs, -only.const, -only.sign)
            total = terms[0]
            sign = 1.0 if op == "+" else -1.0
            for term in terms[1:]:
                total = _accumulate(total, term, sign, source, self.offset)
            return total
        if op == "*":
            return self._product(terms)
        return self._quotient(terms)

    def _product(self, terms: list[Term]) -> Term:
        """``(* t1 t2 ...)`` with at most one non-constant factor."""
        source = self.scope.source
        variable = [t for t in terms if t.coeffs]
        if len(variable) > 1:
            raise source.error(self.offset, "non-linear term: a product of two terms that both "
                               "contain variables; only a constant times a linear term is "
                               "supported")
        factor = 1.0
        for t in terms:
            if not t.coeffs:
                factor *= t.const
        if not math.isfinite(factor):
            raise _overflow(source, self.offset)
        if variable:
            return _scaled(variable[0], factor, False, source, self.offset)
        return Term({}, factor)

    def _quotient(self, terms: list[Term]) -> Term:
        """``(/ t c1 c2 ...)``: a linear term divided by non-zero constants."""
        source = self.scope.source
        if len(terms) < 2:
            raise source.error(self.offset, "operator '/' needs at least two arguments")
        result = terms[0]
        for t in terms[1:]:
            if t.coeffs:
                raise source.error(self.offset, "non-linear term: division by a term that "
                                   "contains variables; only division by a constant is "
                                   "supported")
            if t.const == 0.0:
                raise source.error(self.offset, "division by zero")
            # Divide rather than multiply by 1/c: (/ x 3) must equal x / 3 exactly.
            result = _scaled(result, t.const, True, source, self.offset)
        return result


def _check_head(source: Source, head: str | None, open_offset: int, head_offset: int,
                allowed: tuple[str, ...], what: str) -> str:
    """``head`` if it is one of ``allowed``; otherwise the error for this list."""
    if head is None:
        if source.text.startswith(")", head_offset):
            raise source.error(open_offset, f"empty list '()'; expected {what}")
        shown = "'(...)'"
    else:
        if head in allowed:
            return head
        is_number(head, source, head_offset)  # a malformed number is reported as such
        shown = quote(head)
    raise source.error(head_offset, f"unknown operator {shown}; expected {what}: one of "
                       f"{' '.join(allowed)}")


def term_frame(scope: Scope, head: str | None, open_offset: int, head_offset: int) -> Frame:
    """The frame of a list read as a linear term."""
    op = _check_head(scope.source, head, open_offset, head_offset, ARITHMETIC,
                     "an arithmetic operator")
    return _TermFrame(scope, op, open_offset)


# -- comparisons -------------------------------------------------------------------

def _atom(left: Term, right: Term, scope: Scope, offset: int, rank: int,
          atoms: Atoms) -> None:
    """Append the atom ``left - right <= 0`` to ``atoms``."""
    source = scope.source
    if right.coeffs:
        coeffs = left.actual()
        for key, c in right.coeffs.items():
            coeffs[key] = coeffs.get(key, 0.0) - right.sign * c
    elif left.sign == 1.0:
        coeffs = left.coeffs  # only read below
    else:
        coeffs = left.actual()
    const = left.const - right.const + 0.0
    # ``+ 0.0`` turns a negative zero into a positive one, so that equal
    # numbers also have equal bytes (Box and HalfSpaces hash by bytes).
    items = [(k, c + 0.0) for k, c in coeffs.items() if c != 0.0]
    if not (math.isfinite(const) and all(math.isfinite(c) for _, c in items)):
        raise _overflow(source, offset)
    if len(items) == 1:
        n_inputs = 1 if items[0][0] >= 0 else 0
    else:
        n_inputs = sum(1 for k, _ in items if k >= 0)
    if n_inputs and n_inputs < len(items):
        raise source.error(offset, "unsupported constraint mixing inputs (X_i) and outputs "
                           "(Y_j); expected input bounds or output constraints")
    if n_inputs > 1:
        raise source.error(offset, "unsupported non-box input constraint over several inputs; "
                           "expected bounds on one X_i")
    if n_inputs == 1:
        ((i, c),) = items
        bound = -const / c + 0.0
        if not math.isfinite(bound):
            raise source.error(offset, f"the bound this comparison puts on X_{i} is beyond the "
                               "float64 range")
        atoms[0].append((i, c > 0, bound, offset))
    else:
        # Output atoms, and constant ones such as (<= 1 0): a constant c <= 0
        # is kept as the row 0 . y <= -c, always true or never, exactly.
        row: Row = (offset, rank, tuple((~k, c) for k, c in items), 0.0 - const)
        atoms[1].append(row)


class _ComparisonFrame(_TermsFrame):
    """``(op t1 t2 ...)`` for a comparison ``op``; its value is :data:`Atoms`."""

    __slots__ = ()

    def close(self, offset: int) -> Atoms:
        op, terms = self.op, self.terms
        if len(terms) < 2:
            raise self.scope.source.error(self.offset, f"comparison {op!r} needs at least two "
                                          f"arguments, got {len(terms)}")
        atoms: Atoms = ([], [])
        rank = 0
        for left, right in pairwise(terms):
            if op in ("<=", "<", "="):
                _atom(left, right, self.scope, self.offset, rank, atoms)
                rank += 1
            if op in (">=", ">", "="):
                _atom(right, left, self.scope, self.offset, rank, atoms)
                rank += 1
        return atoms


# -- Boolean connectives -------------------------------------------------------------

def _seal(value: Formula, source: Source) -> list[Conjunct]:
    """A formula value as a DNF."""
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        conjunction = Conjunction()
        conjunction.add_atoms(value)
        value = conjunction
    return [(value.seal(source),)]


class Conjoiner:
    """The conjunction of formulas given one at a time, kept as ``common and dnf``.

    Single conjuncts are merged into ``common`` in place; DNFs with several
    conjuncts are multiplied out into ``dnf``, within the size cap.
    """

    __slots__ = ("scope", "common", "dnf")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.common = Conjunction()
        self.dnf: list[Conjunct] | None = None

    def add(self, value: Formula, offset: int) -> None:
        """Conjoin ``value``, the formula of a list at ``offset`` (where a cap error points)."""
        source = self.scope.source
        if isinstance(value, tuple):
            self.common.add_atoms(value)
        elif isinstance(value, Conjunction):
            self.common = self.common.absorb(value)
        elif len(value) == 1 and self.dnf is None:
            self.dnf = value
        else:
            left = self.dnf if self.dnf is not None else [()]
            size = len(left) * len(value)
            cap = self.scope.max_conjuncts
            if size > cap:
                raise source.error(offset, f"formula too large: its disjunctive normal form has "
                                   f"{size} conjuncts, more than the limit of {cap}; split the "
                                   "property into several files")
            self.dnf = [a + b for a in left for b in value]

    def result(self) -> Conjunction | list[Conjunct]:
        """The conjunction: a :class:`Conjunction`, or a DNF when a disjunction was added."""
        if self.dnf is None:
            return self.common
        if not self.common.size():
            return self.dnf
        common = self.common.seal(self.scope.source)
        return [(common,) + conjunct for conjunct in self.dnf]


class _AndFrame:
    __slots__ = ("scope", "conjoiner")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.conjoiner = Conjoiner(scope)

    def child(self, head: str | None, open_offset: int, head_offset: int) -> Frame:
        return formula_frame(self.scope, head, open_offset, head_offset)

    def atom(self, word: str, offset: int) -> None:
        raise not_a_formula(self.scope.source, word, offset)

    def value(self, value: object, offset: int) -> None:
        # ``value`` is what a child from formula_frame() closed with, a Formula; the
        # Frame protocol (one reader for every frame kind) can only type it object.
        self.conjoiner.add(value, offset)  # type: ignore[arg-type]

    def close(self, offset: int) -> Formula:
        return self.conjoiner.result()


class _OrFrame:
    __slots__ = ("scope", "offset", "first", "dnf")

    def __init__(self, scope: Scope, offset: int) -> None:
        self.scope, self.offset = scope, offset
        self.first: Formula | None = None  # kept as is while it is the only disjunct
        self.dnf: list[Conjunct] = []

    def child(self, head: str | None, open_offset: int, head_offset: int) -> Frame:
        return formula_frame(self.scope, head, open_offset, head_offset)

    def atom(self, word: str, offset: int) -> None:
        raise not_a_formula(self.scope.source, word, offset)

    def value(self, value: object, offset: int) -> None:
        # ``value`` is a child formula frame's Formula (see _AndFrame.value)
        source = self.scope.source
        if self.first is None and not self.dnf:
            self.first = value  # type: ignore[assignment]
            return
        if self.first is not None:
            self.dnf = _seal(self.first, source)
            self.first = None
        self.dnf.extend(_seal(value, source))  # type: ignore[arg-type]
        cap = self.scope.max_conjuncts
        if len(self.dnf) > cap:
            raise source.error(self.offset, f"formula too large: more than {cap} disjuncts in "
                               "its disjunctive normal form")

    def close(self, offset: int) -> Formula:
        return self.first if self.first is not None else self.dnf


def not_a_formula(source: Source, word: str, offset: int) -> Exception:
    """The error for a word where a formula was expected."""
    return source.error(offset, f"expected a formula such as (<= X_0 1.0), got {quote(word)}")


_FORMULA_FRAMES: dict[str, Callable[[Scope, str, int], Frame]] = {
    "and": lambda scope, op, offset: _AndFrame(scope),
    "or": lambda scope, op, offset: _OrFrame(scope, offset),
    **{op: _ComparisonFrame for op in COMPARISONS},
}


def formula_frame(scope: Scope, head: str | None, open_offset: int, head_offset: int) -> Frame:
    """The frame of a list read as a formula (a comparison or an and/or)."""
    op = _check_head(scope.source, head, open_offset, head_offset, COMPARISONS + CONNECTIVES,
                     "a comparison or and/or")
    return _FORMULA_FRAMES[op](scope, op, open_offset)
