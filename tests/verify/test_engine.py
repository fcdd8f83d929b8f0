"""Specification of the public verify() API and the verifier registry."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hard_instances import hard_property
from verirepair.errors import SolverUnavailableError
from verirepair.network.model import AffineLayer, Network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.verify import Verdict, VerifyConfig, get_verifier, list_verifiers, verify


def _identity_net() -> Network:
    """y = relu(x) on 2 inputs."""
    return Network((AffineLayer(np.eye(2), np.zeros(2), True),
                    AffineLayer(np.eye(2), np.zeros(2), False)), "relu2")


def _prop(threshold: float, name: str) -> Property:
    """Unsafe: y0 >= threshold, over [-1, 1]^2."""
    return Property((Box(-np.ones(2), np.ones(2)),),
                    (HalfSpaces(np.array([[-1.0, 0.0]]), np.array([-threshold])),), name)


def test_registry_lists_every_engine() -> None:
    assert list_verifiers() == ["marabou", "marabou-split", "own", "own-input", "own-relu"]
    assert callable(get_verifier("own"))
    with pytest.raises(KeyError, match="known: marabou, marabou-split, own"):
        get_verifier("reluplex")


def test_single_property_holds_with_stats() -> None:
    result = verify(_identity_net(), _prop(1.5, "far"))
    assert result.verdict is Verdict.HOLDS and result.engine == "own"
    assert result.counterexamples == () and result.property_name == "far"
    assert result.stats.subproblems >= 1 and result.stats.time_s > 0.0


def test_sequence_is_violated_iff_any_member_is() -> None:
    net = _identity_net()
    result = verify(net, [_prop(1.5, "a"), _prop(0.5, "b")])
    assert result.verdict is Verdict.VIOLATED
    cex = result.counterexamples[0]
    assert cex.confirmed and cex.x[0] >= 0.5
    assert verify(net, [_prop(1.5, "a"), _prop(2.0, "c")]).verdict is Verdict.HOLDS


def test_violation_found_by_search_when_falsifier_is_off() -> None:
    config = VerifyConfig(falsify_samples=0, pgd_steps=0)
    result = verify(_identity_net(), _prop(0.999, "edge"), config)
    assert result.verdict is Verdict.VIOLATED
    assert result.stats.extra["decided_by"] == "bab"


def test_dimension_mismatch_raises() -> None:
    bad = Property((Box(-np.ones(3), np.ones(3)),), (HalfSpaces(np.ones((1, 2)), [0.0]),))
    with pytest.raises(ValueError, match="3 inputs"):
        verify(_identity_net(), bad)


def test_timeout_shared_and_honoured() -> None:
    net, hard = hard_property("hard")
    start = time.perf_counter()
    result = verify(net, [hard, hard], VerifyConfig(timeout_s=1.0, batch_size=64))
    assert result.verdict is Verdict.TIMEOUT and "hard" in result.message
    assert time.perf_counter() - start < 1.0 + 1.0


def test_timeout_reports_open_boxes_inside_the_region() -> None:
    from verirepair.verify.bab import MAX_OPEN_BOXES_REPORTED

    net, hard = hard_property("hard")
    result = verify(net, hard, VerifyConfig(timeout_s=1.0, batch_size=64))
    assert result.verdict is Verdict.TIMEOUT
    assert 0 < len(result.open_boxes) <= MAX_OPEN_BOXES_REPORTED
    box = hard.input_boxes[0]
    for lower, upper in result.open_boxes:
        assert np.all(box.lower <= lower) and np.all(lower <= upper) and np.all(upper <= box.upper)
    # Open boxes are undecided sub-boxes, not the whole region.
    widths = np.array([hi - lo for lo, hi in result.open_boxes])
    assert widths.sum(axis=1).min() < box.width.sum()


def test_marabou_missing_raises_solver_unavailable(no_maraboupy) -> None:
    with pytest.raises(SolverUnavailableError, match="alternatives: own"):
        verify(_identity_net(), _prop(1.5, "x"), engine="marabou")
