"""A tiny infix grammar for readable property files: ``"COC >= 1500"``, ``"-pi + 0.005"``.

Pipeline position: used by :mod:`verirepair.tasks.acasxu.physical` to read the
``properties/*.toml`` files, which state ACAS Xu properties in physical units.

Grammar (whitespace is free)::

    constraint := expr (cmp expr)+          cmp := <= | >= | < | > | =
    expr       := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    unary      := ("+" | "-") unary | NUMBER | NAME | "(" expr ")"

Names are either constants (e.g. ``pi``) or variables (e.g. ``COC``); the
result must be linear in the variables (a product or quotient of two
variable terms is an error).  Strict comparisons are read as non-strict,
as in :mod:`.formula`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from verirepair.properties.sexpr import number_prefix_length

#: Named constants available in every expression.
CONSTANTS: Mapping[str, float] = {"pi": math.pi}

_DIGITS = frozenset("0123456789")  # ASCII only: float() refuses most other digits
_OPERATORS = ("<=", ">=", "<", ">", "=", "+", "-", "*", "/", "(", ")")


class InfixError(ValueError):
    """A malformed expression; ``offset`` is the 0-based character offset."""

    def __init__(self, text: str, offset: int, message: str) -> None:
        self.text = text
        self.offset = offset
        self.message = message
        super().__init__(f"{message} in {text!r} at character {offset + 1}")


@dataclass(frozen=True, slots=True)
class Linear:
    """``sum(c * name for name, c in coeffs) + const``; coefficients are non-zero."""

    coeffs: tuple[tuple[str, float], ...]
    const: float

    def as_dict(self) -> dict[str, float]:
        """Coefficients as a dict."""
        return dict(self.coeffs)


def _lin(coeffs: Mapping[str, float], const: float) -> Linear:
    return Linear(tuple((k, c) for k, c in coeffs.items() if c != 0.0), const)


def _combine(a: Linear, b: Linear, sign: float) -> Linear:
    coeffs = a.as_dict()
    for k, c in b.coeffs:
        coeffs[k] = coeffs.get(k, 0.0) + sign * c
    return _lin(coeffs, a.const + sign * b.const)


def _scale(a: Linear, factor: float, divide: bool = False) -> Linear:
    if divide:
        return _lin({k: c / factor for k, c in a.coeffs}, a.const / factor)
    return _lin({k: c * factor for k, c in a.coeffs}, a.const * factor)


def _tokens(text: str) -> list[tuple[str, int]]:
    """Split into (token, offset) pairs: numbers, names, operators."""
    out: list[tuple[str, int]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _DIGITS or (ch == "." and text[i + 1:i + 2] in _DIGITS):
            end = i + number_prefix_length(text[i:])
            if end < len(text) and (text[end].isalnum() or text[end] in "._"):
                raise InfixError(text, i, "malformed number")
            out.append((text[i:end], i))
            i = end
        elif ch.isalpha() or ch == "_":
            end = i
            while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                end += 1
            out.append((text[i:end], i))
            i = end
        else:
            op = next((op for op in _OPERATORS if text.startswith(op, i)), None)
            if op is None:
                raise InfixError(text, i, f"unexpected character {ch!r}")
            out.append((op, i))
            i += len(op)
    return out


class _Parser:
    def __init__(self, text: str, variables: Sequence[str]) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0
        self.variables = tuple(variables)

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def offset(self) -> int:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else len(self.text)

    def take(self) -> str:
        token = self.tokens[self.pos][0]
        self.pos += 1
        return token

    def expr(self) -> Linear:
        result = self.term()
        while self.peek() in ("+", "-"):
            sign = 1.0 if self.take() == "+" else -1.0
            result = _combine(result, self.term(), sign)
        return result

    def term(self) -> Linear:
        result = self.unary()
        while self.peek() in ("*", "/"):
            op, at = self.take(), self.offset()
            right = self.unary()
            if op == "*" and result.coeffs and right.coeffs:
                raise InfixError(self.text, at, "non-linear product of two variable terms")
            if op == "/" and (right.coeffs or right.const == 0.0):
                raise InfixError(self.text, at, "division by a variable term or by zero")
            if op == "*" and not result.coeffs:
                result = _scale(right, result.const)
            else:
                result = _scale(result, right.const, divide=op == "/")
        return result

    def unary(self) -> Linear:
        token, at = self.peek(), self.offset()
        if token is None:
            raise InfixError(self.text, at, "expected a number, a name or '(' but the text ended")
        self.pos += 1
        if token in ("+", "-"):
            inner = self.unary()
            return inner if token == "+" else _scale(inner, -1.0)
        if token == "(":
            inner = self.expr()
            if self.peek() != ")":
                raise InfixError(self.text, self.offset(), "expected ')'")
            self.pos += 1
            return inner
        if token[0] in _DIGITS or token[0] == ".":
            return Linear((), float(token))
        if token in CONSTANTS:
            return Linear((), CONSTANTS[token])
        if token in self.variables:
            return Linear(((token, 1.0),), 0.0)
        known = ", ".join(list(self.variables) + list(CONSTANTS))
        raise InfixError(self.text, at, f"unknown name {token!r}; expected one of {known}")

    def finish(self) -> None:
        if self.peek() is not None:
            raise InfixError(self.text, self.offset(), f"unexpected {self.peek()!r}")


def parse_value(text: str) -> float:
    """A constant expression such as ``"-pi"`` or ``"-3.141592 + 0.005"``."""
    parser = _Parser(text, ())
    value = parser.expr()
    parser.finish()
    return value.const


def parse_constraint(text: str, variables: Sequence[str]) -> tuple[Linear, ...]:
    """A (chained) comparison, as terms ``t`` each meaning ``t <= 0``.

    Parameters
    ----------
    text : str
        E.g. ``"COC >= 1500"`` or ``"SR <= COC"``.
    variables : sequence of str
        The allowed variable names.

    Returns
    -------
    tuple of Linear
        One per comparison of the chain (two for ``=``).

    Raises
    ------
    InfixError
        Malformed or non-linear text, or no comparison at all.
    """
    parser = _Parser(text, variables)
    terms = [parser.expr()]
    ops: list[str] = []
    while parser.peek() in ("<=", ">=", "<", ">", "="):
        ops.append(parser.take())
        terms.append(parser.expr())
    parser.finish()
    if not ops:
        raise InfixError(text, 0, "expected a comparison such as 'COC >= 1500'")
    atoms: list[Linear] = []
    for op, (left, right) in zip(ops, itertools.pairwise(terms), strict=True):  # len(terms) == len(ops) + 1
        if op in ("<=", "<", "="):
            atoms.append(_combine(left, right, -1.0))
        if op in (">=", ">", "="):
            atoms.append(_combine(right, left, -1.0))
    return tuple(atoms)
