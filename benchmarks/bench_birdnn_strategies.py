"""The BIRDNN repair strategies beside lp on the ACAS Xu repair benchmark (issue 12).

For each chosen network the three strategies run back to back in one
process (``lp``, ``imitation``, ``finetune``), so they see the same machine
conditions; each run is the full certify loop (every applicable property
verified on the delivered file).  Rows come from
:func:`bench_repair_acasxu.repair_one`; the changed layers, the strategy and
any PAC statements are read from each run's report.json.

Opt-in (not in CI)::

    VERIREPAIR_ACASXU_DIR=../shared/acasxu OMP_NUM_THREADS=1 nice -n 5 python \\
        benchmarks/bench_birdnn_strategies.py --only 2_1,3_5 --out /tmp/s.csv

Resumable: (network, strategy) pairs already in the CSV are skipped.
``--smooth-dir`` runs the smooth ACAS Xu-shaped networks of that folder
(``ACTIVATION/ACASXU_run2a_X_Y_batch_2000.onnx``, from
``benchmarks/make_smooth_acasxu.py``) instead, against every ACAS Xu
property that applies to the network whose name they keep; ``--only`` then
takes prefixes such as ``tanh_``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from bench_repair_acasxu import FIELDS, plan, repair_one

from verirepair.atomic import write_text_atomic
from verirepair.network import load_network
from verirepair.pipeline import run_pipeline
from verirepair.repair.strategy import list_strategies
from verirepair.run_config import DeliveryConfig, RunConfig
from verirepair.tasks.acasxu import build_acasxu_task
from verirepair.tasks.acasxu import networks as acasxu_nets

COLUMNS = ["network", "strategy", *[f for f in FIELDS if f != "network"], "layers", "pac"]


def _config(args: argparse.Namespace, strategy: str) -> RunConfig:
    base = RunConfig()
    return dataclasses.replace(
        base, timeout_s=args.timeout,
        verify=dataclasses.replace(base.verify, timeout_s=args.verify_timeout),
        repair=dataclasses.replace(base.repair, solver=args.solver),
        delivery=DeliveryConfig(cross_check=None),
        strategy=dataclasses.replace(base.strategy, name=strategy))


def _from_report(report_dir: Path) -> dict:
    """Changed layers and PAC statements of a finished run."""
    report = json.loads((report_dir / "report.json").read_text())
    change = report.get("change") or {}
    pac = "; ".join(f"{n}: eps<={e['epsilon']:.3g} @ {e['confidence']:.4g} ({e['n_samples']} samples)"
                    if e["epsilon"] is not None else
                    f"{n}: {e['n_violations']} violations in {e['n_samples']} samples"
                    for n, e in (report.get("pac") or {}).items())
    return {"layers": " ".join(str(i) for i in change.get("layers", [])) or None, "pac": pac or None}


def smooth_one(key: str, path: Path, config: RunConfig, workdir: Path) -> dict:
    """Repair one smooth network against the ACAS Xu properties of the network whose name it keeps."""
    network = load_network(path)
    task = build_acasxu_task(path, network, [], None)
    started = time.perf_counter()
    result = run_pipeline(network, task, config, workdir / f"{key}_repaired.onnx", workdir / f"{key}_report",
                          source_path=path)
    row: dict = {"network": key, "instances": "+".join(result.properties), "status": result.status.value,
                 "rounds": len(result.rounds), "time_s": round(time.perf_counter() - started, 1)}
    for name, outcome in result.properties.items():
        verdicts = f"{outcome.before.verdict.value}->{outcome.final.verdict.value}"
        if name in ("phi1", "phi2", "phi3", "phi4"):
            row[name] = verdicts
        else:
            row["specific"] = ", ".join(filter(None, [row.get("specific"), f"{name}: {verdicts}"]))
    fidelity, change = result.fidelity, result.change
    care = [c for c in fidelity.care if c.accuracy is not None] if fidelity else []
    row.update({"advisory_fidelity": fidelity.decision_agreement if fidelity else None,
                "care_accuracy": min((c.accuracy for c in care if c.accuracy is not None), default=None),
                "care_violation_rate": max((c.violation_rate or 0.0 for c in care), default=None),
                "l1": change.l1 if change else None, "linf": change.linf if change else None,
                "n_changed": change.n_changed if change else None})
    return row


TABLE = ["network", "strategy", "status", "rounds", "advisory_fidelity", "care_accuracy", "care_violation_rate",
         "n_changed", "l1", "linf", "layers", "time_s", "time_vs_lp", "pac"]


def _num(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def table_lines(rows: list[dict]) -> list[str]:
    """A Markdown table of ``rows`` with each run's time as a ratio to lp's on the same network (same process)."""
    lp_time = {r["network"]: _num(r["time_s"]) for r in rows if r["strategy"] == "lp"}
    lines = ["| " + " | ".join(TABLE) + " |", "|" + "---|" * len(TABLE)]
    for row in rows:
        base, mine = lp_time.get(row["network"]), _num(row["time_s"])
        ratio = f"{mine / base:.2f}" if base and mine is not None else "-"
        cells = []
        for key in TABLE:
            value = ratio if key == "time_vs_lp" else row.get(key)
            number = _num(value) if key not in ("rounds", "n_changed", "layers", "time_vs_lp") else None
            cells.append(f"{number:.4g}" if number is not None else ("-" if value in (None, "") else str(value)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary_lines(rows: list[dict]) -> list[str]:
    """Per strategy: certified count, mean fidelity, median change and time."""
    import statistics

    lines = ["| strategy | runs | certified (repaired) | advisory fidelity mean / min (certified) | "
             "parameters changed, median | L1 median | L-inf median | time median s |",
             "|---|---|---|---|---|---|---|---|"]
    for strategy in list_strategies():
        mine = [r for r in rows if r["strategy"] == strategy]
        if not mine:
            continue
        ok = [r for r in mine if r["status"] == "repaired"]

        def med(key: str, group: list[dict]) -> str:
            values = [v for v in (_num(r.get(key)) for r in group) if v is not None]
            return f"{statistics.median(values):.4g}" if values else "-"

        fid = [v for v in (_num(r.get("advisory_fidelity")) for r in ok) if v is not None]
        fid_text = f"{100 * statistics.mean(fid):.2f}% / {100 * min(fid):.2f}%" if fid else "-"
        lines.append(f"| {strategy} | {len(mine)} | {len(ok)} | {fid_text} | {med('n_changed', ok)} | "
                     f"{med('l1', ok)} | {med('linf', ok)} | {med('time_s', mine)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV (appended to; resumable)")
    parser.add_argument("--only", help="comma-separated ACAS Xu network keys, e.g. 2_1,3_5")
    parser.add_argument("--smooth-dir", type=Path, help="run the smooth networks (*.onnx) of this folder instead")
    parser.add_argument("--strategies", default=",".join(list_strategies()))
    parser.add_argument("--solver", default="highs")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--verify-timeout", type=float, default=60.0)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--tables", action="store_true", help="print the Markdown tables of --out and stop")
    args = parser.parse_args(argv)
    if args.tables:
        with open(args.out, newline="") as handle:
            rows = list(csv.DictReader(handle))
        print("\n".join(table_lines(rows) + [""] + summary_lines(rows)))
        return 0
    strategies = args.strategies.split(",")
    done: list[dict] = []
    if args.out.exists():
        with open(args.out, newline="") as handle:
            done = list(csv.DictReader(handle))
    finished = {(r["network"], r["strategy"]) for r in done}
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="birdnn_bench_"))
    if args.smooth_dir:
        jobs = [(f"{p.parent.name}_{p.stem}", p) for p in sorted(args.smooth_dir.glob("*/*.onnx"))]
        if args.only:
            jobs = [(k, p) for k, p in jobs if any(k.startswith(o) for o in args.only.split(","))]
    else:
        keep = {acasxu_nets.network_info(k).name for k in args.only.split(",")} if args.only else None
        jobs = [(name, labels) for name, labels in plan(keep) if keep is None or name in keep]
    for name, what in jobs:
        for strategy in strategies:
            if (name, strategy) in finished:
                continue
            folder = workdir / strategy
            folder.mkdir(parents=True, exist_ok=True)
            config = _config(args, strategy)
            if isinstance(what, Path):
                row = smooth_one(name, what, config, folder)
            else:
                row = repair_one(name, what, config, folder)
            row.update(_from_report(folder / f"{name}_report"), strategy=strategy)
            done.append(row)
            print(" ".join(f"{k}={row.get(k)}" for k in COLUMNS), flush=True)
            text = io.StringIO(newline="")
            writer = csv.DictWriter(text, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(done)
            write_text_atomic(args.out, text.getvalue())
    return 0


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    sys.exit(main())
