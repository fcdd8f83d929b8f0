"""VNN-LIB writer: parse(write(p)) == p exactly, atomic saving, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.properties.vnnlib import parse_vnnlib, parse_vnnlib_string, save_vnnlib, write_vnnlib


def roundtrip(props, name: str = "p") -> list[Property]:
    return parse_vnnlib_string(write_vnnlib(props), f"{name}.vnnlib")


def test_roundtrip_awkward_numbers_and_coefficients() -> None:
    prop = Property(
        (Box([-0.1, 1e-300, -5e20], [0.30000000000000004, 1e-300, 3.0]),
         Box([2.0, -1.0, 0.0], [2.5, 1.0, 1.0 / 3.0])),
        (HalfSpaces([[1.0, -1.0], [-2.5, 0.0], [0.0, 0.0], [1e-7, 3.0]],
                    [0.0, -3.991125645861615, 0.0, -1.0 / 3.0]),
         HalfSpaces([[-1.0, -0.5]], [7.0])),
        name="p")
    (back,) = roundtrip(prop)
    assert back == prop
    assert back.canonical() == prop.canonical()


def test_single_box_single_polytope_is_written_as_plain_asserts() -> None:
    prop = Property((Box([0.0], [1.0]),), (HalfSpaces([[1.0, -1.0]], [0.0]),), "p")
    text = write_vnnlib(prop, comment="line one\nline two")
    assert text.startswith("; line one\n; line two\n")
    assert "(assert (<= Y_0 Y_1))" in text
    assert "(assert (>= X_0 0.0))" in text and "or" not in text


def test_list_of_properties_with_distinct_boxes_roundtrips() -> None:
    a = Property((Box([0.0, 0.0], [1.0, 1.0]),), (HalfSpaces([[1.0]], [0.5]),), "f[0]")
    b = Property((Box([2.0, 0.0], [3.0, 1.0]), Box([4.0, 0.0], [5.0, 1.0])),
                 (HalfSpaces([[-1.0]], [0.0]), HalfSpaces([[1.0]], [-2.0])), "f[1]")
    assert roundtrip([a, b], "f") == [a, b]


@pytest.mark.acasxu
def test_vnncomp_files_roundtrip_exactly(tmp_path) -> None:
    from verirepair.tasks.acasxu import networks as acasxu_nets

    data = acasxu_nets.data_or_skip(formats=())
    for number in range(1, 11):
        (prop,) = parse_vnnlib(data / "vnnlib" / f"prop_{number}.vnnlib")
        path = save_vnnlib(prop, tmp_path / f"prop_{number}.vnnlib")
        assert parse_vnnlib(path) == [prop]


def test_save_is_atomic_and_replaces_an_output(tmp_path) -> None:
    prop = Property((Box([0.0], [1.0]),), (HalfSpaces([[1.0]], [2.0]),), "out")
    target = tmp_path / "out.vnnlib"
    target.write_text("old content")
    returned = save_vnnlib(prop, target, comment="new")
    assert returned == target
    assert target.read_text() == write_vnnlib(prop, comment="new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.vnnlib"]  # no temp files left


def test_save_creates_missing_directories_without_leftovers(tmp_path) -> None:
    prop = Property((Box([0.0], [1.0]),), (HalfSpaces([[1.0]], [2.0]),), "out")
    target = tmp_path / "missing" / "out.vnnlib"
    save_vnnlib(prop, target)
    assert [p.name for p in (tmp_path / "missing").iterdir()] == ["out.vnnlib"]  # no temp file left
    assert parse_vnnlib(target)[0].canonical() == prop.canonical()


def test_writer_refusals() -> None:
    one = Property((Box([0.0], [1.0]),), (HalfSpaces([[1.0]], [2.0]),))
    two_in = Property((Box([0.0, 0.0], [1.0, 1.0]),), (HalfSpaces([[1.0]], [2.0]),))
    with pytest.raises(ValueError, match="at least one property"):
        write_vnnlib([])
    with pytest.raises(ValueError, match="same input and output dimensions"):
        write_vnnlib([one, two_in])
    unbounded = Property((Box([0.0], [np.inf]),), (HalfSpaces([[1.0]], [2.0]),))
    with pytest.raises(ValueError, match="non-finite"):
        write_vnnlib(unbounded)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def properties(draw) -> Property:
    n_in = draw(st.integers(1, 3))
    n_out = draw(st.integers(1, 3))
    boxes = []
    for _ in range(draw(st.integers(1, 3))):
        a = np.array(draw(st.lists(finite, min_size=n_in, max_size=n_in)))
        w = np.array(draw(st.lists(st.floats(0, 10), min_size=n_in, max_size=n_in)))
        boxes.append(Box(a, a + w))
    polys = []
    for _ in range(draw(st.integers(1, 3))):
        rows = draw(st.integers(1, 3))
        A = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, -1.0, 2.5, -1e-3, 0.1]),
                                   min_size=rows * n_out, max_size=rows * n_out)))
        b = np.array(draw(st.lists(finite, min_size=rows, max_size=rows)))
        polys.append(HalfSpaces(A.reshape(rows, n_out), b))
    return Property(tuple(boxes), tuple(polys), "h")


def test_signed_zeros_compare_and_hash_equal() -> None:
    a, b = Box(np.array([-0.0]), np.array([0.0])), Box(np.array([0.0]), np.array([0.0]))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    h, k = HalfSpaces(np.array([[-0.0]]), np.array([0.0])), HalfSpaces(np.array([[0.0]]), np.array([-0.0]))
    assert h == k and hash(h) == hash(k)


@settings(max_examples=60, deadline=None)
@given(properties())
def test_roundtrip_random_properties(prop: Property) -> None:
    back = roundtrip(prop, "h")
    distinct_boxes = len(set(prop.input_boxes)) == len(prop.input_boxes)
    distinct_polys = len(set(prop.unsafe)) == len(prop.unsafe)
    if distinct_boxes and distinct_polys:
        assert back == [prop]
    else:
        assert len(back) == 1
        assert set(back[0].input_boxes) == set(prop.input_boxes)
