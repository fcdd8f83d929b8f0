"""Branch and bound on several processes (``VerifyConfig.workers > 1``).

Pipeline position: :func:`verirepair.verify.engine.verify_own` calls
:func:`parallel_search` when ``config.workers > 1``.

Algorithm.  The search first runs in this process for :data:`WARMUP_S`
seconds, so easy instances never pay for starting processes.  If it is still
open then, its depth-first stack (the open sub-boxes with their inherited
layer bounds) is dealt round-robin into ``CHUNKS_PER_WORKER * workers`` chunks,
so every chunk mixes large and small boxes, and a pool of ``workers`` processes
(``spawn`` context: torch and BLAS are not fork-safe) resumes the search on one
chunk at a time.

Soundness.  The chunks partition the open stack, and every box outside it was
already excluded, so the property holds iff every chunk's search ends
``HOLDS``; a worker that dies makes the run ``UNKNOWN``.  A worker's
counterexample is confirmed by its own float64 forward pass, as in the
sequential search.  The first ``VIOLATED`` chunk ends the run
and the other workers are killed; a chunk that ends ``TIMEOUT`` makes the run
``TIMEOUT`` (its open boxes are reported), an ``UNKNOWN`` chunk makes it
``UNKNOWN``.  Every chunk shares the caller's deadline, measured again
in the worker against ``time.monotonic()``, so the deadline is honoured to
within a worker's start-up (about a second) and the pool's shutdown.
"""

from __future__ import annotations

import concurrent.futures as cf
import time

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Property
from verirepair.verify import bab
from verirepair.verify.pool import shutdown_pool, spawn_pool
from verirepair.verify.result import Verdict, VerifyConfig
from verirepair.verify.search_state import BoxStack, SearchOutcome

#: Seconds the search runs in the calling process before it spreads out.
WARMUP_S = 3.0
#: Chunks handed out per worker (more chunks balance the load better).
CHUNKS_PER_WORKER = 4
#: Seconds past the deadline after which workers still busy are killed and the
#: run ends ``TIMEOUT``.  Each worker checks the deadline between its batches,
#: so this is only a backstop; it must cover a worker's start-up (importing
#: the package takes 1-3 s on a loaded machine), as a chunk that starts after
#: the deadline still has to report back.
KILL_GRACE_S = 5.0


def _deal(stack: BoxStack, n_chunks: int) -> list[tuple[np.ndarray, ...]]:
    """Split the stack's boxes round-robin into at most ``n_chunks`` non-empty chunks."""
    fields = stack.pop(len(stack))
    size = fields[0].shape[0]
    return [tuple(f[start::n_chunks] for f in fields) for start in range(min(n_chunks, size))]


def _resume(network: Network, prop: Property, config: VerifyConfig, deadline_monotonic: float,
            chunk: tuple[np.ndarray, ...], done_before: int) -> SearchOutcome:
    """Worker: continue the search on ``chunk`` until ``deadline_monotonic`` (``time.monotonic``)."""
    budget_s = deadline_monotonic - time.monotonic()
    search = bab.BranchAndBound(network, prop, config, time.perf_counter() + budget_s)
    # The chunk comes from a search that has bounded ``done_before`` boxes, so
    # alpha-CROWN (which starts after ALPHA_AFTER_SUBPROBLEMS) stays on.
    search.outcome.subproblems = done_before
    stack = BoxStack()
    stack.push(chunk)
    outcome = search.run(stack)
    outcome.subproblems -= done_before
    return outcome


def _fold(outcome: SearchOutcome, part: SearchOutcome) -> None:
    """Add a finished chunk's effort counters to ``outcome``."""
    outcome.subproblems += part.subproblems
    outcome.splits += part.splits
    outcome.lp_calls += part.lp_calls
    outcome.max_depth = max(outcome.max_depth, part.max_depth)


def _box_arrays(chunk: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A chunk's ``(lower, upper)`` arrays, shapes (n, d) (its first two fields)."""
    return chunk[0], chunk[1]


def _gather(chunk_of: dict[cf.Future, tuple[np.ndarray, ...]], deadline: float,
            outcome: SearchOutcome
            ) -> tuple[Verdict | None, list[str], list[tuple[np.ndarray, np.ndarray]]]:
    """Wait for the chunks' searches and fold them into ``outcome``.

    At the deadline, chunks no worker has started are cancelled (their boxes
    are open as they are); workers still busy :data:`KILL_GRACE_S` later are
    given up (the caller kills them) and their chunks count as open too.

    Returns
    -------
    verdict : Verdict or None
        HOLDS, UNKNOWN or TIMEOUT over all chunks; None when ``outcome`` is
        already final (a confirmed violation, or a worker process that died).
    messages : list of str
    opened : list of (lower, upper) arrays -- boxes left open
    """
    pending = set(chunk_of)
    verdict: Verdict = Verdict.HOLDS
    messages: list[str] = []
    opened: list[tuple[np.ndarray, np.ndarray]] = []
    while pending:
        now = time.perf_counter()
        if now > deadline:
            cancelled = [f for f in pending if f.cancel()]
            if cancelled:
                pending.difference_update(cancelled)
                verdict = Verdict.TIMEOUT
                messages.append(f"{len(cancelled)} worker chunks not started by the deadline")
                opened.extend(_box_arrays(chunk_of[future]) for future in cancelled)
            if not pending:
                break
        limit = deadline if now <= deadline else deadline + KILL_GRACE_S
        done, pending = cf.wait(pending, timeout=max(0.0, limit - now),
                                return_when=cf.FIRST_COMPLETED)
        if not done and time.perf_counter() > deadline + KILL_GRACE_S:
            verdict = Verdict.TIMEOUT
            messages.append(f"{len(pending)} worker chunks still busy {KILL_GRACE_S:g} s "
                            "after the deadline were stopped")
            opened.extend(_box_arrays(chunk_of[future]) for future in pending)
            break
        for future in done:
            try:
                part = future.result()
            except cf.BrokenExecutor as exc:
                # A worker was killed from outside (out of memory, a signal):
                # its sub-boxes are undecided, which is no proof either way.
                outcome.verdict = Verdict.UNKNOWN
                outcome.message = f"a branch-and-bound worker process died ({exc})"
                return None, [], []
            _fold(outcome, part)
            if part.verdict is Verdict.VIOLATED:
                outcome.verdict, outcome.counterexamples = Verdict.VIOLATED, part.counterexamples
                return None, [], []
            if part.verdict is Verdict.TIMEOUT:
                verdict = Verdict.TIMEOUT
                if part.open_lower is not None and part.open_upper is not None:
                    opened.append((part.open_lower, part.open_upper))
            elif part.verdict is Verdict.UNKNOWN and verdict is Verdict.HOLDS:
                verdict = Verdict.UNKNOWN
            if part.message:
                messages.append(part.message)
    return verdict, messages, opened


def parallel_search(network: Network, prop: Property, config: VerifyConfig, deadline: float
                    ) -> SearchOutcome:
    """Decide ``prop`` like :func:`bab.search`, with ``config.workers`` processes.

    Parameters
    ----------
    network : Network
    prop : Property
    config : VerifyConfig -- ``workers >= 2``
    deadline : float -- ``time.perf_counter()`` value at which to stop

    Returns
    -------
    SearchOutcome
        Counters (subproblems, splits, LP calls; max depth the maximum) summed
        over the warm-up and every worker.
    """
    lead = bab.BranchAndBound(network, prop, config, deadline)
    outcome = lead.run(pause_at=min(deadline, time.perf_counter() + WARMUP_S))
    if lead.paused is None:
        return outcome
    chunks = _deal(lead.paused, CHUNKS_PER_WORKER * config.workers)
    done_before = outcome.subproblems
    pool = spawn_pool(config.workers)
    # One clock for every process: CLOCK_MONOTONIC is system-wide (perf_counter's
    # origin is not guaranteed to be), and a chunk that waited in the queue
    # must not get a fresh budget.
    deadline_monotonic = time.monotonic() + (deadline - time.perf_counter())
    chunk_of = {pool.submit(_resume, network, prop, config, deadline_monotonic, chunk,
                            done_before): chunk for chunk in chunks}
    try:
        verdict, messages, opened = _gather(chunk_of, deadline, outcome)
    finally:
        shutdown_pool(pool, kill=True)
    if verdict is None:                  # a violation, or a dead worker: outcome is final
        return outcome
    outcome.verdict = verdict
    outcome.message = "; ".join(messages[:4])
    if opened:
        lows = np.vstack([lo for lo, _ in opened])[:bab.MAX_OPEN_BOXES_REPORTED]
        highs = np.vstack([hi for _, hi in opened])[:bab.MAX_OPEN_BOXES_REPORTED]
        outcome.open_lower, outcome.open_upper = lows, highs
    return outcome
