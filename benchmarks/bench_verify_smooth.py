"""Verification of the smooth ACAS Xu imitations, and the ReLU no-regression ratio.

Opt-in measurement (not part of the CI test paths).  Two modes:

``smooth`` -- our engine on every network written by
``benchmarks/make_smooth_acasxu.py`` (``FOLDER/<activation>/<name>.onnx``) and
every property of phi1-phi4, phi7, phi8 that applies to the original of the
same name, with a per-instance timeout; every counterexample is re-checked by
onnxruntime on the ONNX file (float32)::

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_verify_smooth.py smooth \\
        --folder /work/wt/artifacts/smooth_acasxu --timeout 30 \\
        --csv benchmarks/results/smooth_verify.csv

``table`` -- markdown tables (agreement, verdicts) from the two above, for
``benchmarks/results/smooth_activations.md``.

``relu-ratio`` -- the same hard ReLU ACAS Xu instances verified by this
checkout and by a baseline checkout (``--baseline DIR``, e.g. ``git archive
429c37b | tar -x -C DIR``), alternating in one run, each in a fresh process;
reports the CPU-time ratio new/baseline, whether verdicts and sub-box counts
are equal, and whether the bounds of 64 random boxes per network are
bit-identical::

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_verify_smooth.py relu-ratio \\
        --baseline /tmp/verirepair_base --csv benchmarks/results/smooth_relu_ratio.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

from verirepair.atomic import write_text_atomic

#: Katz properties reported for the smooth networks (the issue's list).
PROPERTY_NUMBERS = (1, 2, 3, 4, 7, 8)
#: Hard ReLU instances (slowest of benchmarks/results/verify_acasxu_newcore.csv).
HARD_RELU = (("3_3", 2), ("4_2", 2), ("1_1", 6), ("1_9", 7), ("3_3", 9), ("4_7", 1))
ROOT = Path(__file__).resolve().parents[1]


def _write_csv(rows: list[dict], path: Path) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


def run_smooth(folder: Path, timeout_s: float, activations: list[str] | None = None,
               done: set[tuple[str, str, str]] | None = None) -> list[dict]:
    """Verify every (smooth network, applicable property) pair; one row each.

    ``activations`` restricts to those sub-folders (e.g. ``["tanh"]``); pairs
    in ``done`` (activation, network, property) are skipped.
    """
    import onnxruntime as ort

    from verirepair.network import load_onnx
    from verirepair.tasks.acasxu import acasxu_properties
    from verirepair.verify import Verdict, VerifyConfig, verify

    rows = []
    for path in sorted(folder.glob("*/*.onnx")):
        if activations and path.parent.name not in activations:
            continue
        net = load_onnx(path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for label, props in acasxu_properties(path.stem):
            if int(label.removeprefix("phi")) not in PROPERTY_NUMBERS:
                continue
            if done and (path.parent.name, path.stem, label) in done:
                continue
            result = verify(net, props, VerifyConfig(timeout_s=timeout_s))
            onnx_ok = ""
            if result.verdict is Verdict.VIOLATED:
                cex = result.counterexamples[0]
                y = session.run(None, {"input": cex.x[None].astype(np.float32)})[0]
                onnx_ok = str(bool(any(p.in_region(cex.x[None])[0] and p.violation_score(
                    np.asarray(y, np.float64))[0] >= 0.0 for p in props)))
            row = {"activation": path.parent.name, "network": path.stem, "property": label,
                   "verdict": result.verdict.value, "time_s": round(result.stats.time_s, 2),
                   "subproblems": result.stats.subproblems,
                   "decided_by": str(result.stats.extra.get("decided_by", "")),
                   "onnx_confirmed": onnx_ok}
            rows.append(row)
            print(" ".join(str(v) for v in row.values()), flush=True)
    return rows


_CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from verirepair.properties import parse_vnnlib
    from verirepair.tasks.acasxu import networks as nets
    from verirepair.verify import VerifyConfig, verify
    from verirepair.verify.bounds import symbolic_bounds
    key, number, timeout, bounds_out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    net = nets.load_acasxu(key)
    props = parse_vnnlib(str(nets.vnnlib_path(number)))
    start = time.process_time()
    result = verify(net, props, VerifyConfig(timeout_s=timeout))
    cpu = time.process_time() - start
    rng = np.random.default_rng(0)
    centre = rng.uniform(-0.3, 0.3, (64, 5))
    radius = rng.uniform(0.001, 0.1, (64, 5))
    b = symbolic_bounds(net, centre - radius, centre + radius, np.eye(5) - np.eye(5)[[0]],
                        intermediate="backward")
    np.savez(bounds_out, *b.pre_lower, *b.pre_upper, b.spec_lower, b.spec_upper)
    print(json.dumps({"verdict": result.verdict.value, "cpu_s": cpu,
                      "subproblems": result.stats.subproblems}))
""")


def _child(pythonpath: Path, key: str, number: int, timeout_s: float, bounds_out: Path) -> dict:
    from verirepair.tasks.acasxu import networks as acasxu_nets

    # the baseline tree has no ../shared next to it: point both at this checkout's data
    env = dict(os.environ, PYTHONPATH=str(pythonpath), OMP_NUM_THREADS="1",
               VERIREPAIR_ACASXU_DIR=str(acasxu_nets.acasxu_dir().resolve()))
    done = subprocess.run([sys.executable, "-c", _CHILD, key, str(number), str(timeout_s),
                           str(bounds_out)], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_relu_ratio(baseline: Path, timeout_s: float, scratch: Path,
                   instances: tuple[tuple[str, int], ...] = HARD_RELU) -> list[dict]:
    """Each instance ``(x_y, property)`` by baseline then new (alternating), in fresh processes."""
    rows = []
    for key, number in instances:
        base = _child(baseline, key, number, timeout_s, scratch / "base.npz")
        new = _child(ROOT, key, number, timeout_s, scratch / "new.npz")
        with np.load(scratch / "base.npz") as a, np.load(scratch / "new.npz") as b:
            identical = all(np.array_equal(a[k], b[k]) for k in a.files)
        row = {"network": f"N{key.replace('_', ',')}", "property": number,
               "verdict_base": base["verdict"], "verdict_new": new["verdict"],
               "subproblems_base": base["subproblems"], "subproblems_new": new["subproblems"],
               "cpu_s_base": round(base["cpu_s"], 2), "cpu_s_new": round(new["cpu_s"], 2),
               "ratio": round(new["cpu_s"] / max(base["cpu_s"], 1e-9), 3),
               "bounds_bit_identical": identical}
        rows.append(row)
        print(" ".join(str(v) for v in row.values()), flush=True)
    return rows


def markdown_tables(folder: Path, verify_csv: Path, seed: int = 0) -> str:
    """Markdown tables of the imitations (agreement) and their verification (verdicts, times).

    The agreement table adds, per original, the *majority baseline*: the
    share of the original's most frequent advisory on 20k uniform domain
    samples (what a constant answer would agree on).
    """
    from verirepair.tasks.acasxu import acasxu_domain
    from verirepair.tasks.acasxu import networks as acasxu_nets

    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*/*.json"))]
    lines = ["| network | activation | domain advisory agreement | majority baseline | "
             "max abs output diff (domain) | region advisory agreement | violating share of region "
             "samples, original -> imitation |", "|---|---|---|---|---|---|---|"]
    baseline: dict[str, float] = {}
    for r in records:
        name = r["original"]
        if name not in baseline:
            original = acasxu_nets.load_acasxu(name)
            x = acasxu_domain(original).sample(np.random.default_rng(seed), 20000)
            counts = np.bincount(original.forward(x).argmin(axis=1), minlength=5)
            baseline[name] = float(counts.max() / counts.sum())
        agree = r["agreement"]
        regions = {k: v for k, v in agree.items() if k != "domain"}
        key = name.removeprefix("ACASXU_run2a_").removesuffix("_batch_2000").replace("_", ",")
        lines.append(
            f"| N{key} | {r['activation']} | {agree['domain']['advisory_agreement']:.3f} | "
            f"{baseline[name]:.3f} | {agree['domain']['max_abs_output_diff']:.3g} | "
            + ", ".join(f"{k} {v['advisory_agreement']:.3f}" for k, v in regions.items()) + " | "
            + ", ".join(f"{k} {v['original_violating_fraction']:.4f} -> "
                        f"{v['imitation_violating_fraction']:.4f}"
                        for k, v in regions.items() if v['original_violating_fraction']
                        or v['imitation_violating_fraction']) + " |")
    lines += ["", "| network | activation | " + " | ".join(f"phi{n}" for n in PROPERTY_NUMBERS)
              + " | violated |", "|---|---|" + "---|" * (len(PROPERTY_NUMBERS) + 1)]
    with verify_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        cell = f"{row['verdict']} {float(row['time_s']):.2f} s"
        if row["verdict"] == "violated":
            cell += " (onnxruntime: " + ("confirmed" if row["onnx_confirmed"] == "True" else "NOT confirmed") + ")"
        cells.setdefault((row["network"], row["activation"]), {})[row["property"]] = cell
    for (network, activation), by_prop in sorted(cells.items()):
        key = network.removeprefix("ACASXU_run2a_").removesuffix("_batch_2000").replace("_", ",")
        violated = [p for p, c in by_prop.items() if c.startswith("violated")]
        lines.append(f"| N{key} | {activation} | "
                     + " | ".join(by_prop.get(f"phi{n}", "n/a") for n in PROPERTY_NUMBERS)
                     + f" | {', '.join(violated) or 'none'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one mode."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    smooth = sub.add_parser("smooth", help="verify the smooth imitations")
    smooth.add_argument("--folder", type=Path, default=Path("/work/wt/artifacts/smooth_acasxu"))
    smooth.add_argument("--timeout", type=float, default=30.0, help="seconds per instance")
    smooth.add_argument("--csv", type=Path, default=ROOT / "benchmarks/results/smooth_verify.csv")
    smooth.add_argument("--activations", default="", help="comma-separated sub-folders (default all)")
    smooth.add_argument("--append", action="store_true",
                        help="keep the rows already in --csv and verify only the missing pairs")
    ratio = sub.add_parser("relu-ratio", help="CPU ratio against a baseline checkout")
    ratio.add_argument("--baseline", type=Path, required=True, help="baseline source tree")
    ratio.add_argument("--timeout", type=float, default=120.0, help="seconds per instance")
    ratio.add_argument("--instances", default=",".join(f"{k}:{p}" for k, p in HARD_RELU),
                       help="comma-separated x_y:property pairs")
    ratio.add_argument("--csv", type=Path, default=ROOT / "benchmarks/results/smooth_relu_ratio.csv")
    table = sub.add_parser("table", help="print markdown tables of the imitations and verdicts")
    table.add_argument("--folder", type=Path, default=Path("/work/wt/artifacts/smooth_acasxu"))
    table.add_argument("--csv", type=Path, default=ROOT / "benchmarks/results/smooth_verify.csv")
    args = parser.parse_args(argv)
    if args.mode == "table":
        print(markdown_tables(args.folder, args.csv), end="")
        return 0
    if args.mode == "smooth":
        old: list[dict] = []
        if args.append and args.csv.exists():
            with args.csv.open(newline="") as handle:
                old = list(csv.DictReader(handle))
        done = {(r["activation"], r["network"], r["property"]) for r in old}
        rows = old + run_smooth(args.folder, args.timeout,
                                [a for a in args.activations.split(",") if a] or None, done)
        rows.sort(key=lambda r: (r["activation"], r["network"], r["property"]))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            pairs = tuple((k, int(p)) for k, _, p in (item.partition(":")
                                                      for item in args.instances.split(",") if item))
            rows = run_relu_ratio(args.baseline, args.timeout, Path(scratch), pairs)
    if rows:
        _write_csv(rows, args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
