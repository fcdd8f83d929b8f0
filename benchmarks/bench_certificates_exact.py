"""Exact-arithmetic checks of ACAS Xu certificates: time per record against the float check.

Opt-in measurement.  Reads the certificates a run of ``bench_certificates_acasxu.py
--keep DIR`` left in DIR (files ``<network>_<prop>.npz``) and, for every K-th of
them in the order of the CSV, checks it again with the exact (GMP rational)
arithmetic: the whole certificate when it has at most ``--all-up-to`` evidence
records, else a seeded sample of ``--sample`` records.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_certificates_exact.py \\
        --certs DIR --csv benchmarks/results/certificates.csv --every 10 \\
        --out benchmarks/results/certificates_exact.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from verirepair.checker import Rejected, check_certificate
from verirepair.tasks.acasxu import networks as acasxu_nets

FIELDS = ("network", "prop", "evidence", "mode", "exact_records", "exact_cpu_s", "cpu_s_per_record",
          "float_check_cpu_s", "accepted", "note")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certs", type=Path, required=True, help="folder of <network>_<prop>.npz certificates")
    parser.add_argument("--csv", type=Path, required=True, help="the CSV of bench_certificates_acasxu.py")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--every", type=int, default=10, help="check every K-th instance (default 10)")
    parser.add_argument("--all-up-to", type=int, default=8,
                        help="whole certificate in exact mode when it has at most this many records (default 8)")
    parser.add_argument("--sample", type=int, default=2, help="records per larger certificate (default 2)")
    args = parser.parse_args(argv)
    rows = [r for r in csv.DictReader(open(args.csv)) if r["accepted"] == "True"]
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows[::args.every]:
            cert = args.certs / f"{row['network']}_{row['prop']}.npz"
            net = acasxu_nets.acasxu_dir() / "onnx" / f"{row['network']}.onnx"
            prop = acasxu_nets.acasxu_dir() / "vnnlib" / f"prop_{row['prop']}.vnnlib"
            whole = int(row["evidence"]) <= args.all_up_to
            out = {"network": row["network"], "prop": row["prop"], "evidence": row["evidence"],
                   "mode": "all" if whole else f"sample {args.sample}", "float_check_cpu_s": row["check_cpu_s"]}
            cpu = time.process_time()
            try:
                result = check_certificate(cert, net, prop, exact="all" if whole else "sample", sample=args.sample)
                spent = time.process_time() - cpu
                out.update(exact_records=result.exact_evidence, exact_cpu_s=round(spent, 2), accepted=True,
                           cpu_s_per_record=round(spent / max(1, result.exact_evidence), 2))
            except Rejected as exc:
                out.update(accepted=False, note=str(exc), exact_cpu_s=round(time.process_time() - cpu, 2))
            writer.writerow(out)
            handle.flush()
            print(out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
