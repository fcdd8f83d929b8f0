"""Command-line interface: ``verirepair <command> ...``.

Pipeline position: the outermost shell.  This is the only module that prints,
configures logging, or turns errors into exit codes (CONVENTIONS.md).  Every
command's work is done by library functions; this module parses arguments,
shows progress with ``rich`` and renders results (tables from
:mod:`verirepair.render`).

Exit codes (also in ``verirepair --help``):

* 0 -- the command completed (``verify``: whatever the verdict; ``repair``:
  REPAIRED or NOT_NEEDED, every property proven on the delivered file);
* 2 -- bad input (missing file, malformed network or property, an option out
  of range, an output that cannot be written), with ONE line on stderr;
* 3 -- ``repair`` ended PARTIAL: not certified, nothing written at ``--out``;
* 4 -- ``repair`` ended FAILED: no layer admitted a repair, nothing written;
* 130 / 143 -- interrupted by SIGINT / SIGTERM; no delivered network is left.

Errors are written to stderr as one physical line whatever the terminal
width (rich would hard-wrap them at 80 columns in a pipe).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import typing
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from verirepair import __version__
from verirepair.errors import VerirepairError

if TYPE_CHECKING:
    from verirepair.harness.vnncomp_bench import BenchRow
    from verirepair.network.model import Network
    from verirepair.outcome import PipelineResult
    from verirepair.properties.property import Property
    from verirepair.run_config import RunConfig
    from verirepair.task import RepairTask
    from verirepair.verify.result import VerificationResult, VerifyConfig

#: When this module was imported: a run's total budget counts from here, so that
#: loading the network and parsing the properties are inside ``--timeout`` too.
CLI_START = time.perf_counter()

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_NOT_CERTIFIED = 3
EXIT_REPAIR_FAILED = 4
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

EXIT_CODES_HELP = ("exit codes: 0 done (repair: certified), 2 bad input (one line on stderr), "
                   "3 repair not certified (PARTIAL), 4 repair FAILED, 130/143 interrupted "
                   "(SIGINT/SIGTERM)")

console = Console(highlight=False)


class _BadInput(Exception):
    """Raised inside commands for user errors that argparse cannot catch."""


class _Terminated(BaseException):
    """SIGTERM, turned into an exception so that ``finally`` clauses clean up."""


def one_line(text: str) -> str:
    """``text`` with every line break and run of whitespace collapsed to one space."""
    return " ".join(str(text).split())


def print_error(message: str) -> None:
    """Write ``error: message`` to stderr as exactly one physical line.

    Plain ``sys.stderr.write``, not rich: rich hard-wraps at the console width
    (80 columns in a pipe, whatever ``COLUMNS`` says once it is unset).
    """
    text = one_line(message)
    stream = sys.stderr
    if stream.isatty() and "NO_COLOR" not in os.environ:
        stream.write(f"\x1b[1;31merror:\x1b[0m {text}\n")
    else:
        stream.write(f"error: {text}\n")
    stream.flush()


# ----------------------------------------------------------------------------- helpers
def _existing_file(path_text: str) -> Path:
    path = Path(path_text)
    if path.is_dir():
        raise _BadInput(f"{path} is a folder, expected a file")
    if not path.is_file():
        raise _BadInput(f"no such file: {path}")
    return path


def _load_network(path_text: str) -> Network:
    from verirepair.network import load_network

    return load_network(_existing_file(path_text))


def _load_properties(path_text: str) -> list[Property]:
    from verirepair.properties import parse_vnnlib

    return parse_vnnlib(_existing_file(path_text))


def _check_dimensions(network: Network, props: Sequence[Property], path_text: str) -> None:
    """A property must speak about as many inputs and outputs as the network has."""
    for prop in props:
        if prop.n_inputs != network.n_inputs or prop.n_outputs != network.n_outputs:
            raise _BadInput(f"{path_text}: the property has {prop.n_inputs} inputs and {prop.n_outputs} "
                            f"outputs, the network has {network.n_inputs} inputs and "
                            f"{network.n_outputs} outputs")


def _check_output(path_text: str | None, what: str, suffixes: tuple[str, ...] = (),
                  inputs: Sequence[str] = ()) -> Path | None:
    """Validate an output path before any work: suffix, not an input, writable."""
    from verirepair.atomic import check_writable

    if path_text is None:
        return None
    path = Path(path_text)
    if suffixes and path.suffix.lower() not in suffixes:
        raise _BadInput(f"{what} {path}: expected a file ending in {' or '.join(suffixes)}")
    for other in inputs:
        if Path(other).exists() and path.exists() and path.resolve() == Path(other).resolve():
            raise _BadInput(f"{what} {path} is an input of this command; refusing to overwrite it")
    check_writable(path, what)
    return path


def _dump_json(payload: dict) -> None:
    # Plain print (not rich) so that the output is exact, machine-readable JSON.
    sys.stdout.write(json.dumps(payload, indent=2, default=float) + "\n")


# ----------------------------------------------------------------------------- commands
def cmd_info(args: argparse.Namespace) -> int:
    """Print a network's layers, shapes and parameter count."""
    from verirepair.render import network_table

    network = _load_network(args.network)
    console.print(network_table(network, args.network))
    return EXIT_OK


def cmd_spec(args: argparse.Namespace) -> int:
    """Pretty-print the properties of a VNN-LIB file."""
    from verirepair.render import property_panel

    props = _load_properties(args.property)
    for index, prop in enumerate(props):
        console.print(property_panel(prop, index, len(props)))
    return EXIT_OK


def cmd_properties_export(args: argparse.Namespace) -> int:
    """Compile the physical-unit ACAS Xu properties to VNN-LIB."""
    from verirepair.tasks.acasxu.physical import default_properties_dir, default_vnnlib_dir, export_properties

    src = Path(args.src) if args.src else default_properties_dir()
    dest = Path(args.dest) if args.dest else default_vnnlib_dir()
    if not src.is_dir():
        raise _BadInput(f"no property folder at {src}")
    written = export_properties(src, dest)
    for path in written:
        console.print(f"wrote [bold]{path}[/bold]")
    console.print(f"{len(written)} properties exported to {dest}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify one property file on one network."""
    from verirepair.render import verdict_style
    from verirepair.verify import verify
    from verirepair.verify.result import VerifyConfig
    from verirepair.verify.vnncomp_io import write_result

    network = _load_network(args.network)
    props = _load_properties(args.property)
    _check_dimensions(network, props, args.property)
    _check_output(args.out, "--out", inputs=(args.network, args.property))
    config = VerifyConfig(timeout_s=args.timeout, seed=args.seed, use_lp=args.lp,
                          workers=args.workers if args.engine == "own" else 1)
    with console.status(f"verifying with {args.engine} ...", spinner="dots") if not args.json else _null():
        if args.engine == "own":
            result = verify(network, props, config, engine=args.engine)
        else:
            result = _verify_killable(Path(args.network), props, args.engine, config)
    if args.out:
        write_result(result, Path(args.out))
    if args.json:
        cex = result.counterexamples[0] if result.counterexamples else None
        _dump_json({
            "verdict": result.verdict.value,
            "time_s": result.stats.time_s,
            "counterexample": None if cex is None else {"x": cex.x.tolist(), "y": cex.y.tolist()},
            "stats": {
                "subproblems": result.stats.subproblems,
                "splits": result.stats.splits,
                "lp_calls": result.stats.lp_calls,
                "max_depth": result.stats.max_depth,
            },
            "engine": result.engine,
            "message": result.message,
        })
        return EXIT_OK
    style = verdict_style(result.verdict)
    console.print(f"[{style}]{result.verdict.value.upper()}[/{style}]  ({result.engine}, "
                  f"{result.stats.time_s:.2f} s, {result.stats.subproblems} sub-problems, "
                  f"{result.stats.splits} splits, {result.stats.lp_calls} LP calls)")
    if result.message:
        console.print(f"  {result.message}")
    for cex in result.counterexamples[:1]:
        console.print(f"  counterexample x = {cex.x.tolist()}")
        console.print(f"                 y = {cex.y.tolist()}  (confirmed by a float64 forward pass)")
    if args.out:
        console.print(f"  result written to {args.out}")
    return EXIT_OK


#: Seconds a verifier child process takes to start (spawn and imports), kept out
#: of the engine's own budget so that ``--timeout`` bounds the whole command.
CHILD_STARTUP_S = 2.0


def _verify_killable(network_path: Path, props: list[Property], engine: str,
                     config: VerifyConfig) -> VerificationResult:
    """An external engine (Marabou) in a child process that ``--timeout`` and Ctrl-C can stop.

    Marabou's C++ solve holds SIGINT and overruns its own timeout; a child
    process is killed at the command's deadline instead.
    """
    from dataclasses import replace

    from verirepair.cross_check import verify_in_child

    left = config.timeout_s - (time.perf_counter() - CLI_START)
    engine_budget = max(0.5, left - CHILD_STARTUP_S)
    return verify_in_child(network_path, props, engine, replace(config, timeout_s=engine_budget),
                           time.perf_counter() + max(0.5, left))


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def cmd_bench(args: argparse.Namespace) -> int:
    """Run a VNN-COMP instances.csv with one or two engines."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from verirepair.render import bench_summary_table, disagreement_table
    from verirepair.harness.vnncomp_bench import compare, read_instances, run_bench, write_rows_csv

    instances = read_instances(_existing_file(args.instances))
    engines = args.compare.split(",") if args.compare else [args.engine]
    if args.compare and (len(engines) != 2 or any(e not in BENCH_ENGINES for e in engines)):
        raise _BadInput(f"--compare takes two engine names out of {', '.join(BENCH_ENGINES)}, "
                        f"e.g. --compare own,marabou; got {args.compare!r}")
    _check_output(args.out, "--out", inputs=(args.instances,))
    if args.limit is not None:
        instances = instances[: args.limit]
    total = len(instances) * len(engines)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[last]}"), console=console) as bar:
        task = bar.add_task("bench", total=total, last="")

        def on_result(row: BenchRow) -> None:
            bar.update(task, advance=1,
                       last=f"{row.engine}: {Path(row.onnx).stem} {Path(row.vnnlib).stem} -> {row.verdict}")

        rows = run_bench(instances, engines, jobs=args.jobs, timeout_scale=args.timeout_scale,
                         on_result=on_result)
    console.print(bench_summary_table(rows))
    if len(engines) == 2:
        disagreements = compare(rows)
        console.print(disagreement_table(disagreements, engines))
    if args.out:
        write_rows_csv(rows, Path(args.out))
        console.print(f"rows written to {args.out}")
    return EXIT_OK


def cmd_localize(args: argparse.Namespace) -> int:
    """Rank the neurons that cause a property's violation."""
    from verirepair.counterexamples import localize_network
    from verirepair.render import localization_table

    network = _load_network(args.network)
    props = _load_properties(args.property)
    _check_dimensions(network, props, args.property)
    cex_path = _existing_file(args.cex) if args.cex else None
    _check_output(args.plot, "--plot", suffixes=PLOT_SUFFIXES, inputs=(args.network, args.property))
    with console.status("finding counterexamples and localizing ...") if not args.json else _null():
        loc = localize_network(network, props, method=args.method, seed=args.seed,
                               cex_path=cex_path, timeout_s=args.timeout)
    if args.plot and loc.ranking:
        from verirepair.localize.plot import plot_localization

        plot_localization(loc, Path(args.plot), top_k=args.top, network_name=Path(args.network).stem,
                          property_name=Path(args.property).stem)
    if args.json:
        payload = loc.to_json_dict()
        payload["ranking"] = payload["ranking"][: args.top] if args.top else payload["ranking"]
        _dump_json(payload)
        return EXIT_OK
    if not loc.ranking:
        console.print("[green]The property holds (no counterexample): nothing to localize.[/green]")
        return EXIT_OK
    console.print(localization_table(loc, args.top))
    if args.plot:
        console.print(f"plot written to {args.plot}")
    return EXIT_OK


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
    "max_rounds": ("loop", "max_rounds"),
    "layer": ("loop", "layer"),
    "guilty_neurons": ("loop", "guilty_neurons"),
    "cross_check": ("delivery", "cross_check"),
    "cross_check_timeout": ("delivery", "cross_check_timeout_s"),
}


def _config_default(dest: str) -> Any:
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

    config = load_run_config(_existing_file(args.config)) if args.config else RunConfig()
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


def _build_task(args: argparse.Namespace, network_path: Path, network: Network) -> RepairTask:
    """The repair task named by ``--task`` (``--acasxu`` is ``--task acasxu``)."""
    from verirepair.task import get_task

    name = "acasxu" if args.acasxu else args.task
    if name == "vnnlib" and not args.property:
        raise _BadInput("give at least one --property FILE, or --acasxu for an ACAS Xu network")
    builder = get_task(name)
    try:
        return builder(network_path, network, [_existing_file(p) for p in args.property or []], args.decision)
    except ValueError as exc:
        raise _BadInput(f"--task {name}: {exc}") from None


def cmd_repair(args: argparse.Namespace) -> int:
    """Repair a network until every property of its task is proven."""
    from verirepair.pipeline import check_outputs, run_pipeline

    config = run_config_from_args(args)
    network_path = _existing_file(args.network)
    network = _load_network(args.network)
    task = _build_task(args, network_path, network)
    for name, props in task.properties:
        _check_dimensions(network, props, name)
    if args.out is not None and Path(args.out).suffix.lower() != ".onnx":
        raise _BadInput(f"--out {args.out}: expected a file ending in .onnx")
    out = Path(args.out) if args.out else network_path.with_name(network_path.stem + "_repaired.onnx")
    report_dir = Path(args.report) if args.report else out.with_suffix("").with_name(out.stem + "_report")
    check_outputs(out, report_dir, network_path)
    layer = config.loop.layer
    if layer is not None and layer >= network.n_layers:
        raise _BadInput(f"--layer {layer} is out of range: the network has layers 0..{network.n_layers - 1}")
    import dataclasses

    # The total budget counts from the command's start (loading included).
    config = dataclasses.replace(config, timeout_s=max(0.5, config.timeout_s - (time.perf_counter() - CLI_START)))
    result = _run_with_progress(lambda cb: run_pipeline(network, task, config, out, report_dir,
                                                        source_path=network_path, on_event=cb))
    return _print_repair_outcome(result)


def _print_repair_outcome(result: PipelineResult) -> int:
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


def _run_with_progress(job: Callable[[Callable[[str, dict], None]], PipelineResult]) -> PipelineResult:
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
    network = _load_network(str(network_path))
    console.print(network_table(network, str(network_path)))
    task = demo_task(network)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = RunConfig(timeout_s=args.timeout, seed=args.seed,
                       loop=LoopConfig(max_rounds=args.max_rounds),
                       delivery=dataclasses.replace(DeliveryConfig(),
                                                    cross_check=None if args.no_cross_check else "marabou"))
    result = _run_with_progress(lambda cb: run_pipeline(
        network, task, config, out_dir / "demo_repaired.onnx", out_dir / "report",
        source_path=network_path, on_event=cb))
    return _print_repair_outcome(result)


# ----------------------------------------------------------------------------- parser
#: Sub-command names, filled by :func:`build_parser`.
COMMANDS: tuple[str, ...] = ()

#: Engines of ``bench`` (and of ``--compare``).
BENCH_ENGINES = ("own", "marabou")

#: File types ``--plot`` can write (matplotlib picks the format from the suffix).
PLOT_SUFFIXES = (".png", ".svg", ".pdf")

#: Largest accepted seed (numpy's generators take non-negative integers).
MAX_SEED = 2**32 - 1


def _int_in_range(minimum: int, maximum: int | None, what: str) -> Callable[[str], int]:
    """argparse type: an integer in ``[minimum, maximum]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_positive_int = _int_in_range(1, None, "a positive integer")
_seed = _int_in_range(0, MAX_SEED, f"a seed in 0..{MAX_SEED}")


def _positive_float(what: str) -> Callable[[str], float]:
    """argparse type: a finite number > 0 (``nan``, ``inf``, 0 and negatives are refused)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"expected {what} (finite, > 0), got {text!r}")
        return value

    return parse


_seconds = _positive_float("a positive number of seconds")


def _layer(text: str) -> int | None:
    """argparse type of ``--layer``: ``auto`` (None) or a layer index >= 0."""
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a layer index, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a layer index >= 0, got {value}")
    return value


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are ONE line on stderr and exit 2.

    argparse prints the usage block and then the error; a user (and a pipe)
    gets one line naming the command, the option and what was expected.
    """

    def error(self, message: str) -> "typing.NoReturn":  # noqa: F821 - string annotation
        print_error(f"{self.prog}: {message} (see {self.prog} --help)")
        raise SystemExit(EXIT_BAD_INPUT)


def _print_help_and_fail(parser: argparse.ArgumentParser, kind: str, choices: Sequence[str]) -> int:
    """A command (or group) given without its sub-command: one line naming the choices, exit 2."""
    print_error(f"{parser.prog}: give {kind} ({', '.join(choices)}); see {parser.prog} --help")
    return EXIT_BAD_INPUT


def _add_repair_parser(sub: Any) -> None:
    """The ``repair`` command: defaults from the config dataclasses, choices from the registries."""
    from verirepair.decision import list_decision_rules
    from verirepair.repair.config import NORMS
    from verirepair.solvers import list_backends
    from verirepair.task import list_tasks
    from verirepair.verify import list_verifiers

    d = _config_default
    p = sub.add_parser("repair", help="repair a network until its properties are proven",
                       description="Verify, localize, solve a minimal weight change, apply it to a new "
                                   "network and re-verify every property, round after round. Settings "
                                   "come from the defaults, then --config FILE, then the flags given.",
                       epilog=EXIT_CODES_HELP)
    p.add_argument("network", metavar="NET")
    p.add_argument("--property", action="append", metavar="P.vnnlib", help="a property (repeatable)")
    p.add_argument("--task", default="vnnlib", choices=list_tasks(),
                   help="what the properties and samples are: vnnlib (the --property files) or a "
                        "benchmark task (default vnnlib)")
    p.add_argument("--acasxu", action="store_true",
                   help="same as --task acasxu: every ACAS Xu property that applies to the named network")
    p.add_argument("--decision", default=None, choices=list_decision_rules(),
                   help="how outputs become a decision, kept on preservation points and measured by "
                        "fidelity (default: the task's; argmax for vnnlib, argmin for ACAS Xu)")
    p.add_argument("--config", metavar="RUN.toml",
                   help="run configuration (tables verify, localize, repair, loop, delivery; a report's "
                        "config.toml repeats its run); flags given here override it")
    p.add_argument("--out", metavar="OUT.onnx",
                   help="repaired network, written only when certified (default: NET_repaired.onnx)")
    p.add_argument("--report", metavar="DIR", help="report folder (default: OUT_report/)")
    p.add_argument("--layer", type=_layer, default=None, metavar="auto|INDEX",
                   help="layer to repair: auto (from localization) or a layer index (default auto)")
    p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help=f"processes for our verifier's branch and bound in every round (default {d('workers')})")
    p.add_argument("--guilty-neurons", type=_positive_int, default=None, metavar="K",
                   help="change only the K most guilty units' rows of the repaired layer and the K most "
                        "guilty units' columns of the layer before (default: the whole layer)")
    p.add_argument("--norm", default=None, choices=NORMS, help=f"weight-change norm (default {d('norm')})")
    p.add_argument("--solver", default=None, choices=list_backends(only_available=False),
                   help=f"LP/MILP backend (default {d('solver')}; available here: "
                        f"{', '.join(list_backends(only_available=True)) or 'none'})")
    p.add_argument("--max-rounds", type=_positive_int, default=None, metavar="N",
                   help=f"rounds of repair and re-verification (default {d('max_rounds')})")
    p.add_argument("--timeout", type=_seconds, default=None, metavar="S",
                   help="total budget of the whole run, cross-check, fidelity and report included "
                        f"(default {d('timeout'):g})")
    p.add_argument("--verify-timeout", type=_seconds, default=None, metavar="S",
                   help=f"budget of one property's verification per round (default {d('verify_timeout'):g}); "
                        "a property not decided in time gets a wider margin in the next round")
    p.add_argument("--cross-check", default=None, choices=[*list_verifiers(), "none"],
                   help=f"final independent check of every property of a certified network, in a child "
                        f"process (default {d('cross_check')}; marabou-split splits the input region for "
                        "Marabou, for properties it cannot decide whole)")
    p.add_argument("--cross-check-timeout", type=_seconds, default=None, metavar="S",
                   help="budget of the cross-check per property, within the total --timeout "
                        f"(default {d('cross_check_timeout'):g})")
    p.add_argument("--seed", type=_seed, default=None, help=f"seed (default {d('seed')})")
    p.set_defaults(func=cmd_repair)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one sub-command per pipeline task."""
    from verirepair.localize.config import LocalizeMethod
    from verirepair.run_config import default_of
    from verirepair.verify import list_verifiers
    from verirepair.verify.result import VerifyConfig

    parser = OneLineArgumentParser(
        prog="verirepair",
        description="Repair ReLU networks with proof: specify (VNN-LIB), verify, localize, "
                    "repair, re-verify, deliver an ONNX file, a report and a certificate.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"verirepair {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="show a network's layers, shapes and parameter count",
                       description="Show the layers, shapes and parameter count of an .onnx or .nnet network.")
    p.add_argument("network", metavar="NET", help="network file (.onnx or .nnet)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("spec", help="pretty-print a VNN-LIB property",
                       description="Parse a VNN-LIB file and show its input boxes and unsafe output set.")
    p.add_argument("property", metavar="PROP.vnnlib")
    p.set_defaults(func=cmd_spec)

    p = sub.add_parser("properties", help="the ACAS Xu properties in physical units",
                       description="Work with the physical-unit ACAS Xu properties in properties/.")
    psub = p.add_subparsers(dest="action", metavar="ACTION")
    pe = psub.add_parser("export", help="compile properties/*.toml to vnnlib/acasxu/prop_N.vnnlib",
                         description="Compile the physical-unit properties to normalised VNN-LIB files.")
    pe.add_argument("--src", help="folder of phi*.toml files (default: the ACAS Xu task's data/properties in the package)")
    pe.add_argument("--dest", help="output folder (default: the ACAS Xu task's data/vnnlib in the package)")
    pe.set_defaults(func=cmd_properties_export)
    properties_parser = p
    p.set_defaults(func=lambda args: _print_help_and_fail(properties_parser, "an action", list(psub.choices)))

    p = sub.add_parser("verify", help="verify a property on a network",
                       description="Verify a VNN-LIB property on a network. The answer is a proof "
                                   "(holds) or a counterexample re-checked by a forward pass.")
    p.add_argument("network", metavar="NET", help="network file (.onnx or .nnet)")
    p.add_argument("property", metavar="PROP", help="VNN-LIB property file")
    p.add_argument("--engine", default="own", choices=list_verifiers(),
                   help="verifier (default: own; others run in a child process that --timeout stops)")
    p.add_argument("--timeout", type=_seconds, default=default_of(VerifyConfig, "timeout_s"), metavar="S",
                   help=f"time budget in seconds (default {default_of(VerifyConfig, 'timeout_s'):g})")
    p.add_argument("--lp", action="store_true", help="tighten bounds with LPs (own engine; slower, tighter)")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="processes for our engine's branch and bound (default 1; a search still open "
                        "after 3 s spreads over N processes)")
    p.add_argument("--seed", type=_seed, default=0, help="falsifier seed (default 0)")
    p.add_argument("--out", metavar="RESULT", help="write a VNN-COMP result file (sat/unsat/timeout/unknown)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("bench", help="run a VNN-COMP instances.csv",
                       description="Run every instance of a VNN-COMP instances.csv (onnx,vnnlib,timeout "
                                   "rows, paths relative to the CSV) and summarise.")
    p.add_argument("instances", metavar="INSTANCES.csv")
    p.add_argument("--engine", default="own", choices=BENCH_ENGINES, help="verifier (default own)")
    p.add_argument("--compare", metavar="A,B", help="run two engines and report every disagreement")
    p.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                   help="parallel worker processes (default 1)")
    p.add_argument("--timeout-scale", type=_positive_float("a positive factor"), default=1.0, metavar="F",
                   help="multiply every instance's timeout by F (default 1)")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help="only the first N instances (default: all)")
    p.add_argument("--out", metavar="results.csv", help="write one CSV row per instance and engine")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("localize", help="rank the neurons that cause a violation",
                       description="Find counterexamples (or read --cex) and rank hidden neurons by "
                                   "their causal effect on the violation (CARE).")
    p.add_argument("network", metavar="NET")
    p.add_argument("property", metavar="PROP")
    p.add_argument("--method", default=LocalizeMethod.CAUSAL.value, choices=[m.value for m in LocalizeMethod],
                   help="localization method (default causal: CARE's interventions)")
    p.add_argument("--top", type=_positive_int, default=10, metavar="K", help="rows to show (default 10)")
    p.add_argument("--cex", metavar="FILE", help="counterexamples: a VNN-COMP result file, .npy or .json")
    p.add_argument("--timeout", type=_seconds, default=60.0, metavar="S",
                   help="verification budget in seconds (default 60)")
    p.add_argument("--seed", type=_seed, default=0, help="seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the localization as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw top-K effects and a layer-by-neuron heat map")
    p.set_defaults(func=cmd_localize)

    _add_repair_parser(sub)

    p = sub.add_parser("demo", help="run the whole pipeline on the shipped demo network",
                       description="Verify, localize, repair and re-verify the shipped demo network, "
                                   "which has a planted violation.")
    p.add_argument("--out-dir", default="demo_out", help="where outputs go (default demo_out/)")
    p.add_argument("--max-rounds", type=_positive_int, default=5, metavar="N",
                   help="rounds of repair and re-verification (default 5)")
    p.add_argument("--timeout", type=_seconds, default=120.0, metavar="S",
                   help="total budget in seconds (default 120)")
    p.add_argument("--seed", type=_seed, default=0, help="seed (default 0)")
    p.add_argument("--no-cross-check", action="store_true", help="skip the final Marabou check")
    p.set_defaults(func=cmd_demo)
    global COMMANDS
    COMMANDS = tuple(sub.choices)
    return parser


#: Thread-count variables of the BLAS/OpenMP libraries under numpy and torch.
#: Unless the environment sets them, the CLI runs them single-threaded: the
#: networks' matrices are small (50 wide), and on the 2-core machine with other
#: jobs running a threaded OpenBLAS made ``verify`` of N1,9 phi7 take 31 s
#: instead of 5.5 s.  ``--workers`` is the way to use more cores.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``verirepair`` console script.

    Returns the exit code (see the module docstring); usage errors exit 2
    from the parser with one line on stderr.
    """
    for variable in BLAS_THREAD_VARIABLES:      # before numpy is first imported
        os.environ.setdefault(variable, "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        return _print_help_and_fail(parser, "a command", COMMANDS)
    previous = None
    if threading_is_main():
        # SIGTERM becomes an exception, so that every ``finally`` removes its
        # temporary files and kills its child processes, as for Ctrl-C.
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return int(args.func(args))
    except (VerirepairError, _BadInput, OSError) as exc:
        # OSError: a file vanished or a disk filled while working; still one line.
        print_error(_describe(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print_error("interrupted (SIGINT); no repaired network was delivered by this run")
        return EXIT_SIGINT
    except _Terminated:
        print_error("terminated (SIGTERM); no repaired network was delivered by this run")
        return EXIT_SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def threading_is_main() -> bool:
    """True in the main thread (only there may signal handlers be installed)."""
    import threading

    return threading.current_thread() is threading.main_thread()


def _describe(exc: BaseException) -> str:
    """The message of an error, with the file name for OSErrors."""
    if isinstance(exc, OSError) and not isinstance(exc, VerirepairError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


if __name__ == "__main__":
    raise SystemExit(main())
