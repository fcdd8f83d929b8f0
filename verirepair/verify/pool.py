"""Worker-process pools of the verify stage (parallel branch and bound, Marabou pieces).

Both users start workers with ``spawn`` (torch, BLAS and Marabou are not
fork-safe) and may have to stop workers that are still busy: a Marabou
process ignores SIGTERM while it solves, and a branch-and-bound worker is
not worth waiting for once another one found a counterexample.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal


def spawn_pool(workers: int) -> cf.ProcessPoolExecutor:
    """A process pool of ``workers`` processes started with ``spawn``."""
    return cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def shutdown_pool(pool: cf.ProcessPoolExecutor, kill: bool) -> None:
    """Shut ``pool`` down; with ``kill``, workers still alive get SIGKILL first."""
    if kill:
        # ProcessPoolExecutor offers no kill; its worker table is the only handle.
        for process in list(getattr(pool, "_processes", {}).values()):
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
    pool.shutdown(wait=True, cancel_futures=True)
