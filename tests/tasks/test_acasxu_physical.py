"""Physical-unit ACAS Xu properties: loading, compiling (== VNN-COMP), exporting."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from verirepair.errors import SpecError
from verirepair.properties.vnnlib import parse_vnnlib
from verirepair.tasks.acasxu import networks as acasxu_nets
from verirepair.tasks.acasxu.infix import InfixError, parse_constraint, parse_value
from verirepair.tasks.acasxu.physical import (
    compile_property,
    default_properties_dir,
    default_vnnlib_dir,
    export_properties,
    load_normalization,
    load_physical_properties,
)

PROPS_DIR = default_properties_dir()
NORM = load_normalization(PROPS_DIR / "normalization.toml")


@pytest.fixture(scope="module")
def physical():
    return load_physical_properties(PROPS_DIR)


def test_ten_properties_load_in_order(physical) -> None:
    assert [p.number for p in physical] == list(range(1, 11))
    assert [p.name for p in physical] == [f"prop_{n}" for n in range(1, 11)]
    assert [len(p.input_boxes) for p in physical] == [1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    assert all(p.description and p.desired for p in physical)


def test_phi1_threshold_normalises_by_output_mean_and_range(physical) -> None:
    prop = compile_property(physical[0], NORM)
    # COC >= 1500 in physical units  <=>  -y_0 <= -(1500 - 7.5188840201005975) / 373.94992
    assert prop.unsafe[0].A.tolist() == [[-1.0, 0.0, 0.0, 0.0, 0.0]]
    assert prop.unsafe[0].b[0] == pytest.approx(-3.991125645861615, abs=1e-15)
    assert prop.input_boxes[0].lower[0] == pytest.approx(0.6, abs=1e-12)


def test_no_clipping_for_phi6(physical) -> None:
    prop = compile_property(physical[5], NORM)
    upper_rho = (62000.0 - 19791.091) / 60261.0
    training_max = (60760.0 - 19791.091) / 60261.0
    assert [box.upper[0] for box in prop.input_boxes] == [upper_rho, upper_rho]
    assert upper_rho > training_max


def test_comparisons_between_outputs_are_scale_invariant(physical) -> None:
    prop = compile_property(physical[6], NORM)   # phi7: SL <= COC, SL <= WL, SL <= WR | SR ...
    first = prop.unsafe[0]
    assert first.A.tolist() == [[-1, 0, 0, 1, 0], [0, -1, 0, 1, 0], [0, 0, -1, 1, 0]]
    assert first.b.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.acasxu
@pytest.mark.parametrize("number", range(1, 11))
def test_compiled_property_equals_vnncomp_file(physical, acasxu_data, number: int) -> None:
    ours = compile_property(physical[number - 1], NORM)
    (theirs,) = parse_vnnlib(acasxu_data / "vnnlib" / f"prop_{number}.vnnlib")
    assert ours.name == theirs.name
    key = lambda box: tuple(box.lower)  # noqa: E731
    ours_boxes = sorted(ours.input_boxes, key=key)
    theirs_boxes = sorted(theirs.input_boxes, key=key)
    assert len(ours_boxes) == len(theirs_boxes)
    for a, b in zip(ours_boxes, theirs_boxes, strict=True):
        # VNN-COMP rounds bounds to 9 decimals; we keep full precision.
        np.testing.assert_allclose(a.lower, b.lower, rtol=0, atol=1e-9)
        np.testing.assert_allclose(a.upper, b.upper, rtol=0, atol=1e-9)
    assert ours.canonical()[1] == theirs.canonical()[1]


@pytest.mark.acasxu
def test_normalization_file_matches_every_nnet_header() -> None:
    acasxu_nets.data_or_skip(formats=("nnet",))
    expected = [NORM.input_min, NORM.input_max,
                np.append(NORM.input_mean, NORM.output_mean),
                np.append(NORM.input_range, NORM.output_range)]
    paths = [acasxu_nets.nnet_path(name) for name in acasxu_nets.NETWORK_NAMES]
    assert len(paths) == 45
    for path in paths:
        lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("//")]
        header = [np.array([float(v) for v in ln.split(",") if v.strip()]) for ln in lines[3:7]]
        for got, want in zip(header, expected, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=path.name)


@pytest.mark.acasxu
def test_nnet_normalization_equals_the_toml_constants() -> None:
    """Both sources fill the one Normalization class; they differ only in the names."""
    acasxu_nets.data_or_skip(formats=("nnet",))
    numbers_only = dataclasses.replace(NORM, input_names=(), input_units=(), output_names=())
    physical = np.array([[60000.0, 0.5, -3.2, 1300.0, 50.0]])     # psi, v_own outside the clip
    for name in acasxu_nets.NETWORK_NAMES:
        header = acasxu_nets.load_acasxu(name, fmt="nnet").normalization
        assert header == numbers_only, name
        for clip in (True, False):
            np.testing.assert_array_equal(header.normalize_inputs(physical, clip=clip),
                                          NORM.normalize_inputs(physical, clip=clip))
    assert NORM.input_names == ("rho", "theta", "psi", "v_own", "v_int")
    assert NORM.output_names == ("COC", "WL", "WR", "SL", "SR")
    # the reference table (/work/shared/reference/acasxu.md), written out once more
    assert NORM.input_mean == (19791.091, 0.0, 0.0, 650.0, 600.0)
    assert NORM.input_range == (60261.0, 6.28318530718, 6.28318530718, 1100.0, 1200.0)
    assert (NORM.output_mean, NORM.output_range) == (7.5188840201005975, 373.94992)

def test_committed_vnnlib_files_equal_a_fresh_export(tmp_path) -> None:
    written = export_properties(PROPS_DIR, tmp_path)
    assert [p.name for p in written] == [f"prop_{n}.vnnlib" for n in range(1, 11)]
    for path in written:
        committed = default_vnnlib_dir() / path.name
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: re-run verirepair.tasks.acasxu.physical.export_properties()")


def test_exported_files_parse_back_to_the_compiled_properties(physical, tmp_path) -> None:
    for path, pp in zip(export_properties(PROPS_DIR, tmp_path), physical, strict=True):
        assert parse_vnnlib(path) == [compile_property(pp, NORM)]


def test_export_touches_nothing_else(tmp_path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    (tmp_path / "prop_1.vnnlib").write_text("stale")
    export_properties(PROPS_DIR, tmp_path)
    assert other.read_text() == "keep me"
    assert (tmp_path / "prop_1.vnnlib").read_text().startswith("; ACAS Xu property phi1")
    assert len(list(tmp_path.iterdir())) == 11


# -- malformed property files ------------------------------------------------------

def _copy_with(tmp_path: Path, old: str, new: str, name: str = "phi6.toml") -> Path:
    folder = tmp_path / "props"
    folder.mkdir()
    shutil.copy(PROPS_DIR / "normalization.toml", folder)
    text = (PROPS_DIR / name).read_text()
    assert old in text
    (folder / name).write_text(text.replace(old, new, 1))
    return folder


@pytest.mark.parametrize("old, new, match", [
    ('["WR <= COC"]', '["WR <== COC"]', r"phi6.toml:\d+:\d+: unknown name '='"),
    ('["WR <= COC"]', '["WR * COC <= 1"]', r"non-linear product"),
    ('["WR <= COC"]', '["XX <= COC"]', r"unknown name 'XX'; expected one of COC, WL"),
    ('"N1,1"', '"N6,1"', r"bad network names \['N6,1'\]"),
    ("v_own = [100.0, 1200.0]", "v_own = [1200.0, 100.0]", r"v_own has lower bound 1200.0"),
    ("v_own = [100.0, 1200.0]", "v_speed = [100.0, 1200.0]", r"expected exactly the inputs"),
    ('psi = ["-3.141592", "-3.141592 + 0.005"]', 'psi = ["-3.141592", "-tau"]',
     r"unknown name 'tau'"),
    ("number = 6", "number = 6\ncolour = 1", r"unknown keys \['colour'\]"),
    ("v_own = [100.0, 1200.0]", "v_own = [nan, 1200.0]", r"v_own: nan is not a finite number"),
    ("v_own = [100.0, 1200.0]", "v_own = [100.0, inf]", r"v_own: inf is not a finite number"),
    ("v_own = [100.0, 1200.0]", 'v_own = [100.0, "1e999"]', r"'1e999' is not a finite number"),
    ('psi = ["-3.141592", "-3.141592 + 0.005"]', 'psi = ["-3.141592", "\u00b2"]',
     r"unexpected character"),
    ("number = 6", 'number = "six"', r"number must be an integer, got 'six'"),
    ("number = 6", "number = true", r"number must be an integer"),
    ("networks = [", "networks = 7\nold_networks = [", r"unknown keys"),
    ("any_of = [", "any_of = 3\nx = [", r"any_of must be an array|unknown keys"),
    ("number = 6", "number = 6\n= broken", r"phi6.toml:\d+:\d+: invalid TOML"),
])
def test_malformed_property_files(tmp_path, old: str, new: str, match: str) -> None:
    folder = _copy_with(tmp_path, old, new)
    with pytest.raises(SpecError, match=match):
        load_physical_properties(folder)


def test_types_and_encoding_of_property_files(tmp_path) -> None:
    folder = _copy_with(tmp_path, "number = 6", "number = 6\n# caf\u00e9")
    path = folder / "phi6.toml"
    path.write_bytes(path.read_bytes().replace("caf\u00e9".encode(), b"caf\xe9"))
    line = next(i for i, ln in enumerate(path.read_bytes().split(b"\n"), 1) if b"caf" in ln)
    with pytest.raises(SpecError, match=f"phi6.toml:{line}:6: byte 0xe9 is not valid UTF-8"):
        load_physical_properties(folder)
    (tmp_path / "n").mkdir()
    norm = tmp_path / "n" / "normalization.toml"
    text = (PROPS_DIR / "normalization.toml").read_text()
    for old, new in [("[inputs]", "inputs = 3\n[x]"), ("range = [", "range = [nan, ")]:
        assert old in text
        norm.write_text(text.replace(old, new, 1))
        with pytest.raises(SpecError) as info:
            load_normalization(norm)
        assert "\n" not in str(info.value)


def test_constraint_errors_point_at_their_line(tmp_path) -> None:
    folder = _copy_with(tmp_path, '["SL <= COC"]', '["SL <= COC +"]')
    line = next(i for i, ln in enumerate((folder / "phi6.toml").read_text().splitlines(), 1)
                if "SL <= COC +" in ln)
    with pytest.raises(SpecError, match=f"phi6.toml:{line}:"):
        load_physical_properties(folder)


def test_infix_grammar() -> None:
    assert parse_value("-pi") == -math.pi
    assert parse_value("-3.141592 + 0.005") == -3.141592 + 0.005
    assert parse_value("-0.75 * 3.141592") == -0.75 * 3.141592
    assert parse_value("2 * (1 + .5) / 3") == 1.0
    (atom,) = parse_constraint("COC >= 1500", ["COC", "WL"])
    assert atom.coeffs == (("COC", -1.0),) and atom.const == 1500.0
    lo, hi = parse_constraint("WL = 2 * COC - 1", ["COC", "WL"])
    assert lo.as_dict() == {"WL": 1.0, "COC": -2.0} and lo.const == 1.0
    assert hi.as_dict() == {"WL": -1.0, "COC": 2.0} and hi.const == -1.0
    for bad in ["COC", "COC <= (1", "1.2.3 <= COC", "COC <= 1 / 0", "COC $ 1"]:
        with pytest.raises(InfixError):
            parse_constraint(bad, ["COC"])
