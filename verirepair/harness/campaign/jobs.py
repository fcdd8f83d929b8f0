"""Run one campaign job in its own process, within its budget, and record its result atomically.

Pipeline position: the unit of work of :mod:`verirepair.harness.campaign`; a Dask worker runs
:func:`run_job`.  The job itself is the ``verirepair verify`` or ``verirepair repair`` command
(the same validation, budgets and outputs as by hand) in a child process, so that:

* a job that hangs is killed at its budget plus :data:`GRACE_S` (its whole process group) and
  recorded as ``timeout``; a job that crashes (an exception, a segfault in native code, an
  unexpected exit code) is recorded as ``error`` with the last line it wrote to stderr;
* a Dask worker that dies takes its child with it (``PR_SET_PDEATHSIG`` on Linux), so no orphan
  writes into a job folder that another worker is re-running;
* the result is written last, as one atomic ``result.json`` per job: a job folder without it is
  a job to (re)do, one with it is finished.

Layout of a job's folder ``DIR/jobs/<job_id>/``: ``result.json``, ``stderr.txt``, and for verify
jobs ``result.txt`` (the VNN-COMP result file), for repair jobs ``repaired.onnx`` (only when
certified) and ``report/`` (report.json, report.md, report.html, plots).
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from verirepair.atomic import write_text_atomic
from verirepair.harness.campaign.spec import Job

#: Seconds a job's process gets beyond the job's budget before it is killed: the command's own
#: ``--timeout`` ends it first; this covers start-up (imports) and writing the report.
GRACE_S = 30.0

#: Verify results (VNN-COMP words) and the extra words a campaign records.
VERIFY_RESULTS = ("sat", "unsat", "timeout", "unknown")
ERROR = "error"
TIMEOUT = "timeout"

#: Exit codes of ``verirepair repair`` that are results, not errors (cli/common.py).
_REPAIR_EXIT_CODES = (0, 3, 4)

RESULT_FILE = "result.json"


@dataclass(frozen=True, slots=True)
class JobResult:
    """The recorded outcome of one job.

    Parameters
    ----------
    job_id, kind, network, vnnlib : str -- the job (paths as the specification gives them)
    result : str -- verify: sat/unsat/timeout/unknown/error; repair: the pipeline status
        (repaired, not_needed, partial, failed) or timeout/error
    time_s : float -- wall-clock seconds of the job's process
    message : str -- the error, or why the result is not definitive ("" otherwise)
    certified : bool or None -- repair jobs: the report's verdict
    exit_code : int or None -- of the job's process (None when killed at its budget)
    outputs : dict of str to str -- files of the job, relative to the campaign folder
    host : str -- the machine that ran it
    started_utc, finished_utc : str
    """

    job_id: str
    kind: str
    network: str
    vnnlib: str
    result: str
    time_s: float
    message: str = ""
    certified: bool | None = None
    exit_code: int | None = None
    outputs: dict = field(default_factory=dict)
    host: str = ""
    started_utc: str = ""
    finished_utc: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def job_dir(campaign_dir: str | Path, job: Job) -> Path:
    """The folder of ``job`` inside the campaign folder."""
    return Path(campaign_dir) / "jobs" / job.job_id


def read_result(campaign_dir: str | Path, job: Job) -> JobResult | None:
    """The recorded result of ``job``, or None when it is not finished (or the file is unreadable)."""
    path = job_dir(campaign_dir, job) / RESULT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        result = JobResult.from_dict(data)
    except (OSError, ValueError, TypeError):
        return None
    return result if result.job_id == job.job_id else None


def write_result(campaign_dir: str | Path, result: JobResult, job: Job) -> Path:
    """Write ``result.json`` of ``job`` atomically."""
    return write_text_atomic(job_dir(campaign_dir, job) / RESULT_FILE, json.dumps(result.to_dict(), indent=2))


def job_command(job: Job, folder: Path) -> list[str]:
    """The ``verirepair`` command line that runs ``job`` with its outputs in ``folder``."""
    base = [sys.executable, "-m", "verirepair.cli"]
    budget = f"{job.timeout_s:g}"
    if job.kind == "verify":
        return [*base, "verify", job.network_path, job.vnnlib_paths[0], "--engine", job.engine,
                "--timeout", budget, "--out", str(folder / "result.txt"), "--json"]
    argv = [*base, "repair", job.network_path, "--task", job.task, "--timeout", budget,
            "--out", str(folder / "repaired.onnx"), "--report", str(folder / "report")]
    for prop in job.vnnlib_paths:
        argv += ["--property", prop]
    if job.config_path:
        argv += ["--config", job.config_path]
    return argv


def _load_prctl() -> Any:
    """libc's ``prctl``, looked up once in the parent (nothing is loaded between fork and exec)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the thread that started it dies (Linux only)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    """What a budgeted child process did: exit code (None: killed at the budget), time, stderr tail."""

    exit_code: int | None
    time_s: float
    stderr_tail: str


def run_budgeted(argv: list[str], budget_s: float, stderr_path: Path, stdout_path: Path | None = None,
                 env: dict[str, str] | None = None) -> ProcessOutcome:
    """Run ``argv`` as its own process group; kill the whole group after ``budget_s`` seconds.

    Parameters
    ----------
    argv : list of str
    budget_s : float -- wall-clock seconds before SIGKILL
    stderr_path : Path -- receives the child's stderr
    stdout_path : Path or None -- receives its stdout (default: discarded)
    env : dict or None -- the environment (default: this one)

    Returns
    -------
    ProcessOutcome
    """
    stderr_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(stderr_path, "wb") as err, \
            (open(stdout_path, "wb") if stdout_path else open(os.devnull, "wb")) as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, preexec_fn=_die_with_parent)
        try:
            code: int | None = proc.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
    lines = [ln for ln in stderr_path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    return ProcessOutcome(code, time.perf_counter() - started, lines[-1].strip() if lines else "")


def _verify_result(folder: Path, outcome: ProcessOutcome) -> tuple[str, str, dict]:
    from verirepair.verify.vnncomp_io import parse_result

    result_file = folder / "result.txt"
    if outcome.exit_code != 0 or not result_file.is_file():
        return ERROR, outcome.stderr_tail or f"exit code {outcome.exit_code}", {}
    word, _, _ = parse_result(result_file.read_text(encoding="utf-8"))
    message = ""
    try:
        message = json.loads((folder / "stdout.json").read_text(encoding="utf-8")).get("message") or ""
    except (OSError, ValueError):
        pass
    return word, message, {"result_file": "result.txt"}


def _repair_result(folder: Path, outcome: ProcessOutcome) -> tuple[str, str, dict, bool | None]:
    report_json = folder / "report" / "report.json"
    if outcome.exit_code not in _REPAIR_EXIT_CODES or not report_json.is_file():
        return ERROR, outcome.stderr_tail or f"exit code {outcome.exit_code}", {}, None
    report = json.loads(report_json.read_text(encoding="utf-8"))
    outputs = {"report_json": "report/report.json"}
    for key, name in (("report_html", "report/report.html"), ("report_md", "report/report.md"),
                      ("repaired", "repaired.onnx")):
        if (folder / name).is_file():
            outputs[key] = name
    message = "" if report.get("certified") else str(report.get("headline", ""))
    return str(report["status"]), message, outputs, bool(report.get("certified"))


def run_job(job: Job, campaign_dir: str, grace_s: float = GRACE_S) -> dict[str, Any]:
    """Run ``job`` in a child process and write its ``result.json``; the Dask task of a campaign.

    Never raises for a failing job: an error or a budget overrun is the recorded result.  Any
    output of an earlier, unfinished attempt (a worker that died) is removed first.

    Returns
    -------
    dict -- :meth:`JobResult.to_dict`
    """
    folder = job_dir(campaign_dir, job)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    started_utc = _now()
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(variable, "1")
    try:
        outcome = run_budgeted(job_command(job, folder), job.timeout_s + grace_s, folder / "stderr.txt",
                               folder / "stdout.json", env)
        certified: bool | None = None
        outputs: dict[str, str]
        if outcome.exit_code is None:
            word, message, outputs = TIMEOUT, f"killed at its budget ({job.timeout_s:g} s + {grace_s:g} s grace)", {}
        elif job.kind == "verify":
            word, message, outputs = _verify_result(folder, outcome)
        else:
            word, message, outputs, certified = _repair_result(folder, outcome)
        time_s, code = outcome.time_s, outcome.exit_code
    except Exception as exc:            # the job's own machinery failed: record it, go on
        word, message, outputs, certified, time_s, code = ERROR, f"{type(exc).__name__}: {exc}", {}, None, 0.0, None
    rel = Path("jobs") / job.job_id
    outputs = {k: str(rel / v) for k, v in outputs.items()}
    result = JobResult(job.job_id, job.kind, job.network, job.vnnlib, word, round(time_s, 3),
                       " ".join(message.split()), certified, code, outputs, socket.gethostname(),
                       started_utc, _now())
    write_result(campaign_dir, result, job)
    return result.to_dict()
