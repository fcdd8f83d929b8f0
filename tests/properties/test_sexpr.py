"""Tokenizer, structure check and iterative reader: positions, numbers, comments, parentheses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verirepair.errors import SpecError
from verirepair.properties.sexpr import Source, TokenKind, check_structure, read, tokenize


class Recorder:
    """A frame that rebuilds the list structure: nested Python lists of (word, offset)."""

    def __init__(self, head=None, offset=0):
        self.items = [] if head is None else [(head, offset)]

    def child(self, head, open_offset, head_offset):
        return Recorder(head, head_offset)

    def atom(self, word, offset):
        self.items.append((word, offset))

    def value(self, value, offset):
        self.items.append(value)

    def close(self, offset):
        return self.items


def parse_sexprs(text: str, path: str = "<string>"):
    source = Source(text, path)
    check_structure(source)
    return read(source, Recorder())


@pytest.mark.parametrize("word, value", [
    ("-1.5e-3", -1.5e-3), (".5", 0.5), ("+2", 2.0), ("1E5", 1e5), ("1.", 1.0),
    ("-.25", -0.25), ("0.0", 0.0), ("3.991125645861615", 3.991125645861615),
    ("1e+16", 1e16), ("-7E-2", -0.07),
])
def test_numbers_in_any_decimal_form(word: str, value: float) -> None:
    (token,) = tokenize(word)
    assert token.kind is TokenKind.NUMBER
    assert float(token.text) == value


@pytest.mark.parametrize("word", ["X_0", "Y_12", "<=", ">=", "-", "+", "*", "declare-const",
                                  "and", "+.e3"])
def test_symbols(word: str) -> None:
    (token,) = tokenize(word)
    assert token.kind is TokenKind.SYMBOL
    assert token.text == word


@pytest.mark.parametrize("word", ["1.2.3", "1e", "1e+", "2x", "-3.5.1", "+.5q", "1e5e5"])
def test_malformed_numbers_are_errors_with_position(word: str) -> None:
    with pytest.raises(SpecError, match=r"line 2, column 11") as info:
        tokenize(f"(assert\n  (<= X_0 {word}))", "f.vnnlib")
    assert "malformed number" in info.value.message
    assert (info.value.line, info.value.col) == (2, 11)


def test_positions_and_comments() -> None:
    text = "; header (not a token\n(assert  (<= X_0 -1.5e-3)) ; trailing ( comment\n  Y_1"
    tokens = tokenize(text)
    assert [(t.text, t.line, t.col) for t in tokens] == [
        ("(", 2, 1), ("assert", 2, 2), ("(", 2, 10), ("<=", 2, 11), ("X_0", 2, 14),
        ("-1.5e-3", 2, 18), (")", 2, 25), (")", 2, 26), ("Y_1", 3, 3),
    ]


def test_comment_runs_to_end_of_line_only() -> None:
    tokens = tokenize("a;b c\nd")
    assert [t.text for t in tokens] == ["a", "d"]


def test_reader_feeds_nested_lists_to_frames() -> None:
    (form,) = parse_sexprs("(assert (or (and (<= Y_0 1)) (and)))")
    head, body = form
    assert head == ("assert", 1)
    assert len(body) == 3 and body[0] == ("or", 9)
    assert body[2] == [("and", 30)]
    assert body[1] == [("and", 13), [("<=", 18), ("Y_0", 21), ("1", 25)]]


def test_reader_is_iterative_at_depth_100000() -> None:
    depth = 100_000
    (form,) = parse_sexprs("(a " * depth + "x" + ")" * depth)
    for _ in range(depth - 1):
        form = form[1]
    assert form == [("a", 3 * (depth - 1) + 1), ("x", 3 * depth)]


def test_empty_list_and_list_headed_by_a_list_reach_the_frame_with_no_head() -> None:
    assert parse_sexprs("() ((a) b)") == [[], [[("a", 5)], ("b", 8)]]


def test_missing_close_points_at_unclosed_open() -> None:
    text = "(declare-const X_0 Real)\n\n(assert (<= X_0 1.0)\n(assert (>= X_0 0.0))\n"
    with pytest.raises(SpecError, match="line 3") as info:
        parse_sexprs(text, "p.vnnlib")
    assert "unclosed '('" in str(info.value)
    assert info.value.path == "p.vnnlib"
    assert (info.value.line, info.value.col) == (3, 1)


def test_extra_close_points_at_it() -> None:
    text = "(declare-const X_0 Real)\n(assert (<= X_0 1.0))\n(assert (>= X_0 0.0)))\n"
    with pytest.raises(SpecError, match="line 3, column 22") as info:
        parse_sexprs(text)
    assert "unexpected ')'" in str(info.value)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_repr_is_one_number_token(value: float) -> None:
    (token,) = tokenize(repr(value))
    assert token.kind is TokenKind.NUMBER
    assert float(token.text) == value
