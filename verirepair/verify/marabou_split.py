"""Marabou on a recursive partition of the input region ("split and conquer").

Pipeline position: ``get_verifier("marabou-split")`` (in
:mod:`verirepair.verify.engine`) lazily imports :func:`verify_marabou_split`.
It is the independent cross-check of repaired networks: single-threaded
Marabou 2.0.0 (no Gurobi) rarely decides ACAS Xu phi2 on the whole input box
within minutes, but decides small sub-boxes in about a second each.

The cover is chosen independently of our own engine (no bounds, no branching
heuristics of ours): every input box of a property is bisected ``initial_splits``
times at the midpoint of its widest dimension, *widest relative to the box's
own widths* (so the five ACAS Xu inputs are treated alike whatever their
units).  Each piece is one Marabou query (``marabou_backend.check_box``)
with a per-piece integer timeout.  A piece that times out is bisected again,
its halves get the timeout times ``timeout_growth`` (as in Marabou's own DnC
mode), up to ``max_depth`` bisections below the root.

Verdicts (soundness first):

* ``HOLDS`` only if every leaf of the cover was ``unsat`` for the whole unsafe
  set (all polytopes of the property, one disjunctive query) and the leaves
  cover every input box exactly (bisection shares the same float midpoint, so
  there are no gaps; see :func:`bisect`);
* ``VIOLATED`` only with a ``sat`` assignment confirmed by our float64 forward
  pass (the confirm path of :mod:`verirepair.verify.marabou_backend`);
* ``TIMEOUT`` when ``config.timeout_s`` runs out with pieces still open (they
  are returned as ``open_boxes``, at most :data:`MAX_OPEN_BOXES`);
* ``UNKNOWN`` when a piece times out at ``max_depth`` or cannot be bisected
  further, or Marabou's ``sat`` is not confirmed in float64.

No query is started whose integer timeout could overrun the total deadline by
a second or more.  With ``workers >= 1`` the queries run in worker processes
(started by ``spawn``); a worker still busy a grace period after the deadline
is killed with SIGKILL (Marabou ignores SIGTERM while it solves).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Box, Property

# The per-box query and its float64 confirm path are the plain Marabou backend's own,
# so the two engines cannot drift apart in how they read Marabou's answers.
from verirepair.verify.marabou_backend import check_box, import_marabou
from verirepair.verify.pool import shutdown_pool, spawn_pool
from verirepair.verify.result import (
    Counterexample,
    Verdict,
    VerificationResult,
    VerifyConfig,
    VerifyStats,
)

logger = logging.getLogger(__name__)

ENGINE_NAME = "marabou-split"

#: At most this many undecided pieces are returned with a ``TIMEOUT`` result
#: (the same cap as our own engine's open boxes).
MAX_OPEN_BOXES = 256

#: Seconds past the total deadline after which a busy worker process is killed.
#: Marabou honours its own integer timeout, so this is only a backstop.
KILL_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class SplitConfig:
    """Settings of the split-and-conquer cover.

    Defaults were measured on repaired ACAS Xu networks, phi2, one core (see
    ``benchmarks/results/repair_crosscheck.md``).  Sampled pieces of the phi2
    box took Marabou ~10 s (mostly timeouts) at 2^5 pieces, ~6 s at 2^7, ~2 s
    at 2^9 and ~1 s at 2^12, so the total is lowest near 2^9: N2,1 phi2 was
    proven in 1181 s with 2^9 pieces (7 pieces re-split), while 2^6 pieces
    with the same 10 s piece timeout left it undecided after 1500 s (54 of
    164 queries timed out).  Easy properties (ACAS Xu phi3/phi4) are faster
    with a coarse start, e.g. ``initial_splits=2``, since every query costs
    Marabou at least ~0.2 s of preprocessing.

    Parameters
    ----------
    initial_splits : int
        Bisections applied to every input box before the first query
        (``2**initial_splits`` initial pieces per box).
    piece_timeout_s : float
        Marabou timeout of an initial piece, seconds (rounded up to an integer).
    timeout_growth : float
        A timed-out piece's halves get its timeout times this factor.
    max_depth : int
        Most bisections of a root box; a piece that times out at this depth is
        an ``UNKNOWN`` leaf.
    workers : int
        0: solve in this process; n >= 1: a pool of n worker processes (a hard
        SIGKILL guard then bounds the wall-clock time).
    record_leaves : bool
        Return every decided leaf ``(property, box index, depth, lower, upper,
        verdict, seconds)`` in ``stats.extra["leaf_records"]``.
    """

    initial_splits: int = 9
    piece_timeout_s: float = 10.0
    timeout_growth: float = 1.5
    max_depth: int = 24
    workers: int = 0
    record_leaves: bool = False

    def __post_init__(self) -> None:
        if self.initial_splits < 0 or self.max_depth < self.initial_splits:
            raise ValueError("need 0 <= initial_splits <= max_depth, got "
                             f"{self.initial_splits} and {self.max_depth}")
        if self.piece_timeout_s <= 0 or self.timeout_growth < 1.0 or self.workers < 0:
            raise ValueError("need piece_timeout_s > 0, timeout_growth >= 1 and workers >= 0")


# ----------------------------------------------------------------- partition
def bisect(box: Box, scale: np.ndarray) -> tuple[Box, Box] | None:
    """Halve ``box`` at the midpoint of its widest dimension relative to ``scale``.

    Parameters
    ----------
    box : Box, dimension d
    scale : array, shape (d,)
        Reference widths (the root box's); dimensions with scale 0 never split.

    Returns
    -------
    (Box, Box) or None
        Two closed boxes sharing the face ``x_k = m`` (the same float ``m``), so
        their union is exactly ``box``; ``None`` when no dimension can be halved
        (all relative widths zero, or the midpoint equals an end in float64).
    """
    relative = np.divide(box.width, scale, out=np.zeros(box.dim), where=scale > 0)
    k = int(np.argmax(relative))
    if relative[k] <= 0.0:
        return None
    mid = box.lower[k] + (box.upper[k] - box.lower[k]) / 2.0
    if not box.lower[k] < mid < box.upper[k]:
        return None
    upper, lower = box.upper.copy(), box.lower.copy()
    upper[k], lower[k] = mid, mid
    return Box(box.lower, upper), Box(lower, box.upper)


def initial_cover(box: Box, n_splits: int) -> list[Box]:
    """Bisect ``box`` ``n_splits`` times (breadth first, widths relative to ``box``).

    Parameters
    ----------
    box : Box
    n_splits : int >= 0

    Returns
    -------
    list of Box
        ``2**n_splits`` boxes whose union is ``box`` (fewer if a piece cannot
        be bisected, see :func:`bisect`); their volumes sum to ``box``'s.
    """
    pieces = [box]
    for _ in range(n_splits):
        nxt: list[Box] = []
        for piece in pieces:
            halves = bisect(piece, box.width)
            nxt.extend(halves if halves is not None else (piece,))
        pieces = nxt
    return pieces


# ------------------------------------------------------------------- solving
@dataclass(frozen=True, slots=True)
class _Piece:
    """One open piece of the cover."""

    prop_index: int
    box_index: int
    box: Box
    depth: int
    timeout_s: int


def _solve_piece(network: Network, prop: Property, box: Box, budget_s: int,
                 config: VerifyConfig) -> tuple[Verdict, list[Counterexample], str, float]:
    """Run one Marabou query (in this or a worker process); adds its wall time."""
    start = time.monotonic()
    verdict, cexs, message = check_box(network, prop, box, start + budget_s, config)
    return verdict, cexs, message, time.monotonic() - start


_T = TypeVar("_T")


class _InlineExecutor:
    """The executor interface, solving immediately in this process (``workers=0``)."""

    def submit(self, fn: Callable[..., _T], *args: object) -> cf.Future[_T]:
        """Run ``fn(*args)`` now and return a future that already holds its result."""
        future: cf.Future[_T] = cf.Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, kill: bool) -> None:
        """Nothing to stop."""


class _PoolExecutor:
    """A spawn process pool whose workers can be killed with SIGKILL."""

    def __init__(self, workers: int) -> None:
        self._pool = spawn_pool(workers)

    def submit(self, fn: Callable[..., _T], *args: object) -> cf.Future[_T]:
        """Run ``fn(*args)`` in a worker (as :meth:`concurrent.futures.Executor.submit`)."""
        return self._pool.submit(fn, *args)

    def shutdown(self, kill: bool) -> None:
        """Stop the pool; ``kill`` SIGKILLs workers still inside Marabou."""
        shutdown_pool(self._pool, kill)


@dataclass(slots=True)
class _Tally:
    """Mutable counters of one run, turned into :class:`VerifyStats` at the end."""

    queries: int = 0
    splits: int = 0
    leaves_unsat: int = 0
    piece_timeouts: int = 0
    max_depth: int = 0
    solver_s: float = 0.0


def verify_marabou_split(network: Network, props: Sequence[Property] | Property,
                         config: VerifyConfig, split: SplitConfig = SplitConfig()
                         ) -> VerificationResult:
    """Verify properties with Marabou on a recursive partition of each input box.

    Parameters
    ----------
    network : Network
        Affine layers with ReLUs; n_inputs / n_outputs must match the properties.
    props : Property or sequence of Property
        All must hold for ``HOLDS``; the first confirmed violation ends the run.
    config : VerifyConfig
        ``timeout_s`` is the total wall-clock budget of every query;
        ``max_counterexamples`` caps the returned counterexamples.
    split : SplitConfig

    Returns
    -------
    VerificationResult
        ``engine="marabou-split"``, verdicts as in the module docstring.
        ``stats.subproblems`` counts Marabou queries, ``stats.splits``
        bisections, ``stats.max_depth`` the deepest query; ``stats.extra`` has
        ``leaves`` (decided leaves), ``leaf_records`` (with ``record_leaves``),
        ``leaves_unsat``, ``piece_timeouts``, ``initial_pieces``, ``solver_s``
        and ``workers``.  ``open_boxes`` holds undecided pieces on ``TIMEOUT``.

    Raises
    ------
    SolverUnavailableError
        If maraboupy is not installed.
    ValueError
        If a property's dimensions do not match the network.
    """
    import_marabou()
    props = [props] if isinstance(props, Property) else list(props)
    start = time.monotonic()
    deadline = start + float(config.timeout_s)
    queue: collections.deque[_Piece] = collections.deque()
    base_timeout = max(1, math.ceil(split.piece_timeout_s))
    for p_index, prop in enumerate(props):
        if prop.n_inputs != network.n_inputs:
            raise ValueError(f"property {prop.name!r} has {prop.n_inputs} inputs, "
                             f"the network {network.n_inputs}")
        for b_index, box in enumerate(prop.input_boxes):
            queue.extend(_Piece(p_index, b_index, piece, split.initial_splits, base_timeout)
                         for piece in initial_cover(box, split.initial_splits))
    initial_pieces = len(queue)
    run = _Run(network, props, config, split, deadline)
    executor = _PoolExecutor(split.workers) if split.workers > 0 else _InlineExecutor()
    try:
        outcome = run.drain(executor, queue)
    finally:
        executor.shutdown(kill=run.overrun)
    verdict, cexs, message = outcome
    tally = run.tally
    stats = VerifyStats(
        time_s=time.monotonic() - start, subproblems=tally.queries, splits=tally.splits,
        max_depth=tally.max_depth,
        extra={"leaves": run.n_leaves, "leaves_unsat": tally.leaves_unsat,
               "piece_timeouts": tally.piece_timeouts, "initial_pieces": initial_pieces,
               "solver_s": tally.solver_s, "workers": split.workers},
    )
    if split.record_leaves:
        stats.extra["leaf_records"] = run.leaf_records
    open_boxes = tuple((p.box.lower, p.box.upper) for p in run.open_pieces[:MAX_OPEN_BOXES])
    names = ",".join(p.name for p in props)
    return VerificationResult(verdict, tuple(cexs)[: max(1, config.max_counterexamples)], stats,
                              ENGINE_NAME, names, message,
                              open_boxes if verdict is Verdict.TIMEOUT else ())


class _Run:
    """The state of one :func:`verify_marabou_split` call: a work queue of pieces."""

    def __init__(self, network: Network, props: list[Property], config: VerifyConfig,
                 split: SplitConfig, deadline: float) -> None:
        self.network, self.props, self.config, self.split = network, props, config, split
        self.deadline = deadline
        self.tally = _Tally()
        self.n_leaves = 0
        self.leaf_records: list[tuple] = []
        self.unknown: list[str] = []
        self.open_pieces: list[_Piece] = []
        self.overrun = False

    def drain(self, executor: _InlineExecutor | _PoolExecutor,
              queue: collections.deque[_Piece]) -> tuple[Verdict, list[Counterexample], str]:
        """Solve pieces until the queue is empty, a violation is confirmed, or time runs out."""
        running: dict[cf.Future, tuple[_Piece, int]] = {}
        slots = max(1, self.split.workers)
        while queue or running:
            while queue and len(running) < slots:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0.0:
                    break
                piece = queue.popleft()
                # ceil(): Marabou's timeout is an integer; the overrun stays below 1 s.
                budget = min(piece.timeout_s, max(1, math.ceil(remaining)))
                self.tally.queries += 1
                self.tally.max_depth = max(self.tally.max_depth, piece.depth)
                future = executor.submit(_solve_piece, self.network, self.props[piece.prop_index],
                                         piece.box, budget, self.config)
                running[future] = (piece, budget)
            if not running:
                break
            wait_s = max(0.0, self.deadline + KILL_GRACE_S - time.monotonic())
            done, _ = cf.wait(running, timeout=wait_s, return_when=cf.FIRST_COMPLETED)
            if not done:
                self.overrun = True
                self.open_pieces.extend(piece for piece, _ in running.values())
                break
            for future in done:
                piece, budget = running.pop(future)
                try:
                    verdict, cexs, message, seconds = future.result()
                except cf.BrokenExecutor as exc:
                    # A worker was killed from outside (or Marabou crashed it):
                    # the pool is gone, its pieces are undecided.
                    self.overrun = True
                    self.open_pieces.extend([piece, *(p for p, _ in running.values())])
                    return Verdict.UNKNOWN, [], f"a Marabou worker process died ({exc})"
                if verdict is Verdict.VIOLATED:
                    self.overrun = bool(running)
                    return Verdict.VIOLATED, cexs, ""
                cut_short = budget < piece.timeout_s or time.monotonic() >= self.deadline
                if verdict is Verdict.TIMEOUT and cut_short:
                    # The total budget, not the piece's own timeout, stopped it.
                    self.tally.piece_timeouts += 1
                    self.tally.solver_s += seconds
                    self.open_pieces.append(piece)
                    continue
                self._settle(piece, verdict, message, seconds, queue)
        self.open_pieces.extend(queue)
        if self.open_pieces:
            return (Verdict.TIMEOUT, [], f"time budget exhausted with {len(self.open_pieces)} "
                    f"pieces undecided ({self.n_leaves} leaves decided)")
        if self.unknown:
            return Verdict.UNKNOWN, [], "; ".join(self.unknown[:5])
        return Verdict.HOLDS, [], ""

    def _settle(self, piece: _Piece, verdict: Verdict, message: str, seconds: float,
                queue: collections.deque[_Piece]) -> None:
        """Record a finished non-violated piece, or bisect it / keep it open on timeout."""
        self.tally.solver_s += seconds
        logger.debug("piece depth %d (%d s): %s in %.2f s; %d leaves decided", piece.depth,
                     piece.timeout_s, verdict.value, seconds, self.n_leaves)
        if verdict is Verdict.TIMEOUT:
            self.tally.piece_timeouts += 1
            scale = self.props[piece.prop_index].input_boxes[piece.box_index].width
            halves = bisect(piece.box, scale) if piece.depth < self.split.max_depth else None
            if halves is not None:
                self.tally.splits += 1
                grown = max(1, math.ceil(piece.timeout_s * self.split.timeout_growth))
                queue.extend(_Piece(piece.prop_index, piece.box_index, half, piece.depth + 1, grown)
                             for half in halves)
                return
            verdict = Verdict.UNKNOWN
            message = (f"piece at depth {piece.depth} timed out after {piece.timeout_s} s "
                       "and is not split further (max_depth)")
        self.n_leaves += 1
        if verdict is Verdict.HOLDS:
            self.tally.leaves_unsat += 1
        else:
            self.unknown.append(f"{self.props[piece.prop_index].name} box {piece.box_index} "
                                f"depth {piece.depth}: {message}")
        if self.split.record_leaves:
            self.leaf_records.append((self.props[piece.prop_index].name, piece.box_index,
                                      piece.depth, piece.box.lower, piece.box.upper,
                                      verdict.value, seconds))
