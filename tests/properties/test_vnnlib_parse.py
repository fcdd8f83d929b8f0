"""VNN-LIB parser semantics: hand-checked toy files and the ten VNN-COMP ACAS Xu files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.properties.vnnlib import parse_vnnlib, parse_vnnlib_string

DECL_2_2 = """
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
"""
BOX = "(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n(assert (<= X_1 .5))\n"


def parse_one(text: str) -> Property:
    (prop,) = parse_vnnlib_string(text, "dir/toy.vnnlib")
    return prop


def test_box_and_single_output_row() -> None:
    prop = parse_one(DECL_2_2 + BOX + "(assert (>= Y_0 3.5))")
    assert prop.name == "toy"
    assert prop.input_boxes == (Box([-1.0, 0.0], [1.0, 0.5]),)
    assert prop.unsafe == (HalfSpaces([[-1.0, 0.0]], [-3.5]),)


def test_strict_comparisons_read_as_closure() -> None:
    strict = parse_one(DECL_2_2 + "(assert (> X_0 -1)) (assert (< X_0 1))"
                       "(assert (> X_1 0)) (assert (< X_1 .5)) (assert (< Y_0 Y_1))")
    closed = parse_one(DECL_2_2 + BOX + "(assert (<= Y_0 Y_1))")
    assert strict == closed
    assert closed.unsafe[0] == HalfSpaces([[1.0, -1.0]], [0.0])


def test_linear_terms_plus_minus_times_division_and_chains() -> None:
    prop = parse_one(DECL_2_2 + BOX +
                     "(assert (<= (+ (* 2 Y_0) (- Y_1) (* Y_1 -3 0.5) 1) (- 4 (/ Y_0 4)) 10))")
    # 2 y0 - y1 - 1.5 y1 + 1 <= 4 - y0/4  ->  2.25 y0 - 2.5 y1 <= 3 ; and 4 - y0/4 <= 10
    assert prop.unsafe == (HalfSpaces([[2.25, -2.5], [-0.25, 0.0]], [3.0, 6.0]),)


def test_unary_and_nary_minus_and_numbers_on_both_sides() -> None:
    prop = parse_one(DECL_2_2 + "(assert (<= (- X_0) 1)) (assert (<= (- X_0 1 2) -2))"
                     "(assert (>= (* 4 X_1) (- 2))) (assert (<= 1 (- 3 X_1)))"
                     "(assert (= Y_0 (- Y_1 1e-3)))")
    assert prop.input_boxes == (Box([-1.0, -0.5], [1.0, 2.0]),)
    assert prop.unsafe == (HalfSpaces([[1.0, -1.0], [-1.0, 1.0]], [-1e-3, 1e-3]),)


def test_output_disjunction_gives_one_polytope_per_disjunct() -> None:
    prop = parse_one(DECL_2_2 + BOX + "(assert (or (and (<= Y_0 1) (<= Y_1 2)) (>= Y_0 7)))")
    assert len(prop.input_boxes) == 1
    assert prop.unsafe == (HalfSpaces([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0]),
                           HalfSpaces([[-1.0, 0.0]], [-7.0]))


def test_input_disjunction_gives_union_of_boxes() -> None:
    prop = parse_one(DECL_2_2 + "(assert (<= X_1 1)) (assert (>= X_1 0))"
                     "(assert (or (and (<= X_0 0) (>= X_0 -1)) (and (<= X_0 3) (>= X_0 2))))"
                     "(assert (or (<= Y_0 0) (<= Y_1 0)))")
    assert prop.input_boxes == (Box([-1.0, 0.0], [0.0, 1.0]), Box([2.0, 0.0], [3.0, 1.0]))
    assert len(prop.unsafe) == 2


def test_mixed_input_output_disjuncts_group_by_box() -> None:
    text = DECL_2_2 + """(assert (or
      (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (<= Y_0 Y_1))
      (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (<= Y_1 5))
      (and (>= X_0 2) (<= X_0 3) (>= X_1 0) (<= X_1 1) (>= Y_0 0))
      (and (>= X_0 4) (<= X_0 5) (>= X_1 0) (<= X_1 1) (<= Y_0 Y_1))
      (and (>= X_0 4) (<= X_0 5) (>= X_1 0) (<= X_1 1) (<= Y_1 5))))"""
    props = parse_vnnlib_string(text, "mixed.vnnlib")
    assert [p.name for p in props] == ["mixed[0]", "mixed[1]"]
    first, second = props
    # Boxes 1 and 3 share the unsafe set {Y_0 <= Y_1, Y_1 <= 5}: one property, two boxes.
    assert first.input_boxes == (Box([0, 0], [1, 1]), Box([4, 0], [5, 1]))
    assert first.unsafe == (HalfSpaces([[1, -1]], [0]), HalfSpaces([[0, 1]], [5]))
    assert second.input_boxes == (Box([2, 0], [3, 1]),)
    assert second.unsafe == (HalfSpaces([[-1, 0]], [0]),)


def test_tightest_bound_wins_and_constant_atoms() -> None:
    prop = parse_one(DECL_2_2 + BOX + "(assert (<= X_0 0.25)) (assert (>= X_0 -5))"
                     "(assert (<= 0 1)) (assert (or (<= 1 0) (<= Y_0 2)))")
    assert prop.input_boxes == (Box([-1.0, 0.0], [0.25, 0.5]),)
    # Constant comparisons are kept as zero rows: 0 <= 1 (true), 1 <= 0 (false).
    assert prop.unsafe == (HalfSpaces([[0.0, 0.0], [0.0, 0.0]], [1.0, -1.0]),
                           HalfSpaces([[0.0, 0.0], [1.0, 0.0]], [1.0, 2.0]))
    assert list(prop.is_violated_by(np.array([[2.0, 0.0], [3.0, 0.0]]))) == [True, False]


def test_no_output_constraint_means_every_output_is_unsafe() -> None:
    prop = parse_one(DECL_2_2 + BOX)
    assert prop.unsafe == (HalfSpaces([[0.0, 0.0]], [0.0]),)
    assert bool(prop.is_violated_by(np.array([[1e6, -1e6]]))[0])


def test_ignored_commands() -> None:
    prop = parse_one("(set-logic QF_LRA)" + DECL_2_2 + BOX + "(assert (<= Y_0 1))(check-sat)")
    assert prop.unsafe == (HalfSpaces([[1.0, 0.0]], [1.0]),)


# -- the VNN-COMP ACAS Xu files ----------------------------------------------

# (number of boxes, rows of each unsafe polytope), read off the files by hand.
EXPECTED_SHAPES = {
    1: (1, [1]), 2: (1, [4]), 3: (1, [4]), 4: (1, [4]), 5: (1, [1, 1, 1, 1]),
    6: (2, [1, 1, 1, 1]), 7: (1, [3, 3]), 8: (1, [2, 2, 2]), 9: (1, [1, 1, 1, 1]),
    10: (1, [1, 1, 1, 1]),
}


@pytest.mark.acasxu
@pytest.mark.parametrize("number", range(1, 11))
def test_vnncomp_acasxu_files_parse(acasxu_data, number: int) -> None:
    (prop,) = parse_vnnlib(acasxu_data / "vnnlib" / f"prop_{number}.vnnlib")
    n_boxes, rows = EXPECTED_SHAPES[number]
    assert prop.name == f"prop_{number}"
    assert (prop.n_inputs, prop.n_outputs) == (5, 5)
    assert len(prop.input_boxes) == n_boxes
    assert [poly.A.shape[0] for poly in prop.unsafe] == rows


@pytest.mark.acasxu
def test_vnncomp_prop1_and_prop6_values(acasxu_data) -> None:
    (p1,) = parse_vnnlib(acasxu_data / "vnnlib" / "prop_1.vnnlib")
    assert p1.input_boxes[0] == Box([0.6, -0.5, -0.5, 0.45, -0.5],
                                    [0.679857769, 0.5, 0.5, 0.5, -0.45])
    assert p1.unsafe == (HalfSpaces([[-1.0, 0, 0, 0, 0]], [-3.991125645861615]),)
    (p6,) = parse_vnnlib(acasxu_data / "vnnlib" / "prop_6.vnnlib")
    assert [box.lower[1] for box in p6.input_boxes] == [0.11140846, -0.499999896]
    assert [box.upper[0] for box in p6.input_boxes] == [0.700434925] * 2
    # Unsafe iff some other advisory scores at most COC: rows y_j - y_0 <= 0.
    for j, poly in enumerate(p6.unsafe, start=1):
        expected = np.zeros((1, 5))
        expected[0, 0], expected[0, j] = -1.0, 1.0
        assert poly == HalfSpaces(expected, [0.0])


# -- DNF oracle: the parsed property agrees with direct evaluation of the formula ----

_atoms = st.tuples(st.sampled_from(["<=", ">=", "<", ">"]), st.sampled_from(["Y_0", "Y_1"]),
                   st.integers(-3, 3))
_formulas = st.recursive(
    _atoms, lambda inner: st.tuples(st.sampled_from(["and", "or"]),
                                    st.lists(inner, min_size=1, max_size=3)),
    max_leaves=8)


def _text(f) -> str:
    if isinstance(f[1], list):
        return f"({f[0]} {' '.join(_text(g) for g in f[1])})"
    op, var, c = f
    return f"({op} {var} {c})"


def _holds(f, y: dict[str, float]) -> bool:
    if isinstance(f[1], list):
        results = [_holds(g, y) for g in f[1]]
        return all(results) if f[0] == "and" else any(results)
    op, var, c = f
    # strict comparisons are read as their closure
    return y[var] <= c if op in ("<=", "<") else y[var] >= c


@settings(max_examples=80, deadline=None)
@given(st.lists(_formulas, min_size=1, max_size=3))
def test_dnf_agrees_with_direct_evaluation(formulas) -> None:
    text = DECL_2_2 + BOX + "".join(f"(assert {_text(f)})\n" for f in formulas)
    (prop,) = parse_vnnlib_string(text)
    grid = np.arange(-4.0, 4.5, 0.5)
    ys = np.array([[a, b] for a in grid for b in grid])
    expected = [all(_holds(f, {"Y_0": a, "Y_1": b}) for f in formulas) for a, b in ys]
    assert prop.is_violated_by(ys).tolist() == expected
