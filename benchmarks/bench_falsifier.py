"""Falsifier ablation: time to a counterexample with the wide-box attacks on or off, and their budget.

Opt-in (not in CI), seeded.  The ReLU-splitting search
(:mod:`verirepair.verify.relu_bab`) adds two attacks to the engine's first
falsifier (:func:`verirepair.verify.falsify.falsify`, 2000 samples + PGD):

* ``restarts`` -- once the root bound has not proven the property, PGD restarts
  seeded by the root bound's minimisers, for ``relu_bab.ATTACK_FRACTION`` of
  the time left (:func:`verirepair.verify.attack.restarts`);
* ``minimiser PGD`` -- on every batch of open sub-domains, ``attack.MINIMISER_STEPS``
  PGD steps from the corners that minimise the sub-domains' linear bounds
  (:func:`verirepair.verify.attack.from_minimisers`; with 0 steps the corners are
  still checked, which the search needs to turn an LP minimiser into a counterexample).

Variants (each instance runs every variant in a fresh process, one after the
other, so all see the same machine load):

* ``off``: no restarts, no minimiser PGD (the falsifier before this work);
* ``f0.02`` / ``f0.05`` / ``f0.15``: both attacks, restarts with that fraction
  (``f0.05`` is the default);
* ``no-restarts``: minimiser PGD only.

Instances come from a development-set folder (``manifest.json`` +
``props/``), e.g. the "rare violations" set of
``benchmarks/make_digits_threshold_set.py``, where the first falsifier fails on
every instance by construction.  Usage::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_falsifier.py \\
        --devset /work/wt/artifacts/digits_threshold --timeout 60 --images 2 \\
        --csv benchmarks/results/falsifier_ablation.csv
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
from pathlib import Path

import numpy as np

from verirepair.atomic import write_text_atomic

#: variant -> (restarts on, ATTACK_FRACTION, MINIMISER_STEPS or None for the default)
VARIANTS: dict[str, tuple[bool, float, int | None]] = {
    "off": (False, 0.05, 0),
    "f0.02": (True, 0.02, None),
    "f0.05": (True, 0.05, None),
    "f0.15": (True, 0.15, None),
    "no-restarts": (False, 0.05, None),
}
FIELDS = ["network", "vnnlib", "eps", "variant", "verdict", "time_s", "cpu_s", "subproblems",
          "decided_by", "cex_source", "onnx_confirmed", "peak_rss_mb"]


def run_variant(onnx: str, vnnlib: str, variant: str, timeout: float) -> dict:
    """Verify one instance with the attacks set as ``variant`` says (this process only)."""
    from verirepair.network import load_network
    from verirepair.properties import parse_vnnlib
    from verirepair.verify import Verdict, VerifyConfig, attack, relu_bab, verify

    restarts_on, fraction, minimiser_steps = VARIANTS[variant]
    relu_bab.ATTACK_FRACTION = fraction
    if minimiser_steps is not None:
        attack.MINIMISER_STEPS = minimiser_steps
    if not restarts_on:
        attack.restarts = lambda *args, **kwargs: []
    net = load_network(onnx)
    props = parse_vnnlib(vnnlib)
    result = verify(net, props, VerifyConfig(timeout_s=timeout))
    source, onnx_ok = "", ""
    if result.verdict is Verdict.VIOLATED:
        import onnxruntime as ort

        cex = result.counterexamples[0]
        source = cex.source
        session = ort.InferenceSession(onnx)
        y = session.run(None, {session.get_inputs()[0].name: cex.x.astype(np.float32)[None]})[0]
        onnx_ok = str(bool(any(p.violation_score(np.asarray(y, np.float64))[0] >= 0.0 for p in props)))
    return {"verdict": result.verdict.vnncomp, "time_s": round(result.stats.time_s, 3),
            "cpu_s": round(result.stats.extra.get("cpu_s", 0.0), 3),
            "subproblems": result.stats.subproblems,
            "decided_by": result.stats.extra.get("decided_by", ""), "cex_source": source,
            "onnx_confirmed": onnx_ok}


def _child(onnx: str, vnnlib: str, variant: str, timeout: float) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", onnx, vnnlib, variant, str(timeout)],
                         capture_output=True, text=True, timeout=timeout * 3 + 120)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = out.stderr.strip().splitlines()[-1][:80] if out.stderr.strip() else ""
        return {"verdict": "error", "time_s": 0.0, "cpu_s": 0.0, "subproblems": 0,
                "decided_by": tail, "cex_source": "", "onnx_confirmed": "", "peak_rss_mb": 0.0}
    return json.loads(lines[-1])


def summary(rows: list[dict], variants: list[str], args: argparse.Namespace, wall: float) -> str:
    """Markdown: per variant, counterexamples found and times; per instance, the table."""
    by = {(r["vnnlib"], r["variant"]): {**r, "time_s": float(r["time_s"]),
                                          "subproblems": int(r["subproblems"])} for r in rows}
    stems = list(dict.fromkeys(r["vnnlib"] for r in rows))
    sat_any = [s for s in stems if any(by[(s, v)]["verdict"] == "sat" for v in variants if (s, v) in by)]
    lines = [f"Command: `OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_falsifier.py --devset "
             f"{args.devset} --timeout {args.timeout:g} --images {args.images} --variants "
             f"{','.join(variants)}`; {len(stems)} instances, wall {wall / 60:.1f} min.", "",
             "| variant | sat | unsat | timeout/other | sat on the instances some variant falsified | "
             "total time to cex s (those) | median s | time on the instances all proved s | "
             "onnx-rejected |",
             "|---|---|---|---|---|---|---|---|---|"]
    proved_all = [s for s in stems if all(by.get((s, v), {}).get("verdict") == "unsat" for v in variants)]
    for v in variants:
        mine = [by[(s, v)] for s in stems if (s, v) in by]
        hard = [by[(s, v)] for s in sat_any if (s, v) in by]
        proved = sum(float(by[(s, v)]["time_s"]) for s in proved_all)
        # a variant that did not falsify an instance is charged the full timeout
        times = [r["time_s"] if r["verdict"] == "sat" else args.timeout for r in hard]
        lines.append(f"| {v} | {sum(r['verdict'] == 'sat' for r in mine)} | "
                     f"{sum(r['verdict'] == 'unsat' for r in mine)} | "
                     f"{sum(r['verdict'] not in ('sat', 'unsat') for r in mine)} | "
                     f"{sum(r['verdict'] == 'sat' for r in hard)}/{len(hard)} | {sum(times):.1f} | "
                     f"{float(np.median(times)) if times else 0.0:.1f} | "
                     f"{proved:.1f} ({len(proved_all)}) | "
                     f"{sum(r['onnx_confirmed'] == 'False' for r in mine)} |")
    lines += ["", "| instance | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for s in stems:
        cells = []
        for v in variants:
            r = by.get((s, v))
            if r is None:
                cells.append("")
                continue
            extra = f", {r['cex_source']}" if r["cex_source"] else f", sub {r['subproblems']}"
            cells.append(f"{r['verdict']} {r['time_s']:.1f}{extra}")
        lines.append(f"| {Path(s).stem} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--one", nargs=4, metavar=("ONNX", "VNNLIB", "VARIANT", "TIMEOUT"),
                    help="internal: run one instance and print its JSON row")
    ap.add_argument("--devset", type=Path, default=Path("/work/wt/artifacts/digits_threshold"))
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per run")
    ap.add_argument("--images", type=int, default=2, help="first N images per network")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--csv", type=Path, default=Path("benchmarks/results/falsifier_ablation.csv"))
    ap.add_argument("--md", type=Path, default=Path("benchmarks/results/falsifier_ablation.md"))
    ap.add_argument("--summarise", type=Path, default=None, metavar="CSV",
                    help="only re-render the Markdown of an earlier run's CSV (give its "
                         "--devset/--timeout/--images/--variants for the command line)")
    args = ap.parse_args(argv)
    if args.summarise is not None:
        with args.summarise.open(newline="") as fh:
            print(summary(list(csv.DictReader(fh)), args.variants.split(","), args, 0.0))
        return 0
    if args.one:
        row = run_variant(args.one[0], args.one[1], args.one[2], float(args.one[3]))
        row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
        print(json.dumps(row))
        return 0
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    manifest = json.loads((args.devset / "manifest.json").read_text())
    images: dict[str, list[int]] = {}
    for inst in manifest["instances"]:
        images.setdefault(inst["network"], [])
        if inst["image"] not in images[inst["network"]]:
            images[inst["network"]].append(inst["image"])
    chosen = [i for i in manifest["instances"] if i["image"] in images[i["network"]][:args.images]]
    print(f"{len(chosen)} instances x {len(variants)} variants, timeout {args.timeout:g} s", flush=True)
    started, rows = time.time(), []
    for inst in chosen:
        onnx = str(args.devset / "nets" / f"{inst['network']}.onnx")
        vnnlib = str(args.devset / inst["vnnlib"])
        for v in variants:
            row = {"network": inst["network"], "vnnlib": inst["vnnlib"], "eps": inst["eps"],
                   "variant": v, **_child(onnx, vnnlib, v, args.timeout)}
            print(f"{v:12s} {Path(vnnlib).stem}: {row['verdict']} {row['time_s']:.1f}s "
                  f"src={row['cex_source']} sub={row['subproblems']}", flush=True)
            rows.append(row)
        _write(rows, variants, args, time.time() - started)   # after every instance: nothing lost
    print(_write(rows, variants, args, time.time() - started))
    return 0


def _write(rows: list[dict], variants: list[str], args: argparse.Namespace, wall: float) -> str:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(args.csv, text.getvalue())
    md = summary(rows, variants, args, wall)
    write_text_atomic(args.md, md)
    return md


if __name__ == "__main__":
    raise SystemExit(main())
