"""Wide-input benchmark: ReLU splitting vs input splitting on the digits development set.

Opt-in (not in CI).  Build the set first (benchmarks/make_digits_devset.py),
then::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_wide_inputs.py \\
        --devset /work/wt/artifacts/digits_devset --timeout 60 --images 3 \\
        --engines own,own-input --csv benchmarks/results/wide_inputs.csv \\
        --md benchmarks/results/wide_inputs.md

Every (instance, engine) runs in a fresh process (``--one``), so its peak RSS
(``ru_maxrss`` of the child) is its own.  The engines run as parallel streams
(one process per engine at a time, the same instance order), so both see the
same machine load.  ``own`` is today's engine with the automatic rule
(ReLU splitting for these networks), ``own-input`` forces input splitting
(the verifier before activation splitting).

Cross-checks ("wrong" counts): every VIOLATED carries a counterexample that
the child re-checks with onnxruntime on the ONNX file (float32); two engines
must never disagree (sat vs unsat); with ``--milp-max-relus N`` every HOLDS on
a network with at most N ReLUs is re-decided by the exact big-M MILP of
``tests/verify/milp_oracle.py`` (HiGHS, ``--milp-timeout`` per instance; an
instance whose MILPs do not finish is reported as unchecked).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from verirepair.atomic import write_text_atomic

FIELDS = ["network", "vnnlib", "eps", "engine", "verdict", "time_s", "cpu_s", "subproblems",
          "max_depth", "decided_by", "onnx_confirmed", "peak_rss_mb", "milp"]


def run_one(onnx: str, vnnlib: str, engine: str, timeout: float) -> dict:
    """Verify one instance in this process; returns the row (without RSS and MILP)."""
    from verirepair.network import load_network
    from verirepair.properties import parse_vnnlib
    from verirepair.verify import Verdict, VerifyConfig, verify

    net = load_network(onnx)
    props = parse_vnnlib(vnnlib)
    result = verify(net, props, VerifyConfig(timeout_s=timeout), engine=engine)
    onnx_ok = ""
    if result.verdict is Verdict.VIOLATED:
        import onnxruntime as ort

        session = ort.InferenceSession(onnx)
        x = result.counterexamples[0].x.astype(np.float32)[None]
        y = np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0], dtype=np.float64)
        onnx_ok = str(bool(any(p.violation_score(y)[0] >= 0.0 for p in props)))
    return {"verdict": result.verdict.vnncomp, "time_s": round(result.stats.time_s, 3),
            "cpu_s": round(result.stats.extra.get("cpu_s", 0.0), 3),
            "subproblems": result.stats.subproblems, "max_depth": result.stats.max_depth,
            "decided_by": result.stats.extra.get("decided_by", ""), "onnx_confirmed": onnx_ok}


def _child(onnx: str, vnnlib: str, engine: str, timeout: float) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", onnx, vnnlib, engine, str(timeout)],
                         capture_output=True, text=True, timeout=timeout * 3 + 120)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"verdict": "error", "time_s": 0.0, "cpu_s": 0.0, "subproblems": 0, "max_depth": 0,
                "decided_by": out.stderr.strip().splitlines()[-1][:80] if out.stderr else "",
                "onnx_confirmed": "", "peak_rss_mb": 0.0}
    return json.loads(lines[-1])


def milp_check(onnx: str, vnnlib: str, timeout: float) -> str:
    """``holds`` / ``violated`` by the exact MILP, or ``unchecked`` (its MILPs took over ``timeout`` s).

    The MILPs of one instance (one per unsafe polytope) share ``timeout``; see
    :func:`crosscheck_devset.milp_decide`.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from crosscheck_devset import milp_decide

    return milp_decide(Path(onnx), Path(vnnlib), timeout)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--one", nargs=4, metavar=("ONNX", "VNNLIB", "ENGINE", "TIMEOUT"),
                    help="internal: run one instance and print its JSON row")
    ap.add_argument("--devset", type=Path, default=Path("/work/wt/artifacts/digits_devset"))
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per instance")
    ap.add_argument("--images", type=int, default=3, help="first N images per network")
    ap.add_argument("--eps", default="", help="comma-separated subset of radii (default: all)")
    ap.add_argument("--engines", default="own,own-input")
    ap.add_argument("--instances", default="",
                    help="comma-separated instance stems to keep (e.g. d8_2x64_img1400_eps0.02; "
                         "default: all that --images/--eps select)")
    ap.add_argument("--order", choices=("manifest", "image-major"), default="manifest",
                    help="instance order; image-major runs image 1 of every network first, so a "
                         "run stopped early still covers every network")
    ap.add_argument("--milp-max-relus", type=int, default=128)
    ap.add_argument("--milp-timeout", type=float, default=120.0, help="MILP seconds per instance")
    ap.add_argument("--csv", type=Path, default=Path("benchmarks/results/wide_inputs.csv"))
    ap.add_argument("--md", type=Path, default=Path("benchmarks/results/wide_inputs.md"))
    args = ap.parse_args(argv)
    if args.one:
        row = run_one(args.one[0], args.one[1], args.one[2], float(args.one[3]))
        row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
        print(json.dumps(row))
        return 0
    manifest = json.loads((args.devset / "manifest.json").read_text())
    eps_keep = {float(e) for e in args.eps.split(",")} if args.eps else None
    images: dict[str, list[int]] = {}
    for inst in manifest["instances"]:
        images.setdefault(inst["network"], [])
        if inst["image"] not in images[inst["network"]]:
            images[inst["network"]].append(inst["image"])
    chosen = [inst for inst in manifest["instances"]
              if inst["image"] in images[inst["network"]][:args.images]
              and (eps_keep is None or inst["eps"] in eps_keep)]
    if args.instances:
        keep = set(args.instances.split(","))
        chosen = [i for i in chosen if Path(i["vnnlib"]).stem in keep]
    if args.order == "image-major":
        nets = list(manifest["networks"])
        chosen.sort(key=lambda i: (images[i["network"]].index(i["image"]), nets.index(i["network"]),
                                   i["eps"]))
    engines = args.engines.split(",")
    print(f"{len(chosen)} instances x {len(engines)} engines, timeout {args.timeout:g} s", flush=True)
    started = time.time()

    def stream(engine: str) -> list[dict]:
        rows = []
        for inst in chosen:
            onnx = str(args.devset / "nets" / f"{inst['network']}.onnx")
            vnnlib = str(args.devset / inst["vnnlib"])
            row = {"network": inst["network"], "vnnlib": inst["vnnlib"], "eps": inst["eps"],
                   "engine": engine, **_child(onnx, vnnlib, engine, args.timeout), "milp": ""}
            print(f"{engine:10s} {Path(vnnlib).stem}: {row['verdict']} {row['time_s']:.1f}s "
                  f"sub={row['subproblems']} rss={row['peak_rss_mb']}MB", flush=True)
            rows.append(row)
        return rows

    with ThreadPoolExecutor(len(engines)) as pool:
        results = list(pool.map(stream, engines))
    rows = [r for per_engine in results for r in per_engine]
    wall = time.time() - started
    _write(rows, engines, chosen, args, manifest, wall)       # before the (slow) MILP checks
    relus = {name: sum(info["hidden"]) for name, info in manifest["networks"].items()}
    checked: dict[str, str] = {}
    for r in rows:
        if r["verdict"] == "unsat" and relus[r["network"]] <= args.milp_max_relus:
            if r["vnnlib"] not in checked:
                checked[r["vnnlib"]] = milp_check(str(args.devset / "nets" / f"{r['network']}.onnx"),
                                                  str(args.devset / r["vnnlib"]), args.milp_timeout)
                print(f"MILP {r['vnnlib']}: {checked[r['vnnlib']]}", flush=True)
            r["milp"] = checked[r["vnnlib"]]
    print(_write(rows, engines, chosen, args, manifest, wall))
    return 0


def _write(rows: list[dict], engines: list[str], chosen: list[dict], args: argparse.Namespace,
           manifest: dict, wall: float) -> str:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(args.csv, text.getvalue())
    md = summary(rows, engines, chosen, args, manifest, wall)
    write_text_atomic(args.md, md)
    return md


def summary(rows: list[dict], engines: list[str], chosen: list[dict], args: argparse.Namespace,
            manifest: dict, wall: float) -> str:
    """Markdown: per network and engine, solved counts and times; wrong answers; RSS."""
    by = {(r["engine"], r["vnnlib"]): r for r in rows}
    verdicts: dict[str, set[str]] = {}
    for r in rows:
        if r["verdict"] in ("sat", "unsat"):
            verdicts.setdefault(r["vnnlib"], set()).add(r["verdict"])
    disagreements = sum(len(v) > 1 for v in verdicts.values())
    lines = ["# Wide inputs: ReLU splitting vs input splitting (digits development set)", "",
             f"Command: `OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_wide_inputs.py "
             f"--timeout {args.timeout:g} --images {args.images} --engines {','.join(engines)}"
             f"{' --eps ' + args.eps if args.eps else ''}`; {len(chosen)} instances, "
             f"wall {wall / 60:.1f} min.", "",
             "| network | inputs | hidden | " + " | ".join(
                 f"{e} solved (sat/unsat) | {e} time s" for e in engines) + " |",
             "|---|---|---|" + "---|---|" * len(engines)]
    for name, info in manifest["networks"].items():
        cells = []
        for e in engines:
            mine = [by[(e, i["vnnlib"])] for i in chosen if i["network"] == name and (e, i["vnnlib"]) in by]
            sat = sum(r["verdict"] == "sat" for r in mine)
            unsat = sum(r["verdict"] == "unsat" for r in mine)
            cells += [f"{sat + unsat}/{len(mine)} ({sat}/{unsat})",
                      f"{sum(r['time_s'] for r in mine):.1f}"]
        if any(i["network"] == name for i in chosen):
            lines.append(f"| {name} | {info['inputs']} | {'x'.join(map(str, info['hidden']))} | "
                         + " | ".join(cells) + " |")
    lines += ["", "| engine | solved | sat | unsat | timeout | other | total time s | "
              "time on solved s | max peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    for e in engines:
        mine = [r for r in rows if r["engine"] == e]
        solved = [r for r in mine if r["verdict"] in ("sat", "unsat")]
        lines.append(f"| {e} | {len(solved)}/{len(mine)} | {sum(r['verdict'] == 'sat' for r in mine)} | "
                     f"{sum(r['verdict'] == 'unsat' for r in mine)} | "
                     f"{sum(r['verdict'] == 'timeout' for r in mine)} | "
                     f"{sum(r['verdict'] not in ('sat', 'unsat', 'timeout') for r in mine)} | "
                     f"{sum(r['time_s'] for r in mine):.1f} | {sum(r['time_s'] for r in solved):.1f} | "
                     f"{max((r['peak_rss_mb'] for r in mine), default=0):.0f} |")
    milp = [r for r in rows if r["milp"]]
    lines += ["", "Wrong answers:",
              f"- sat/unsat disagreements between engines: {disagreements}",
              f"- counterexamples rejected by onnxruntime (float32): "
              f"{sum(r['onnx_confirmed'] == 'False' for r in rows)}",
              f"- HOLDS re-decided by the exact MILP (networks with <= {args.milp_max_relus} ReLUs): "
              f"{len(milp)}, of which violated by the MILP: {sum(r['milp'] == 'violated' for r in milp)}, "
              f"unchecked (MILP timeout): {sum(r['milp'] == 'unchecked' for r in milp)}",
              ]
    if "marabou" not in engines:
        lines.append("- Marabou: not run here (see the Marabou cross-check section).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
