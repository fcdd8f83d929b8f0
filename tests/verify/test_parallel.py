"""Specification of the multi-process branch and bound (verirepair.verify.parallel).

Oracle: the sequential search.  Every decision of the search is local to a
box (its bounds, its exclusion, its split), so handing the open stack to worker
processes must explore exactly the same tree: same verdict, same number of
bounded sub-boxes.
"""

from __future__ import annotations

import concurrent.futures as cf
import time

import numpy as np
import pytest

from hard_instances import hard_property, import_verifier, lp_property, stuck_worker
from verirepair.properties.property import HalfSpaces, Property
from verirepair.verify import bab, parallel, verify
from verirepair.verify.parallel import parallel_search
from verirepair.verify.result import Verdict, VerifyConfig


def _shifted(extra: float) -> tuple:
    """The hard instance with its unsafe threshold moved by ``extra`` (> 0: easier to prove)."""
    net, hard = hard_property()
    poly = hard.unsafe[0]
    return net, Property(hard.input_boxes, (HalfSpaces(poly.A, poly.b - extra),), f"shift{extra}")


def test_parallel_search_explores_the_same_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    net, prop = _shifted(2.0)                       # about 6000 sub-boxes, a few seconds
    monkeypatch.setattr(parallel, "WARMUP_S", 0.5)
    sequential = bab.search(net, prop, VerifyConfig(timeout_s=60), time.perf_counter() + 60)
    spread = parallel_search(net, prop, VerifyConfig(timeout_s=60, workers=2), time.perf_counter() + 60)
    assert sequential.verdict is spread.verdict is Verdict.HOLDS
    assert spread.subproblems == sequential.subproblems > 1000
    assert spread.max_depth == sequential.max_depth


def test_easy_instances_never_start_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    net, prop = _shifted(50.0)
    monkeypatch.setattr(parallel.cf, "ProcessPoolExecutor", None)   # would fail if used
    outcome = parallel_search(net, prop, VerifyConfig(timeout_s=30, workers=2), time.perf_counter() + 30)
    assert outcome.verdict is Verdict.HOLDS


def test_a_worker_finds_and_confirms_the_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    net, prop = _shifted(-0.3)                      # the attack's best point is 0.25 inside
    monkeypatch.setattr(parallel, "WARMUP_S", 0.0)  # the whole search runs in a worker
    outcome = parallel_search(net, prop, VerifyConfig(timeout_s=60, workers=2), time.perf_counter() + 60)
    assert outcome.verdict is Verdict.VIOLATED and outcome.counterexamples
    box = prop.input_boxes[0]
    for cex in outcome.counterexamples:
        assert cex.confirmed and box.contains(cex.x[None])[0]
        assert prop.violation_score(net.forward(cex.x[None]))[0] >= 0.0


def _pool_round_trip_s() -> float:
    """Seconds to spawn two workers the way the search does, import the verifier in them, and shut down."""
    from verirepair.verify.pool import shutdown_pool, spawn_pool
    start = time.perf_counter()
    pool = spawn_pool(2)
    assert all(pool.map(import_verifier, range(2)))
    shutdown_pool(pool, kill=False)
    return time.perf_counter() - start


def test_timeout_is_honoured_and_open_boxes_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    net, prop = hard_property()
    monkeypatch.setattr(parallel, "WARMUP_S", 0.5)
    start = time.perf_counter()
    result = verify(net, prop, VerifyConfig(timeout_s=3.0, workers=2, pgd_steps=0))
    elapsed = time.perf_counter() - start
    assert result.verdict is Verdict.TIMEOUT
    # worker start-up and shutdown included: 3 s of slack, or twice what starting and stopping a
    # pool costs on this machine right now (a loaded machine spawns slowly)
    assert elapsed < 3.0 + max(3.0, 2.0 * _pool_round_trip_s())
    box = prop.input_boxes[0]
    assert result.open_boxes
    for lower, upper in result.open_boxes:
        assert np.all(box.lower <= lower) and np.all(lower <= upper) and np.all(upper <= box.upper)


def test_lp_calls_are_summed_over_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Threads instead of spawned processes: the same parallel_search code path,
    # but fast and in one process.  With no warm-up every LP runs in a worker.
    monkeypatch.setattr(parallel, "spawn_pool", cf.ThreadPoolExecutor)
    monkeypatch.setattr(parallel, "WARMUP_S", 0.0)
    net, prop = lp_property()
    config = VerifyConfig(timeout_s=60, use_lp=True)
    sequential = bab.search(net, prop, config, time.perf_counter() + 60)
    spread = parallel_search(net, prop, VerifyConfig(timeout_s=60, use_lp=True, workers=2),
                        time.perf_counter() + 60)
    assert sequential.verdict is spread.verdict is Verdict.HOLDS
    assert sequential.lp_calls > 100
    assert spread.lp_calls == sequential.lp_calls
    assert spread.subproblems == sequential.subproblems


class _DyingPool(cf.ThreadPoolExecutor):
    """A pool whose workers all die, as a process pool does when one is killed (OOM)."""

    def submit(self, fn, *args, **kwargs):
        future: cf.Future = cf.Future()
        future.set_exception(cf.BrokenExecutor("a child process terminated abruptly"))
        return future


def test_a_dead_worker_gives_unknown_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "spawn_pool", _DyingPool)
    monkeypatch.setattr(parallel, "WARMUP_S", 0.0)
    net, prop = _shifted(2.0)
    result = verify(net, prop, VerifyConfig(timeout_s=30, workers=2, pgd_steps=0))
    assert result.verdict is Verdict.UNKNOWN
    assert "worker process died" in result.message


def test_workers_busy_past_the_deadline_are_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Real spawned processes running a worker that ignores the deadline.
    monkeypatch.setattr(parallel, "WARMUP_S", 0.0)
    monkeypatch.setattr(parallel, "KILL_GRACE_S", 0.5)
    monkeypatch.setattr(parallel, "_resume", stuck_worker)
    net, prop = _shifted(2.0)
    start = time.perf_counter()
    outcome = parallel_search(net, prop, VerifyConfig(timeout_s=2.0, workers=2),
                         time.perf_counter() + 2.0)
    assert outcome.verdict is Verdict.TIMEOUT and "still busy" in outcome.message
    assert time.perf_counter() - start < 2.0 + 0.5 + 1.5
