"""Summarise benchmarks/results/certificates.csv (written by bench_certificates_acasxu.py) as markdown.

    python benchmarks/certificates_summary.py benchmarks/results/certificates.csv > summary.md
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path


def _f(row: dict, key: str) -> float:
    return float(row[key]) if row.get(key) not in (None, "") else 0.0


def summarise(path: Path) -> str:
    """The summary table (totals over the instances of the CSV) as markdown text."""
    rows = list(csv.DictReader(open(path)))
    written = [r for r in rows if r["size_bytes"] not in ("", "0")]
    accepted = [r for r in written if r["accepted"] == "True"]
    verify = sum(_f(r, "verify_s") for r in rows)
    search = sum(_f(r, "certify_search_s") for r in rows)
    write = sum(_f(r, "certify_write_s") for r in rows)
    check = sum(_f(r, "check_s") for r in accepted)
    sizes = sorted(int(r["size_bytes"]) for r in written)
    mem = [r for r in rows if r.get("verify_peak_mb")]
    lines = [
        f"| instances run | {len(rows)} |", "|---|---|",
        f"| certificates written | {len(written)} |",
        f"| accepted by the checker (outward float64) | {len(accepted)} |",
        f"| verification, sum (baseline, same run) | {verify:.1f} s |",
        f"| search with the recorder, sum | {search:.1f} s ({100 * (search - verify) / verify:+.1f}%) |",
        f"| writing (tree rebuild + the checker's validation + re-derivation), sum | {write:.1f} s "
        f"({100 * write / verify:.0f}% of verification) |",
        f"| checking, sum (accepted ones) | {check:.1f} s (check / verify = {check / verify:.2f}) |",
        f"| certificate size: median / max / total | {statistics.median(sizes) / 1024:.1f} KiB / "
        f"{sizes[-1] / 1024:.1f} KiB / {sum(sizes) / 2**20:.2f} MiB |" if sizes else "| size | - |",
        f"| leaves, total | {sum(int(_f(r, 'leaves')) for r in written)} |",
        f"| evidence records with alpha-CROWN slopes | {sum(int(_f(r, 'with_slopes')) for r in written)} |",
        f"| leaves re-derived by the writer | {sum(int(_f(r, 'rederived')) for r in written)} |",
    ]
    if mem:
        ratio = [(_f(r, "certify_peak_mb") / _f(r, "verify_peak_mb")) for r in mem if _f(r, "verify_peak_mb") > 0]
        lines.append(f"| peak traced memory, certify / verify ({len(mem)} sampled instances) | median "
                     f"{statistics.median(ratio):.2f}, max {max(ratio):.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(summarise(Path(sys.argv[1])))
