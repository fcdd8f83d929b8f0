"""ACAS Xu: our own verifier on the 186 VNN-COMP instances, in one process.

Opt-in measurement (not part of the CI test paths).  As a script it writes one
CSV row per instance and prints a summary (solved, wrong, max/total time,
slowest instances)::

    OMP_NUM_THREADS=1 python benchmarks/bench_verify_acasxu.py \\
        --timeout 60 --csv benchmarks/results/verify_acasxu.csv

``--only 3,4`` restricts to some properties, ``--limit N`` to the first N rows.
"Wrong" means a verdict that contradicts the known answer: VIOLATED is always
backed by a confirmed counterexample, so only a HOLDS on an instance where some
engine found a counterexample can be wrong; the script re-checks every
counterexample with onnxruntime on the original ONNX file (float32).

As a pytest-benchmark entry (all 186 instances, one round)::

    pytest benchmarks/bench_verify_acasxu.py --benchmark-enable -m acasxu

The data is located by :mod:`acasxu_nets` (``VERIREPAIR_ACASXU_DIR``, default
``<repo>/../shared/acasxu``).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from verirepair.atomic import write_text_atomic
from verirepair.properties import parse_vnnlib
from verirepair.tasks.acasxu import networks as acasxu_nets
from verirepair.verify import Verdict, VerifyConfig, verify


@dataclass(frozen=True)
class Row:
    """One benchmark result."""

    network: str
    prop: int
    verdict: str
    time_s: float
    cpu_s: float
    subproblems: int
    max_depth: int
    decided_by: str
    onnx_confirmed: str


def _onnx_check(network: str, prop, x: np.ndarray) -> bool:
    """Whether onnxruntime (float32, original ONNX) also puts ``x`` in the unsafe set."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(acasxu_nets.onnx_path(network)))
    name = session.get_inputs()[0].name
    y = session.run(None, {name: x.reshape(1, 1, 1, -1).astype(np.float32)})[0]
    return bool(prop.violation_score(np.asarray(y, dtype=np.float64).reshape(1, -1))[0] >= 0.0)


def run_instances(timeout_s: float, only: set[int] | None = None, limit: int | None = None,
                  batch_size: int = VerifyConfig().batch_size, log=print) -> list[Row]:
    """Verify the instances of ``instances.csv`` one after another.

    Parameters
    ----------
    timeout_s : float -- per instance
    only : set of property numbers, optional
    limit : int, optional -- first rows only
    batch_size : int -- sub-boxes per vectorised step
    log : callable -- receives one progress line per instance

    Returns
    -------
    list of Row
    """
    acasxu_nets.require_data(("onnx",))
    instances = [i for i in acasxu_nets.read_instances()
                 if only is None or i.property_number in only][:limit]
    properties = {n: parse_vnnlib(str(acasxu_nets.vnnlib_path(n))) for n in range(1, 11)}
    rows = []
    for inst in instances:
        net = acasxu_nets.load_acasxu(inst.network)
        props = properties[inst.property_number]
        config = VerifyConfig(timeout_s=timeout_s, batch_size=batch_size)
        result = verify(net, props, config)
        onnx_ok = ""
        if result.verdict is Verdict.VIOLATED:
            onnx_ok = str(_onnx_check(inst.network, props[0], result.counterexamples[0].x))
        row = Row(inst.network, inst.property_number, result.verdict.vnncomp,
                  round(result.stats.time_s, 3), round(result.stats.extra.get("cpu_s", 0.0), 3),
                  result.stats.subproblems,
                  result.stats.max_depth, str(result.stats.extra.get("decided_by", "")), onnx_ok)
        rows.append(row)
        log(f"{row.network} prop_{row.prop}: {row.verdict} {row.time_s:.2f}s "
            f"sub={row.subproblems} depth={row.max_depth} {row.decided_by} {onnx_ok}")
    return rows


def summarize(rows: list[Row], timeout_s: float) -> str:
    """A plain-text summary: counts, max/total time, the ten slowest instances."""
    solved = [r for r in rows if r.verdict in ("sat", "unsat")]
    by_verdict: dict[str, int] = {}
    for r in rows:
        by_verdict[r.verdict] = by_verdict.get(r.verdict, 0) + 1
    slowest = sorted(rows, key=lambda r: -r.time_s)[:10]
    lines = [
        f"instances: {len(rows)}  solved: {len(solved)}  verdicts: {by_verdict}",
        f"timeout per instance: {timeout_s:.0f} s",
        f"total time: {sum(r.time_s for r in rows):.1f} s  max: "
        f"{max((r.time_s for r in rows), default=0.0):.2f} s  "
        f"(CPU: total {sum(r.cpu_s for r in rows):.1f} s, max "
        f"{max((r.cpu_s for r in rows), default=0.0):.2f} s)",
        f"over 60 s: {sum(r.time_s > 60.0 for r in rows)}",
        f"onnxruntime rejected counterexamples: "
        f"{sum(r.onnx_confirmed == 'False' for r in rows)}",
        "slowest:",
    ]
    lines += [f"  {r.network} prop_{r.prop}: {r.verdict} {r.time_s:.2f}s (cpu {r.cpu_s:.2f}s) "
              f"sub={r.subproblems}"
              for r in slowest]
    return "\n".join(lines)


def write_csv(rows: list[Row], path: Path) -> None:
    """One line per instance, with a header."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(Row.__dataclass_fields__.keys())
    for r in rows:
        writer.writerow([getattr(r, f) for f in Row.__dataclass_fields__])
    write_text_atomic(path, text.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--only", type=str, default="")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=VerifyConfig().batch_size)
    parser.add_argument("--csv", type=Path, default=Path("verify_acasxu.csv"))
    args = parser.parse_args(argv)
    only = {int(p) for p in args.only.split(",")} if args.only else None
    start = time.perf_counter()
    rows = run_instances(args.timeout, only, args.limit, args.batch_size,
                         log=lambda line: print(line, flush=True))
    write_csv(rows, args.csv)
    print(summarize(rows, args.timeout))
    print(f"wall clock: {time.perf_counter() - start:.1f} s; CSV: {args.csv}")
    return 0


@pytest.mark.acasxu
def test_bench_verify_acasxu(benchmark) -> None:  # pragma: no cover - opt-in
    """pytest-benchmark entry: all 186 instances, one round."""
    acasxu_nets.data_or_skip(("onnx",))
    rows = benchmark.pedantic(run_instances, args=(60.0,), rounds=1, iterations=1)
    assert all(r.verdict in ("sat", "unsat") for r in rows), summarize(rows, 60.0)
    assert all(r.onnx_confirmed != "False" for r in rows)


if __name__ == "__main__":
    sys.exit(main())
