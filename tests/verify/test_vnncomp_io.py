"""Specification of VNN-COMP result files: format, atomic write, parse, round trip."""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.errors import VerirepairError
from verirepair.verify.result import Counterexample, Verdict, VerificationResult
from verirepair.verify.vnncomp_io import format_result, parse_result, write_result


def _violated(x: list[float], y: list[float]) -> VerificationResult:
    cex = Counterexample(np.array(x), np.array(y), 0.5, True, "test")
    return VerificationResult(Verdict.VIOLATED, (cex,), engine="own")


def test_format_sat_lists_inputs_then_outputs_in_vnncomp_layout():
    text = format_result(_violated([0.5, -0.25], [3.0]), 2, 1)
    assert text == "sat\n((X_0 0.5)\n (X_1 -0.25)\n (Y_0 3.0))\n"


@pytest.mark.parametrize("verdict, word", [
    (Verdict.HOLDS, "unsat"), (Verdict.TIMEOUT, "timeout"), (Verdict.UNKNOWN, "unknown"),
])
def test_format_non_sat_is_a_single_word(verdict, word):
    assert format_result(VerificationResult(verdict), 5, 5) == word + "\n"
    assert parse_result(word + "\n") == (word, None, None)


def test_round_trip_keeps_float64_bits_exactly(tmp_path):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=5) / 3.0, rng.normal(size=5) * 1e-7
    path = tmp_path / "out" / "result.txt"
    write_result(_violated(list(x), list(y)), path)
    word, x_back, y_back = parse_result(path.read_text())
    assert word == "sat"
    assert np.array_equal(x_back, x) and np.array_equal(y_back, y)
    assert [p.name for p in path.parent.iterdir()] == ["result.txt"]  # no temp file left


def test_format_rejects_a_counterexample_of_the_wrong_size():
    with pytest.raises(ValueError, match="expected"):
        format_result(_violated([0.1, 0.2], [1.0]), 3, 1)


def test_parse_accepts_other_tools_spacing_and_case():
    word, x, y = parse_result("SAT\n((X_1  2e-3)(X_0 -1)\n\n(Y_0 7))")
    assert word == "sat"
    assert np.array_equal(x, [-1.0, 2e-3]) and np.array_equal(y, [7.0])


@pytest.mark.parametrize("text, match", [
    ("maybe\n", "starts with"),
    ("", "starts with"),
    ("sat\n((X_0 1.0)\n (X_0 2.0))", "twice"),
    ("sat\n((X_1 1.0))", "lacks X_0"),
    ("sat\n((X_0 abc))", "bad number"),
    ("sat\n((X_0 1.0) garbage)", "unexpected text"),
])
def test_parse_rejects_malformed_results(text, match):
    with pytest.raises(VerirepairError, match=match):
        parse_result(text)
