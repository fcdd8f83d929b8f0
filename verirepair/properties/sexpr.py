"""Decoding, tokenizer and iterative s-expression reader for VNN-LIB (SMT-LIB 2 subset) text.

Pipeline position: the first stage of :func:`verirepair.properties.vnnlib.parse_vnnlib`.
This module knows nothing about the meaning of a file.  It decodes the bytes,
checks the parentheses, and feeds the tokens of each parenthesised list to a
:class:`Frame` chosen by the enclosing frame.  Each frame reduces its list to a
value as soon as the list closes, so no tree of the whole file is ever built:
memory is a small multiple of the file size, and time is linear in it.

Lexical grammar (a subset of SMT-LIB 2 that covers VNN-COMP files):

* the file is UTF-8; a byte that is not valid UTF-8 is an error
  (:class:`SpecError` at its line and column) except inside a comment, which
  carries no meaning and is skipped whatever it contains.  A leading byte
  order mark is skipped;
* ``;`` starts a comment that runs to the end of the line;
* ``(`` and ``)`` are tokens on their own;
* any other run of characters up to whitespace, a parenthesis or ``;`` is a
  *word*; a word is a NUMBER when it has the form
  ``[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`` with ASCII
  digits (``-1.5e-3``, ``.5``, ``+2``, ``1E5``), otherwise a SYMBOL.  A word that
  starts like a number (a digit, or a sign or dot followed by a digit or
  dot) but does not finish as one, e.g. ``1.2.3`` or ``1e``, is an error
  rather than a symbol.

Positions: lines are counted by ``\\n`` and columns in characters, both from 1.
They are computed from character offsets only when a message needs them.
Nesting depth is limited only by memory: nothing here recurses.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from verirepair.errors import SpecError

#: One token: a parenthesis, a comment (skipped) or a word.
_TOKEN = re.compile(r"[()]|;[^\n]*|[^\s();]+")
#: What the structure check looks at: parentheses, comments (skipped whole, so
#: that their contents are ignored) and undecodable bytes outside comments.
_STRUCTURE = re.compile("[()]|;[^\\n]*|[\udc80-\udcff]")
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMERIC_START = re.compile(r"[+-]?\.?[0-9]")
_NUMBER_FIRST_CHARS = frozenset("0123456789+-.")


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


class Source:
    """VNN-LIB text and its file name; turns character offsets into positions.

    Parameters
    ----------
    text : str
        The decoded file.
    path : str
        Used in error messages only.
    """

    __slots__ = ("text", "path")

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path

    def position(self, offset: int) -> tuple[int, int]:
        """1-based line and column of the character at ``offset`` (O(offset), for errors)."""
        text = self.text
        offset = max(0, min(offset, len(text)))
        line = text.count("\n", 0, offset) + 1
        return line, offset - (text.rfind("\n", 0, offset) + 1) + 1

    def error(self, offset: int, message: str) -> SpecError:
        """A :class:`SpecError` located at ``offset``."""
        line, col = self.position(offset)
        return SpecError(self.path, line, col, message)

    def where(self, offset: int) -> str:
        """``"line L, column C"`` of ``offset``, for messages that cite a second place."""
        line, col = self.position(offset)
        return f"line {line}, column {col}"


def decode(data: bytes) -> str:
    """UTF-8 text of ``data``; undecodable bytes become lone surrogates U+DC80..U+DCFF.

    The surrogates are found and reported by :func:`check_structure` (outside
    comments) with their position, instead of failing here without one.
    A leading byte order mark is dropped.
    """
    return data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")


def _undecodable_message(char: str) -> str:
    """The message for the lone surrogate that :func:`decode` made of an invalid byte."""
    return (f"byte 0x{ord(char) - 0xDC00:02x} is not valid UTF-8; VNN-LIB files must be UTF-8 "
            "text (invalid bytes are tolerated only inside ; comments)")


def check_structure(source: Source) -> None:
    """Check that parentheses match and that every byte outside comments was decodable.

    Run before any meaning is given to the tokens, so that a missing ``)`` is
    reported as such rather than as whatever the next form looks like inside
    the unclosed one.  Linear time; memory is one int per open parenthesis.

    Raises
    ------
    SpecError
        At the first unmatched ``)`` or undecodable byte, else at the innermost
        ``(`` still open at the end of the file.
    """
    opens: list[int] = []
    for match in _STRUCTURE.finditer(source.text):
        char = match[0][0]
        if char == "(":
            opens.append(match.start())
        elif char == ")":
            if not opens:
                raise source.error(match.start(), "unexpected ')' with no matching '('")
            opens.pop()
        elif char != ";":
            raise source.error(match.start(), _undecodable_message(char))
    if opens:
        raise source.error(opens[-1], "unclosed '(': expected a matching ')' before the end "
                           "of the file")


def quote(word: str, limit: int = 60) -> str:
    """``repr(word)`` for a message, cut to about ``limit`` characters (one line, escaped)."""
    if len(word) <= limit:
        return repr(word)
    return repr(word[:limit]) + f"... ({len(word)} characters)"


def number_prefix_length(word: str) -> int:
    """Length of the longest numeric prefix of ``word`` (0 when there is none)."""
    match = _NUMBER.match(word)
    return match.end() if match else 0


def is_number(word: str, source: Source, offset: int) -> bool:
    """Whether ``word`` (at ``offset``) is a NUMBER; a malformed number raises.

    Raises
    ------
    SpecError
        A word that starts like a number but is not one, such as ``1.2.3``.
    """
    if word[0] not in _NUMBER_FIRST_CHARS or not _NUMERIC_START.match(word):
        return False
    if not _NUMBER.fullmatch(word):
        raise source.error(offset, f"malformed number {quote(word)}; expected a decimal number "
                           "such as 12, -0.5, .5, +2 or 1.5e-3")
    return True


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
        On a malformed number or an undecodable byte outside a comment.
    """
    source = Source(text, path)
    tokens: list[Token] = []
    line, line_start, last = 1, 0, 0
    for word, offset in _words(source):
        newlines = text.count("\n", last, offset)
        if newlines:
            line += newlines
            line_start = text.rfind("\n", last, offset) + 1
        last = offset
        col = offset - line_start + 1
        if word == "(" or word == ")":
            kind = TokenKind.LPAREN if word == "(" else TokenKind.RPAREN
        else:
            kind = TokenKind.NUMBER if is_number(word, source, offset) else TokenKind.SYMBOL
        tokens.append(Token(kind, word, line, col))
    return tokens


def _words(source: Source, check_bytes: bool = True) -> Iterator[tuple[str, int]]:
    """Parentheses and words of ``source`` with their offsets (comments skipped).

    ``check_bytes=False`` skips the search for undecodable bytes, for text
    that :func:`check_structure` has already checked.
    """
    for match in _TOKEN.finditer(source.text):
        word = match[0]
        if word[0] == ";":
            continue
        if check_bytes:
            bad = _UNDECODABLE.search(word)
            if bad is not None:
                raise source.error(match.start() + bad.start(), _undecodable_message(bad[0]))
        yield word, match.start()


class Frame(Protocol):
    """The reducer of one parenthesised list, chosen by its enclosing frame.

    :func:`read` calls :meth:`child` when a list opens inside this one,
    :meth:`atom` for each word, :meth:`value` with the value of each closed
    child list, and :meth:`close` at this list's ``)``.  Any method may raise
    :class:`SpecError`; :meth:`close` returns this list's value.
    """

    def child(self, head: str | None, open_offset: int, head_offset: int) -> Frame:
        """The frame of a list that opens at ``open_offset`` inside this one.

        ``head`` is its first word, or ``None`` when the list is empty or
        starts with another list; ``head_offset`` is where that first token is.
        """

    def atom(self, word: str, offset: int) -> None:
        """A word of this list (after its head)."""

    def value(self, value: object, offset: int) -> None:
        """The value of a child list that opened at ``offset``."""

    def close(self, offset: int) -> object:
        """This list's value, at its ``)`` (or, for the root, the end of the text)."""


def read(source: Source, root: Frame) -> object:
    """Feed the lists of ``source`` to frames, starting with ``root``; iterative.

    Parameters
    ----------
    source : Source
        Text whose parentheses :func:`check_structure` has already checked.
    root : Frame
        Receives the top-level words and lists; its :meth:`Frame.close` value
        (called at the end of the text) is returned.

    Returns
    -------
    object
        ``root.close(len(text))``.

    Raises
    ------
    SpecError
        From the tokenizer (malformed numbers) or from any frame.
    """
    frames: list[Frame] = [root]
    opens: list[int] = [0]  # offset of each open list's '('
    frame = root
    pending = -1  # offset of a '(' whose first token has not been seen yet
    # The loop is inlined (no helper generator): it runs once per token.
    for match in _TOKEN.finditer(source.text):
        word = match[0]
        if word[0] == ";":
            continue
        offset = match.start()
        if pending >= 0:
            head = None if word == "(" or word == ")" else word
            frame = frame.child(head, pending, offset)
            frames.append(frame)
            opens.append(pending)
            pending = -1
            if head is not None:
                continue
        if word == "(":
            pending = offset
        elif word == ")":
            if len(frames) == 1:
                raise source.error(offset, "unexpected ')' with no matching '('")
            closed = frames.pop()
            opened = opens.pop()
            frame = frames[-1]
            frame.value(closed.close(offset), opened)
        else:
            frame.atom(word, offset)
    if pending >= 0 or len(frames) > 1:
        raise source.error(pending if pending >= 0 else opens[-1], "unclosed '(': expected a "
                           "matching ')' before the end of the file")
    return root.close(len(source.text))
