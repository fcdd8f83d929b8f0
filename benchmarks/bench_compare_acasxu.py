"""ACAS Xu: our engine against Marabou on the 186 VNN-COMP instances.

Opt-in measurement (not part of the test suite).  Two steps, so that the engines
can run separately (e.g. at the same time on two cores) and be merged later::

    # 1. run one or more engines; rows are rewritten after every instance
    OMP_NUM_THREADS=1 python benchmarks/bench_compare_acasxu.py run \\
        --engines marabou --timeout-scale 0.25 --out /tmp/acasxu_marabou.csv
    OMP_NUM_THREADS=1 python benchmarks/bench_compare_acasxu.py run \\
        --engines own --timeout-scale 0.25 --out /tmp/acasxu_own.csv

    # 2. merge, compare and summarise
    python benchmarks/bench_compare_acasxu.py report /tmp/acasxu_marabou.csv /tmp/acasxu_own.csv \\
        --csv benchmarks/results/acasxu_compare.csv --md benchmarks/results/acasxu_compare.md

As a pytest-benchmark entry (3 quick instances, both engines)::

    pytest benchmarks/bench_compare_acasxu.py --benchmark-enable -m acasxu

The data is located through ``VERIREPAIR_ACASXU_DIR`` (default ``<repo>/../shared/acasxu``).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

from verirepair.atomic import write_text_atomic
from verirepair.harness.vnncomp_bench import (
    BenchRow,
    Instance,
    compare,
    read_instances,
    read_rows_csv,
    run_bench,
    summarize,
    write_rows_csv,
)

REPO = Path(__file__).resolve().parents[1]


def acasxu_dir() -> Path:
    """Where the ACAS Xu benchmark lives."""
    return Path(os.environ.get("VERIREPAIR_ACASXU_DIR", REPO.parent / "shared" / "acasxu"))


def _run(args: argparse.Namespace) -> int:
    instances = read_instances(acasxu_dir() / "instances.csv")
    if args.shuffle is not None:
        # A seeded shuffle makes a run cut short a uniform sample of the benchmark.
        random.Random(args.shuffle).shuffle(instances)
    if args.unsolved_in:
        # Second pass: only the instances that an earlier run left undecided.
        solved = {row.key for row in read_rows_csv(args.unsolved_in) if row.solved}
        instances = [i for i in instances if i.key not in solved]
    if args.limit:
        instances = instances[: args.limit]
    engines = args.engines.split(",")
    rows: list[BenchRow] = []
    total = len(instances) * len(engines)
    start = time.monotonic()

    def on_result(row: BenchRow) -> None:
        rows.append(row)
        write_rows_csv(rows, args.out)
        print(f"[{len(rows)}/{total} {time.monotonic() - start:7.0f}s] {row.engine:8s} "
              f"{row.onnx} {row.vnnlib}: {row.verdict} {row.time_s:.2f}s {row.message[:80]}",
              flush=True)

    run_bench(instances, engines, jobs=args.jobs, timeout_scale=args.timeout_scale,
              on_result=on_result, grace_s=args.grace)
    print(f"done: {len(rows)} rows in {time.monotonic() - start:.0f} s", flush=True)
    return 0


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def markdown_report(rows: list[BenchRow], n_instances: int, note: str) -> str:
    """The markdown summary: per-engine numbers, disagreements, per-instance mismatches."""
    summaries = summarize(rows)
    engines = list(summaries)
    lines = ["# ACAS Xu: own engine vs Marabou", "", note, "",
             f"Instances in the benchmark: {n_instances}.", "",
             "| engine | rows | solved | holds | violated | timeout | unknown | error "
             "| total time (s) | median time (s) | median solved (s) | max time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for engine, s in summaries.items():
        v = s.by_verdict
        lines.append(f"| {engine} | {s.instances} | {s.solved} | {v['holds']} | {v['violated']} "
                     f"| {v['timeout']} | {v['unknown']} | {v['error']} | {s.total_time_s:.1f} "
                     f"| {_fmt(s.median_time_s)} | {_fmt(s.median_solved_time_s)} "
                     f"| {_fmt(s.max_time_s)} |")
    by_key: dict = {}
    for row in rows:
        by_key.setdefault(row.key, {})[row.engine] = row
    both = [k for k, v in by_key.items() if all(e in v for e in engines)]
    both_solved = [k for k in both if all(by_key[k][e].solved for e in engines)]
    only = {e: sum(1 for k in both if by_key[k][e].solved
                   and not all(by_key[k][o].solved for o in engines)) for e in engines}
    bad_cex = [r for r in rows if r.verdict == "violated" and r.cex_ok is not True]
    disagreements = compare(rows, engines)
    props = sorted({r.vnnlib for r in rows}, key=lambda v: int("".join(filter(str.isdigit, v)) or 0))
    lines += ["", "Solved per property (solved / run):", "",
              "| property | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
    for prop in props:
        cells = [f"{sum(r.solved for r in rows if r.engine == e and r.vnnlib == prop)} / "
                 f"{sum(1 for r in rows if r.engine == e and r.vnnlib == prop)}" for e in engines]
        lines.append(f"| {Path(prop).stem} | " + " | ".join(cells) + " |")
    lines += ["", f"Instances run by all engines: {len(both)}; solved by all: {len(both_solved)}; "
              + "; ".join(f"solved only by {e}: {n}" for e, n in only.items()) + ".",
              f"Counterexamples failing the independent float64 re-check: {len(bad_cex)}.", "",
              f"## Disagreements (both definitive, different answers): {len(disagreements)}", ""]
    lines += [f"- {d.onnx} {d.vnnlib}: {d.engine_a}={d.verdict_a}, {d.engine_b}={d.verdict_b}"
              for d in disagreements] or ["None."]
    return "\n".join(lines) + "\n"


def second_pass_report(primary: list[BenchRow], extra: list[BenchRow]) -> str:
    """Markdown for re-runs of undecided instances with a larger budget.

    Each engine's re-run rows are compared with every *other* engine's primary rows.
    """
    lines = ["", "## Second pass: undecided instances re-run with a larger budget", ""]
    for engine, s in summarize(extra).items():
        mine = [r for r in extra if r.engine == engine]
        budgets = sorted({r.timeout_s for r in mine})
        others = [r for r in primary if r.engine != engine]
        disagreements = compare(others + mine)
        undecided = sum(1 for r in primary if r.engine == engine and not r.solved)
        lines.append(
            f"- {engine} (budget {', '.join(f'{b:g}' for b in budgets)} s): {s.instances} of the "
            f"{undecided} undecided instances re-run, "
            f"{s.solved} now solved ({s.by_verdict['holds']} holds, {s.by_verdict['violated']} "
            f"violated), {s.by_verdict['timeout']} timeout, {s.by_verdict['error']} error; "
            f"total {s.total_time_s:.0f} s; disagreements with the other engine: {len(disagreements)}"
        )
        lines += [f"  - {d.onnx} {d.vnnlib}: {d.engine_a}={d.verdict_a}, {d.engine_b}={d.verdict_b}"
                  for d in disagreements]
    return "\n".join(lines) + "\n"


def _report(args: argparse.Namespace) -> int:
    rows = [row for path in args.rows for row in read_rows_csv(path)]
    extra = [row for path in args.second_pass for row in read_rows_csv(path)]
    n_instances = len(read_instances(acasxu_dir() / "instances.csv"))
    write_rows_csv(rows + extra, args.csv)
    text = markdown_report(rows, n_instances, args.note)
    if extra:
        text += second_pass_report(rows, extra)
    write_text_atomic(Path(args.md), text)
    print(text)
    return 1 if compare(rows) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run engines on the ACAS Xu instances")
    run.add_argument("--engines", default="own,marabou")
    run.add_argument("--jobs", type=int, default=1)
    run.add_argument("--timeout-scale", type=float, default=1.0)
    run.add_argument("--grace", type=float, default=30.0)
    run.add_argument("--shuffle", type=int, default=None, help="seed of an instance shuffle")
    run.add_argument("--limit", type=int, default=0, help="only the first N instances")
    run.add_argument("--unsolved-in", default=None,
                     help="rows CSV of an earlier run: only re-run instances it did not solve")
    run.add_argument("--out", required=True, help="rows CSV, rewritten after every instance")
    report = sub.add_parser("report", help="merge rows, compare engines, write CSV + markdown")
    report.add_argument("rows", nargs="+")
    report.add_argument("--csv", default=str(REPO / "benchmarks/results/acasxu_compare.csv"))
    report.add_argument("--md", default=str(REPO / "benchmarks/results/acasxu_compare.md"))
    report.add_argument("--note", default="")
    report.add_argument("--second-pass", nargs="*", default=[],
                        help="rows CSVs of re-runs with a larger budget (reported separately)")
    args = parser.parse_args(argv)
    return _run(args) if args.command == "run" else _report(args)


# ------------------------------------------------------------- pytest entry
def test_bench_compare_acasxu_quick(benchmark):  # pragma: no cover - opt-in
    """pytest-benchmark entry: 3 quick instances, both engines, no disagreement."""
    import pytest

    csv_path = acasxu_dir() / "instances.csv"
    if not csv_path.exists():
        pytest.skip(f"ACAS Xu data not found in {csv_path.parent}")
    wanted = {("onnx/ACASXU_run2a_1_1_batch_2000.onnx", "vnnlib/prop_1.vnnlib"),
              ("onnx/ACASXU_run2a_2_1_batch_2000.onnx", "vnnlib/prop_2.vnnlib"),
              ("onnx/ACASXU_run2a_4_4_batch_2000.onnx", "vnnlib/prop_3.vnnlib")}
    instances: list[Instance] = [i for i in read_instances(csv_path) if i.key in wanted]
    rows = benchmark.pedantic(run_bench, args=(instances, ["own", "marabou"]),
                              kwargs={"timeout_scale": 0.25}, rounds=1, iterations=1)
    assert not compare(rows)
    assert all(r.cex_ok for r in rows if r.verdict == "violated")


if __name__ == "__main__":
    sys.exit(main())
