"""The ``campaign`` command: many verify or repair jobs on Dask, with a live display and a summary.

Pipeline position: part of the command-line shell (see :mod:`verirepair.cli`); reads the
specification with :func:`verirepair.harness.campaign.spec.read_campaign_spec` and runs it with
:func:`verirepair.harness.campaign.runner.run_campaign`.

On a terminal the display is a rich progress bar (done, running, failed, elapsed, ETA) redrawn
every second, with one line per finished job above it; in a pipe it is one line per event.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from verirepair.cli.common import EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, BadInput, Terminated, console, print_error

if TYPE_CHECKING:
    from verirepair.harness.campaign.runner import CampaignOutcome
    from verirepair.harness.campaign.spec import CampaignSpec

#: Exit code of a campaign that finished with some job recorded as ``error``.
EXIT_CAMPAIGN_ERRORS = 1


def add_campaign_parser(sub: Any, positive_int: Any, seconds: Any) -> None:
    """Register ``verirepair campaign`` (called by :func:`verirepair.cli.parser.build_parser`)."""
    from verirepair.harness.campaign.jobs import GRACE_S

    p = sub.add_parser(
        "campaign", help="run many verify or repair jobs on Dask (resumable)",
        description="Run every job of SPEC -- a VNN-COMP instances.csv (verify jobs) or a campaign TOML "
                    "file (verify or repair jobs; see README) -- on a Dask cluster: a LocalCluster sized "
                    "to this machine, or the cluster at --scheduler. Each job runs in its own process "
                    "within its budget; its result is written atomically into DIR/jobs/. Run the same "
                    "command again to resume: finished jobs are not redone.",
        epilog="exit codes: 0 every job ran (whatever its verdict), 1 some job is recorded as error, "
               "2 bad input, 130 interrupted (finished results are kept; run again to resume)")
    p.add_argument("spec", metavar="SPEC", help="instances.csv or campaign .toml")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="campaign folder: results.csv, campaign.json, index.html, jobs/")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="address of a running Dask scheduler (default: start a LocalCluster)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="LocalCluster worker processes (default: the machine's CPUs)")
    p.add_argument("--retry-errors", action="store_true",
                   help="run again the jobs recorded as error (default: every finished job is kept)")
    p.add_argument("--grace", type=seconds, default=GRACE_S, metavar="S",
                   help=f"seconds a job's process gets beyond its budget before it is killed (default {GRACE_S:g})")
    p.set_defaults(func=cmd_campaign)


def cmd_campaign(args: argparse.Namespace) -> int:
    """Run (or resume) a campaign."""
    from verirepair.atomic import check_writable
    from verirepair.harness.campaign.runner import run_campaign
    from verirepair.harness.campaign.spec import read_campaign_spec

    if args.scheduler and args.workers:
        raise BadInput("--workers sizes the LocalCluster; with --scheduler the cluster's own workers are used")
    if args.scheduler and not args.scheduler.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
        raise BadInput(f"--scheduler {args.scheduler}: expected an address like tcp://HOST:PORT")
    spec = read_campaign_spec(args.spec)
    out = Path(args.out)
    check_writable(out, "--out", directory=True)
    display = CampaignDisplay(spec)
    try:
        outcome = display.run(lambda emit: run_campaign(spec, out, scheduler=args.scheduler, workers=args.workers,
                                                         retry_errors=args.retry_errors, grace_s=args.grace,
                                                         on_event=emit))
    except (KeyboardInterrupt, Terminated) as stop:
        done = len([1 for j in spec.jobs if (out / "jobs" / j.job_id / "result.json").is_file()])
        how = "interrupted (SIGINT)" if isinstance(stop, KeyboardInterrupt) else "terminated (SIGTERM)"
        print_error(f"{how}: {done} of {len(spec.jobs)} jobs are finished and kept in {out}; "
                    "run the same command again to do the rest")
        return EXIT_SIGINT if isinstance(stop, KeyboardInterrupt) else EXIT_SIGTERM
    # A line of its own: as the table's title it would wrap at the (narrow) table's width.
    console.print(Text(f"campaign {spec.path}: {len(outcome.results)} of {len(spec.jobs)} jobs finished",
                       style="bold"), soft_wrap=True)
    console.print(campaign_summary_table(spec, outcome))
    console.print(f"results: [bold]{out / 'results.csv'}[/bold], [bold]{out / 'campaign.json'}[/bold], "
                  f"index: [bold]{out / 'index.html'}[/bold]")
    errors = sum(1 for r in outcome.results.values() if r.result == "error")
    return EXIT_CAMPAIGN_ERRORS if errors else EXIT_OK


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class CampaignDisplay:
    """Renders a campaign's events: a live bar on a terminal, one line per event in a pipe."""

    def __init__(self, spec: CampaignSpec) -> None:
        self.spec = spec
        self.started = time.perf_counter()
        self.state: dict[str, Any] = {"done": 0, "failed": 0, "running": 0, "total": len(spec.jobs),
                                      "eta_s": None}

    def line(self, text: str) -> None:
        elapsed = time.perf_counter() - self.started
        console.print(Text(f"{elapsed:7.1f} s  {text}"), soft_wrap=True)

    def status_text(self) -> str:
        s = self.state
        return (f"[bold]{s['done']}/{s['total']}[/bold] done, {s['running']} running, "
                f"[{'red' if s['failed'] else 'dim'}]{s['failed']} failed[/], "
                f"elapsed {_duration(time.perf_counter() - self.started)}, ETA {_duration(s['eta_s'])}")

    def on_event(self, kind: str, info: dict, progress: Any = None, task: Any = None) -> None:
        if kind == "start":
            self.state.update(done=info["done_before"])
            plan = (f"{info['pending']} to run on {info['workers']} worker(s) ({info['scheduler']})"
                    if info["pending"] else "nothing left to run")
            self.line(f"campaign {self.spec.path}: {info['total']} jobs, {info['done_before']} already finished, "
                      + plan)
        elif kind == "job":
            r = info["result"]
            self.state.update(done=info["done"], failed=info["failed"])
            what = f"{Path(r.network).name} {Path(r.vnnlib).name if r.vnnlib else ''}".strip()
            extra = f"  ({r.message})" if r.message else ""
            self.line(f"[{info['done']}/{info['total']}] {what}: {r.result} in {r.time_s:.1f} s{extra}")
        elif kind == "tick":
            self.state.update(running=info["running"], eta_s=info["eta_s"])
        if progress is not None:
            progress.update(task, completed=self.state["done"], status=self.status_text())

    def run(self, job: Any) -> CampaignOutcome:
        """Run ``job(on_event)`` under the display."""
        from rich.progress import BarColumn, Progress, TextColumn

        if not console.is_terminal:
            return job(lambda kind, info: self.on_event(kind, info))
        columns = (TextColumn("campaign"), BarColumn(), TextColumn("{task.fields[status]}"))
        with Progress(*columns, console=console, transient=False, refresh_per_second=2) as progress:
            task = progress.add_task("campaign", total=len(self.spec.jobs), status=self.status_text())
            return job(lambda kind, info: self.on_event(kind, info, progress, task))


def campaign_summary_table(spec: CampaignSpec, outcome: CampaignOutcome) -> Table:
    """Jobs per result, with this run's share and the wall time (the headline is printed above it)."""
    table = Table()
    table.add_column("result")
    table.add_column("jobs", justify="right")
    table.add_column("run now", justify="right")
    table.add_column("time s (sum)", justify="right")
    ran = set(outcome.ran)
    for word, n in outcome.counts().items():
        rows = [r for r in outcome.results.values() if r.result == word]
        style = {"error": "red", "sat": "red", "failed": "red", "unsat": "green", "repaired": "green",
                 "not_needed": "green"}.get(word, "yellow")
        table.add_row(Text(word, style=style), str(n), str(sum(1 for r in rows if r.job_id in ran)),
                      f"{sum(r.time_s for r in rows):.1f}")
    missing = len(spec.jobs) - len(outcome.results)
    if missing:
        table.add_row(Text("not run", style="yellow"), str(missing), "0", "-")
    table.add_row(Text("total", style="bold"), str(len(spec.jobs)), str(len(ran)),
                  f"wall {outcome.wall_s:.1f} on {outcome.workers} worker(s)")
    return table
