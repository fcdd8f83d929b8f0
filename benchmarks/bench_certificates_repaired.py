"""Certificates of the repaired ACAS Xu networks: every property proven on each delivered file.

Opt-in measurement (not part of the CI test paths).  Input: the folder that
``benchmarks/bench_repair_acasxu.py --workdir DIR`` filled (``<net>_repaired.onnx``
and ``<net>_report/report.json`` per network, and its CSV).  For each delivered
network, the properties it was *proven* to satisfy are taken from the run's own
records: the repair task's properties whose final verdict in ``report.json`` is
``holds``, and phi1-phi4 that do not apply to the network but that the repair
benchmark verified ``(holds)`` on the delivered file (its CSV).  For each one,
back to back in one process (ratios compare like with like on a shared machine):

1. plain verification with our engine (``verify_own``) -- the baseline
   (skipped with ``--no-baseline``);
2. ``certify``: the same search with the tree recorder, then writing the file
   (the writer rebuilds the tree, validates every record with the checker's
   bound and re-derives what it cannot confirm) -- the same as
   ``verirepair verify NET PROP --certificate CERT``;
3. the independent checker on the written file, outward-rounded float64
   (``check_certificate``, the same as ``verirepair check CERT NET PROP``).

A property the repair did not prove gets a row saying so and no certificate.
The property files are the ACAS Xu VNN-LIB files ``prop_<n>.vnnlib`` that the
repair task read.  Certificates go to ``--certs`` (outside git); one CSV row per
(network, property) and a markdown summary are rewritten atomically after every
row, and rows already in the CSV are skipped (resumable)::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_certificates_repaired.py \\
        --repaired /work/wt/artifacts/repaired_acasxu \\
        --csv benchmarks/results/certificates_repaired.csv --md benchmarks/results/certificates_repaired.md
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from verirepair.atomic import sha256_file, write_text_atomic
from verirepair.checker import Rejected, check_certificate
from verirepair.network import load_network
from verirepair.properties import parse_vnnlib
from verirepair.tasks.acasxu.physical import default_vnnlib_dir
from verirepair.verify.certificate_writer import certify
from verirepair.verify.engine import verify_own
from verirepair.verify.result import VerifyConfig

RESULTS = Path(__file__).resolve().parent / "results"
FIELDS = ("network", "property", "applies", "repair_verdict", "repair_verify_s", "verify_s", "search_s",
          "write_s", "check_s", "write_over_verify", "check_over_verify", "size_bytes", "leaves", "evidence",
          "with_slopes", "rederived", "accepted", "reason", "commit")
#: The ACAS Xu properties the repair benchmark verifies on every delivered network.
GENERAL = ("phi1", "phi2", "phi3", "phi4")


def _commit() -> str:
    """The measured code's commit (``+dirty`` when the work tree has changes to verirepair/)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "verirepair"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def proven_properties(report_dir: Path, repair_row: dict | None) -> list[tuple[str, bool, str, float | None]]:
    """``(name, applies, verdict, final verification s)`` of phi1-phi4 and the task's own properties.

    The task's properties come from ``report.json`` (final verdict on the delivered
    file); phi1-phi4 outside the task from the repair benchmark's CSV row, where
    they are written in parentheses (``"(holds)"``), or ``"not verified"`` without a row.
    """
    report = json.loads((report_dir / "report.json").read_text())
    if report.get("status") != "repaired":
        raise ValueError(f"{report_dir}: the run's status is {report.get('status')!r}, no delivered network")
    found = []
    for name, entry in report["properties"].items():
        final = entry.get("after") or entry.get("before") or {}
        found.append((name, True, str(final.get("verdict", "unknown")), final.get("time_s")))
    for name in GENERAL:
        if name not in report["properties"]:
            verdict = (repair_row or {}).get(name, "") or "not verified"
            found.append((name, False, verdict.strip("()"), None))
    return sorted(found, key=lambda item: int(re.sub(r"\D", "", item[0]) or 0))


def measure(network_path: Path, name: str, prop_path: Path, cert_path: Path, timeout_s: float,
            baseline: bool) -> dict:
    """Baseline verification, certify, check of one proven property; the CSV row's measured fields."""
    network = load_network(network_path)
    props = parse_vnnlib(prop_path)
    config = VerifyConfig(timeout_s=timeout_s)
    row: dict = {}
    verify_s = None
    if baseline:
        start = time.perf_counter()
        plain = verify_own(network, props, config)
        verify_s = time.perf_counter() - start
        row["verify_s"] = round(verify_s, 3)
        if plain.verdict.value != "holds":
            row["reason"] = f"baseline verification: {plain.verdict.value} within {timeout_s:g} s"
    done = certify(network, props, config, network_path, prop_path, cert_path)
    row.update(search_s=round(done.search_s, 3), write_s=round(done.write_s, 3), size_bytes=done.size_bytes)
    reference = verify_s if verify_s else done.search_s
    if reference:
        row["write_over_verify"] = round(done.write_s / reference, 2)
    if done.path is None:
        row.update(accepted=False, reason=done.reason)
        return row
    row.update(leaves=sum(s["leaves"] for s in done.summary), evidence=sum(s["evidence"] for s in done.summary),
               with_slopes=sum(s["with_slopes"] for s in done.summary),
               rederived=sum(s["rederived"] for s in done.summary))
    try:
        checked = check_certificate(cert_path, network_path, prop_path)
    except Rejected as exc:
        row.update(accepted=False, reason=f"check rejected {cert_path.name}: {exc}")
        return row
    row.update(check_s=round(checked.time_s, 3), accepted=True)
    if reference:
        row["check_over_verify"] = round(checked.time_s / reference, 2)
    return row


def _float(row: dict, key: str) -> float:
    value = row.get(key)
    return float(value) if value not in (None, "") else 0.0


def _totals(rows: list[dict]) -> list[str]:
    """The summary table over the proven properties of ``rows``."""
    proven = [r for r in rows if str(r.get("repair_verdict")) == "holds"]
    written = [r for r in proven if _float(r, "size_bytes") > 0]
    accepted = [r for r in written if str(r.get("accepted")) == "True"]
    verify = sum(_float(r, "verify_s") for r in proven)
    search = sum(_float(r, "search_s") for r in proven)
    write = sum(_float(r, "write_s") for r in proven)
    check = sum(_float(r, "check_s") for r in accepted)
    # rows run with --no-baseline: the search with the recorder stands for the verification
    reference = sum(_float(r, "verify_s") or _float(r, "search_s") for r in proven)
    substituted = sum(1 for r in proven if not _float(r, "verify_s"))
    sizes = sorted(int(_float(r, "size_bytes")) for r in written)
    size = (f"{statistics.median(sizes) / 1024:.1f} KiB / {sizes[-1] / 1024:.1f} KiB / {sum(sizes) / 2**20:.2f} MiB"
            if sizes else "-")
    ratio = (f"{write / reference:.2f} | {check / reference:.2f}" if reference else "- | -")
    note = ([f"Ratios: over {reference:.1f} s of verification, where {substituted} rows without a baseline "
             "count their search with the recorder.", ""] if substituted else [])
    return [*note, "| networks | proven properties | certificates written | accepted | verify s | search s | write s "
            "| check s | write / verify | check / verify | size median / max / total | leaves |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {len({r['network'] for r in rows})} | {len(proven)} | {len(written)} | {len(accepted)} | "
            f"{verify:.1f} | {search:.1f} | {write:.1f} | {check:.1f} | {ratio} | {size} | "
            f"{sum(int(_float(r, 'leaves')) for r in written)} |"]


def _cell(row: dict) -> str:
    label = row["property"] if str(row.get("applies")) == "True" else f"({row['property']})"
    if str(row.get("repair_verdict")) != "holds":
        return f"{label} not proven: {row.get('repair_verdict')}"
    if str(row.get("accepted")) == "True":
        return f"{label} {int(_float(row, 'leaves'))} / {_float(row, 'check_s'):.1f}"
    return f"{label} NOT CERTIFIED"


def write_markdown(rows: list[dict], path: Path, command: str) -> None:
    """Totals and a per-network table of ``rows``."""
    failed = [r for r in rows if str(r.get("repair_verdict")) == "holds" and str(r.get("accepted")) != "True"]
    commits = sorted({str(r.get("commit")) for r in rows})
    lines = ["# Certificates of the repaired ACAS Xu networks (issue 13)", "",
             "Produced by `benchmarks/bench_certificates_repaired.py` (one process, back to back per property: "
             "plain verification, certify = search with the recorder + writing, the independent checker in "
             "outward-rounded float64):", "", "```", command, "```", "",
             f"Code measured: commit(s) {', '.join(commits)}.", "", *_totals(rows), ""]
    if failed:
        lines += ["Not certified or rejected:", ""]
        lines += [f"- {r['network']} {r['property']}: {r.get('reason') or '-'}" for r in failed]
        lines.append("")
    lines += ["Per network: the properties proven on the delivered file (`(phiN)`: does not apply to the network, "
              "verified by the repair benchmark and certified too); cells: leaves / check s; verify s: the "
              "baseline, or the search with the recorder where no baseline was run.", "",
              "| network | phi1 | phi2 | phi3 | phi4 | own property | verify s | write s | check s |",
              "|---|" + "---|" * 8]
    for network in sorted({r["network"] for r in rows}):
        mine = [r for r in rows if r["network"] == network]
        cells = {k: " ".join(_cell(r) for r in mine if r["property"] == k) or "-" for k in GENERAL}
        own = " ".join(_cell(r) for r in mine if r["property"] not in GENERAL) or "-"
        short = network.replace("ACASXU_run2a_", "N").replace("_batch_2000", "").replace("_", ",")
        verify = sum(_float(r, "verify_s") or _float(r, "search_s") for r in mine)
        lines.append(f"| {short} | " + " | ".join(cells[k] for k in GENERAL) + f" | {own} | {verify:.1f} | "
                     f"{sum(_float(r, 'write_s') for r in mine):.1f} | {sum(_float(r, 'check_s') for r in mine):.1f} |")
    write_text_atomic(path, "\n".join(lines) + "\n")


def write_manifest(repaired: Path, repair_csv: Path, path: Path) -> int:
    """The repair benchmark's rows plus the SHA-256 of each delivered file (checked against report.json)."""
    fields = ["network", "instances", "status", "rounds", "phi1", "phi2", "phi3", "phi4", "specific", "l1", "linf",
              "n_changed", "advisory_fidelity", "time_s", "delivered_sha256"]
    rows = []
    for row in csv.DictReader(open(repair_csv)):
        report = json.loads((repaired / f"{row['network']}_report" / "report.json").read_text())
        digest = sha256_file(repaired / f"{row['network']}_repaired.onnx")
        if digest != report["output"]["sha256"]:
            raise ValueError(f"{row['network']}: the delivered file differs from the one its report names")
        rows.append({**{k: row.get(k) for k in fields}, "delivered_sha256": digest})
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())
    return len(rows)


def _write_csv(rows: list[dict], path: Path) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repaired", type=Path, required=True,
                        help="the --workdir of bench_repair_acasxu.py (delivered ONNX files and report folders)")
    parser.add_argument("--repair-csv", type=Path, default=None,
                        help="the repair benchmark's CSV (verdicts of phi1-phi4 outside the task; "
                             "default: REPAIRED/repair.csv)")
    parser.add_argument("--certs", type=Path, default=None,
                        help="where certificates go (default: REPAIRED/certificates)")
    parser.add_argument("--csv", type=Path, default=RESULTS / "certificates_repaired.csv")
    parser.add_argument("--md", type=Path, default=RESULTS / "certificates_repaired.md")
    parser.add_argument("--timeout", type=float, default=300.0, help="budget of one verification / certify (s)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain verification")
    parser.add_argument("--only", default=None, help="comma-separated network keys, e.g. 2_1,1_9")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="only write this CSV: the repair rows with each delivered file's SHA-256")
    args = parser.parse_args(argv)
    repair_csv = args.repair_csv or args.repaired / "repair.csv"
    if args.manifest is not None:
        print(f"{write_manifest(args.repaired, repair_csv, args.manifest)} networks in {args.manifest}")
        return 0
    repair_rows = {r["network"]: r for r in csv.DictReader(open(repair_csv))} if repair_csv.is_file() else {}
    certs = args.certs or args.repaired / "certificates"
    certs.mkdir(parents=True, exist_ok=True)
    rows = list(csv.DictReader(open(args.csv))) if args.csv.is_file() else []
    done = {(r["network"], r["property"]) for r in rows}
    only = {f"ACASXU_run2a_{k}_batch_2000" for k in args.only.split(",")} if args.only else None
    command = "OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_certificates_repaired.py " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    commit = _commit()
    onnx_files = sorted(args.repaired.glob("*_repaired.onnx"))
    if not onnx_files:
        parser.error(f"no *_repaired.onnx in {args.repaired}")
    for network_path in onnx_files:
        network = network_path.name.removesuffix("_repaired.onnx")
        if only is not None and network not in only:
            continue
        for name, applies, verdict, repair_s in proven_properties(args.repaired / f"{network}_report",
                                                                  repair_rows.get(network)):
            if (network, name) in done:
                continue
            row: dict = {"network": network, "property": name, "applies": applies, "repair_verdict": verdict,
                         "repair_verify_s": None if repair_s is None else round(repair_s, 3), "commit": commit}
            if verdict == "holds":
                prop_path = default_vnnlib_dir() / f"prop_{name.removeprefix('phi')}.vnnlib"
                row.update(measure(network_path, name, prop_path, certs / f"{network}_{name}.npz", args.timeout,
                                   not args.no_baseline))
            else:
                row.update(accepted=None, reason=f"not proven by the repair run ({verdict}): not certified")
            rows.append(row)
            done.add((network, name))
            _write_csv(rows, args.csv)
            write_markdown(rows, args.md, command)
            print(f"{network} {name}: verify {row.get('verify_s')} s, search {row.get('search_s')} s, write "
                  f"{row.get('write_s')} s, check {row.get('check_s')} s, leaves {row.get('leaves')}, "
                  f"accepted {row.get('accepted')} {str(row.get('reason') or '')[:100]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
