"""Issue 9 edge cases: undecodable bytes, deep nesting, dimensions, big inputs, odd numbers.

Every malformed file raises SpecError naming file, line and column on one line;
every accepted oddity is checked to mean what the module docstrings say.
"""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.errors import PropertyDimensionError, SpecError
from verirepair.properties import check_dimensions
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.properties.sexpr import tokenize
from verirepair.properties.vnnlib import parse_vnnlib, parse_vnnlib_bytes, parse_vnnlib_string
from verirepair.properties.vnnlib_write import write_vnnlib

HEADER = b"(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"   # lines 1-2
GOOD_BOX = b"(assert (>= X_0 0))\n(assert (<= X_0 1))\n"           # lines 3-4
OUTPUT = b"(assert (<= Y_0 1))\n"


def error_of(data: bytes | str) -> SpecError:
    with pytest.raises(SpecError) as info:
        if isinstance(data, bytes):
            parse_vnnlib_bytes(data, "bad.vnnlib")
        else:
            parse_vnnlib_string(data, "bad.vnnlib")
    err = info.value
    assert "\n" not in str(err) and "\r" not in str(err), "messages are one line"
    assert err.path == "bad.vnnlib"
    return err


# -- bytes that are not UTF-8 ------------------------------------------------------

@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\x80", b"\xed\xb2\x80", b"\xf0\x9f"])
def test_non_utf8_byte_in_a_token_is_an_error_at_its_position(bad: bytes) -> None:
    err = error_of(HEADER + b"(assert (>= X_0 0" + bad + b"))\n" + b"(assert (<= X_0 1))\n"
                   + OUTPUT)
    assert (err.line, err.col) == (3, 18)
    assert f"byte 0x{bad[0]:02x} is not valid UTF-8" in err.message


def test_non_utf8_byte_between_tokens_and_in_a_file(tmp_path) -> None:
    with pytest.raises(SpecError, match=r"line 3, column 1\)") as info:
        parse_vnnlib_bytes(HEADER + b"\xfe" + GOOD_BOX + OUTPUT, "bad.vnnlib")
    assert "0xfe" in info.value.message
    path = tmp_path / "latin1.vnnlib"
    path.write_bytes(HEADER + GOOD_BOX + "(assert (<= Y_0 1)) ; café".encode("latin-1") +
                     b"\n(assert (<= \xe9 1))")
    with pytest.raises(SpecError, match=r"latin1.vnnlib:6:13: byte 0xe9"):
        parse_vnnlib(path)


def test_non_utf8_bytes_in_a_comment_are_skipped_like_the_comment() -> None:
    clean = parse_vnnlib_bytes(HEADER + GOOD_BOX + OUTPUT, "p.vnnlib")
    commented = HEADER + b"; \xff\xfe latin-1: caf\xe9 \xc3\n" + GOOD_BOX + b";\x80\n" + OUTPUT
    assert parse_vnnlib_bytes(commented, "p.vnnlib") == clean
    # Lines are still counted correctly after the comment.
    with pytest.raises(SpecError, match="line 8, column 13"):
        parse_vnnlib_bytes(commented + b"(assert (<= Z 1))", "p.vnnlib")


def test_byte_order_mark_and_utf8_in_comments_are_fine() -> None:
    clean = parse_vnnlib_bytes(HEADER + GOOD_BOX + OUTPUT, "p.vnnlib")
    assert parse_vnnlib_bytes(b"\xef\xbb\xbf" + HEADER + "; ε-ball ✓\n".encode() + GOOD_BOX
                              + OUTPUT, "p.vnnlib") == clean
    with pytest.raises(SpecError, match="line 1, column 1") as info:
        parse_vnnlib_bytes(b"\xef\xbb\xbfX_0", "p.vnnlib")
    assert "expected a command" in info.value.message


def test_tokenize_reports_undecodable_characters() -> None:
    with pytest.raises(SpecError, match="line 2, column 3"):
        tokenize("a\n b\udcff c")
    assert [t.text for t in tokenize("a ; \udcff\nb")] == ["a", "b"]


# -- nesting ----------------------------------------------------------------------

DEPTH = 100_000


@pytest.mark.parametrize("op", ["and", "or"])
def test_depth_100000_of_and_or_parses(op: str) -> None:
    formula = f"(assert {f'({op} ' * DEPTH}(<= Y_0 1){')' * DEPTH})\n"
    (prop,) = parse_vnnlib_string(HEADER.decode() + GOOD_BOX.decode() + formula)
    assert prop.unsafe == (HalfSpaces([[1.0]], [1.0]),)


def test_depth_100000_of_terms_parses() -> None:
    term = "(- " * DEPTH + "Y_0" + ")" * DEPTH  # an even number of negations: Y_0
    (prop,) = parse_vnnlib_string(HEADER.decode() + GOOD_BOX.decode() + f"(assert (<= {term} 2))")
    assert prop.unsafe == (HalfSpaces([[1.0]], [2.0]),)


def test_depth_100000_unclosed_points_at_the_innermost_open_parenthesis() -> None:
    err = error_of(HEADER + GOOD_BOX + b"(assert " + b"(and " * DEPTH + b"(<= Y_0 1)")
    assert (err.line, err.col) == (5, 9 + 5 * (DEPTH - 1))
    assert "unclosed '('" in err.message


def test_depth_100000_of_closing_parentheses() -> None:
    err = error_of(HEADER + GOOD_BOX + b"\n\n" + b")" * DEPTH)
    assert (err.line, err.col) == (7, 1)
    assert "unexpected ')'" in err.message


def test_depth_100000_of_a_wrong_operator_is_reported_at_the_top() -> None:
    err = error_of(HEADER + GOOD_BOX + b"(assert " + b"(foo " * DEPTH + b")" * DEPTH + b")")
    assert (err.line, err.col) == (5, 10)
    assert "unknown operator 'foo'" in err.message


# -- dimensions against the network -------------------------------------------------

def acas_like() -> list[Property]:
    box = Box(np.zeros(5), np.ones(5))
    return [Property((box,), (HalfSpaces(np.eye(5)[:1], [0.0]),), "prop_1")]


def test_dimension_mismatch_names_both_counts() -> None:
    with pytest.raises(PropertyDimensionError) as info:
        check_dimensions(acas_like(), 784, 10, "prop_1.vnnlib", network="mnist.onnx")
    text = str(info.value)
    assert "\n" not in text
    assert "prop_1.vnnlib" in text and "mnist.onnx" in text and "'prop_1'" in text
    assert "5 inputs (X_0..X_4) but the network has 784 inputs" in text
    assert "5 outputs (Y_0..Y_4) but the network has 10 outputs" in text
    err = info.value
    assert (err.property_inputs, err.network_inputs, err.property_outputs,
            err.network_outputs) == (5, 784, 5, 10)


def test_dimension_mismatch_of_outputs_only() -> None:
    with pytest.raises(PropertyDimensionError, match=r"has 5 outputs .* network has 4 outputs"
                                                      r"; the property") as info:
        check_dimensions(acas_like(), 5, 4, "p.vnnlib")
    assert "inputs" not in str(info.value).split("has", 1)[1].split(";")[0]


def test_matching_dimensions_pass() -> None:
    check_dimensions(acas_like(), 5, 5, "p.vnnlib")
    check_dimensions([], 5, 5, "p.vnnlib")


# -- many inputs ----------------------------------------------------------------------

def linf_ball_text(n: int, centres: list[np.ndarray], eps: list[float]) -> str:
    """``n`` inputs, one disjunct box per centre, 10 outputs, MNIST-style output clause."""
    lines = [f"(declare-const X_{i} Real)" for i in range(n)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(10)]
    boxes = []
    for c, e in zip(centres, eps, strict=True):
        atoms = [f"(>= X_{i} {float(c[i] - e)!r}) (<= X_{i} {float(c[i] + e)!r})"
                 for i in range(n)]
        boxes.append("(and " + " ".join(atoms) + ")")
    lines.append(f"(assert (or {' '.join(boxes)}))" if len(boxes) > 1 else
                 f"(assert {boxes[0]})")
    lines.append("(assert (or " + " ".join(f"(>= Y_{j} Y_0)" for j in range(1, 10)) + "))")
    return "\n".join(lines)


def test_784_input_linf_ball_samples_are_finite_and_inside() -> None:
    rng = np.random.default_rng(0)
    centre = rng.uniform(0.1, 0.9, 784)
    (prop,) = parse_vnnlib_string(linf_ball_text(784, [centre], [0.01]), "mnist_0.vnnlib")
    assert prop.n_inputs == 784 and len(prop.unsafe) == 9
    x = prop.sample_inputs(np.random.default_rng(1), 500)
    assert x.shape == (500, 784) and np.isfinite(x).all()
    assert prop.in_region(x).all()


def test_784_input_disjunct_boxes_are_sampled_in_proportion_to_volume() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 0.4, 784), rng.uniform(0.6, 0.9, 784)
    # Equal widths: half and half (the old product of widths was 0.02**784 = 0 -> 0/0).
    (prop,) = parse_vnnlib_string(linf_ball_text(784, [a, b], [0.01, 0.01]), "two.vnnlib")
    assert len(prop.input_boxes) == 2
    assert np.allclose(prop.box_weights(), [0.5, 0.5])
    x = prop.sample_inputs(np.random.default_rng(2), 4000)
    in_a = prop.input_boxes[0].contains(x)
    assert np.isfinite(x).all() and prop.in_region(x).all()
    assert 0.45 < in_a.mean() < 0.55
    # Twice the radius in 784 dimensions: 2**784 times the volume, all samples there.
    (prop,) = parse_vnnlib_string(linf_ball_text(784, [a, b], [0.01, 0.02]), "two.vnnlib")
    assert prop.box_weights()[1] == 1.0 and np.isfinite(prop.box_weights()).all()


def test_box_weights_in_log_space_and_degenerate_widths() -> None:
    base_lo, base_hi = np.zeros(784), np.full(784, 0.02)
    wide_hi = base_hi.copy()
    wide_hi[0] = 0.06  # three times as wide in one dimension: 1 : 3
    prop = Property((Box(base_lo, base_hi), Box(base_lo + 1, wide_hi + 1)),
                    (HalfSpaces([[1.0]], [0.0]),))
    assert np.allclose(prop.box_weights(), [0.25, 0.75])
    counts = prop.input_boxes[1].contains(prop.sample_inputs(np.random.default_rng(3), 8000))
    assert 0.72 < counts.mean() < 0.78
    # A pixel fixed in both boxes is left out of both volumes (not clamped to 1e-12).
    fixed_hi = base_hi.copy()
    fixed_hi[5] = 0.0
    prop = Property((Box(base_lo, fixed_hi), Box(base_lo + 1, fixed_hi + 1)),
                    (HalfSpaces([[1.0]], [0.0]),))
    assert np.allclose(prop.box_weights(), [0.5, 0.5])
    # A box spanning fewer dimensions has measure zero in the union.
    prop = Property((Box(base_lo, fixed_hi), Box(base_lo + 1, base_hi + 1)),
                    (HalfSpaces([[1.0]], [0.0]),))
    assert prop.box_weights().tolist() == [0.0, 1.0]
    # Only points: equal weights, and each sample is the point itself.
    points = Property((Box([0.0, 1.0], [0.0, 1.0]), Box([2.0, 2.0], [2.0, 2.0])),
                      (HalfSpaces([[1.0]], [0.0]),))
    x = points.sample_inputs(np.random.default_rng(4), 100)
    assert np.allclose(points.box_weights(), [0.5, 0.5]) and points.in_region(x).all()


def test_box_wider_than_the_float_range_samples_finite_points() -> None:
    box = Box([-1e308], [1e308])
    assert box.log_measure()[0] == 1 and np.isfinite(box.log_measure()[1])
    x = box.sample(np.random.default_rng(0), 1000)
    assert np.isfinite(x).all() and box.contains(x).all() and x.min() < -1e307 < 1e307 < x.max()


def test_784_input_property_roundtrips_through_the_writer() -> None:
    rng = np.random.default_rng(5)
    lo = rng.uniform(0, 0.5, 784)
    prop = Property((Box(lo, lo + 0.01), Box(lo + 0.5, lo + 0.52)),
                    tuple(HalfSpaces(np.eye(10)[[0]] - np.eye(10)[[j]], [0.0])
                          for j in range(1, 10)), "p")
    assert parse_vnnlib_string(write_vnnlib(prop), "p.vnnlib") == [prop]


def test_disjunct_boxes_share_the_common_part_instead_of_copying_it() -> None:
    """``(and BIG (or d_1 .. d_K))``: each conjunct holds the same sealed BIG segment."""
    from verirepair.properties import vnnlib
    from verirepair.properties.formula import Scope
    from verirepair.properties.sexpr import Source, check_structure, read

    n = 784
    text = linf_ball_text(n, [np.full(n, 0.5)], [0.1]).replace("(assert (and", "(assert (and (or "
                                                               + "(<= Y_1 0) " * 50 + ")", 1)
    source = Source(text, "s.vnnlib")
    check_structure(source)
    frame = vnnlib._FileFrame(Scope(source))
    read(source, frame)
    dnf = frame.conjoiner.result()
    assert len(dnf) == 50 * 9
    big = {id(part) for conjunct in dnf for part in conjunct if len(part.lower[0]) == n}
    assert len(big) == 1


# -- declarations, bounds and numbers ---------------------------------------------

def test_gap_in_input_indices_is_an_error_at_the_declaration_after_the_gap() -> None:
    text = (b"(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(declare-const X_2 Real)\n"
            + GOOD_BOX + b"(assert (>= X_2 0)) (assert (<= X_2 1))\n" + OUTPUT)
    err = error_of(text)
    assert (err.line, err.col) == (3, 16)
    assert "X_2 declared but X_1 is not" in err.message


def test_declared_but_unconstrained_input_is_an_error_at_its_declaration() -> None:
    text = (b"(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(declare-const X_1 Real)\n"
            + GOOD_BOX + OUTPUT)
    err = error_of(text)
    assert (err.line, err.col) == (3, 16)
    assert "input X_1 has no lower bound" in err.message


@pytest.mark.parametrize("box, side", [(b"(assert (>= X_0 0))\n", "upper"),
                                       (b"(assert (<= X_0 0))\n", "lower")])
def test_input_with_one_bound_only_is_unbounded(box: bytes, side: str) -> None:
    with pytest.raises(SpecError, match=f"X_0 has no {side} bound.*line 1, column 16"):
        parse_vnnlib_bytes(HEADER + box + OUTPUT)


def test_empty_box_message_has_plain_numbers() -> None:
    err = error_of(HEADER + b"(assert (>= X_0 0.5))\n" + OUTPUT + b"(assert (<= X_0 0.25))\n")
    assert (err.line, err.col) == (5, 9)
    assert "X_0 range over [0.5, 0.25]" in err.message and "np." not in err.message
    assert "line 3, column 9" in err.message


def test_empty_box_inside_one_disjunct_is_found_when_the_disjuncts_are_combined() -> None:
    text = (HEADER + b"(assert (<= X_0 1))\n"
            b"(assert (or (and (>= X_0 0) (<= Y_0 1))\n"
            b"            (and (>= X_0 2) (<= Y_0 2))))\n")
    err = error_of(text)
    assert (err.line, err.col) == (5, 18)
    assert "X_0 range over [2.0, 1.0]" in err.message and "line 3, column 9" in err.message


def test_zero_width_input_is_accepted() -> None:
    (prop,) = parse_vnnlib_bytes(HEADER + b"(assert (= X_0 0.5))\n" + OUTPUT)
    assert prop.input_boxes == (Box([0.5], [0.5]),)


@pytest.mark.parametrize("formula, message, col", [
    (b"(<= Y_0 nan)", "unknown variable 'nan'", 17),
    (b"(<= Y_0 inf)", "unknown variable 'inf'", 17),
    (b"(<= Y_0 -1e999)", "out of the float64 range", 17),
    (b"(<= Y_0 (* 1e300 1e300))", "arithmetic overflow", 17),
    (b"(<= (- (* 1e308 Y_0) (* -1e308 Y_0)) 0)", "arithmetic overflow", 13),
    (b"(<= Y_0 (- 1e308 -1e308))", "arithmetic overflow", 17),
    (b"(<= (* 1e308 Y_0) (* -1e308 Y_0))", "arithmetic overflow", 9),
    (b"(<= (/ Y_0 1e-320) 1)", "arithmetic overflow", 13),
    (b"(<= (* 1e-300 X_0) 1e300)", "bound this comparison puts on X_0 is beyond", 9),
    (b"(<= Y_0 (/ 1 0))", "division by zero", 17),
])
def test_nan_and_infinite_numbers_are_errors(formula: bytes, message: str, col: int) -> None:
    err = error_of(HEADER + GOOD_BOX + b"(assert " + formula + b")")
    assert (err.line, err.col) == (5, col)
    assert message in err.message


@pytest.mark.parametrize("name", ["X_\u00b2", "X_\u0663", "X_" + "9" * 5000, "X_01", "X_-1"])
def test_odd_variable_names_are_spec_errors(name: str) -> None:
    err = error_of(f"(declare-const {name} Real)")
    assert (err.line, err.col) == (1, 16)
    assert "unsupported variable name" in err.message and len(err.message) < 300


def test_unicode_digits_are_not_numbers() -> None:
    err = error_of(HEADER.decode() + GOOD_BOX.decode() + "(assert (<= Y_0 \u00b2))")
    assert "unknown variable '\u00b2'" in err.message


def test_long_words_are_shortened_in_messages() -> None:
    err = error_of(HEADER + GOOD_BOX + b"(assert (<= Y_0 " + b"Z" * 100_000 + b"))")
    assert "(100000 characters)" in err.message and len(str(err)) < 300


def test_many_declared_variables_are_summarised_in_messages() -> None:
    text = linf_ball_text(784, [np.full(784, 0.5)], [0.1]) + "\n(assert (<= Y_10 0))"
    err = error_of(text)
    assert "784 inputs and 10 outputs (X_0, X_1, X_2, X_3, ..., Y_9)" in err.message


def test_path_with_a_line_break_is_escaped_in_messages() -> None:
    with pytest.raises(SpecError) as info:
        parse_vnnlib_string("X_0", "dir\nname.vnnlib")
    assert "\n" not in str(info.value) and "dir\\nname.vnnlib" in str(info.value)


def test_ignored_commands_may_hold_anything_balanced() -> None:
    clean = parse_vnnlib_bytes(HEADER + GOOD_BOX + OUTPUT, "p.vnnlib")
    odd = b"(set-info :source (a (b 1.2.3) ()) |x|)\n(set-option :x)" + HEADER + GOOD_BOX + OUTPUT
    assert parse_vnnlib_bytes(odd, "p.vnnlib") == clean
