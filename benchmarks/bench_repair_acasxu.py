"""ACAS Xu repair benchmark: the 36 instances of the certified-repair issue.

Instances: phi2 on every network that violates it, N1,9 with phi7, and N2,9
with phi8 (together with phi2).  Each *network* is repaired once against every
property that applies to it (Katz et al.), so N2,9's phi2 and phi8 instances
are one run; after the run, phi1-phi4 are verified on the repaired network for
the table whether or not they apply.

Opt-in (not in CI).  As a script::

    OMP_NUM_THREADS=1 python benchmarks/bench_repair_acasxu.py \\
        --out benchmarks/results/repair_acasxu.csv --md benchmarks/results/repair_acasxu.md

It is resumable: networks already in the CSV are skipped.  As a
pytest-benchmark entry: ``pytest benchmarks/bench_repair_acasxu.py --benchmark-enable``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytest

from verirepair.atomic import write_text_atomic
from verirepair.network import load_network
from verirepair.pipeline import run_pipeline
from verirepair.properties import parse_vnnlib
from verirepair.repair.strategy_config import STRATEGY_NAMES, StrategyConfig
from verirepair.run_config import DeliveryConfig, RunConfig, default_of
from verirepair.tasks.acasxu import build_acasxu_task
from verirepair.tasks.acasxu import networks as acasxu_nets
from verirepair.tasks.acasxu.physical import default_vnnlib_dir
from verirepair.verify import Verdict, VerifyConfig, verify

FIELDS = ["network", "instances", "status", "rounds", "phi1", "phi2", "phi3", "phi4", "specific",
          "cross_check", "advisory_fidelity", "care_accuracy", "care_violation_rate", "l1", "linf",
          "n_changed", "layer", "time_s"]


def phi2_violators(timeout_s: float = 60.0) -> list[str]:
    """Networks that phi2 applies to (x >= 2) and on which our verifier finds a counterexample.

    (VNN-COMP also runs prop_2 on N1,y, where it does not apply and is violated on N1,2-N1,6.)
    """
    props = parse_vnnlib(default_vnnlib_dir() / "prop_2.vnnlib")
    names = []
    for info in acasxu_nets.networks_for_property(2):
        info = acasxu_nets.network_info(info)
        network = load_network(acasxu_nets.onnx_path(info.name))
        if verify(network, props, VerifyConfig(timeout_s=timeout_s)).verdict is Verdict.VIOLATED:
            names.append(info.name)
    return names


def plan(only: set[str] | None = None) -> list[tuple[str, list[str]]]:
    """(network, instance labels) to run, hard ones first.

    With ``only``, those networks are taken as phi2 violators without the scan
    (for splitting a run over several processes).
    """
    violators = sorted(only) if only else phi2_violators()
    n19 = acasxu_nets.network_name(1, 9)
    n29 = acasxu_nets.network_name(2, 9)
    runs = [(n19, ["phi7"]), (n29, ["phi8"] + (["phi2"] if n29 in violators else []))]
    runs += [(name, ["phi2"]) for name in violators if name not in (n19, n29)]
    return runs


def _verdict(network, number: int) -> str:
    props = parse_vnnlib(default_vnnlib_dir() / f"prop_{number}.vnnlib")
    return verify(network, props, VerifyConfig(timeout_s=120)).verdict.value


def repair_one(name: str, labels: list[str], config: RunConfig, workdir: Path) -> dict:
    """Repair one network and return its table row."""
    path = acasxu_nets.onnx_path(name)
    network = load_network(path)
    task = build_acasxu_task(path, network, [], None)
    started = time.perf_counter()
    result = run_pipeline(network, task, config, workdir / f"{name}_repaired.onnx", workdir / f"{name}_report",
                          source_path=path)
    elapsed = time.perf_counter() - started
    final = result.network
    row = {"network": name, "instances": "+".join(labels), "status": result.status.value,
           "rounds": len(result.rounds), "time_s": round(elapsed, 1)}
    for number in (1, 2, 3, 4):
        key = f"phi{number}"
        outcome = result.properties.get(key)
        entry = outcome.after if outcome else None
        applies = key in result.properties
        verdict = entry.verdict.value if entry else _verdict(final, number)
        row[key] = verdict if applies else f"({verdict})"
    specific = [k for k in result.properties if k not in ("phi1", "phi2", "phi3", "phi4")]
    row["specific"] = ", ".join(f"{k}: {result.properties[k].final.verdict.value}" for k in specific) or "-"
    row["cross_check"] = ", ".join(f"{k}: {v.cross_check.verdict.value if v.cross_check else '-'}"
                                   for k, v in result.properties.items())
    fidelity = result.fidelity
    care = [c for c in fidelity.care if c.accuracy is not None] if fidelity else []
    row["advisory_fidelity"] = fidelity.decision_agreement if fidelity else None
    row["care_accuracy"] = min((c.accuracy for c in care if c.accuracy is not None), default=None)
    row["care_violation_rate"] = max((c.violation_rate or 0.0 for c in care), default=None)
    change = result.change
    row.update({"l1": change.l1 if change else None, "linf": change.linf if change else None,
                "n_changed": change.n_changed if change else None,
                "layer": change.layer_index if change else None})
    return row


def write_markdown(rows: list[dict], path: Path) -> None:
    """The results table plus summary statistics."""
    lines = ["# ACAS Xu repair benchmark", "",
             "Produced by `benchmarks/bench_repair_acasxu.py` on a 2-core machine. Verdicts in parentheses are "
             "for properties that do not apply to the network (Katz et al.); they are shown, not repaired.", "",
             "| " + " | ".join(FIELDS) + " |", "|" + "---|" * len(FIELDS)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(f)) for f in FIELDS) + " |")
    fid = [float(r["advisory_fidelity"]) for r in rows if r.get("advisory_fidelity") not in (None, "")]
    times = [float(r["time_s"]) for r in rows]
    certified = sum(1 for r in rows if r["status"] == "repaired")
    lines += ["", f"- networks run: {len(rows)}; certified: {certified}",
              f"- advisory fidelity: mean {100 * statistics.mean(fid):.3f}%, min {100 * min(fid):.3f}%" if fid else "",
              f"- time: median {statistics.median(times):.1f} s, max {max(times):.1f} s, total {sum(times):.0f} s"
              if times else ""]
    write_text_atomic(path, "\n".join(lines) + "\n")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value in (None, "") else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/repair_acasxu.csv"))
    parser.add_argument("--md", type=Path, default=Path("benchmarks/results/repair_acasxu.md"))
    parser.add_argument("--solver", default="highs")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--verify-timeout", type=float, default=default_of(VerifyConfig, "timeout_s"),
                        help="budget of one property's verification in a round (seconds)")
    parser.add_argument("--cross-check-timeout", type=float, default=60.0)
    parser.add_argument("--no-cross-check", action="store_true", help="skip the final Marabou check")
    parser.add_argument("--workdir", type=Path, help="where repaired networks and reports go (default: a temp dir)")
    parser.add_argument("--only", help="comma-separated network keys, e.g. 1_9,2_9")
    parser.add_argument("--strategy", default=default_of(StrategyConfig, "name"), choices=STRATEGY_NAMES,
                        help="repair strategy of the certify loop (default %(default)s; cover: the output "
                             "layer proven by construction on covers of the properties the verifier "
                             "leaves undecided)")
    args = parser.parse_args(argv)
    keep = {acasxu_nets.network_info(k).name for k in args.only.split(",")} if args.only else None
    runs = [r for r in plan(keep) if keep is None or r[0] in keep]
    done = []
    if args.out.exists():
        with open(args.out, newline="") as handle:
            done = list(csv.DictReader(handle))
    finished = {r["network"] for r in done}
    base = RunConfig()
    config = dataclasses.replace(
        base, timeout_s=args.timeout,
        verify=dataclasses.replace(base.verify, timeout_s=args.verify_timeout),
        repair=dataclasses.replace(base.repair, solver=args.solver),
        strategy=dataclasses.replace(base.strategy, name=args.strategy),
        delivery=DeliveryConfig(cross_check=None if args.no_cross_check else "marabou",
                                cross_check_timeout_s=args.cross_check_timeout))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="repair_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    for name, labels in runs:
        if name in finished:
            continue
        row = repair_one(name, labels, config, workdir)
        done.append(row)
        print(" ".join(f"{k}={_fmt(row.get(k))}" for k in FIELDS), flush=True)
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(done)
        write_text_atomic(args.out, text.getvalue())
        write_markdown(done, args.md)
    return 0


@pytest.mark.acasxu
def test_repair_benchmark(benchmark, tmp_path):
    """pytest-benchmark entry: the whole benchmark, one round."""
    acasxu_nets.data_or_skip(("onnx",))
    benchmark.pedantic(main, args=(["--out", str(tmp_path / "r.csv"), "--md", str(tmp_path / "r.md")],),
                       rounds=1, iterations=1)


if __name__ == "__main__":
    sys.exit(main())
