"""Cross-check repaired ACAS Xu networks with Marabou on a split input region.

Each instance is one (repaired network, property) pair.  Marabou runs through
``verify_marabou_split`` (``engine="marabou-split"``'s implementation, with
the settings given here), and our own engine runs on the same instance for
comparison.  Any instance where Marabou's confirmed ``violated`` meets our
``holds`` is a soundness disagreement and is flagged in the ``agree`` column.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_crosscheck_repaired.py run \\
        --nets /tmp/rbench --props 2,1,3,4 --out /tmp/xc/crosscheck.csv
    python benchmarks/bench_crosscheck_repaired.py report /tmp/xc/crosscheck.csv \\
        --out benchmarks/results/repair_crosscheck.md

``run`` rewrites its CSV (atomically) after every instance, so an interrupted
run keeps every finished row, and ``--resume`` skips rows already present.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import re
import statistics
import sys
import time
from pathlib import Path

from verirepair.atomic import write_text_atomic
from verirepair.network.loader import load_network
from verirepair.properties.vnnlib import parse_vnnlib
from verirepair.verify.engine import verify
from verirepair.verify.marabou_split import SplitConfig, verify_marabou_split
from verirepair.verify.result import Verdict, VerifyConfig

FIELDS = ["network", "property", "marabou_verdict", "marabou_s", "timeout_s", "queries",
          "leaves", "piece_timeouts", "splits", "max_depth", "own_verdict", "own_s", "agree",
          "cex", "initial_splits", "piece_timeout_s", "timeout_growth", "message"]
DEFAULTS = SplitConfig()
NET_PATTERN = re.compile(r"ACASXU_run2a_(\d)_(\d)_batch_2000_repaired\.onnx$")


def _networks(folder: Path, exclude: set[str]) -> list[tuple[str, Path]]:
    """Repaired networks in ``folder`` as (``"i_j"``, path), sorted, minus ``exclude``."""
    found = []
    for path in sorted(folder.iterdir()):
        match = NET_PATTERN.search(path.name)
        if match and f"{match[1]}_{match[2]}" not in exclude:
            found.append((f"{match[1]}_{match[2]}", path))
    return found


def _write_rows(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def _read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _one(net_name: str, net_path: Path, prop_path: Path, budget_s: float, own_budget_s: float,
         split: SplitConfig) -> dict:
    """Run Marabou-split and our engine on one instance; return its CSV row."""
    network = load_network(net_path)
    props = parse_vnnlib(prop_path)
    result = verify_marabou_split(network, props, VerifyConfig(timeout_s=budget_s), split)
    own = verify(network, props, VerifyConfig(timeout_s=own_budget_s), engine="own")
    cex = ""
    if result.verdict is Verdict.VIOLATED:
        c = result.counterexamples[0]
        cex = " ".join(f"{v:.17g}" for v in c.x) + " | y " + " ".join(f"{v:.6g}" for v in c.y)
    agree = not (result.verdict is Verdict.VIOLATED and own.verdict is Verdict.HOLDS
                 or result.verdict is Verdict.HOLDS and own.verdict is Verdict.VIOLATED)
    extra = result.stats.extra
    return {"network": net_name, "property": prop_path.stem,
            "marabou_verdict": result.verdict.value, "marabou_s": f"{result.stats.time_s:.1f}",
            "timeout_s": f"{budget_s:.0f}", "queries": result.stats.subproblems,
            "leaves": extra["leaves"], "piece_timeouts": extra["piece_timeouts"],
            "splits": result.stats.splits, "max_depth": result.stats.max_depth,
            "own_verdict": own.verdict.value, "own_s": f"{own.stats.time_s:.2f}",
            "agree": "yes" if agree else "NO", "cex": cex,
            "initial_splits": split.initial_splits, "piece_timeout_s": split.piece_timeout_s,
            "timeout_growth": split.timeout_growth, "message": result.message[:200]}


def cmd_run(args: argparse.Namespace) -> int:
    """Run every (network, property) instance in property-major order."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.log:
        logging.basicConfig(filename=args.log, level=logging.WARNING,
                            format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("verirepair.verify.marabou_split").setLevel(logging.DEBUG)
    split = SplitConfig(initial_splits=args.initial_splits, piece_timeout_s=args.piece_timeout,
                        timeout_growth=args.growth, max_depth=args.max_depth)
    nets = _networks(Path(args.nets), set(args.exclude.split(",")) if args.exclude else set())
    if args.only:
        nets = [n for n in nets if n[0] in set(args.only.split(","))]
    out = Path(args.out)
    rows = _read_rows(out) if args.resume and out.exists() else []
    done = {(r["network"], r["property"]) for r in rows}
    stop_at = time.time() + args.stop_after if args.stop_after else float("inf")
    for prop_id in args.props.split(","):
        prop_path = Path(args.vnnlib) / f"prop_{prop_id}.vnnlib"
        for net_name, net_path in nets:
            if (net_name, prop_path.stem) in done:
                continue
            budget = min(args.timeout, stop_at - time.time())
            if budget < args.min_budget:
                print("stop: the --stop-after time is used up", file=sys.stderr)
                _write_rows(out, rows)
                return 0
            row = _one(net_name, net_path, prop_path, budget, args.own_timeout, split)
            rows.append(row)
            _write_rows(out, rows)
            print(f"{net_name} {prop_path.stem}: marabou {row['marabou_verdict']} "
                  f"{row['marabou_s']} s ({row['queries']} queries, {row['leaves']} leaves), "
                  f"own {row['own_verdict']} {row['own_s']} s, agree {row['agree']}", flush=True)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Summarise CSV rows as a Markdown table (with a free-text preamble)."""
    rows = [r for path in args.csv for r in _read_rows(Path(path))]
    lines = [args.title, ""]
    if args.note:
        lines += [Path(args.note).read_text().rstrip(), ""]
    bad = [r for r in rows if r["agree"] != "yes"]
    lines += [f"**Disagreements (Marabou vs own): {len(bad)}**", ""]
    for r in bad:
        lines.append(f"- N{r['network']} {r['property']}: marabou {r['marabou_verdict']}, own "
                     f"{r['own_verdict']}, cex {r['cex']}")
    lines += ["", "| property | initial pieces | instances | marabou holds | violated | timeout | "
              "unknown | own holds | median marabou s | max marabou s | median queries |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for prop, splits in sorted({(r["property"], int(r["initial_splits"])) for r in rows}):
        sub = [r for r in rows
               if r["property"] == prop and int(r["initial_splits"]) == splits]
        count = {v.value: sum(r["marabou_verdict"] == v.value for r in sub) for v in Verdict}
        times = sorted(float(r["marabou_s"]) for r in sub)
        queries = sorted(int(r["queries"]) for r in sub)
        lines.append(f"| {prop} | 2^{splits} | {len(sub)} | {count['holds']} | {count['violated']} | "
                     f"{count['timeout']} | {count['unknown']} | "
                     f"{sum(r['own_verdict'] == 'holds' for r in sub)} | "
                     f"{statistics.median(times):.0f} | {times[-1]:.0f} | {statistics.median(queries):.0f} |")
    lines += ["", "| network | property | initial pieces | marabou | time (s) | budget (s) | queries | leaves | "
              "piece timeouts | max depth | own | own (s) | agree |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['property']} | 2^{r['initial_splits']} | "
                     f"{r['marabou_verdict']} | "
                     f"{r['marabou_s']} | {r['timeout_s']} | {r['queries']} | {r['leaves']} | "
                     f"{r['piece_timeouts']} | {r['max_depth']} | {r['own_verdict']} | "
                     f"{r['own_s']} | {r['agree']} |")
    write_text_atomic(Path(args.out), "\n".join(lines) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (``run`` and ``report``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="verify instances, one CSV row each")
    p.add_argument("--nets", default="/tmp/rbench", help="folder of *_repaired.onnx networks")
    p.add_argument("--vnnlib", default="/work/shared/acasxu/vnnlib", help="folder of prop_N.vnnlib")
    p.add_argument("--props", default="2,1,3,4", help="property numbers, in run order")
    p.add_argument("--exclude", default="1_9,2_9", help="networks to skip (not certified)")
    p.add_argument("--only", default="", help="run only these networks, e.g. 2_1,3_2")
    p.add_argument("--timeout", type=float, default=1200.0, help="Marabou budget per instance (s)")
    p.add_argument("--own-timeout", type=float, default=60.0, help="own engine budget (s)")
    p.add_argument("--initial-splits", type=int, default=DEFAULTS.initial_splits)
    p.add_argument("--piece-timeout", type=float, default=DEFAULTS.piece_timeout_s)
    p.add_argument("--growth", type=float, default=DEFAULTS.timeout_growth)
    p.add_argument("--max-depth", type=int, default=DEFAULTS.max_depth)
    p.add_argument("--stop-after", type=float, default=0.0,
                   help="wall-clock seconds after which no new instance starts (0: none); "
                        "budgets are cut to fit")
    p.add_argument("--min-budget", type=float, default=30.0,
                   help="do not start an instance with less budget than this (s)")
    p.add_argument("--log", default="", help="write every Marabou piece's outcome to this file")
    p.add_argument("--resume", action="store_true", help="keep rows already in --out")
    p.add_argument("--out", required=True, help="CSV file (rewritten after every instance)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("report", help="write the Markdown summary of CSV files")
    p.add_argument("csv", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="# Repaired ACAS Xu networks: Marabou split-and-conquer cross-check")
    p.add_argument("--note", default="", help="a text file inserted under the title")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
