"""The fairness repair's report: ``report.json``, a readable ``report.md`` and its figure.

Pipeline position: last step of ``verirepair fairness repair``.  Everything is
written atomically; the figure (``rates.png``) shows the discrimination rate of
every attribute before and after, on the test split and on the uniform domain
sample, with the confidence intervals, and the share of test individuals with
a fairness proof before and after.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from verirepair.atomic import write_text_atomic
from verirepair.report_plots import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["figure_rates", "report_markdown", "write_fairness_report"]

FIGURE = "rates.png"


def figure_rates(report: dict) -> Figure:
    """Bars: discrimination before/after (data and domain, with CIs) and proven shares, per attribute."""
    from matplotlib.figure import Figure

    attrs = list(report["discrimination_before"])
    fig = Figure(figsize=(4.2 + 1.6 * len(attrs), 4.2))
    ax_rate, ax_proof = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    x = np.arange(len(attrs))
    width = 0.2
    bars = [("data", "before", "#c44e52"), ("data", "after", "#55a868"),
            ("domain", "before", "#dd8452"), ("domain", "after", "#4c72b0")]
    for k, (source, when, colour) in enumerate(bars):
        est = [report[f"discrimination_{when}"][a][source] for a in attrs]
        rate = np.array([e["rate"] for e in est]) * 100
        err = np.array([[e["rate"] - e["ci_low"] for e in est], [e["ci_high"] - e["rate"] for e in est]]) * 100
        ax_rate.bar(x + (k - 1.5) * width, rate, width, yerr=err, capsize=3, color=colour,
                    label=f"{source} sample, {when}")
    ax_rate.set_xticks(x, attrs)
    ax_rate.set_ylabel("discriminated individuals (%)")
    confidence = report["discrimination_before"][attrs[0]]["data"]["confidence"]
    ax_rate.set_title(f"Individual discrimination ({confidence:.0%} CI)")
    ax_rate.legend(fontsize=8)
    for k, (when, colour) in enumerate((("before", "#c44e52"), ("after", "#55a868"))):
        shares = [report[f"proven_{when}"][a] * 100 for a in attrs]
        ax_proof.bar(x + (k - 0.5) * 0.35, shares, 0.35, color=colour, label=when)
    ax_proof.set_xticks(x, attrs)
    ax_proof.set_ylim(0, 100)
    ax_proof.set_ylabel("test individuals proven fair (%)")
    tol = report["config"]["proof_tolerance"]
    ax_proof.set_title(f"Proven (numeric tolerance {tol:g})")
    ax_proof.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Fairness repair of {report['network']['name']} on {report['data']['data']}")
    fig.tight_layout()
    return fig


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def report_markdown(report: dict) -> str:
    """The readable report (Markdown)."""
    data, change = report["data"], report["change"]
    lines = [f"# Fairness repair: {report['network']['name']} on {data['data']}", "",
             f"Status: **{report['status']}**. Protected: {', '.join(report['protected'])}. "
             f"Repair time {report['repair_time_s']:.1f} s (whole run {report['time_s']:.1f} s).", "",
             f"Test accuracy {_pct(report['accuracy_before'])} -> {_pct(report['accuracy_after'])} "
             f"({100 * (report['accuracy_after'] - report['accuracy_before']):+.2f} points); training accuracy "
             f"{_pct(report['train_accuracy_before'])} -> {_pct(report['train_accuracy_after'])}.", "",
             f"![rates]({FIGURE})", "",
             "## Discrimination (share of individuals whose class changes with the protected attribute)", "",
             "| attribute | sample | n | before | CI | after | CI | relative improvement |",
             "| --- | --- | ---: | ---: | --- | ---: | --- | ---: |"]
    for a in report["discrimination_before"]:
        for source in ("data", "domain"):
            b, f = report["discrimination_before"][a][source], report["discrimination_after"][a][source]
            lines.append(f"| {a} | {source} | {b['n']} | {_pct(b['rate'])} | [{_pct(b['ci_low'])}, "
                         f"{_pct(b['ci_high'])}] | {_pct(f['rate'])} | [{_pct(f['ci_low'])}, {_pct(f['ci_high'])}] "
                         f"| {_pct(report['relative_improvement'][a][source])} |")
    lines += ["", "`data`: every individual of the test split (held out from training and repair); `domain`: "
              "a seeded uniform sample of the feature domain, not used by the repair. Intervals: exact "
              "Clopper-Pearson; the rates are statistical estimates, not proofs.", "",
              "## Proven fairness", "",
              f"For {len(report['proof_individuals'])} test individuals: the verifier proves that no value of the "
              f"protected attribute, with every numeric feature within +-{report['config']['proof_tolerance']:g} "
              "of its value (a fraction of its training range), changes the decision (product network of two "
              "copies sharing every input except the protected one).", "",
              "| attribute | proven before | proven after | violated after | undecided after |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for a in report["proven_before"]:
        pa = report["proofs_after"][a]
        lines.append(f"| {a} | {_pct(report['proven_before'][a])} | {_pct(report['proven_after'][a])} | "
                     f"{pa['violated']} | {pa['undecided']} |")
    lines += ["", "## The change", "",
              f"Layer {change['layer_index']}, rows {change['neurons'] if change['neurons'] is not None else 'all'}: "
              f"L1 {change['l1']:.4g}, Linf {change['linf']:.4g}, {change['n_changed']} parameters changed "
              f"(units {change['changed_units']}); {change['n_fix_points']} fix points, "
              f"{change['n_keep_points']} keep points. Targets: {report['targets']}.", "",
              "| round | new individuals | fix points | status | L1 | time (s) |",
              "| ---: | --- | ---: | --- | ---: | ---: |"]
    for r in report["rounds"]:
        new = ", ".join(f"{k} {v}" for k, v in r["new_individuals"].items())
        lines.append(f"| {r['round']} | {new} | {r['n_fix_points']} | {r['status']} | {r['l1']:.4g} | "
                     f"{r['time_s']:.1f} |")
    loc = report["localization"]
    lines += ["", "## Localization (causal effect on the disagreement of discriminatory pairs)", "",
              f"Suggested layer {loc['suggested_layer']}, neurons {loc['suggested_neurons']} "
              f"({loc['n_pairs']} pairs).", "", "| layer | unit | effect | collateral |",
              "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {e['layer_index']} | {e['unit']} | {e['effect']:.4g} | {e['collateral']:.3f} |" for e in loc["top"]]
    lines += ["", "## Data", "",
              f"{data['rows_read']} rows read, {data['rows_dropped_missing']} dropped for missing values "
              f"({', '.join(f'{k}: {v}' for k, v in data['missing_by_column'].items()) or 'none'}), "
              f"{data['rows_dropped_malformed']} malformed; {data['n_train']} training / {data['n_test']} test "
              f"individuals, {data['n_inputs']} encoded inputs (`feature_layout` in report.json).", ""]
    return "\n".join(lines)


def write_fairness_report(report: dict, directory: Path) -> Path:
    """Write ``report.json``, ``report.md`` and ``rates.png`` into ``directory``; returns the Markdown path."""
    directory.mkdir(parents=True, exist_ok=True)
    write_text_atomic(directory / "report.json", json.dumps(report, indent=2, default=float) + "\n")
    save_figure(figure_rates(report), directory / FIGURE)
    return write_text_atomic(directory / "report.md", report_markdown(report))
