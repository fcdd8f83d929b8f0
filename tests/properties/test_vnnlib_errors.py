"""Malformed VNN-LIB input raises SpecError pointing at the offending line and column."""

from __future__ import annotations

import pytest

from verirepair.errors import SpecError
from verirepair.properties.formula import MAX_DNF_CONJUNCTS
from verirepair.properties.property import HalfSpaces
from verirepair.properties.vnnlib import parse_vnnlib, parse_vnnlib_string

HEADER = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"   # lines 1-2
GOOD_BOX = "(assert (>= X_0 0))\n(assert (<= X_0 1))\n"           # lines 3-4


def error_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_vnnlib_string(text, "bad.vnnlib")
    return info.value


def test_missing_close_parenthesis() -> None:
    err = error_of(HEADER + "(assert (>= X_0 0)\n(assert (<= X_0 1))\n(assert (<= Y_0 1))\n")
    assert (err.path, err.line, err.col) == ("bad.vnnlib", 3, 1)
    assert "unclosed '('" in err.message and "expected a matching ')'" in err.message


def test_extra_close_parenthesis() -> None:
    with pytest.raises(SpecError, match="line 3, column 20"):
        parse_vnnlib_string(HEADER + "(assert (>= X_0 0)))\n" + "(assert (<= Y_0 1))")


def test_unknown_variable() -> None:
    with pytest.raises(SpecError, match=r"unknown variable 'X_1'.*declared variables: X_0, "
                                        r"Y_0.*line 5, column 17"):
        parse_vnnlib_string(HEADER + GOOD_BOX + "(assert (<= Y_0 X_1))")


def test_use_before_declaration_is_unknown_variable() -> None:
    with pytest.raises(SpecError, match=r"unknown variable 'Y_0'.*line 1"):
        parse_vnnlib_string("(assert (<= Y_0 1))\n" + HEADER + GOOD_BOX)


def test_non_linear_product() -> None:
    with pytest.raises(SpecError, match=r"non-linear term.*line 5, column 13"):
        parse_vnnlib_string(HEADER + GOOD_BOX + "(assert (<= (* Y_0 (+ Y_0 1)) 1))")


def test_non_linear_division() -> None:
    with pytest.raises(SpecError, match=r"division by a term that contains variables.*line 5"):
        parse_vnnlib_string(HEADER + GOOD_BOX + "(assert (<= (/ 1 Y_0) 1))")


def test_empty_input_box_points_at_the_assert_that_empties_it() -> None:
    text = HEADER + "(assert (>= X_0 0.5))\n(assert (<= Y_0 1))\n(assert (<= X_0 0.25))\n"
    err = error_of(text)
    assert (err.line, err.col) == (5, 9)
    assert "empty input box" in err.message and "line 3, column 9" in err.message


def test_missing_input_bound_points_at_its_declaration() -> None:
    text = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n" \
           "(assert (>= X_0 0)) (assert (<= X_0 1)) (assert (>= X_1 0)) (assert (<= Y_0 1))"
    with pytest.raises(SpecError, match=r"X_1 has no upper bound.*\(<= X_1 <number>\).*"
                                        r"line 2, column 16"):
        parse_vnnlib_string(text)


def test_bad_number() -> None:
    with pytest.raises(SpecError, match=r"malformed number '0\.5\.1'.*line 4, column 17"):
        parse_vnnlib_string(HEADER + "(assert (>= X_0 0))\n(assert (<= X_0 0.5.1))")


def test_unknown_operator_lists_the_expected_ones() -> None:
    with pytest.raises(SpecError, match=r"unknown operator 'not'; expected a comparison.*<=.*"
                                        r"line 5, column 10"):
        parse_vnnlib_string(HEADER + GOOD_BOX + "(assert (not (<= Y_0 1)))")
    with pytest.raises(SpecError, match=r"unknown operator 'abs'.*line 5, column 14"):
        parse_vnnlib_string(HEADER + GOOD_BOX + "(assert (<= (abs Y_0) 1))")


def test_unknown_command() -> None:
    with pytest.raises(SpecError, match=r"unknown command 'declare-fun'.*line 1, column 2"):
        parse_vnnlib_string("(declare-fun X_0 () Real)")


def test_dnf_too_big_is_refused_with_a_clear_message() -> None:
    # 4 asserts of 11 disjuncts each: 11**4 = 14641 conjuncts > 10,000, refused at the 4th.
    disjunction = "(assert (or " + " ".join(f"(<= Y_0 {k})" for k in range(11)) + "))\n"
    text = HEADER + GOOD_BOX + disjunction * 4
    err = error_of(text)
    assert err.line == 8
    assert f"more than the limit of {MAX_DNF_CONJUNCTS}" in err.message
    assert "14641 conjuncts" in err.message


def test_three_disjunctions_below_the_cap_are_fine() -> None:
    disjunction = "(assert (or " + " ".join(f"(<= Y_0 {k})" for k in range(11)) + "))\n"
    (prop,) = parse_vnnlib_string(HEADER + GOOD_BOX + disjunction * 3)
    # One polytope (Y_0 <= a, Y_0 <= b, Y_0 <= c) per ordered triple: 11**3.
    assert len(prop.unsafe) == 11 ** 3
    assert prop.unsafe[1] == HalfSpaces([[1.0], [1.0], [1.0]], [0.0, 0.0, 1.0])


@pytest.mark.parametrize("text, match", [
    (HEADER + GOOD_BOX + "(assert (<= (+ X_0 Y_0) 1))", r"mixing inputs.*line 5, column 9"),
    (HEADER.replace("Y_0", "X_1") + "(declare-const Y_0 Real)\n" + GOOD_BOX +
     "(assert (<= (+ X_0 X_1) 1))", r"non-box input constraint.*line 6"),
    ("(declare-const X_1 Real)\n(declare-const Y_0 Real)", r"X_1 declared but X_0 is not.*line 1"),
    ("(declare-const X_0 Real)\n(declare-const x0 Real)", r"unsupported variable name 'x0'"
                                                         r".*line 2, column 16"),
    ("(declare-const X_0 Int)", r"unsupported sort 'Int'; expected Real.*line 1, column 20"),
    (HEADER + "(declare-const X_0 Real)", r"X_0 is declared twice.*line 3"),
    ("(declare-const X_0 Real)\n" + GOOD_BOX, r"no Y_<i> variables declared"),
    (HEADER + GOOD_BOX + "(assert (<= Y_0 1e999))", r"out of the float64 range.*line 5"),
    (HEADER + GOOD_BOX + "(assert (<= Y_0))", r"needs at least two arguments.*line 5"),
    (HEADER + GOOD_BOX + "(assert (<= Y_0 1) (<= Y_0 2))", r"exactly one formula.*line 5"),
    (HEADER + GOOD_BOX + "(assert Y_0)", r"expected a formula.*line 5, column 9"),
    (HEADER + GOOD_BOX + "(assert (or))", r"asserts are unsatisfiable"),
    (HEADER + "X_0", r"expected a command.*line 3, column 1"),
])
def test_other_malformed_files(text: str, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        parse_vnnlib_string(text)


def test_error_names_the_file(tmp_path) -> None:
    path = tmp_path / "broken.vnnlib"
    path.write_text(HEADER + "(assert (>= X_0 0)")
    with pytest.raises(SpecError, match="broken.vnnlib:3:1") as info:
        parse_vnnlib(path)
    assert info.value.path == str(path)
