"""The independent cross-check of a delivered network, in a process that can be stopped.

Pipeline position: :func:`verirepair.pipeline.run_pipeline` calls
:func:`cross_check` on the delivered file after our engine proved every
property.  Each property group is checked by a second engine (Marabou) in a
child process started with ``spawn``:

* Marabou's C++ solve holds SIGINT for as long as it runs (measured: 108 s
  before an interrupt took effect), and its own timeout is not a hard wall.
  A child process can be killed at once, so the run's total budget and
  Ctrl-C are honoured whatever the engine does.
* The child loads the network from the delivered file, so the check speaks
  about the delivered bytes, not about the array in this process.

An engine that is not installed, a child that crashes, and a budget that runs
out are recorded as verdicts (``unknown`` / ``timeout``) with a message; none
of them stops the run.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from verirepair.outcome import VerdictRecord
from verirepair.properties.property import Property
from verirepair.verify.result import Verdict, VerificationResult, VerifyConfig, VerifyStats

#: Seconds a child gets to start (spawn, imports) on top of the engine's own budget
#: before it is killed.
STARTUP_GRACE_S = 10.0

#: A cross-check is not started with less than this many seconds of budget left.
MIN_BUDGET_S = 1.0


#: The second engine's answer on one property group: a verdict record whose
#: ``time_s`` includes the child's start.
CrossCheckEntry = VerdictRecord


def _child_main(conn: multiprocessing.connection.Connection, network_path: str,
                props: list[Property], engine: str, config: VerifyConfig) -> None:
    """Child process: verify ``props`` on the file's network and send back the result."""
    try:
        from verirepair.errors import SolverUnavailableError
        from verirepair.network import load_network
        from verirepair.verify import verify

        network = load_network(Path(network_path))
        try:
            conn.send(verify(network, props, config, engine=engine))
        except SolverUnavailableError as exc:
            conn.send(VerificationResult(Verdict.UNKNOWN, engine=engine, message=str(exc)))
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        conn.send(VerificationResult(Verdict.UNKNOWN, engine=engine,
                                     message=f"verifier process crashed: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def verify_in_child(network_path: Path, props: list[Property], engine: str, config: VerifyConfig,
                    hard_deadline: float) -> VerificationResult:
    """``verify`` in a ``spawn`` child that is killed at ``hard_deadline`` or on any exception.

    Parameters
    ----------
    network_path : Path -- the child loads the network from this file
    props : list of Property
    engine : str -- a verifier name
    config : VerifyConfig -- its ``timeout_s`` is the engine's own budget
    hard_deadline : float -- ``time.perf_counter()`` value at which the child is killed

    Returns
    -------
    VerificationResult -- TIMEOUT when killed, UNKNOWN when the child died
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child_main, args=(child, str(network_path), props, engine, config),
                          daemon=True)
    started = time.perf_counter()
    process.start()
    child.close()

    def failed(verdict: Verdict, message: str) -> VerificationResult:
        return VerificationResult(verdict, engine=engine, message=message,
                                  stats=VerifyStats(time_s=time.perf_counter() - started))

    try:
        while True:
            left = hard_deadline - time.perf_counter()
            if left <= 0:
                return failed(Verdict.TIMEOUT, "the budget ran out; the verifier process was killed")
            if parent.poll(min(0.2, left)):
                try:
                    return parent.recv()
                except EOFError:
                    return failed(Verdict.UNKNOWN, f"verifier process died (exit code {process.exitcode})")
            if not process.is_alive() and not parent.poll(0):
                return failed(Verdict.UNKNOWN, f"verifier process died (exit code {process.exitcode})")
    finally:
        # Also on KeyboardInterrupt: the solver in the child does not react to SIGINT.
        if process.is_alive():
            process.kill()
        process.join(1.0)
        parent.close()


def cross_check(network_path: Path, named: Sequence[tuple[str, list[Property]]], engine: str,
                timeout_s: float, deadline: float, seed: int = 0,
                on_verdict: Callable[[str, CrossCheckEntry], None] | None = None) -> dict[str, CrossCheckEntry]:
    """Check every property group of ``named`` on the network stored at ``network_path``.

    Parameters
    ----------
    network_path : Path -- the delivered file (the child loads it)
    named : list of (name, list of Property)
    engine : str -- a verifier name (``"marabou"``, ``"marabou-split"``, ``"own"``)
    timeout_s : float -- budget per property group
    deadline : float -- ``time.perf_counter()`` value by which every check has ended
    seed : int
    on_verdict : callable(name, entry) or None -- called as each group is decided

    Returns
    -------
    dict name -> CrossCheckEntry
    """
    entries: dict[str, CrossCheckEntry] = {}
    for name, props in named:
        start = time.perf_counter()
        left = deadline - start
        if left < MIN_BUDGET_S:
            entry = CrossCheckEntry(Verdict.TIMEOUT, engine, 0.0, 0, "not started: the run's budget ran out")
        else:
            budget = min(timeout_s, left)
            hard = min(deadline, start + budget + STARTUP_GRACE_S)
            result = verify_in_child(network_path, props, engine, VerifyConfig(timeout_s=budget, seed=seed), hard)
            entry = CrossCheckEntry(result.verdict, engine, time.perf_counter() - start, 0, result.message)
        entries[name] = entry
        if on_verdict is not None:
            on_verdict(name, entry)
    return entries
