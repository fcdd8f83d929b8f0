"""Benchmark runner: VNN-COMP instance lists, engines side by side, comparisons.

Pipeline position: a harness beside the pipeline, not a stage (it was
``verify/bench.py``; it moved here in issue 10 because it drives the verify
stage from outside, with its own worker pool).  ``verirepair bench`` (cli.py)
and ``benchmarks/bench_compare_acasxu.py`` read an ``instances.csv`` with
:func:`read_instances`, run every (instance, engine) pair with
:func:`run_bench`, get progress through the ``on_result`` callback, and
summarise with :func:`summarize` and :func:`compare`.  Nothing here prints.

Robustness: every task runs in a worker process (``spawn`` context: Marabou is
C++, not thread-safe, and cannot be interrupted from Python).  An exception in
one instance becomes an ``error`` row; a worker that exceeds the instance's
timeout plus a grace period is killed and its row reads ``timeout``; a worker
that dies (e.g. a segfault in native code) gives an ``error`` row and is
replaced.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import multiprocessing.connection
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from verirepair.atomic import write_text_atomic
from verirepair.errors import VerirepairError
from verirepair.verify.confirm import INPUT_CLIP_TOL
from verirepair.verify.result import Verdict, VerifyConfig

#: The verdict of a row whose run raised an exception or whose worker died.
ERROR = "error"

#: Verdicts that are answers rather than give-ups.
DEFINITIVE = (Verdict.HOLDS.value, Verdict.VIOLATED.value)

#: Extra wall-clock seconds a worker gets beyond the instance's (scaled)
#: timeout before it is killed: covers process start-up, loading the files and
#: Marabou's integer-second timeout granularity.
DEFAULT_GRACE_S = 30.0


@dataclass(frozen=True, slots=True)
class Instance:
    """One benchmark instance: a network, a property file and a time budget.

    Parameters
    ----------
    onnx, vnnlib : str
        The paths as written in the CSV (used as the instance's name).
    onnx_path, vnnlib_path : str
        The same paths resolved against the CSV's folder.
    timeout_s : float
        The instance's time budget in seconds.
    """

    onnx: str
    vnnlib: str
    timeout_s: float
    onnx_path: str
    vnnlib_path: str

    @property
    def key(self) -> tuple[str, str]:
        """``(onnx, vnnlib)`` as written in the CSV."""
        return self.onnx, self.vnnlib


@dataclass(frozen=True, slots=True)
class BenchRow:
    """The outcome of one engine on one instance.

    Parameters
    ----------
    onnx, vnnlib : str
        The instance's name (paths as in the CSV).
    timeout_s : float
        The budget given to the engine (the instance's timeout times the scale).
    engine : str
    verdict : str
        A :class:`~verirepair.verify.result.Verdict` value or :data:`ERROR`.
    time_s : float
        Wall-clock seconds of the verification call (for a killed worker: until the kill).
    cex_ok : bool or None
        For ``violated``: whether the counterexample was re-checked independently
        of the engine (in one input box, unsafe in our float64 forward pass).
        ``None`` for other verdicts.
    message : str
        Why the answer is not definitive, or the error.
    """

    onnx: str
    vnnlib: str
    timeout_s: float
    engine: str
    verdict: str
    time_s: float
    cex_ok: bool | None = None
    message: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """``(onnx, vnnlib)``, the instance this row belongs to."""
        return self.onnx, self.vnnlib

    @property
    def solved(self) -> bool:
        """Whether the engine answered ``holds`` or ``violated``."""
        return self.verdict in DEFINITIVE


@dataclass(frozen=True, slots=True)
class Disagreement:
    """An instance on which two engines gave opposite definitive answers."""

    onnx: str
    vnnlib: str
    engine_a: str
    verdict_a: str
    engine_b: str
    verdict_b: str


@dataclass(frozen=True, slots=True)
class EngineSummary:
    """Aggregate numbers of one engine over a benchmark run.

    Parameters
    ----------
    instances : int
        Rows of this engine.
    solved : int
        Rows answered ``holds`` or ``violated``.
    by_verdict : dict of str to int
        Row count per verdict (every verdict key present, ``error`` included).
    total_time_s, median_time_s, max_time_s : float
        Over all rows (time-outs included, at the time they were spent).
    median_solved_time_s : float
        Over solved rows only (NaN when none).
    """

    instances: int
    solved: int
    by_verdict: dict = field(default_factory=dict)
    total_time_s: float = 0.0
    median_time_s: float = float("nan")
    max_time_s: float = 0.0
    median_solved_time_s: float = float("nan")


# ------------------------------------------------------------------- reading
def read_instances(csv_path: str | Path) -> list[Instance]:
    """Read a VNN-COMP ``instances.csv`` (rows ``onnx,vnnlib,timeout``).

    Parameters
    ----------
    csv_path : path-like
        Paths inside are relative to the file's folder; blank lines and lines
        starting with ``#`` are skipped.

    Returns
    -------
    list of Instance, in file order

    Raises
    ------
    VerirepairError
        If the file is missing, or a row does not have three fields or a
        positive numeric timeout (the message names the line).
    """
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VerirepairError(f"cannot read instance list {csv_path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        line_no = csv_path.read_bytes()[: exc.start].count(b"\n") + 1
        raise VerirepairError(f"{csv_path}: line {line_no}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                              f"at offset {exc.start})") from None
    base = csv_path.resolve().parent
    instances = []
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise VerirepairError(f"{csv_path}: not a CSV file: {exc}") from None
    for line_no, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) != 3 or not cells[0] or not cells[1]:
            raise VerirepairError(
                f"{csv_path}: line {line_no}: expected 'onnx,vnnlib,timeout', got {','.join(row)!r}"
            )
        try:
            timeout_s = float(cells[2])
        except ValueError:
            timeout_s = float("nan")
        if not timeout_s > 0.0 or not np.isfinite(timeout_s):
            raise VerirepairError(
                f"{csv_path}: line {line_no}: timeout must be a positive number of seconds, "
                f"got {cells[2]!r}"
            )
        instances.append(Instance(cells[0], cells[1], timeout_s,
                                  str(base / cells[0]), str(base / cells[1])))
    return instances


# ------------------------------------------------------------------- running
def _counterexample_ok(network: Any, props: Sequence[Any], x: np.ndarray) -> bool:
    """Re-check a counterexample without the engine: in a box and unsafe in float64."""
    y = network.forward(np.asarray(x, dtype=np.float64)[None, :])
    return any(bool(p.in_region(x, tol=INPUT_CLIP_TOL)[0]) and bool(p.is_violated_by(y)[0])
               for p in props)


def run_instance(instance: Instance, engine: str, timeout_scale: float = 1.0) -> BenchRow:
    """Verify one instance with one engine, in this process.

    Parameters
    ----------
    instance : Instance
    engine : str
        A name known to ``verirepair.verify.engine.get_verifier`` (``"own"``, ``"marabou"``).
    timeout_scale : float
        The engine's budget is ``instance.timeout_s * timeout_scale``.

    Returns
    -------
    BenchRow
        Never raises for a failure inside the run: an exception (a missing
        file, an unsupported network, a solver error) becomes an ``error`` row.
    """
    budget_s = instance.timeout_s * timeout_scale
    start = time.monotonic()
    try:
        # Imported here: the loaders and engines are heavy, and the worker
        # process should only pay for them once it has a task.
        from verirepair.network import load_network
        from verirepair.properties import parse_vnnlib
        from verirepair.verify.engine import verify

        network = load_network(instance.onnx_path)
        props = parse_vnnlib(instance.vnnlib_path)
        start = time.monotonic()
        result = verify(network, props, VerifyConfig(timeout_s=budget_s), engine=engine)
        elapsed = time.monotonic() - start
        cex_ok = None
        if result.verdict is Verdict.VIOLATED:
            cex_ok = _counterexample_ok(network, props, result.counterexamples[0].x)
        return BenchRow(instance.onnx, instance.vnnlib, budget_s, engine, result.verdict.value,
                        elapsed, cex_ok, result.message)
    except Exception as exc:  # noqa: BLE001 - one bad instance must not end the run
        return BenchRow(instance.onnx, instance.vnnlib, budget_s, engine, ERROR,
                        time.monotonic() - start, None, f"{type(exc).__name__}: {exc}")


def _worker_main(conn: multiprocessing.connection.Connection) -> None:
    """Worker loop: receive ``(task_id, instance, engine, scale)``, send back ``(task_id, row)``."""
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        task_id, instance, engine, scale = task
        conn.send((task_id, run_instance(instance, engine, scale)))


class _Worker:
    """A worker process with a pipe, killable when its task overruns."""

    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.task: tuple[int, Instance, str, float] | None = None
        self.started = 0.0
        self.deadline = 0.0

    def assign(self, task_id: int, instance: Instance, engine: str, scale: float,
               grace_s: float) -> None:
        self.task = (task_id, instance, engine, scale)
        self.started = time.monotonic()
        self.deadline = self.started + instance.timeout_s * scale + grace_s
        self.conn.send(self.task)

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _failed_row(task: tuple[int, Instance, str, float], verdict: str, elapsed: float,
                message: str) -> BenchRow:
    _, instance, engine, scale = task
    return BenchRow(instance.onnx, instance.vnnlib, instance.timeout_s * scale, engine,
                    verdict, elapsed, None, message)


class _Pool:
    """Up to ``jobs`` workers; hands out tasks, collects rows, kills overruns."""

    def __init__(self, jobs: int, timeout_scale: float, grace_s: float,
                 finish: Callable[[int, BenchRow], None]) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.jobs, self.scale, self.grace_s, self.finish = jobs, timeout_scale, grace_s, finish
        self.workers: list[_Worker] = []

    @property
    def busy(self) -> list[_Worker]:
        return [w for w in self.workers if w.task is not None]

    def fill(self, pending: deque) -> None:
        """Give pending tasks to idle workers, starting workers up to ``jobs``."""
        self.workers = [w for w in self.workers if w.process.is_alive() or w.task is not None]
        while pending:
            idle = next((w for w in self.workers if w.task is None), None)
            if idle is None:
                if len(self.workers) >= self.jobs:
                    return
                idle = _Worker(self.ctx)
                self.workers.append(idle)
            task_id, instance, engine = pending.popleft()
            idle.assign(task_id, instance, engine, self.scale, self.grace_s)

    def poll(self) -> None:
        """Wait up to 1 s for rows; record them, and kill workers past their deadline."""
        busy = self.busy
        wait_s = max(0.0, min(w.deadline for w in busy) - time.monotonic())
        ready = multiprocessing.connection.wait([w.conn for w in busy], timeout=min(wait_s, 1.0))
        for worker in busy:
            task = worker.task
            assert task is not None, "a busy worker has a task"  # for mypy: see busy
            elapsed = time.monotonic() - worker.started
            if worker.conn in ready:
                try:
                    task_id, row = worker.conn.recv()
                except (EOFError, OSError):
                    self._drop(worker)
                    self.finish(task[0], _failed_row(
                        task, ERROR, elapsed,
                        f"worker process died (exit code {worker.process.exitcode})"))
                    continue
                worker.task = None
                self.finish(task_id, row)
            elif time.monotonic() > worker.deadline:
                self._drop(worker)
                self.finish(task[0], _failed_row(
                    task, Verdict.TIMEOUT.value, elapsed,
                    f"killed after {elapsed:.0f} s (timeout + {self.grace_s:.0f} s grace)"))

    def _drop(self, worker: _Worker) -> None:
        worker.kill()
        self.workers.remove(worker)

    def close(self) -> None:
        for worker in self.workers:
            if worker.task is None:
                worker.stop()
            else:
                worker.kill()
        self.workers = []


def run_bench(instances: Sequence[Instance], engines: Sequence[str], jobs: int = 1,
              timeout_scale: float = 1.0, on_result: Callable[[BenchRow], None] | None = None,
              grace_s: float = DEFAULT_GRACE_S) -> list[BenchRow]:
    """Run every engine on every instance in worker processes.

    Parameters
    ----------
    instances : sequence of Instance
    engines : sequence of str
        Engine names, run in this order on each instance.
    jobs : int
        Worker processes running at once (>= 1).  Each worker is a ``spawn``ed
        process; set ``OMP_NUM_THREADS=1`` in the environment when ``jobs`` is
        the number of cores.
    timeout_scale : float
        Multiplies every instance's timeout.
    on_result : callable, optional
        Called in this process with each :class:`BenchRow` as soon as it is
        done (completion order), e.g. to advance a progress bar.
    grace_s : float
        A worker still busy ``timeout + grace_s`` seconds after it got its task
        is killed; its row reads ``timeout``.

    Returns
    -------
    list of BenchRow
        In task order: for each instance, one row per engine.

    Raises
    ------
    ValueError
        If ``jobs < 1`` or no engine is given.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if not engines:
        raise ValueError("at least one engine is needed")
    pending = deque((i, inst, eng) for i, (inst, eng) in
                    enumerate((inst, eng) for inst in instances for eng in engines))
    rows: dict[int, BenchRow] = {}

    def finish(task_id: int, row: BenchRow) -> None:
        rows[task_id] = row
        if on_result is not None:
            on_result(row)

    pool = _Pool(jobs, timeout_scale, grace_s, finish)
    try:
        while pending or pool.busy:
            pool.fill(pending)
            pool.poll()
    finally:
        pool.close()
    return [rows[i] for i in sorted(rows)]


# --------------------------------------------------------------- aggregation
def compare(rows: Sequence[BenchRow], engines: Sequence[str] | None = None) -> list[Disagreement]:
    """Instances where two engines both answered definitively and disagree.

    Parameters
    ----------
    rows : sequence of BenchRow
    engines : sequence of str, optional
        The engines to compare pairwise (``--compare A,B``); default: every
        engine present in ``rows``.

    Returns
    -------
    list of Disagreement
        One per instance and engine pair, in the order instances first appear.
    """
    by_key: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        by_key.setdefault(row.key, {})[row.engine] = row.verdict
    if engines is None:
        engines = list(dict.fromkeys(row.engine for row in rows))
    found = []
    for (onnx, vnnlib), verdicts in by_key.items():
        for i, engine_a in enumerate(engines):
            for engine_b in engines[i + 1:]:
                a, b = verdicts.get(engine_a), verdicts.get(engine_b)
                if a in DEFINITIVE and b in DEFINITIVE and a != b:
                    found.append(Disagreement(onnx, vnnlib, engine_a, a, engine_b, b))
    return found


def summarize(rows: Sequence[BenchRow]) -> dict[str, EngineSummary]:
    """Per-engine totals: solved count, rows per verdict and time statistics.

    Parameters
    ----------
    rows : sequence of BenchRow

    Returns
    -------
    dict of str to EngineSummary, engines in order of first appearance
    """
    summaries = {}
    for engine in dict.fromkeys(row.engine for row in rows):
        mine = [row for row in rows if row.engine == engine]
        times = [row.time_s for row in mine]
        solved_times = [row.time_s for row in mine if row.solved]
        by_verdict = {v.value: 0 for v in Verdict} | {ERROR: 0}
        for row in mine:
            by_verdict[row.verdict] = by_verdict.get(row.verdict, 0) + 1
        summaries[engine] = EngineSummary(
            instances=len(mine),
            solved=len(solved_times),
            by_verdict=by_verdict,
            total_time_s=float(sum(times)),
            median_time_s=float(statistics.median(times)),
            max_time_s=float(max(times)),
            median_solved_time_s=(float(statistics.median(solved_times))
                                  if solved_times else float("nan")),
        )
    return summaries


# -------------------------------------------------------------------- CSV I/O
_COLUMNS = [f.name for f in fields(BenchRow)]


def write_rows_csv(rows: Sequence[BenchRow], path: str | Path) -> None:
    """Write rows to ``path`` as CSV with a header, atomically.

    ``cex_ok`` is written as ``true`` / ``false`` / empty; times with full precision.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_COLUMNS)
    for row in rows:
        cex = "" if row.cex_ok is None else str(row.cex_ok).lower()
        writer.writerow([row.onnx, row.vnnlib, repr(row.timeout_s), row.engine, row.verdict,
                         repr(row.time_s), cex, row.message])
    write_text_atomic(Path(path), buffer.getvalue())


def read_rows_csv(path: str | Path) -> list[BenchRow]:
    """Read rows written by :func:`write_rows_csv` (e.g. to merge separate runs).

    Raises
    ------
    VerirepairError
        If the file cannot be read, its header differs from :func:`write_rows_csv`'s,
        or a row is malformed.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise VerirepairError(f"cannot read rows file {path}: {exc}") from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != _COLUMNS:
        raise VerirepairError(f"{path}: line 1: expected header {','.join(_COLUMNS)}")
    rows = []
    for line_no, cells in enumerate(reader, start=2):
        if not cells:
            continue
        try:
            onnx, vnnlib, timeout_s, engine, verdict, time_s, cex, message = cells
            cex_ok = {"": None, "true": True, "false": False}[cex]
            rows.append(BenchRow(onnx, vnnlib, float(timeout_s), engine, verdict,
                                 float(time_s), cex_ok, message))
        except (ValueError, KeyError) as exc:
            raise VerirepairError(f"{path}: line {line_no}: malformed row ({exc})") from exc
    return rows
