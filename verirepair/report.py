"""The deliverables of a repair run: report.json, report.md with plots, certificate.json.

Pipeline position: the last stage; :func:`write_report` is called by
:func:`verirepair.pipeline.run_pipeline`.  Every file is written atomically.

* ``report.json`` -- machine-readable: whether the run is certified, input,
  output and candidate hashes (absolute paths), per-property verdicts before
  and after (engine, time), rounds, solver statistics, the weight change,
  fidelity, the configuration and seed.
* ``report.md`` -- the same for people, with the plots beside it; ``report.html`` the same
  again as one self-contained page (plots embedded; :mod:`verirepair.report_html`).  A task
  may add figures of its own (:meth:`RepairTask.report_figures`; ACAS Xu: policy maps).  Its first
  line says ``# CERTIFIED: ...`` or ``# NOT CERTIFIED: ...``, and every path
  in it is relative to the report folder, so its links work wherever the
  folder is opened from.
* ``certificate.json`` -- what was proven about which bytes.  Only a certified
  run names a network in ``network_path``: the delivered file (REPAIRED) or the
  unchanged input (NOT_NEEDED).  A PARTIAL or FAILED run says
  ``"certified": false`` and names the uncertified candidate as such.

The figures are drawn by :mod:`verirepair.report_plots`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verirepair import __version__
from verirepair.atomic import sha256_file, write_text_atomic
from verirepair.localize.result import Localization
from verirepair.network.model import Network
from verirepair.outcome import UNCERTIFIED_NAME, PipelineResult
from verirepair.run_config import RunConfig, config_dict, config_to_toml
from verirepair.task import RepairTask
from verirepair.verify.result import Verdict

#: Points per property region drawn for the before/after violation-score plot.
_PLOT_SAMPLES = 4000

#: Statuses (``PipelineStatus.value``) that can be certified: every property
#: proven on the delivered bytes, or held before any change.
CERTIFIED_STATUSES = frozenset({"repaired", "not_needed"})


@dataclass(frozen=True, slots=True)
class Certification:
    """Whether a run's result may be trusted, and why (not).

    Parameters
    ----------
    certified : bool
        True only for a REPAIRED or NOT_NEEDED run whose every property holds
        and that no cross-check contradicts.
    reason : str
        One sentence for the headline, without the ``CERTIFIED:`` prefix.
    unproven : dict of str to str
        Property name -> final verdict, for every property not proven.
    contradicted : dict of str to str
        Property name -> cross-check engine, where that engine found a violation.
    """

    certified: bool
    reason: str
    unproven: dict = field(default_factory=dict)
    contradicted: dict = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """``"CERTIFIED: <reason>"`` or ``"NOT CERTIFIED: <reason>"``."""
        return ("CERTIFIED: " if self.certified else "NOT CERTIFIED: ") + self.reason


def final_verdict(entry: dict) -> dict:
    """The last verdict recorded for a property: after the repair, else before."""
    return entry.get("after") or entry["before"]


def certify(status: str, properties: dict, network_name: str | None = None, *, output_written: bool = False,
            candidate_written: bool = False) -> Certification:
    """Decide whether a run is certified and say why in one sentence.

    Parameters
    ----------
    status : str -- ``PipelineStatus.value`` ("repaired", "not_needed", "partial", "failed")
    properties : dict -- ``PipelineResult.properties`` (name -> {"before", "after", "cross_check"})
    network_name : str or None -- prefixed to the reason
    output_written : bool -- a network was written at ``--out``
    candidate_written : bool -- an uncertified candidate was written into the report folder

    Returns
    -------
    Certification
    """
    names = list(properties)
    unproven = {n: final_verdict(e)["verdict"] for n, e in properties.items()
                if final_verdict(e)["verdict"] != "holds"}
    contradicted = {n: e["cross_check"].get("engine", "cross-check") for n, e in properties.items()
                    if (e.get("cross_check") or {}).get("verdict") == "violated"}
    prefix = f"{network_name}: " if network_name else ""
    listed = ", ".join(names)
    if not names:
        return Certification(False, prefix + "no property was checked, so nothing is proven")
    if status in CERTIFIED_STATUSES and not unproven and not contradicted:
        if status == "not_needed":
            reason = (f"no repair needed; all {len(names)} properties ({listed}) held before any change, "
                      "nothing was changed or written")
        else:
            reason = f"repaired; all {len(names)} properties ({listed}) proven on the delivered network"
        return Certification(True, prefix + reason)
    parts = {"failed": ["repair failed (no layer admitted a repair)"],
             "partial": ["repair incomplete (budget ran out or a verdict stayed open)"]}.get(status, [])
    if unproven:
        parts.append(f"{len(unproven)} of {len(names)} properties not proven ("
                     + ", ".join(f"{n}: {v}" for n, v in unproven.items()) + ")")
    if contradicted:
        parts.append("the cross-check found a violation of "
                     + ", ".join(f"{n} ({engine})" for n, engine in contradicted.items()))
    if candidate_written:
        parts.append(f"the best candidate is kept as {UNCERTIFIED_NAME} and is not certified")
    elif output_written:
        parts.append("the network written at --out is not certified")
    else:
        parts.append("no network was delivered")
    return Certification(False, prefix + "; ".join(parts), unproven, contradicted)


def _sha(path: Path | None) -> str | None:
    return sha256_file(path) if path is not None and Path(path).is_file() else None


def _file_entry(path: Path | None) -> dict:
    """``{"path", "sha256"}`` with an absolute path (None when nothing was written)."""
    if path is None:
        return {"path": None, "sha256": None}
    return {"path": os.path.abspath(path), "sha256": _sha(path)}


def build_report_dict(result: PipelineResult, original: Network, task: RepairTask, config: RunConfig,
                      source_path: Path | None, loc: Localization | None) -> dict:
    """The content of ``report.json`` (the typed results become JSON here and only here).

    Paths are absolute (they mean the same whatever the reader's working
    directory); ``report.md`` shows them relative to the report folder.
    """
    candidate = result.candidate_path
    properties = {name: outcome.to_dict() for name, outcome in result.properties.items()}
    verdict = certify(result.status.value, properties, original.name,
                      output_written=result.output_path is not None,
                      candidate_written=candidate is not None and candidate.is_file())
    return {
        "tool": {"name": "verirepair", "version": __version__, "python": platform.python_version()},
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "status": result.status.value,
        "certified": verdict.certified,
        "headline": verdict.headline,
        "time_s": result.time_s,
        "input": {**_file_entry(source_path), "network": original.name,
                  "layers": [list(layer.weight.shape) for layer in original.layers]},
        "output": _file_entry(result.output_path),
        "candidate": ({**_file_entry(candidate), "certified": False} if candidate is not None else None),
        "task": {"name": task.name, "decision": task.decision, "description": task.description},
        "properties": properties,
        "rounds": [r.to_dict() for r in result.rounds],
        "strategy": result.strategy,
        "change": result.change.to_dict() if result.change else None,
        # Sampling evidence for undecided properties: NOT proofs, kept apart from "properties".
        "pac": {name: statement.to_dict() for name, statement in result.pac.items()},
        "fidelity": result.fidelity.to_dict() if result.fidelity else None,
        "localization": loc.to_json_dict() if loc is not None else None,
        "config": config_dict(config),
        "seed": config.seed,
    }


def _subject(report: dict) -> dict:
    """The network the final verdicts are about, and in what role."""
    if report["status"] == "not_needed":
        return {"role": "original network (unchanged; nothing was written)", **_path_sha(report["input"])}
    if report["certified"]:
        return {"role": "delivered network", **_path_sha(report["output"])}
    if report.get("candidate"):
        return {"role": "UNCERTIFIED candidate (not delivered)", **_path_sha(report["candidate"])}
    if report["output"]["path"]:
        return {"role": "UNCERTIFIED network written at --out", **_path_sha(report["output"])}
    return {"role": "original network (no repair was delivered)", **_path_sha(report["input"])}


def _path_sha(entry: dict) -> dict:
    return {"path": entry["path"], "sha256": entry["sha256"]}


def build_certificate(report: dict) -> dict:
    """The content of ``certificate.json``: which properties are proven on which bytes.

    ``network_path`` / ``network_sha256`` name a network only when the run is
    certified; otherwise they are null, ``all_properties_hold`` is false, and
    ``verdicts_refer_to`` says which (uncertified) network the verdicts are about.
    """
    proven = {}
    for name, entry in report["properties"].items():
        after = final_verdict(entry)
        proven[name] = {
            "verdict": after["verdict"],
            "engine": after["engine"],
            "method": "branch and bound over the input region with sound interval/symbolic bounds "
                      "(outward tolerance BOUND_TOL)" if after["engine"] == "own" else after["engine"],
            "time_s": after["time_s"],
            "cross_check": entry.get("cross_check"),
        }
    certified = bool(report["certified"])
    subject = _subject(report)
    return {
        "certified": certified,
        "statement": report["headline"] if certified else
        report["headline"] + ". Nothing in this file certifies any network.",
        "status": report["status"],
        "network_sha256": subject["sha256"] if certified else None,
        "network_path": subject["path"] if certified else None,
        "all_properties_hold": certified and all(p["verdict"] == "holds" for p in proven.values()),
        "verdicts_refer_to": subject,
        "properties": proven,
        "semantics": "float64 evaluation of the stored float32 weights; each unsafe set read as closed",
        "tool": report["tool"],
        "created_utc": report["created_utc"],
    }


def write_report(result: PipelineResult, original: Network, task: RepairTask, config: RunConfig,
                 source_path: Path | None, loc: Localization | None, deadline: float | None = None) -> Path:
    """Write report.json, certificate.json, config.toml, report.md and the plots into ``result.report_dir``.

    ``config.toml`` is the run's whole configuration: ``verirepair repair NET
    --config config.toml`` (with the same task options) repeats the run.  ``deadline``
    (``time.perf_counter()``, the run's total budget) bounds the task's own figures.

    Returns
    -------
    Path -- the report folder
    """
    folder = Path(result.report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    report = build_report_dict(result, original, task, config, source_path, loc)
    write_text_atomic(folder / "report.json", json.dumps(report, indent=2, default=_json_default))
    certificate = build_certificate(report)
    write_text_atomic(folder / "certificate.json", json.dumps(certificate, indent=2, default=_json_default))
    write_text_atomic(folder / "config.toml", config_to_toml(config))
    plots = write_plots(result, original, task.properties, folder, config.seed, certified=report["certified"])
    plots.update(write_task_figures(result, original, task, folder, config.seed, certified=report["certified"],
                                    deadline=deadline))
    write_text_atomic(folder / "report.md", render_markdown(report, plots, folder))
    from verirepair.report_html import render_html

    write_text_atomic(folder / "report.html", render_html(report, plots, folder, relative_link))
    return folder


def write_task_figures(result: PipelineResult, original: Network, task: RepairTask, folder: Path, seed: int,
                       certified: bool = True, deadline: float | None = None) -> dict[str, Path]:
    """The task's own figures (:meth:`RepairTask.report_figures`), saved beside the others; {title: path}.

    Drawn after a repair, for the properties the original violated.  A task figure that fails
    is logged and left out: the report is written without it.
    """
    import logging
    import re

    from verirepair import report_plots

    if result.patch is None:
        return {}
    names = [name for name, o in result.properties.items() if o.before.verdict is Verdict.VIOLATED]
    try:
        figures = task.report_figures(original, result.network, names, np.random.default_rng(seed + 3),
                                      "repaired" if certified else "uncertified candidate",
                                      deadline) if names else []
    except Exception:
        logging.getLogger(__name__).warning("the %s task's report figures failed; the report goes on without them",
                                            task.name, exc_info=True)
        return {}
    saved = {}
    for index, (title, fig) in enumerate(figures, start=1):
        slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:60] or "figure"
        saved[title] = report_plots.save_figure(fig, folder / f"task_{index}_{slug}.png")
    return saved


def _json_default(value: object) -> object:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ----------------------------------------------------------------------------- plots
def write_plots(result: PipelineResult, original: Network, named: list, folder: Path, seed: int,
                certified: bool = True) -> dict[str, Path]:
    """Draw the plots that exist for this run into ``folder``; returns {title: path}."""
    from verirepair import report_plots

    plots: dict[str, Path] = {}
    if result.patch is None:
        return plots
    changed = "repaired network" if certified else "uncertified candidate"
    after_label = "after" if certified else "uncertified candidate"
    rng = np.random.default_rng(seed + 2)
    panels = []
    for name, props in named:
        entry = result.properties.get(name)
        if entry is None or entry.before.verdict is not Verdict.VIOLATED:
            continue
        x = np.vstack([p.sample_inputs(rng, _PLOT_SAMPLES // len(props)) for p in props])
        before = np.max([p.violation_score(original.forward(x)) for p in props], axis=0)
        after = np.max([p.violation_score(result.network.forward(x)) for p in props], axis=0)
        panels.append((name, before, after))
    if panels:
        fig = report_plots.figure_violation_scores(original.name, panels, after_label=after_label)
        title = "Violation score before and after" if certified else \
            "Violation score before and on the UNCERTIFIED candidate"
        plots[title] = report_plots.save_figure(
            fig, folder / "violation_scores.png")
    from verirepair.repair.network_patch import layer_patches

    parts = layer_patches(result.patch)
    for patch in parts:
        fig = report_plots.figure_weight_change(original.name, patch.layer_index, patch.delta_weight,
                                                patch.delta_bias,
                                                title_prefix="Weight change" if certified else
                                                "UNCERTIFIED candidate: weight change")
        # One layer (the lp strategy) keeps the historical names; several get one figure each.
        title, stem = (("Weight change", "weight_change") if len(parts) == 1 else
                       (f"Weight change, layer {patch.layer_index}", f"weight_change_layer{patch.layer_index}"))
        plots[title] = report_plots.save_figure(fig, folder / f"{stem}.png")
    if result.fidelity:
        bars = [(f"decision agreement ({result.fidelity.decision})", 100 * result.fidelity.decision_agreement)]
        for care in result.fidelity.care:
            if care.accuracy is not None:
                bars.append((f"{care.property_name} accuracy", 100 * care.accuracy))
            if care.violation_rate is not None:
                bars.append((f"{care.property_name} still violating", 100 * care.violation_rate))
        fig = report_plots.figure_fidelity(original.name, bars, subject=changed)
        plots["Fidelity"] = report_plots.save_figure(fig, folder / "fidelity.png")
    return plots


# ----------------------------------------------------------------------------- markdown
def relative_link(path: str | os.PathLike[str], folder: Path) -> str:
    """``path`` relative to ``folder`` (both resolved), with ``/`` separators.

    Falls back to the absolute path where no relative one exists (another
    drive on Windows).
    """
    target = os.path.realpath(path)
    try:
        return Path(os.path.relpath(target, os.path.realpath(folder))).as_posix()
    except ValueError:
        return Path(target).as_posix()


def _md_file(path: str | None, folder: Path) -> str:
    if not path:
        return "-"
    rel = relative_link(path, folder)
    return f"[`{rel}`]({urllib.parse.quote(rel)})"


def _file_rows(report: dict, folder: Path) -> list[str]:
    rows = ["| | file (relative to this report) | sha256 |", "|---|---|---|",
            f"| input | {_md_file(report['input']['path'], folder)} | `{report['input']['sha256']}` |"]
    output = report["output"]
    if output["path"]:
        role = "delivered network" if report["certified"] else "**NOT CERTIFIED** network at --out"
        rows.append(f"| {role} | {_md_file(output['path'], folder)} | `{output['sha256']}` |")
    elif report["status"] == "not_needed":
        rows.append("| delivered network | none: the input is certified as it is | |")
    else:
        rows.append("| delivered network | none: nothing was delivered | |")
    candidate = report.get("candidate")
    if candidate:
        rows.append(f"| **UNCERTIFIED** candidate | {_md_file(candidate['path'], folder)} | "
                    f"`{candidate['sha256']}` |")
    rows.append(f"| certificate | {_md_file(str(Path(folder) / 'certificate.json'), folder)} | |")
    return rows + [""]


def _rounds_rows(report: dict) -> list[str]:
    config = report["config"]["repair"]
    strategy = report.get("strategy", "lp")
    cover = (" With the **cover** strategy, once the verifier has left a property undecided, later "
             "rounds change the output layer only, by an LP that proves that property itself on a cover "
             "of its region." if strategy == "cover" else "")
    how = (f"Each round solves the repair {config.get('encoding', 'lp').upper()} with the "
           f"**{config.get('solver', '?')}** solver ({config.get('norm', '?')} norm); "
           "*solve status* is what that solve returned." + cover if strategy in ("lp", "cover") else
           f"Each round trains a candidate with the **{strategy}** strategy; *layer* is the first changed "
           "layer, *objective* the final training loss, *solve status* whether every counterexample was "
           "safe on it.")
    lines = ["## Rounds", "", how, "",
             "| round | layer | solve status | objective | margins | new points | pool | "
             "verdicts after | time s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report["rounds"]:
        verdicts = ", ".join(f"{k}: {v}" for k, v in r["verdicts"].items())
        objective = "-" if r["objective"] is None else f"{r['objective']:.4g}"
        margins = ", ".join(f"{k}: {v:.3g}" for k, v in r.get("margins", {}).items()) or "-"
        label = f"{r['index'] + 1}" + (" (shrink)" if r.get("kind") == "shrink" else "")
        layer = "-" if r["layer_index"] is None else r["layer_index"]
        lines.append(f"| {label} | {layer} | {r['solver_status']} | {objective} | {margins} | "
                     f"{r['new_counterexamples']} | {r['pool_size']} | {verdicts} | {r['time_s']:.1f} |")
    return lines + [""]


def render_markdown(report: dict, plots: dict, folder: Path | None = None) -> str:
    """The human-readable report page.

    Parameters
    ----------
    report : dict -- :func:`build_report_dict`
    plots : dict of title to path -- the figures as written (absolute, or relative to the
        current directory, like ``folder``); linked relative to ``folder``
    folder : Path or None -- the report folder (None: the current directory)
    """
    folder = Path(folder) if folder is not None else Path.cwd()
    lines = [f"# {report['headline']}", "",
             f"verirepair report for **{report['input']['network']}**: status "
             f"**{report['status'].upper()}** after {len(report['rounds'])} round(s), "
             f"{report['time_s']:.1f} s.", ""]
    if not report["certified"]:
        lines += ["> **Not certified.** No network from this run may be used as a verified network; "
                  "the verdicts below describe an uncertified network.", ""]
    lines += _file_rows(report, folder)
    after_header = "after" if report["certified"] else "after (NOT certified)"
    lines += ["## Properties", "", f"| property | before | {after_header} | cross-check |", "|---|---|---|---|"]
    for name, entry in report["properties"].items():
        cells = [_cell(entry.get(k)) for k in ("before", "after", "cross_check")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    if report["rounds"]:
        lines += _rounds_rows(report)
    if report.get("pac"):
        lines += ["## Statistical statements (NOT proofs)", "",
                  "No verdict decided these properties within the budget. Sampling gives the statements "
                  "below; they bound a probability under uniform sampling of the region and prove nothing "
                  "(a violation set of measure zero is invisible to them).", ""]
        lines += [f"- {entry['statement']}" for entry in report["pac"].values()]
        lines.append("")
    if report["change"]:
        c = report["change"]
        where = (f"Layer {c['layer_index']}" if c.get("layer_index") is not None else
                 "Layers " + ", ".join(str(i) for i in c.get("layers", [])))
        lines += ["## Weight change", "", f"Repair strategy **{report.get('strategy', 'lp')}**. {where}: "
                  f"L1 = {c['l1']:.6g}, L-infinity = {c['linf']:.6g}, {c['n_changed']} weights changed.", ""]
    if report["fidelity"]:
        f = report["fidelity"]
        lines += ["## Fidelity", "", f"- Decision agreement ({f.get('decision', 'argmin')}) with the original "
                  f"on {f['n_domain_points']} points of the task's domain: **{100 * f['advisory_agreement']:.2f}%**"]
        for care in f.get("care", []):
            acc = "-" if care["accuracy"] is None else f"{100 * care['accuracy']:.2f}%"
            vio = "-" if care["violation_rate"] is None else f"{100 * care['violation_rate']:.2f}%"
            lines.append(f"- {care['property']} (CARE protocol): accuracy {acc} on {care['n_correct']} correct "
                         f"points; violation rate {vio} on {care['n_counterexamples']} counterexamples")
        lines.append("")
    for title, path in plots.items():
        rel = relative_link(path, folder)
        lines += [f"### {title}", "", f"![{title}]({urllib.parse.quote(rel)})", ""]
    lines += ["## Configuration", "", f"The whole configuration is in {_md_file(str(folder / 'config.toml'), folder)}"
              " (repeat the run with `--config` on it):", "", "```json", json.dumps(report["config"], indent=2),
              "```", ""]
    return "\n".join(lines)


def _cell(entry: dict | None) -> str:
    if not entry:
        return "-"
    return f"{entry['verdict']} ({entry['engine']}, {entry['time_s']:.1f} s)"
