"""Specification of Marabou on a split input region: exact cover, verdicts, budget, oracle."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("maraboupy")

from hard_instances import abs_net, hard_property
from verirepair.errors import SolverUnavailableError
from verirepair.network.model import random_network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.verify import marabou_split
from verirepair.verify.engine import list_verifiers, verify
from verirepair.verify.marabou_split import (
    SplitConfig,
    bisect,
    initial_cover,
    verify_marabou_split,
)
from verirepair.verify.result import Verdict, VerifyConfig

pytestmark = [pytest.mark.marabou, pytest.mark.usefixtures("in_tmp_cwd")]

CONFIG = VerifyConfig(timeout_s=30.0)


def _abs_prop(threshold: float) -> Property:
    """Unsafe: |x| >= threshold over x in [-1, 1]."""
    return Property((Box([-1.0], [1.0]),), (HalfSpaces([[-1.0]], [-threshold]),), "abs")


def _volume(box: Box) -> float:
    return float(np.prod(box.width))


# ---------------------------------------------------------------- partition
def test_bisect_halves_share_one_midpoint_and_cover_the_box():
    box = Box([0.0, -2.0, 5.0], [1.0, 2.0, 5.0])
    low, high = bisect(box, box.width)
    # Relative widths are 1, 1, 0: the first widest dimension (0) is halved.
    np.testing.assert_array_equal(low.lower, box.lower)
    np.testing.assert_array_equal(high.upper, box.upper)
    np.testing.assert_array_equal(low.upper, [0.5, 2.0, 5.0])
    np.testing.assert_array_equal(high.lower, [0.5, -2.0, 5.0])


def test_bisect_uses_widths_relative_to_the_root():
    root = Box([0.0, 0.0], [100.0, 1.0])
    pieces = initial_cover(root, 2)
    # Absolute widths would halve dimension 0 twice; relative ones alternate.
    assert sorted((tuple(p.lower), tuple(p.upper)) for p in pieces) == [
        ((0.0, 0.0), (50.0, 0.5)), ((0.0, 0.5), (50.0, 1.0)),
        ((50.0, 0.0), (100.0, 0.5)), ((50.0, 0.5), (100.0, 1.0))]


def test_point_box_cannot_be_bisected():
    point = Box([1.0, 2.0], [1.0, 2.0])
    assert bisect(point, np.array([1.0, 1.0])) is None
    assert initial_cover(point, 3) == [point]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_initial_cover_is_exact(seed):
    rng = np.random.default_rng(seed)
    lower = rng.uniform(-1, 1, 5)
    box = Box(lower, lower + rng.uniform(0.01, 3.0, 5))
    pieces = initial_cover(box, 7)
    assert len(pieces) == 2 ** 7
    assert sum(_volume(p) for p in pieces) == pytest.approx(_volume(box), rel=1e-12)
    for piece in pieces:  # inside the box
        assert np.all(piece.lower >= box.lower) and np.all(piece.upper <= box.upper)
    # No gaps: every sample (and every corner) lies in some piece.
    points = np.vstack([box.sample(rng, 2000), box.lower, box.upper])
    inside = np.zeros(len(points), dtype=bool)
    for piece in pieces:
        inside |= piece.contains(points)
    assert inside.all()
    # No overlaps beyond shared faces: piece interiors are disjoint.
    for i, a in enumerate(pieces):
        for b in pieces[i + 1:]:
            overlap = np.minimum(a.upper, b.upper) - np.maximum(a.lower, b.lower)
            assert np.any(overlap <= 0.0)


def test_split_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="initial_splits"):
        SplitConfig(initial_splits=5, max_depth=3)
    with pytest.raises(ValueError, match="timeout_growth"):
        SplitConfig(timeout_growth=0.5)


# ----------------------------------------------------------------- verdicts
def test_holds_with_forced_splitting_and_leaf_records():
    result = verify_marabou_split(abs_net(), _abs_prop(1.5), CONFIG,
                                  SplitConfig(initial_splits=3, record_leaves=True))
    assert result.verdict is Verdict.HOLDS and result.engine == "marabou-split"
    assert result.stats.extra["leaves"] == 8 == result.stats.extra["leaves_unsat"]
    assert result.stats.subproblems == 8 and result.stats.max_depth == 3
    records = result.stats.extra["leaf_records"]
    assert sum(float(np.prod(r[4] - r[3])) for r in records) == pytest.approx(2.0)
    assert {r[5] for r in records} == {"holds"}


def test_violated_with_confirmed_counterexample_inside_the_box():
    prop = _abs_prop(0.9)  # |x| >= 0.9 is reachable only near the ends of [-1, 1]
    result = verify_marabou_split(abs_net(), prop, CONFIG, SplitConfig(initial_splits=2))
    assert result.verdict is Verdict.VIOLATED
    cex = result.counterexamples[0]
    assert cex.confirmed and -1.0 <= cex.x[0] <= 1.0 and abs(cex.x[0]) >= 0.9
    assert cex.y[0] == pytest.approx(abs(cex.x[0]))


def _fake_timeouts(monkeypatch, max_width: float) -> list[float]:
    """Make every piece wider than ``max_width`` time out; return the widths queried."""
    real = marabou_split.check_box
    widths: list[float] = []

    def check(network, prop, box, deadline, config):
        widths.append(float(box.width.max()))
        if box.width.max() > max_width:
            return Verdict.TIMEOUT, [], "fake timeout"
        return real(network, prop, box, deadline, config)

    monkeypatch.setattr(marabou_split, "check_box", check)
    return widths


def test_timed_out_pieces_are_bisected_until_decided(monkeypatch):
    widths = _fake_timeouts(monkeypatch, max_width=0.3)
    result = verify_marabou_split(abs_net(), _abs_prop(1.5), CONFIG,
                                  SplitConfig(initial_splits=1, piece_timeout_s=1))
    # [-1, 1] -> 2 pieces of 1 -> 4 of 0.5 -> 8 of 0.25 (decided).
    assert result.verdict is Verdict.HOLDS
    assert result.stats.extra["leaves"] == 8 and result.stats.max_depth == 3
    assert result.stats.extra["piece_timeouts"] == 2 + 4 and result.stats.splits == 6
    assert result.stats.subproblems == len(widths) == 2 + 4 + 8


def test_depth_limit_gives_unknown(monkeypatch):
    _fake_timeouts(monkeypatch, max_width=0.0)
    result = verify_marabou_split(abs_net(), _abs_prop(1.5), CONFIG,
                                  SplitConfig(initial_splits=1, piece_timeout_s=1, max_depth=3))
    assert result.verdict is Verdict.UNKNOWN and "max_depth" in result.message
    assert result.stats.extra["leaves"] == 8 and result.stats.extra["leaves_unsat"] == 0


def test_total_timeout_is_honoured():
    net, prop = hard_property()
    start = time.monotonic()
    result = verify_marabou_split(net, prop, VerifyConfig(timeout_s=3.0),
                                  SplitConfig(initial_splits=2, piece_timeout_s=2))
    elapsed = time.monotonic() - start
    assert result.verdict is Verdict.TIMEOUT
    assert elapsed < 3.0 + 1.5
    assert result.open_boxes and "undecided" in result.message


def test_worker_process_gives_the_same_verdicts():
    holds = verify_marabou_split(abs_net(), _abs_prop(1.5), CONFIG,
                                 SplitConfig(initial_splits=2, workers=1))
    violated = verify_marabou_split(abs_net(), _abs_prop(0.9), CONFIG,
                                    SplitConfig(initial_splits=2, workers=1))
    assert holds.verdict is Verdict.HOLDS and holds.stats.extra["leaves"] == 4
    assert violated.verdict is Verdict.VIOLATED and violated.counterexamples[0].confirmed


def test_registered_as_engine():
    assert "marabou-split" in list_verifiers()
    result = verify(abs_net(), _abs_prop(1.5), CONFIG, engine="marabou-split")
    assert result.verdict is Verdict.HOLDS and result.engine == "marabou-split"
    assert result.stats.extra["initial_pieces"] == 2 ** SplitConfig().initial_splits


def test_missing_maraboupy_names_the_alternatives(no_maraboupy):
    with pytest.raises(SolverUnavailableError, match="'marabou-split'.*alternatives: own, own-input, own-relu$"):
        verify(abs_net(), _abs_prop(1.5), CONFIG, engine="marabou-split")


# ------------------------------------------------------------------- oracle
@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_own_engine_on_random_nets(seed):
    net = random_network([3, 8, 8, 2], seed=seed)
    box = Box(-np.ones(3), np.ones(3))
    samples = net.forward(box.sample(np.random.default_rng(seed), 4000))
    top = float((samples[:, 0] - samples[:, 1]).max())
    # Just above the sampled maximum (often holds) and just below it (violated).
    for threshold in (top + 0.05, top - 0.05):
        prop = Property((box,), (HalfSpaces([[-1.0, 1.0]], [-threshold]),), f"r{seed}")
        ours = verify(net, prop, VerifyConfig(timeout_s=20.0))
        theirs = verify_marabou_split(net, prop, CONFIG, SplitConfig(initial_splits=2))
        assert ours.verdict in (Verdict.HOLDS, Verdict.VIOLATED)
        assert theirs.verdict is ours.verdict


class _DyingExecutor:
    """A worker pool whose processes are all dead (as after an OOM kill)."""

    def __init__(self, workers: int) -> None:
        self.killed = None

    def submit(self, fn, *args):
        import concurrent.futures as cf

        future: cf.Future = cf.Future()
        future.set_exception(cf.BrokenExecutor("a child process terminated abruptly"))
        return future

    def shutdown(self, kill: bool) -> None:
        self.killed = kill


def test_a_dead_worker_gives_unknown_not_an_exception(monkeypatch):
    monkeypatch.setattr(marabou_split, "_PoolExecutor", _DyingExecutor)
    result = verify_marabou_split(abs_net(), _abs_prop(1.5), CONFIG,
                                  SplitConfig(initial_splits=2, workers=2))
    assert result.verdict is Verdict.UNKNOWN and "worker process died" in result.message
