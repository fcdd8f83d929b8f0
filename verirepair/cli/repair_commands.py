"""The commands that repair: repair and demo, with the live progress display.

Pipeline position: part of the command-line shell (see :mod:`verirepair.cli`); builds the
run's :class:`~verirepair.run_config.RunConfig` and :class:`~verirepair.task.RepairTask` and runs
:func:`verirepair.pipeline.run_pipeline`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

if TYPE_CHECKING:
    from verirepair.network.model import Network
    from verirepair.outcome import PipelineResult
    from verirepair.run_config import RunConfig
    from verirepair.task import RepairTask

from verirepair.cli.common import (
    CLI_START,
    EXIT_NOT_CERTIFIED,
    EXIT_OK,
    EXIT_REPAIR_FAILED,
    BadInput,
    check_property_dimensions,
    console,
    existing_file,
    load_network_file,
)

#: ``repair`` options that set a configuration field: option dest -> (part, field);
#: part None is a field of RunConfig itself.  Their defaults are the
#: dataclasses'; a flag given on the command line overrides ``--config``.
REPAIR_CONFIG_OPTIONS: dict[str, tuple[str | None, str]] = {
    "timeout": (None, "timeout_s"),
    "seed": (None, "seed"),
    "verify_timeout": ("verify", "timeout_s"),
    "workers": ("verify", "workers"),
    "norm": ("repair", "norm"),
    "solver": ("repair", "solver"),
    "strategy": ("strategy", "name"),
    "max_rounds": ("loop", "max_rounds"),
    "layer": ("loop", "layer"),
    "guilty_neurons": ("loop", "guilty_neurons"),
    "cross_check": ("delivery", "cross_check"),
    "cross_check_timeout": ("delivery", "cross_check_timeout_s"),
    "certificates": ("delivery", "certificates"),
}


def config_default(dest: str) -> Any:
    from verirepair.run_config import SECTIONS, RunConfig, default_of

    part, name = REPAIR_CONFIG_OPTIONS[dest]
    return default_of(RunConfig if part is None else SECTIONS[part], name)


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run's RunConfig: defaults, then ``--config FILE``, then the flags given.

    Raises
    ------
    ConfigError -- a bad configuration file or a combination the configs refuse
    """
    import dataclasses

    from verirepair.run_config import ConfigError, RunConfig, load_run_config

    config = load_run_config(existing_file(args.config)) if args.config else RunConfig()
    top: dict = {}
    parts: dict[str, dict] = {}
    for dest, (part, name) in REPAIR_CONFIG_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if dest == "cross_check" and value == "none":
            value = None
        (top if part is None else parts.setdefault(part, {}))[name] = value
    try:
        changed = {part: dataclasses.replace(getattr(config, part), **values) for part, values in parts.items()}
        return dataclasses.replace(config, **top, **changed)
    except (ValueError, TypeError) as exc:
        raise ConfigError(" ".join(str(exc).split())) from None


def build_task(args: argparse.Namespace, network_path: Path, network: Network) -> RepairTask:
    """The repair task named by ``--task`` (``--acasxu`` is ``--task acasxu``)."""
    from verirepair.task import get_task

    name = "acasxu" if args.acasxu else args.task
    if name == "vnnlib" and not args.property:
        raise BadInput("give at least one --property FILE, or --acasxu for an ACAS Xu network")
    builder = get_task(name)
    try:
        return builder(network_path, network, [existing_file(p) for p in args.property or []], args.decision)
    except ValueError as exc:
        raise BadInput(f"--task {name}: {exc}") from None


def cmd_repair(args: argparse.Namespace) -> int:
    """Repair a network until every property of its task is proven."""
    from verirepair.pipeline import check_outputs, run_pipeline

    config = run_config_from_args(args)
    network_path = existing_file(args.network)
    network = load_network_file(args.network)
    task = build_task(args, network_path, network)
    for name, props in task.properties:
        check_property_dimensions(network, props, name)
    if args.out is not None and Path(args.out).suffix.lower() != ".onnx":
        raise BadInput(f"--out {args.out}: expected a file ending in .onnx")
    out = Path(args.out) if args.out else network_path.with_name(network_path.stem + "_repaired.onnx")
    report_dir = Path(args.report) if args.report else out.with_suffix("").with_name(out.stem + "_report")
    check_outputs(out, report_dir, network_path)
    layer = config.loop.layer
    if layer is not None and layer >= network.n_layers:
        raise BadInput(f"--layer {layer} is out of range: the network has layers 0..{network.n_layers - 1}")
    # The total budget counts from the command's start (loading included); the
    # configuration is recorded as given, so that its config.toml repeats the run.
    result = run_with_progress(lambda cb: run_pipeline(network, task, config, out, report_dir,
                                                       source_path=network_path, on_event=cb, started=CLI_START))
    return print_repair_outcome(result)


def print_repair_outcome(result: PipelineResult) -> int:
    """Summary table, where things went, and the exit code of a repair run."""
    from verirepair.pipeline import PipelineStatus
    from verirepair.render import repair_summary_table

    console.print(repair_summary_table(result, network_name=result.network.name))
    certified = result.status in (PipelineStatus.REPAIRED, PipelineStatus.NOT_NEEDED)
    if result.output_path is not None:
        console.print(f"[bold green]CERTIFIED[/bold green] repaired network: [bold]{result.output_path}[/bold]")
    elif certified:
        console.print("[bold green]CERTIFIED[/bold green] every property holds on the original network; "
                      "nothing was changed or written")
    else:
        console.print(f"[bold red]NOT CERTIFIED[/bold red] ({result.status.value}): nothing was written "
                      "at the output path")
        if getattr(result, "candidate_path", None) is not None:
            console.print(f"uncertified candidate, for inspection only: {result.candidate_path}")
    console.print(f"report: [bold]{result.report_dir}[/bold] (report.json, report.md, plots)")
    if certified:
        return EXIT_OK
    return EXIT_REPAIR_FAILED if result.status is PipelineStatus.FAILED else EXIT_NOT_CERTIFIED


def run_with_progress(job: Callable[[Callable[[str, dict], None]], PipelineResult]) -> PipelineResult:
    """Run a pipeline job, showing its stage events in a live status line.

    On a terminal the status line (stage, latest event, elapsed time) is
    redrawn every second by a ticker thread, so the clock moves while a long
    verification runs.  Events marked ``log`` (each verdict as it is decided,
    each round, each cross-check answer) are also printed as lines, which is
    all a pipe sees.
    """
    import threading

    started = time.perf_counter()
    latest = {"stage": "start", "text": "..."}
    stop = threading.Event()
    with console.status("starting ...", spinner="dots") as status:
        def redraw() -> None:
            elapsed = time.perf_counter() - started
            status.update(f"[bold]{latest['stage']}[/bold] {latest['text']}  [dim]{elapsed:.0f} s[/dim]")

        def tick() -> None:
            while not stop.wait(1.0):
                redraw()

        def on_event(stage: str, info: dict) -> None:
            latest["stage"], latest["text"] = stage, str(info.get("text", ""))
            redraw()
            if info.get("log"):
                elapsed = time.perf_counter() - started
                console.print(Text(f"{elapsed:6.1f} s  {stage:<10} {latest['text']}"), soft_wrap=True)

        ticker = threading.Thread(target=tick, name="verirepair-clock", daemon=True)
        if console.is_terminal:
            ticker.start()
        try:
            return job(on_event)
        finally:
            stop.set()


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole pipeline on the shipped demo network."""
    import dataclasses

    from verirepair.atomic import check_writable
    from verirepair.demo import demo_paths, demo_task
    from verirepair.pipeline import run_pipeline
    from verirepair.render import network_table
    from verirepair.run_config import DeliveryConfig, LoopConfig, RunConfig

    network_path, _ = demo_paths()
    out_dir = Path(args.out_dir)
    check_writable(out_dir, "--out-dir", directory=True)
    network = load_network_file(str(network_path))
    console.print(network_table(network, str(network_path)))
    task = demo_task(network)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = RunConfig(timeout_s=args.timeout, seed=args.seed,
                       loop=LoopConfig(max_rounds=args.max_rounds),
                       delivery=dataclasses.replace(DeliveryConfig(),
                                                    cross_check=None if args.no_cross_check else "marabou"))
    result = run_with_progress(lambda cb: run_pipeline(
        network, task, config, out_dir / "demo_repaired.onnx", out_dir / "report",
        source_path=network_path, on_event=cb))
    return print_repair_outcome(result)
