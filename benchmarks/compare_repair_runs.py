"""Side by side: the repair benchmark's CSVs of several runs, per network, with medians and ratios.

Each argument is ``LABEL=CSV[,CSV...]`` (rows of later files of one label replace earlier ones, so a
rerun of a few networks can be laid over a whole run); the first label is the baseline of the ratio
column.  Writes a markdown table (``--md``) and a CSV (``--csv``)::

    python benchmarks/compare_repair_runs.py lp=lp.csv cover=cover.csv,rerun.csv \\
        --md benchmarks/results/repair_acasxu_cover.md --csv benchmarks/results/repair_acasxu_cover.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
from pathlib import Path

from verirepair.atomic import write_text_atomic


def _read(paths: str) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for path in paths.split(","):
        with open(path, newline="") as handle:
            rows.update({r["network"]: r for r in csv.DictReader(handle)})
    return rows


def _short(name: str) -> str:
    return name.replace("ACASXU_run2a_", "N").replace("_batch_2000", "").replace("_", ",")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=CSV[,CSV...]; the first is the ratio's baseline")
    parser.add_argument("--md", type=Path, required=True)
    parser.add_argument("--csv", type=Path, required=True)
    args = parser.parse_args(argv)
    labels, runs = [], []
    for item in args.runs:
        label, _, paths = item.partition("=")
        labels.append(label)
        runs.append(_read(paths))
    networks = sorted(set().union(*runs))
    out_rows = []
    for name in networks:
        row: dict = {"network": name}
        for label, run in zip(labels, runs, strict=True):
            found = run.get(name, {})
            for key in ("status", "rounds", "l1", "advisory_fidelity", "time_s"):
                row[f"{key}_{label}"] = found.get(key, "")
        base, last = row[f"l1_{labels[0]}"], row[f"l1_{labels[-1]}"]
        row[f"l1_{labels[-1]}_over_{labels[0]}"] = (f"{float(last) / float(base):.3g}"
                                                    if base and last and float(base) > 0 else "")
        out_rows.append(row)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(out_rows[0]))
    writer.writeheader()
    writer.writerows(out_rows)
    write_text_atomic(args.csv, text.getvalue())
    head = ["network"] + [f"{what} {label}" for label in labels for what in ("status", "L1", "fidelity", "s")]
    lines = ["| " + " | ".join(head + [f"L1 {labels[-1]} / {labels[0]}"]) + " |",
             "|" + "---|" * (len(head) + 1)]
    for row in out_rows:
        cells = [_short(row["network"])]
        for label in labels:
            l1 = row[f"l1_{label}"]
            cells += [row[f"status_{label}"] or "not run", f"{float(l1):.4g}" if l1 else "",
                      row[f"advisory_fidelity_{label}"], row[f"time_s_{label}"]]
        lines.append("| " + " | ".join(cells + [row[f"l1_{labels[-1]}_over_{labels[0]}"]]) + " |")
    lines.append("")
    for label in labels:
        values = [float(r[f"l1_{label}"]) for r in out_rows if r[f"l1_{label}"]]
        times = [float(r[f"time_s_{label}"]) for r in out_rows if r[f"time_s_{label}"]]
        repaired = sum(1 for r in out_rows if r[f"status_{label}"] == "repaired")
        if values:
            lines.append(f"* **{label}**: {repaired}/{len(out_rows)} repaired; median L1 "
                         f"{statistics.median(values):.4g}, mean {statistics.fmean(values):.4g}; "
                         f"time {sum(times):.0f} s in all (median {statistics.median(times):.0f} s)")
    write_text_atomic(args.md, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
