"""Run a campaign's jobs on Dask, resume where it stopped, and write results.csv and campaign.json.

Pipeline position: driven by ``verirepair campaign`` (cli/campaign_commands.py); each job is
:func:`verirepair.harness.campaign.jobs.run_job` on a Dask worker.  The scheduling is Dask's
(``dask.distributed``): a :class:`~distributed.LocalCluster` sized to the machine, or any cluster
given by its scheduler address, so the same command runs on a laptop or on many machines.  The
campaign folder must then be on a file system every worker sees, and the paths in the
specification must mean the same on every machine.

Resuming: a job whose ``result.json`` exists is finished and is not run again (unless
``retry_errors`` and its result is ``error``).  Losing a worker loses nothing: Dask reruns its
task elsewhere (up to ``distributed.scheduler.allowed-failures`` times; after that the job is
recorded as ``error``).  Interrupting the campaign (KeyboardInterrupt) cancels what is running;
the next run does what is missing.

Nothing here prints: progress goes to ``on_event(kind, info)`` with kind ``"start"`` (info:
``total``, ``done_before``, ``pending``, ``workers``, ``scheduler``), ``"job"`` (``result``: a
:class:`JobResult`, ``done``, ``failed``, ``total``), ``"tick"`` (``running``, ``done``,
``failed``, ``total``, ``elapsed_s``, ``eta_s``) and ``"end"``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verirepair.atomic import write_text_atomic
from verirepair.harness.campaign.jobs import ERROR, JobResult, job_dir, read_result, run_job, write_result
from verirepair.harness.campaign.spec import CampaignSpec, Job, spec_summary

#: Results that count as failures in the progress display and the exit code.
FAILED_RESULTS = frozenset({ERROR, "timeout", "partial", "failed"})

#: Columns of results.csv, in order.
CSV_FIELDS = ("network", "vnnlib", "result", "kind", "certified", "time_s", "message", "job_id", "report",
              "host")

CampaignEvent = Callable[[str, dict], None]


@dataclass(frozen=True, slots=True)
class CampaignOutcome:
    """What a campaign run did.

    Parameters
    ----------
    results : dict of job_id to JobResult -- every finished job of the specification
    ran : tuple of str -- job ids run by this invocation
    skipped : tuple of str -- job ids already finished before it
    interrupted : bool -- the run was stopped before every job finished
    wall_s : float -- seconds of this invocation
    workers : int -- Dask workers used
    """

    results: dict
    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    interrupted: bool
    wall_s: float
    workers: int

    def counts(self) -> dict[str, int]:
        """Jobs per result word (finished jobs only)."""
        counts: dict[str, int] = {}
        for result in self.results.values():
            counts[result.result] = counts.get(result.result, 0) + 1
        return dict(sorted(counts.items()))


def default_workers() -> int:
    """Processes this machine offers (CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def finished_results(spec: CampaignSpec, out_dir: Path) -> dict[str, JobResult]:
    """The results already recorded in ``out_dir`` for the jobs of ``spec``."""
    found = {}
    for job in spec.jobs:
        result = read_result(out_dir, job)
        if result is not None:
            found[job.job_id] = result
    return found


def results_csv(spec: CampaignSpec, results: dict[str, JobResult]) -> str:
    """results.csv: one row per finished job, in the specification's order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for job in spec.jobs:
        r = results.get(job.job_id)
        if r is None:
            continue
        report = r.outputs.get("report_html") or r.outputs.get("result_file") or ""
        writer.writerow({"network": r.network, "vnnlib": r.vnnlib, "result": r.result, "kind": r.kind,
                         "certified": "" if r.certified is None else str(r.certified).lower(),
                         "time_s": f"{r.time_s:.3f}", "message": r.message, "job_id": r.job_id,
                         "report": report, "host": r.host})
    return buffer.getvalue()


def write_summary_files(spec: CampaignSpec, out_dir: Path, results: dict[str, JobResult],
                        sessions: list[dict]) -> None:
    """results.csv, campaign.json and index.html, each written atomically."""
    from verirepair.harness.campaign.index_page import render_index

    write_text_atomic(out_dir / "results.csv", results_csv(spec, results))
    counts: dict[str, int] = {}
    for r in results.values():
        counts[r.result] = counts.get(r.result, 0) + 1
    pending = [job.job_id for job in spec.jobs if job.job_id not in results]
    campaign = {"spec": spec_summary(spec), "total": len(spec.jobs), "finished": len(results),
                "pending": pending, "counts": dict(sorted(counts.items())), "sessions": sessions,
                "jobs": [results[j.job_id].to_dict() for j in spec.jobs if j.job_id in results]}
    write_text_atomic(out_dir / "campaign.json", json.dumps(campaign, indent=2))
    write_text_atomic(out_dir / "index.html", render_index(spec, results, sessions))


def previous_sessions(out_dir: Path) -> list[dict]:
    """The ``sessions`` list of an existing campaign.json (empty when there is none)."""
    try:
        sessions = json.loads((out_dir / "campaign.json").read_text(encoding="utf-8")).get("sessions", [])
    except (OSError, ValueError, AttributeError):
        return []
    return sessions if isinstance(sessions, list) else []


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _lost_job_result(job: Job, exc: BaseException) -> JobResult:
    """The record of a job whose Dask task failed (its worker died too often, or it could not start)."""
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    if name == "KilledWorker":
        text = f"the workers running it died repeatedly ({text})"
    return JobResult(job.job_id, job.kind, job.network, job.vnnlib, ERROR, 0.0, f"{name}: {text}"[:500],
                     finished_utc=_now())


def _start_client(scheduler: str | None, workers: int) -> tuple[Any, Any, int]:
    """``(client, cluster or None, workers)``: a LocalCluster of ``workers`` processes, or the given one."""
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler, timeout=30)
        n = len(client.scheduler_info().get("workers", {})) or 1
        return client, None, n
    # Dask's INFO lines (every worker registering, closing) and its warnings about the tasks an
    # interrupt cancels would drown the campaign's own; what goes wrong with a job is in its record.
    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core",
                 "distributed.http.proxy", "distributed.worker", "distributed.worker.state_machine"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import dask

    # A worker holds only the task it runs (no queue of its own): the scheduler keeps the rest,
    # so a worker that dies takes one job with it, and idle workers always get the next job.
    # (The scheduler reads the setting when it starts: set for that moment only.)
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
    return Client(cluster), cluster, workers


def run_campaign(spec: CampaignSpec, out_dir: str | Path, scheduler: str | None = None,
                 workers: int | None = None, retry_errors: bool = False, grace_s: float | None = None,
                 on_event: CampaignEvent | None = None) -> CampaignOutcome:
    """Run every job of ``spec`` that is not finished in ``out_dir``, on Dask.

    Parameters
    ----------
    spec : CampaignSpec
    out_dir : path -- the campaign folder (created); results.csv, campaign.json, index.html, jobs/
    scheduler : str or None -- address of a running Dask scheduler (``tcp://HOST:PORT``); None
        starts a LocalCluster of ``workers`` processes
    workers : int or None -- LocalCluster size (default: the machine's CPUs)
    retry_errors : bool -- run again the jobs recorded as ``error``
    grace_s : float or None -- seconds a job's process gets beyond its budget (default
        :data:`~verirepair.harness.campaign.jobs.GRACE_S`)
    on_event : callable(kind, info) or None -- progress (see the module docstring)

    Returns
    -------
    CampaignOutcome

    Raises
    ------
    KeyboardInterrupt -- after cancelling the running jobs and writing the summary files
    """
    from distributed import wait

    from verirepair.harness.campaign.jobs import GRACE_S

    emit = on_event or (lambda kind, info: None)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = finished_results(spec, out)
    if retry_errors:
        results = {k: r for k, r in results.items() if r.result != ERROR}
    pending = [job for job in spec.jobs if job.job_id not in results]
    skipped = tuple(results)
    sessions = previous_sessions(out)
    session: dict[str, Any] = {"started_utc": _now(), "scheduler": scheduler or "LocalCluster",
                               "workers": 0, "ran": 0, "status": "running"}
    sessions.append(session)
    n_workers = workers or default_workers()
    ran: list[str] = []
    failed = sum(1 for r in results.values() if r.result in FAILED_RESULTS)
    client: Any = None
    cluster: Any = None
    interrupted = True
    try:
        if pending:
            client, cluster, n_workers = _start_client(scheduler, min(n_workers, len(pending)))
        session["workers"] = n_workers
        write_summary_files(spec, out, results, sessions)
        emit("start", {"total": len(spec.jobs), "done_before": len(results), "pending": len(pending),
                       "workers": n_workers, "scheduler": session["scheduler"]})
        futures = {}
        for job in pending:
            # pure=False: a fresh key per submission, so a rerun never reuses a stale task.
            future = client.submit(run_job, job, str(out.resolve()),
                                   GRACE_S if grace_s is None else grace_s, pure=False,
                                   key=f"{job.job_id}-{time.time_ns()}")
            futures[future] = job
        remaining = set(futures)
        while remaining:
            try:
                done, _ = wait(list(remaining), timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            for future in done:
                remaining.discard(future)
                job = futures[future]
                result = _collect(future, job, out)
                results[job.job_id] = result
                ran.append(job.job_id)
                failed += result.result in FAILED_RESULTS
                session["ran"] = len(ran)
                write_summary_files(spec, out, results, sessions)
                emit("job", {"result": result, "done": len(results), "failed": failed, "total": len(spec.jobs)})
            elapsed = time.perf_counter() - started
            rate = elapsed / len(ran) if ran else None
            running = _running(client, {f.key for f in remaining})
            emit("tick", {"running": running, "done": len(results), "failed": failed, "total": len(spec.jobs),
                          "elapsed_s": elapsed, "eta_s": None if rate is None else rate * len(remaining)})
        interrupted = False
    finally:
        session["status"] = "interrupted" if interrupted else "complete"
        session["finished_utc"] = _now()
        session["wall_s"] = round(time.perf_counter() - started, 3)
        session["ran"] = len(ran)
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        # Jobs whose worker wrote result.json after the last one collected here (an interrupt
        # arrived in between) are finished too: the files on disk are the record.
        results.update({k: r for k, r in finished_results(spec, out).items() if k not in results})
        write_summary_files(spec, out, results, sessions)
        emit("end", {"interrupted": interrupted})
    return CampaignOutcome(results, tuple(ran), skipped, interrupted, time.perf_counter() - started, n_workers)


def _collect(future: Any, job: Job, out: Path) -> JobResult:
    """The job's result: as its worker wrote it, or an ``error`` record when its task failed."""
    try:
        result = JobResult.from_dict(future.result())
    except Exception as exc:
        result = _lost_job_result(job, exc)
    # The worker wrote result.json already (on a shared file system); write it here too, so the
    # campaign folder has it even where the workers write elsewhere, and for a lost job.
    if read_result(out, job) is None:
        job_dir(out, job).mkdir(parents=True, exist_ok=True)
        write_result(out, result, job)
    return result


def _running(client: Any, keys: set) -> int:
    """How many of ``keys`` are running now (0 when the scheduler cannot say).

    The scheduler's "processing" also counts tasks queued on a worker behind the one it runs,
    so each worker counts at most as many as it has threads.
    """
    try:
        processing = client.processing()
        threads = client.nthreads()
    except Exception:
        return 0
    return sum(min(threads.get(worker, 1), sum(1 for key in tasks if key in keys))
               for worker, tasks in processing.items())
