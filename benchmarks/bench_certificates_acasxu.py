"""Certificates of the ACAS Xu instances that hold: size, writing overhead, checking time.

Opt-in measurement (not part of the CI test paths).  For every instance whose
verdict in ``benchmarks/results/verify_acasxu_newcore.csv`` is ``unsat``
(holds), in one process and back to back, so that the ratios compare like with
like on a shared machine:

1. plain verification (our engine, one process) -- the baseline;
   (wall-clock times, and CPU times of this process -- robust to other load on the machine --
   in the ``*_cpu_s`` columns)
2. the same verification with the tree recorder (``certify``: search + writing,
   which includes the writer's validation of every record with the checker's bound);
3. the independent checker in outward-rounded float64 on the written file;
4. optionally (``--exact-every K``) on every K-th instance, one evidence record in exact arithmetic.

Memory: ``--memory-every K`` measures the tracemalloc peak of (1) and (2) on every K-th instance
(tracemalloc slows numpy, so it is a separate run of those two).

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_certificates_acasxu.py \\
        --csv benchmarks/results/certificates.csv --exact-every 10 --memory-every 10

Instances run in increasing order of their recorded verification time.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from verirepair.checker import Rejected, check_certificate
from verirepair.properties import parse_vnnlib
from verirepair.tasks.acasxu import networks as acasxu_nets
from verirepair.verify.certificate_writer import certify
from verirepair.verify.engine import verify_own
from verirepair.verify.result import VerifyConfig

RESULTS = Path(__file__).resolve().parent / "results"
FIELDS = ("network", "prop", "verify_s", "certify_search_s", "certify_write_s", "overhead_pct", "size_bytes",
          "leaves", "evidence", "with_slopes", "rederived", "check_s", "check_over_verify", "accepted",
          "exact_records", "exact_s", "exact_accepted", "verify_peak_mb", "certify_peak_mb", "verify_cpu_s",
          "certify_cpu_s", "check_cpu_s", "note")


def _instances() -> list[tuple[str, int, float]]:
    rows = list(csv.DictReader(open(RESULTS / "verify_acasxu_newcore.csv")))
    holds = [(r["network"], int(r["prop"]), float(r["time_s"])) for r in rows if r["verdict"] == "unsat"]
    return sorted(holds, key=lambda r: r[2])


def _peak(function: Callable[..., object], *args: object) -> float:
    """Peak traced memory (MiB) of one call."""
    tracemalloc.start()
    function(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def run(out: Path, timeout_s: float, exact_every: int, memory_every: int, limit: int | None,
        only: set[str] | None = None, keep: Path | None = None, validate: bool = True) -> None:
    """Run every instance (or those named in ``only``, ``"N_M:P"``) and append one CSV row each to ``out``."""
    acasxu_nets.require_data(("onnx",))
    config = VerifyConfig(timeout_s=timeout_s)
    work = Path(tempfile.mkdtemp(prefix="certs_")) if keep is None else keep
    work.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        chosen = [r for r in _instances() if only is None or "{}_{}:{}".format(*r[0].split("_")[2:4], r[1]) in only]
        for index, (name, number, _) in enumerate(chosen[:limit]):
            net_path = acasxu_nets.acasxu_dir() / "onnx" / f"{name}.onnx"
            prop_path = acasxu_nets.acasxu_dir() / "vnnlib" / f"prop_{number}.vnnlib"
            network = acasxu_nets.load_acasxu(name)
            props = parse_vnnlib(prop_path)
            cert = work / f"{name}_{number}.npz"
            start, cpu = time.perf_counter(), time.process_time()
            plain = verify_own(network, props, config)
            verify_s, verify_cpu = time.perf_counter() - start, time.process_time() - cpu
            cpu = time.process_time()
            done = certify(network, props, config, net_path, prop_path, cert, validate)
            certify_cpu = time.process_time() - cpu
            row: dict = {"network": name, "prop": number, "verify_s": round(verify_s, 3),
                         "certify_search_s": round(done.search_s, 3), "certify_write_s": round(done.write_s, 3),
                         "overhead_pct": round(100 * (done.search_s + done.write_s - verify_s) / verify_s, 1),
                         "size_bytes": done.size_bytes, "note": done.reason or plain.verdict.value,
                         "verify_cpu_s": round(verify_cpu, 3), "certify_cpu_s": round(certify_cpu, 3)}
            if done.path is not None:
                row.update(leaves=sum(s["leaves"] for s in done.summary),
                           evidence=sum(s["evidence"] for s in done.summary),
                           with_slopes=sum(s["with_slopes"] for s in done.summary),
                           rederived=sum(s["rederived"] for s in done.summary))
                try:
                    cpu = time.process_time()
                    checked = check_certificate(cert, net_path, prop_path)
                    row.update(check_cpu_s=round(time.process_time() - cpu, 3))
                    row.update(check_s=round(checked.time_s, 3), accepted=True,
                               check_over_verify=round(checked.time_s / verify_s, 2))
                except Rejected as exc:
                    row.update(accepted=False, note=str(exc))
                if exact_every and index % exact_every == 0:
                    try:
                        exact = check_certificate(cert, net_path, prop_path, exact="sample", sample=1)
                        row.update(exact_records=exact.exact_evidence, exact_s=round(exact.time_s, 2),
                                   exact_accepted=True)
                    except Rejected as exc:
                        row.update(exact_accepted=False, note=str(exc))
            if memory_every and index % memory_every == 0:
                row["verify_peak_mb"] = round(_peak(verify_own, network, props, config), 1)
                row["certify_peak_mb"] = round(_peak(certify, network, props, config, net_path, prop_path,
                                                     work / "memory.npz"), 1)
            writer.writerow(row)
            handle.flush()
            print(f"{index + 1:3d} {name} prop {number}: verify {verify_s:.2f} s, certify "
                  f"{done.search_s:.2f}+{done.write_s:.2f} s, check {row.get('check_s')} s, "
                  f"{row.get('accepted')} {row['note'][:80]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=RESULTS / "certificates.csv")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--exact-every", type=int, default=0)
    parser.add_argument("--memory-every", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--only", default=None, help="comma-separated instances N_M:PROP, e.g. 1_7:1,4_6:3")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the certificates into this folder (default: a temporary one)")
    parser.add_argument("--unvalidated", action="store_true",
                        help="write without the writer's validation (certify(..., validate=False))")
    args = parser.parse_args(argv)
    only = None if args.only is None else set(args.only.split(","))
    run(args.csv, args.timeout, args.exact_every, args.memory_every, args.limit, only, args.keep,
        not args.unvalidated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
