"""Command-line interface: ``verirepair <command> ...``.

Pipeline position: the outermost shell.  This is the only module that prints,
configures logging, or turns errors into exit codes (CONVENTIONS.md).  Every
command's work is done by library functions; this module parses arguments,
shows progress with ``rich`` and renders results (tables from
:mod:`verirepair.render`).

Exit codes: 0 for any completed run (whatever the verdict), 2 for bad input
(missing file, malformed network or property) with a one-line message.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.text import Text

from verirepair import __version__
from verirepair.errors import VerirepairError

EXIT_OK = 0
EXIT_BAD_INPUT = 2

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class _BadInput(Exception):
    """Raised inside commands for user errors that argparse cannot catch."""


# ----------------------------------------------------------------------------- helpers
def _existing_file(path_text: str) -> Path:
    path = Path(path_text)
    if not path.is_file():
        raise _BadInput(f"no such file: {path}")
    return path


def _load_network(path_text: str):
    from verirepair.network import load_network

    return load_network(_existing_file(path_text))


def _load_properties(path_text: str):
    from verirepair.spec import parse_vnnlib

    return parse_vnnlib(_existing_file(path_text))


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
    from verirepair.spec.physical import default_properties_dir, default_vnnlib_dir, export_properties

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
    config = VerifyConfig(timeout_s=args.timeout, seed=args.seed, use_lp=args.lp,
                          workers=args.workers if args.engine == "own" else 1)
    with console.status(f"verifying with {args.engine} ...", spinner="dots") if not args.json else _null():
        result = verify(network, props, config, engine=args.engine)
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


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def cmd_bench(args: argparse.Namespace) -> int:
    """Run a VNN-COMP instances.csv with one or two engines."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from verirepair.render import bench_summary_table, disagreement_table
    from verirepair.verify.bench import compare, read_instances, run_bench, write_rows_csv

    instances = read_instances(_existing_file(args.instances))
    engines = args.compare.split(",") if args.compare else [args.engine]
    if args.compare and len(engines) != 2:
        raise _BadInput("--compare takes two engine names, e.g. --compare own,marabou")
    if args.limit:
        instances = instances[: args.limit]
    total = len(instances) * len(engines)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[last]}"), console=console) as bar:
        task = bar.add_task("bench", total=total, last="")

        def on_result(row) -> None:
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
    from verirepair.pipeline_inputs import localize_network
    from verirepair.render import localization_table

    network = _load_network(args.network)
    props = _load_properties(args.property)
    cex_path = _existing_file(args.cex) if args.cex else None
    with console.status("finding counterexamples and localizing ...") if not args.json else _null():
        loc = localize_network(network, props, method=args.method, seed=args.seed,
                               cex_path=cex_path, timeout_s=args.timeout)
    if args.plot and loc.ranking:
        from verirepair.localize.plot import plot_localization

        plot_localization(loc, Path(args.plot), top_k=args.top)
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


def cmd_repair(args: argparse.Namespace) -> int:
    """Repair a network until every given property is proven."""
    from verirepair.pipeline import PipelineConfig, run_pipeline
    from verirepair.pipeline_inputs import collect_properties
    from verirepair.render import repair_summary_table

    network_path = _existing_file(args.network)
    network = _load_network(args.network)
    properties = collect_properties(network_path, [Path(p) for p in args.property or []], args.acasxu)
    if not properties:
        raise _BadInput("give at least one --property FILE, or --acasxu for an ACAS Xu network")
    out = Path(args.out) if args.out else network_path.with_name(network_path.stem + "_repaired.onnx")
    report_dir = Path(args.report) if args.report else out.with_suffix("").with_name(out.stem + "_report")
    config = PipelineConfig(
        layer=None if args.layer == "auto" else int(args.layer),
        norm=args.norm, solver=args.solver, max_rounds=args.max_rounds, timeout_s=args.timeout,
        verify_timeout_s=args.verify_timeout, cross_check_timeout_s=args.cross_check_timeout,
        guilty_neurons=args.guilty_neurons, workers=args.workers,
        cross_check=None if args.cross_check == "none" else args.cross_check, seed=args.seed,
    )
    result = _run_with_progress(lambda cb: run_pipeline(network, properties, config, out, report_dir,
                                                        source_path=network_path, on_event=cb))
    console.print(repair_summary_table(result))
    console.print(f"repaired network: [bold]{result.output_path}[/bold]")
    console.print(f"report: [bold]{result.report_dir}[/bold] (report.json, report.md, plots)")
    return EXIT_OK


def _run_with_progress(job: Callable[[Callable[[str, dict], None]], object]):
    """Run a pipeline job, showing its stage events in a live status line."""
    started = time.perf_counter()
    with console.status("starting ...", spinner="dots") as status:
        def on_event(stage: str, info: dict) -> None:
            elapsed = time.perf_counter() - started
            text = info.get("text", "")
            status.update(f"[bold]{stage}[/bold] {text}  [dim]{elapsed:.0f} s[/dim]")
            if info.get("log"):
                console.print(f"[dim]{elapsed:6.1f} s[/dim]  {stage:<10} {text}")

        return job(on_event)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole pipeline on the shipped demo network."""
    from verirepair.demo import demo_paths
    from verirepair.pipeline import PipelineConfig, run_pipeline
    from verirepair.render import network_table, repair_summary_table

    network_path, property_paths = demo_paths()
    network = _load_network(str(network_path))
    console.print(network_table(network, str(network_path)))
    properties = [(p.stem, _load_properties(str(p))) for p in property_paths]
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = PipelineConfig(max_rounds=args.max_rounds, timeout_s=args.timeout, seed=args.seed,
                            cross_check=None if args.no_cross_check else "marabou")
    result = _run_with_progress(lambda cb: run_pipeline(
        network, properties, config, out_dir / "demo_repaired.onnx", out_dir / "report",
        source_path=network_path, on_event=cb))
    console.print(repair_summary_table(result))
    console.print(f"repaired network: [bold]{result.output_path}[/bold]")
    console.print(f"report: [bold]{result.report_dir}[/bold]")
    return EXIT_OK


# ----------------------------------------------------------------------------- parser
def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one sub-command per pipeline task."""
    parser = argparse.ArgumentParser(
        prog="verirepair",
        description="Repair ReLU networks with proof: specify (VNN-LIB), verify, localize, "
                    "repair, re-verify, deliver an ONNX file, a report and a certificate.",
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
    pe.add_argument("--src", help="folder of phi*.toml files (default: the repository's properties/)")
    pe.add_argument("--dest", help="output folder (default: the repository's vnnlib/acasxu/)")
    pe.set_defaults(func=cmd_properties_export)
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_BAD_INPUT)[1])

    p = sub.add_parser("verify", help="verify a property on a network",
                       description="Verify a VNN-LIB property on a network. The answer is a proof "
                                   "(holds) or a counterexample re-checked by a forward pass.")
    p.add_argument("network", metavar="NET", help="network file (.onnx or .nnet)")
    p.add_argument("property", metavar="PROP", help="VNN-LIB property file")
    p.add_argument("--engine", default="own", choices=["own", "marabou", "marabou-split"],
                   help="verifier (default: own)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="time budget in seconds (default 60)")
    p.add_argument("--lp", action="store_true", help="tighten bounds with LPs (own engine; slower, tighter)")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="processes for our engine's branch and bound (default 1; a search still open "
                        "after 3 s spreads over N processes)")
    p.add_argument("--seed", type=int, default=0, help="falsifier seed (default 0)")
    p.add_argument("--out", metavar="RESULT", help="write a VNN-COMP result file (sat/unsat/timeout/unknown)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("bench", help="run a VNN-COMP instances.csv",
                       description="Run every instance of a VNN-COMP instances.csv (onnx,vnnlib,timeout "
                                   "rows, paths relative to the CSV) and summarise.")
    p.add_argument("instances", metavar="INSTANCES.csv")
    p.add_argument("--engine", default="own", choices=["own", "marabou"])
    p.add_argument("--compare", metavar="A,B", help="run two engines and report every disagreement")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel worker processes (default 1)")
    p.add_argument("--timeout-scale", type=float, default=1.0, metavar="F",
                   help="multiply every instance's timeout by F (default 1)")
    p.add_argument("--limit", type=int, default=0, metavar="N", help="only the first N instances")
    p.add_argument("--out", metavar="results.csv", help="write one CSV row per instance and engine")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("localize", help="rank the neurons that cause a violation",
                       description="Find counterexamples (or read --cex) and rank hidden neurons by "
                                   "their causal effect on the violation (CARE).")
    p.add_argument("network", metavar="NET")
    p.add_argument("property", metavar="PROP")
    p.add_argument("--method", default="causal", choices=["causal", "activation", "gradient"])
    p.add_argument("--top", type=int, default=10, metavar="K", help="rows to show (default 10)")
    p.add_argument("--cex", metavar="FILE", help="counterexamples: a VNN-COMP result file, .npy or .json")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="verification budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the localization as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw top-K effects and a layer-by-neuron heat map")
    p.set_defaults(func=cmd_localize)

    p = sub.add_parser("repair", help="repair a network until its properties are proven",
                       description="Verify, localize, solve a minimal weight change, apply it to a new "
                                   "network and re-verify every property, round after round.")
    p.add_argument("network", metavar="NET")
    p.add_argument("--property", action="append", metavar="P.vnnlib", help="a property (repeatable)")
    p.add_argument("--acasxu", action="store_true",
                   help="use every ACAS Xu property that applies to the named network")
    p.add_argument("--out", metavar="OUT.onnx", help="repaired network (default: NET_repaired.onnx)")
    p.add_argument("--report", metavar="DIR", help="report folder (default: OUT_report/)")
    p.add_argument("--layer", default="auto", help="layer to repair: auto (from localization) or an index")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="processes for our verifier's branch and bound in every round (default 1)")
    p.add_argument("--guilty-neurons", type=_positive_int, default=None, metavar="K",
                   help="change only the K most guilty units' rows of the repaired layer and the K most "
                        "guilty units' columns of the layer before (default: the whole layer)")
    p.add_argument("--norm", default="l1", choices=["l1", "linf", "mix"], help="weight-change norm")
    p.add_argument("--solver", default="cbc", choices=["cbc", "highs", "gurobi"])
    p.add_argument("--max-rounds", type=int, default=8, metavar="N")
    p.add_argument("--timeout", type=float, default=1800.0, metavar="S", help="total budget (default 1800)")
    p.add_argument("--verify-timeout", type=float, default=300.0, metavar="S",
                   help="budget of one property's verification per round (default 300); a property "
                        "not decided in time gets a wider margin in the next round")
    p.add_argument("--cross-check", default="marabou", choices=["marabou", "marabou-split", "none"],
                   help="final independent check of every property (default marabou; marabou-split "
                        "splits the input region for Marabou, for properties it cannot decide whole)")
    p.add_argument("--cross-check-timeout", type=float, default=300.0, metavar="S",
                   help="budget of the cross-check per property (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_repair)

    p = sub.add_parser("demo", help="run the whole pipeline on the shipped demo network",
                       description="Verify, localize, repair and re-verify the shipped demo network, "
                                   "which has a planted violation.")
    p.add_argument("--out-dir", default="demo_out", help="where outputs go (default demo_out/)")
    p.add_argument("--max-rounds", type=int, default=5)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-cross-check", action="store_true", help="skip the final Marabou check")
    p.set_defaults(func=cmd_demo)
    return parser


#: Thread-count variables of the BLAS/OpenMP libraries under numpy and torch.
#: Unless the environment sets them, the CLI runs them single-threaded: the
#: networks' matrices are small (50 wide), and on the 2-core machine with other
#: jobs running a threaded OpenBLAS made ``verify`` of N1,9 phi7 take 31 s
#: instead of 5.5 s.  ``--workers`` is the way to use more cores.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``verirepair`` console script."""
    for variable in BLAS_THREAD_VARIABLES:      # before numpy is first imported
        os.environ.setdefault(variable, "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args))
    except (VerirepairError, _BadInput, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        # Text, not markup: messages quote file contents that may contain brackets.
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
