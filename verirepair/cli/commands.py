"""The commands that inspect, verify, benchmark and localize: info, spec, properties export, verify, bench, localize.

Pipeline position: part of the command-line shell (see :mod:`verirepair.cli`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from verirepair.harness.vnncomp_bench import BenchRow
    from verirepair.network.model import Network
    from verirepair.properties.property import Property
    from verirepair.verify.result import VerificationResult, VerifyConfig

from verirepair.cli.common import (
    CLI_START,
    EXIT_OK,
    PLOT_SUFFIXES,
    BadInput,
    check_output,
    check_property_dimensions,
    console,
    dump_json,
    existing_file,
    load_network_file,
    load_property_file,
)
from verirepair.verify.engine import list_verifiers


# ----------------------------------------------------------------------------- commands
def cmd_info(args: argparse.Namespace) -> int:
    """Print a network's layers, shapes and parameter count."""
    from verirepair.render import network_table

    network = load_network_file(args.network)
    console.print(network_table(network, args.network))
    return EXIT_OK


def cmd_spec(args: argparse.Namespace) -> int:
    """Pretty-print the properties of a VNN-LIB file."""
    from verirepair.render import property_panel

    props = load_property_file(args.property)
    for index, prop in enumerate(props):
        console.print(property_panel(prop, index, len(props)))
    return EXIT_OK


def cmd_properties_export(args: argparse.Namespace) -> int:
    """Compile the physical-unit ACAS Xu properties to VNN-LIB."""
    from verirepair.tasks.acasxu.physical import default_properties_dir, default_vnnlib_dir, export_properties

    src = Path(args.src) if args.src else default_properties_dir()
    dest = Path(args.dest) if args.dest else default_vnnlib_dir()
    if not src.is_dir():
        raise BadInput(f"no property folder at {src}")
    written = export_properties(src, dest)
    for path in written:
        console.print(f"wrote [bold]{path}[/bold]")
    console.print(f"{len(written)} properties exported to {dest}")
    return EXIT_OK


def _network_and_property(args: argparse.Namespace) -> tuple[Network, list[Property]]:
    """``args.network`` and ``args.property``, read and checked against each other."""
    network = load_network_file(args.network)
    props = load_property_file(args.property)
    check_property_dimensions(network, props, args.property)
    return network, props


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify one property file on one network."""
    from verirepair.render import verdict_style
    from verirepair.verify import verify
    from verirepair.verify.result import VerifyConfig
    from verirepair.verify.vnncomp_io import write_result

    if getattr(args, "certificate_unvalidated", False) and not args.certificate:
        raise BadInput("--certificate-unvalidated needs --certificate CERT")
    network, props = _network_and_property(args)
    check_output(args.out, "--out", inputs=(args.network, args.property))
    check_output(args.certificate, "--certificate", inputs=(args.network, args.property))
    config = VerifyConfig(timeout_s=args.timeout, seed=args.seed, use_lp=args.lp,
                          workers=args.workers if args.engine == "own" else 1)
    with console.status(f"verifying with {args.engine} ...", spinner="dots") if not args.json else NullContext():
        if args.certificate:
            from verirepair.cli.check_commands import verify_with_certificate

            result = verify_with_certificate(args, network, props, config)
        elif args.engine == "own":
            result = verify(network, props, config, engine=args.engine)
        else:
            result = verify_killable(Path(args.network), props, args.engine, config)
    if args.out:
        write_result(result, Path(args.out))
    if args.json:
        cex = result.counterexamples[0] if result.counterexamples else None
        dump_json({
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


def verify_killable(network_path: Path, props: list[Property], engine: str,
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


class NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def cmd_bench(args: argparse.Namespace) -> int:
    """Run a VNN-COMP instances.csv with one or two engines."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from verirepair.harness.vnncomp_bench import compare, read_instances, run_bench, write_rows_csv
    from verirepair.render import bench_summary_table, disagreement_table

    instances = read_instances(existing_file(args.instances))
    engines = args.compare.split(",") if args.compare else [args.engine]
    if args.compare and (len(engines) != 2 or any(e not in list_verifiers() for e in engines)):
        raise BadInput(f"--compare takes two engine names out of {', '.join(list_verifiers())}, "
                        f"e.g. --compare own,marabou; got {args.compare!r}")
    check_output(args.out, "--out", inputs=(args.instances,))
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

    network, props = _network_and_property(args)
    cex_path = existing_file(args.cex) if args.cex else None
    check_output(args.plot, "--plot", suffixes=PLOT_SUFFIXES, inputs=(args.network, args.property))
    with console.status("finding counterexamples and localizing ...") if not args.json else NullContext():
        loc = localize_network(network, props, method=args.method, seed=args.seed,
                               cex_path=cex_path, timeout_s=args.timeout)
    if args.plot and loc.ranking:
        from verirepair.localize.plot import plot_localization

        plot_localization(loc, Path(args.plot), top_k=args.top, network_name=Path(args.network).stem,
                          property_name=Path(args.property).stem)
    if args.json:
        payload = loc.to_json_dict()
        payload["ranking"] = payload["ranking"][: args.top] if args.top else payload["ranking"]
        dump_json(payload)
        return EXIT_OK
    if not loc.ranking:
        console.print("[green]The property holds (no counterexample): nothing to localize.[/green]")
        return EXIT_OK
    console.print(localization_table(loc, args.top))
    if args.plot:
        console.print(f"plot written to {args.plot}")
    return EXIT_OK
