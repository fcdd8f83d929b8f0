"""Cross-check the development-set verdicts of our engine against Marabou and an exact MILP.

Opt-in (not in CI).  Reads the per-instance CSVs that
``benchmarks/bench_wide_inputs.py`` wrote for our engine and for Marabou
(``--engines own`` and ``--engines marabou`` runs over the same set), then

* re-decides every HOLDS of our engine on a network with at most
  ``--milp-max-relus`` ReLUs by the exact big-M MILP of
  ``tests/verify/milp_oracle.py`` (HiGHS; big-M from sound CROWN bounds, units
  they prove stable get no binary): the property is violated iff for some
  class ``j`` the minimum of ``y_label - y_j`` over the box is ``<= 0``; all
  polytopes of one instance share ``--milp-timeout`` seconds, and an instance
  whose MILPs do not finish is reported as unchecked;
* tabulates our verdict against Marabou's, instance by instance.

Usage::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/crosscheck_devset.py \\
        --own benchmarks/results/wide_inputs_all90.csv \\
        --marabou benchmarks/results/wide_inputs_marabou.csv \\
        --csv benchmarks/results/wide_inputs_crosscheck.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path

from verirepair.atomic import write_text_atomic

DECIDED = ("sat", "unsat")


def milp_decide(onnx: Path, vnnlib: Path, budget_s: float) -> tuple[str, float]:
    """``holds`` / ``violated`` by the exact MILP, or ``unchecked``; and the seconds spent."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "verify"))
    from milp_oracle import exact_min
    from verirepair.network import load_network
    from verirepair.properties import parse_vnnlib

    start = time.perf_counter()
    net = load_network(onnx)
    for prop in parse_vnnlib(vnnlib):
        for box in prop.input_boxes:
            for poly in prop.unsafe:
                if poly.A.shape[0] != 1:
                    return "unchecked", time.perf_counter() - start   # one-row polytopes only
                left = budget_s - (time.perf_counter() - start)
                if left <= 1.0:
                    return "unchecked", time.perf_counter() - start
                try:
                    value, _ = exact_min(net, box.lower, box.upper, poly.A[0], time_limit_s=left)
                except RuntimeError:
                    return "unchecked", time.perf_counter() - start
                if value <= poly.b[0]:
                    return "violated", time.perf_counter() - start
    return "holds", time.perf_counter() - start


def _read(path: Path) -> dict[str, dict]:
    with path.open(newline="") as fh:
        return {row["vnnlib"]: row for row in csv.DictReader(fh)}


def _read_log(path: Path) -> dict[str, dict]:
    """Rows of a bench_wide_inputs progress log (``ENGINE STEM: VERDICT TIMEs sub=.. rss=..MB``).

    For a run stopped before it wrote its CSV; the log has no onnxruntime column.
    """
    rows = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1].endswith(":") and parts[3].endswith("s"):
            rows[f"props/{parts[1][:-1]}.vnnlib"] = {"verdict": parts[2], "time_s": parts[3][:-1],
                                                      "onnx_confirmed": "not logged"}
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--devset", type=Path, default=Path("/work/wt/artifacts/digits_devset"))
    ap.add_argument("--own", type=Path, default=Path("benchmarks/results/wide_inputs_all90.csv"))
    ap.add_argument("--marabou", type=Path, default=Path("benchmarks/results/wide_inputs_marabou.csv"))
    ap.add_argument("--marabou-log", type=Path, default=None,
                    help="read Marabou's verdicts from this progress log instead of --marabou")
    ap.add_argument("--milp-from", type=Path, default=None,
                    help="reuse the MILP columns of an earlier crosscheck CSV instead of solving")
    ap.add_argument("--milp-max-relus", type=int, default=384,
                    help="MILP only on networks with at most this many ReLUs")
    ap.add_argument("--milp-timeout", type=float, default=120.0, help="seconds per instance")
    ap.add_argument("--csv", type=Path, default=Path("benchmarks/results/wide_inputs_crosscheck.csv"))
    ap.add_argument("--md", type=Path, default=Path("benchmarks/results/wide_inputs_crosscheck.md"))
    args = ap.parse_args(argv)
    manifest = json.loads((args.devset / "manifest.json").read_text())
    relus = {name: sum(info["hidden"]) for name, info in manifest["networks"].items()}
    own = _read(args.own)
    if args.marabou_log is not None:
        marabou = _read_log(args.marabou_log)
    else:
        marabou = _read(args.marabou) if args.marabou.exists() else {}
    earlier = _read(args.milp_from) if args.milp_from is not None else {}
    rows = []
    for inst in manifest["instances"]:
        key = inst["vnnlib"]
        mine = own.get(key, {}).get("verdict", "not run")
        theirs = marabou.get(key, {}).get("verdict", "not run")
        milp, milp_s = "", 0.0
        if key in earlier:
            milp, milp_s = earlier[key]["milp"], float(earlier[key]["milp_s"])
        elif mine == "unsat" and relus[inst["network"]] <= args.milp_max_relus:
            milp, milp_s = milp_decide(args.devset / "nets" / f"{inst['network']}.onnx",
                                       args.devset / key, args.milp_timeout)
            print(f"MILP {Path(key).stem}: {milp} ({milp_s:.1f} s)", flush=True)
        rows.append({"network": inst["network"], "vnnlib": key, "eps": inst["eps"], "own": mine,
                     "own_onnx_confirmed": own.get(key, {}).get("onnx_confirmed", ""),
                     "marabou": theirs,
                     "marabou_onnx_confirmed": marabou.get(key, {}).get("onnx_confirmed", ""),
                     "marabou_time_s": marabou.get(key, {}).get("time_s", ""),
                     "milp": milp, "milp_s": round(milp_s, 1)})
        if milp:
            _write_csv(args.csv, rows)      # after every MILP: a stopped run keeps its checks
    _write_csv(args.csv, rows)
    md = summary(rows, relus, args)
    write_text_atomic(args.md, md)
    print(md)
    return 0


def summary(rows: list[dict], relus: dict[str, int], args: argparse.Namespace) -> str:
    """Markdown: own x Marabou agreement table, disagreements, MILP re-checks."""
    pairs = Counter((r["own"], r["marabou"]) for r in rows)
    mine_values = sorted({r["own"] for r in rows})
    theirs_values = sorted({r["marabou"] for r in rows})
    disagree = [r for r in rows if {r["own"], r["marabou"]} == set(DECIDED)]
    milp = [r for r in rows if r["milp"]]
    source = f"--marabou-log {args.marabou_log}" if args.marabou_log else f"--marabou {args.marabou}"
    reuse = f" --milp-from {args.milp_from}" if args.milp_from else ""
    lines = [f"Command: `OMP_NUM_THREADS=1 nice -n 5 python benchmarks/crosscheck_devset.py --own {args.own} "
             f"{source}{reuse} --milp-max-relus {args.milp_max_relus} "
             f"--milp-timeout {args.milp_timeout:g}`", "",
             "Our verdict (rows) against Marabou's (columns), instances:", "",
             "| own \\ Marabou | " + " | ".join(theirs_values) + " |",
             "|---|" + "---|" * len(theirs_values)]
    for m in mine_values:
        lines.append(f"| {m} | " + " | ".join(str(pairs.get((m, t), 0)) for t in theirs_values) + " |")
    small = sorted({r["network"] for r in milp}, key=lambda n: relus[n])
    lines += ["", f"- sat/unsat disagreements with Marabou: {len(disagree)}"
              + (": " + ", ".join(Path(r["vnnlib"]).stem for r in disagree) if disagree else ""),
              f"- counterexamples rejected by onnxruntime (float32): ours "
              f"{sum(r['own_onnx_confirmed'] == 'False' for r in rows)}, Marabou's "
              f"{sum(r['marabou_onnx_confirmed'] == 'False' for r in rows)}",
              f"- exact MILP on our HOLDS answers (on {', '.join(f'{n} ({relus[n]} ReLUs)' for n in small)}): "
              f"{len(milp)} instances, holds {sum(r['milp'] == 'holds' for r in milp)}, "
              f"violated {sum(r['milp'] == 'violated' for r in milp)}, unchecked (MILP over "
              f"{args.milp_timeout:g} s) {sum(r['milp'] == 'unchecked' for r in milp)}; MILP time "
              f"{sum(r['milp_s'] for r in milp):.0f} s in all, max {max((r['milp_s'] for r in milp), default=0):.0f} s"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
