"""The deliverables of a repair run: report.json, report.md with plots, certificate.json.

Pipeline position: the last stage; :func:`write_report` is called by
:func:`verirepair.pipeline.run_pipeline`.  Every file is written atomically.

* ``report.json`` -- machine-readable: input/output hashes, per-property
  verdicts before and after (engine, time), rounds, solver statistics, the
  weight change, fidelity, the configuration and seed.
* ``report.md`` -- the same for people, with the plots beside it.
* ``certificate.json`` -- what was proven about which bytes: the SHA-256 of
  the repaired file, and per property the verdict of each engine.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import platform
from pathlib import Path

import numpy as np

from verirepair import __version__
from verirepair.atomic import write_bytes_atomic, write_text_atomic
from verirepair.network.model import Network

#: Points per property region drawn for the before/after violation-score plot.
_PLOT_SAMPLES = 4000


def _sha(path: Path | None) -> str | None:
    from verirepair.pipeline_inputs import sha256_file

    return sha256_file(path) if path is not None and Path(path).is_file() else None


def build_report_dict(result, original: Network, config, source_path: Path | None, loc) -> dict:
    """The content of ``report.json``."""
    from verirepair.pipeline import config_dict

    return {
        "tool": {"name": "verirepair", "version": __version__, "python": platform.python_version()},
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "status": result.status.value,
        "time_s": result.time_s,
        "input": {"path": str(source_path) if source_path else None, "sha256": _sha(source_path),
                  "network": original.name, "layers": [list(l.weight.shape) for l in original.layers]},
        "output": {"path": str(result.output_path) if result.output_path else None,
                   "sha256": _sha(result.output_path)},
        "properties": result.properties,
        "rounds": [
            {"index": r.index, "verdicts": r.verdicts, "new_counterexamples": r.new_counterexamples,
             "pool_size": r.pool_size, "layer_index": r.layer_index, "solver_status": r.solver_status,
             "objective": r.objective, "time_s": r.time_s, "margins": r.margins,
             "kind": r.kind}
            for r in result.rounds
        ],
        "change": result.change,
        "fidelity": result.fidelity,
        "localization": loc.to_json_dict() if loc is not None else None,
        "config": config_dict(config),
        "seed": config.seed,
    }


def build_certificate(result, report: dict) -> dict:
    """The content of ``certificate.json``: which properties are proven on which bytes."""
    proven = {}
    for name, entry in result.properties.items():
        after = entry.get("after") or entry["before"]
        proven[name] = {
            "verdict": after["verdict"],
            "engine": after["engine"],
            "method": "branch and bound over the input region with sound interval/symbolic bounds "
                      "(outward tolerance BOUND_TOL)" if after["engine"] == "own" else after["engine"],
            "time_s": after["time_s"],
            "cross_check": entry.get("cross_check"),
        }
    all_proven = all(p["verdict"] == "holds" for p in proven.values())
    return {
        "network_sha256": report["output"]["sha256"] or report["input"]["sha256"],
        "network_path": report["output"]["path"] or report["input"]["path"],
        "all_properties_hold": all_proven,
        "properties": proven,
        "semantics": "float64 evaluation of the stored float32 weights; each unsafe set read as closed",
        "tool": report["tool"],
        "created_utc": report["created_utc"],
    }


def write_report(result, original: Network, named, config, source_path: Path | None, loc) -> Path:
    """Write report.json, certificate.json, report.md and the plots into ``result.report_dir``.

    Returns
    -------
    Path -- the report folder
    """
    folder = Path(result.report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    report = build_report_dict(result, original, config, source_path, loc)
    write_text_atomic(folder / "report.json", json.dumps(report, indent=2, default=_json_default))
    certificate = build_certificate(result, report)
    write_text_atomic(folder / "certificate.json", json.dumps(certificate, indent=2, default=_json_default))
    plots = _write_plots(result, original, named, folder, config.seed)
    write_text_atomic(folder / "report.md", render_markdown(report, plots))
    return folder


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ----------------------------------------------------------------------------- plots
def _save_figure(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())


def _write_plots(result, original: Network, named, folder: Path, seed: int) -> dict[str, str]:
    """Draw the plots that exist for this run; returns {title: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, str] = {}
    if result.patch is None:
        return plots
    rng = np.random.default_rng(seed + 2)
    # 1. Violation score before and after, per property region.
    fig, axes = plt.subplots(1, 1, figsize=(7, 3.6))
    drew = False
    for name, props in named:
        if result.properties[name]["before"]["verdict"] != "violated":
            continue
        x = np.vstack([p.sample_inputs(rng, _PLOT_SAMPLES // len(props)) for p in props])
        before = np.max([p.violation_score(original.forward(x)) for p in props], axis=0)
        after = np.max([p.violation_score(result.network.forward(x)) for p in props], axis=0)
        # Shared bins: with separate ones a narrow distribution (a repair with
        # a wide margin moves every score by about the same amount) gets bars
        # too thin to see.
        bins = np.histogram_bin_edges(np.concatenate([before, after]), bins=60)
        for scores, when in ((before, "before"), (after, "after")):
            axes.hist(scores, bins=bins, alpha=0.5, histtype="stepfilled", edgecolor="0.2",
                      linewidth=0.6, label=f"{name} {when}")
        drew = True
    if drew:
        axes.axvline(0.0, color="k", lw=1)
        axes.set_xlabel("violation score (> 0: unsafe)")
        axes.set_ylabel("sampled inputs")
        axes.set_title("Violation score over each property's region")
        axes.legend(fontsize=7)
        _save_figure(fig, folder / "violation_scores.png")
        plots["Violation score before and after"] = "violation_scores.png"
    plt.close(fig)
    # 2. Weight-change heat map.
    patch = result.patch
    delta = np.hstack([patch.delta_weight, patch.delta_bias[:, None]])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    limit = float(np.max(np.abs(delta))) or 1.0
    image = ax.imshow(delta, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xlabel("input unit (last column: bias)")
    ax.set_ylabel("output unit")
    ax.set_title(f"Weight change of layer {patch.layer_index}")
    fig.colorbar(image, ax=ax)
    _save_figure(fig, folder / "weight_change.png")
    plots["Weight change"] = "weight_change.png"
    plt.close(fig)
    # 3. Fidelity.
    if result.fidelity:
        labels = ["advisory agreement"]
        values = [100 * result.fidelity["advisory_agreement"]]
        for care in result.fidelity.get("care", []):
            if care["accuracy"] is not None:
                labels.append(f"{care['property']} accuracy")
                values.append(100 * care["accuracy"])
            if care["violation_rate"] is not None:
                labels.append(f"{care['property']} still violating")
                values.append(100 * care["violation_rate"])
        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(labels)))
        ax.barh(labels, values, color="tab:blue")
        ax.set_xlim(0, 100)
        ax.set_xlabel("%")
        ax.set_title("Fidelity")
        for y, v in enumerate(values):
            ax.text(min(v + 1, 90), y, f"{v:.2f}%", va="center")
        _save_figure(fig, folder / "fidelity.png")
        plots["Fidelity"] = "fidelity.png"
        plt.close(fig)
    return plots


# ----------------------------------------------------------------------------- markdown
def render_markdown(report: dict, plots: dict[str, str]) -> str:
    """The human-readable report page."""
    lines = [f"# verirepair report: {report['input']['network']}", "",
             f"**Status: {report['status'].upper()}** after {len(report['rounds'])} round(s), "
             f"{report['time_s']:.1f} s.", ""]
    lines += ["| | path | sha256 |", "|---|---|---|",
              f"| input | `{report['input']['path']}` | `{report['input']['sha256']}` |",
              f"| output | `{report['output']['path']}` | `{report['output']['sha256']}` |", ""]
    lines += ["## Properties", "", "| property | before | after | cross-check |", "|---|---|---|---|"]
    for name, entry in report["properties"].items():
        cells = [_cell(entry.get(k)) for k in ("before", "after", "cross_check")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    if report["rounds"]:
        lines += ["## Rounds", "", "| round | layer | solver | objective | margins | new points | pool | "
                  "verdicts after | time s |", "|---|---|---|---|---|---|---|---|---|"]
        for r in report["rounds"]:
            verdicts = ", ".join(f"{k}: {v}" for k, v in r["verdicts"].items())
            objective = "-" if r["objective"] is None else f"{r['objective']:.4g}"
            margins = ", ".join(f"{k}: {v:.3g}" for k, v in r.get("margins", {}).items()) or "-"
            label = f"{r['index'] + 1}" + (" (shrink)" if r.get("kind") == "shrink" else "")
            lines.append(f"| {label} | {r['layer_index']} | {r['solver_status']} | {objective} | {margins} | "
                         f"{r['new_counterexamples']} | {r['pool_size']} | {verdicts} | {r['time_s']:.1f} |")
        lines.append("")
    if report["change"]:
        c = report["change"]
        lines += ["## Weight change", "", f"Layer {c['layer_index']}: L1 = {c['l1']:.6g}, "
                  f"L-infinity = {c['linf']:.6g}, {c['n_changed']} weights changed.", ""]
    if report["fidelity"]:
        f = report["fidelity"]
        lines += ["## Fidelity", "", f"- Advisory agreement with the original on {f['n_domain_points']} "
                  f"uniform domain points: **{100 * f['advisory_agreement']:.2f}%**"]
        for care in f.get("care", []):
            acc = "-" if care["accuracy"] is None else f"{100 * care['accuracy']:.2f}%"
            vio = "-" if care["violation_rate"] is None else f"{100 * care['violation_rate']:.2f}%"
            lines.append(f"- {care['property']} (CARE protocol): accuracy {acc} on {care['n_correct']} correct "
                         f"points; violation rate {vio} on {care['n_counterexamples']} counterexamples")
        lines.append("")
    for title, file_name in plots.items():
        lines += [f"### {title}", "", f"![{title}]({file_name})", ""]
    lines += ["## Configuration", "", "```json", json.dumps(report["config"], indent=2), "```", ""]
    return "\n".join(lines)


def _cell(entry: dict | None) -> str:
    if not entry:
        return "-"
    return f"{entry['verdict']} ({entry['engine']}, {entry['time_s']:.1f} s)"
