"""Tokenizer and s-expression reader for VNN-LIB (SMT-LIB 2 subset) text.

Pipeline position: the first stage of :func:`verirepair.spec.vnnlib.parse_vnnlib`.
This module knows nothing about the meaning of a file; it only turns text
into nested lists of atoms, each carrying the line and column where it
started, so that later stages can point at the offending token.

Lexical grammar (a subset of SMT-LIB 2 that covers VNN-COMP files):

* ``;`` starts a comment that runs to the end of the line;
* ``(`` and ``)`` are tokens on their own;
* any other run of characters up to whitespace, a parenthesis or ``;`` is a
  *word*; a word is a NUMBER when it has the form
  ``[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?``
  (``-1.5e-3``, ``.5``, ``+2``, ``1E5``), otherwise a SYMBOL.  A word that
  starts like a number (a digit, or a sign or dot followed by a digit or
  dot) but does not finish as one, e.g. ``1.2.3`` or ``1e``, is an error
  rather than a symbol.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from verirepair.errors import SpecError

_DELIMITERS = frozenset("();")


class TokenKind(enum.Enum):
    """The kind of a lexical token."""

    LPAREN = "("
    RPAREN = ")"
    SYMBOL = "symbol"
    NUMBER = "number"


@dataclass(frozen=True, slots=True)
class Token:
    """One token with its 1-based source position.

    Parameters
    ----------
    kind : TokenKind
    text : str
        The token exactly as written.
    line, col : int
        1-based line and column of the token's first character.
    """

    kind: TokenKind
    text: str
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Atom:
    """A leaf of an s-expression: a symbol or a number token."""

    token: Token

    @property
    def is_number(self) -> bool:
        """Whether the atom is a numeric literal."""
        return self.token.kind is TokenKind.NUMBER

    @property
    def text(self) -> str:
        """The atom's source text."""
        return self.token.text


@dataclass(frozen=True, slots=True)
class SList:
    """A parenthesised list of s-expressions; ``open`` is its ``(`` token."""

    items: tuple["Atom | SList", ...]
    open: Token


SExpr = Atom | SList


def position(expr: SExpr) -> tuple[int, int]:
    """Line and column where ``expr`` starts."""
    token = expr.token if isinstance(expr, Atom) else expr.open
    return token.line, token.col


def _scan_digits(word: str, i: int) -> int:
    while i < len(word) and word[i].isdigit():
        i += 1
    return i


def number_prefix_length(word: str) -> int:
    """Length of the longest numeric prefix of ``word`` (0 when there is none)."""
    start = 1 if word[:1] in ("+", "-") else 0
    end = _scan_digits(word, start)
    n_digits = end - start
    if end < len(word) and word[end] == ".":
        frac_end = _scan_digits(word, end + 1)
        n_digits += frac_end - end - 1
        end = frac_end
    if n_digits == 0:
        return 0  # no mantissa digits at all: "+", ".", "-."
    if end < len(word) and word[end] in "eE":
        j = end + 1
        if j < len(word) and word[j] in "+-":
            j += 1
        exp_end = _scan_digits(word, j)
        if exp_end > j:
            end = exp_end
    return end


def _looks_numeric(word: str) -> bool:
    """Whether ``word`` starts the way a number does (so it must be one)."""
    body = word[1:] if word[:1] in ("+", "-") else word
    if not body:
        return False
    if body[0].isdigit():
        return True
    return body[0] == "." and len(body) > 1 and body[1].isdigit()


def _classify(word: str, line: int, col: int, path: str) -> Token:
    if _looks_numeric(word):
        if number_prefix_length(word) != len(word):
            raise SpecError(path, line, col, f"malformed number {word!r}; expected a decimal "
                            "number such as 12, -0.5, .5, +2 or 1.5e-3")
        return Token(TokenKind.NUMBER, word, line, col)
    return Token(TokenKind.SYMBOL, word, line, col)


def tokenize(text: str, path: str = "<string>") -> list[Token]:
    """Split VNN-LIB text into tokens, dropping whitespace and ``;`` comments.

    Parameters
    ----------
    text : str
        The whole file.
    path : str
        Used in error messages only.

    Returns
    -------
    list of Token
        In source order, each with its 1-based line and column.

    Raises
    ------
    SpecError
        On a malformed number.
    """
    tokens: list[Token] = []
    line, line_start, i, n = 1, 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line, line_start, i = line + 1, i + 1, i + 1
        elif ch.isspace():
            i += 1
        elif ch == ";":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "()":
            kind = TokenKind.LPAREN if ch == "(" else TokenKind.RPAREN
            tokens.append(Token(kind, ch, line, i - line_start + 1))
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _DELIMITERS:
                i += 1
            tokens.append(_classify(text[start:i], line, start - line_start + 1, path))
    return tokens


def read_sexprs(tokens: list[Token], path: str = "<string>") -> list[SExpr]:
    """Assemble tokens into top-level s-expressions.

    Parameters
    ----------
    tokens : list of Token
        As produced by :func:`tokenize`.
    path : str
        Used in error messages only.

    Returns
    -------
    list of SExpr
        The top-level forms in source order.

    Raises
    ------
    SpecError
        At an unmatched ``)``, or at the ``(`` that is never closed.
    """
    stack: list[tuple[Token, list[SExpr]]] = []
    top: list[SExpr] = []
    for token in tokens:
        if token.kind is TokenKind.LPAREN:
            stack.append((token, []))
        elif token.kind is TokenKind.RPAREN:
            if not stack:
                raise SpecError(path, token.line, token.col,
                                "unexpected ')' with no matching '('")
            open_token, items = stack.pop()
            node = SList(tuple(items), open_token)
            (stack[-1][1] if stack else top).append(node)
        else:
            (stack[-1][1] if stack else top).append(Atom(token))
    if stack:
        open_token = stack[-1][0]
        raise SpecError(path, open_token.line, open_token.col,
                        "unclosed '(': expected a matching ')' before the end of the file")
    return top


def parse_sexprs(text: str, path: str = "<string>") -> list[SExpr]:
    """Tokenize and read ``text``; see :func:`tokenize` and :func:`read_sexprs`."""
    return read_sexprs(tokenize(text, path), path)
