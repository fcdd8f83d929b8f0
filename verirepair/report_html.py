"""report.html: the repair report as one self-contained page, status first, plots embedded.

Pipeline position: written by :func:`verirepair.report.write_report` beside report.json and
report.md, from the same report dictionary.  The page needs nothing but itself: the style is
inline, every figure is embedded as a base64 ``data:`` URI, there is no script and nothing is
fetched, so it can be mailed, archived or opened offline.  Links to the report's files
(networks, certificate, config) are relative to the report folder.

Order, for a reader who looks at the top first: the verdict (CERTIFIED or NOT CERTIFIED, with
its one-sentence reason), the per-property table, the change, fidelity, the plots, then the
files, the rounds and the configuration.
"""

from __future__ import annotations

import base64
import html
import json
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path

RelativeLink = Callable[[str, Path], str]

#: The shared style of verirepair's HTML pages (report and campaign index).
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#1b1b1b;padding:0 1em;line-height:1.45}
table{border-collapse:collapse;margin:0.6em 0 1.4em 0;font-size:0.92em}
th,td{border:1px solid #ccc;padding:0.3em 0.6em;text-align:left;vertical-align:top}
th{background:#f1f1f1}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.good{color:#0a6b1f;font-weight:600}.bad{color:#b00020;font-weight:600}.warn{color:#9a6700;font-weight:600}
.banner{padding:0.8em 1em;border-radius:6px;font-size:1.25em;font-weight:700;margin:0.4em 0 1em 0}
.banner.good{background:#e4f5e8;border:2px solid #0a6b1f;color:#0a4b16}
.banner.bad{background:#fde8eb;border:2px solid #b00020;color:#7a0016}
.banner.warn{background:#fff4d6;border:2px solid #9a6700}
figure{margin:1em 0 2em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-weight:600;margin-bottom:0.3em}
code,pre{font-size:0.9em}pre{background:#f7f7f7;padding:0.8em;overflow-x:auto}
"""

#: Colour class of a verdict or status word.
_WORD_CLASS = {"holds": "good", "unsat": "good", "repaired": "good", "not_needed": "good",
               "violated": "bad", "sat": "bad", "error": "bad", "failed": "bad",
               "partial": "warn", "timeout": "warn", "unknown": "warn"}


def word_class(word: str) -> str:
    """CSS class (``good``, ``bad``, ``warn``) of a verdict, status or campaign result word."""
    return _WORD_CLASS.get(word, "warn")


def esc(value: object) -> str:
    """``value`` as HTML text."""
    return html.escape(str(value))


def link(target: str, text: str) -> str:
    """An ``<a>`` element to a relative ``target``."""
    return f'<a href="{html.escape(urllib.parse.quote(target))}">{html.escape(text)}</a>'


def embedded_png(path: str | Path, alt: str) -> str:
    """An ``<img>`` element holding the PNG file's bytes as a base64 data URI."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _verdict_cell(entry: dict | None) -> str:
    if not entry:
        return "<td>-</td>"
    word = str(entry["verdict"])
    return (f"<td><span class='{word_class(word)}'>{esc(word)}</span> "
            f"({esc(entry['engine'])}, {float(entry['time_s']):.1f} s)</td>")


def _properties_table(report: dict) -> str:
    after = "after" if report["certified"] else "after (NOT certified)"
    rows = "".join(f"<tr><td>{esc(name)}</td>{_verdict_cell(e.get('before'))}{_verdict_cell(e.get('after'))}"
                   f"{_verdict_cell(e.get('cross_check'))}</tr>" for name, e in report["properties"].items())
    return (f"<table><tr><th>property</th><th>before</th><th>{after}</th><th>cross-check</th></tr>{rows}</table>")


def _change_section(report: dict) -> str:
    c = report.get("change")
    if not c:
        return "<p>No weight was changed.</p>"
    return (f"<table><tr><th>layer</th><th>L1</th><th>L-infinity</th><th>weights changed</th></tr>"
            f"<tr><td>{esc(c['layer_index'])}</td><td class='num'>{c['l1']:.6g}</td>"
            f"<td class='num'>{c['linf']:.6g}</td><td class='num'>{esc(c['n_changed'])}</td></tr></table>")


def _fidelity_section(report: dict) -> str:
    f = report.get("fidelity")
    if not f:
        return "<p>Not measured (no change was made).</p>"
    rows = [f"<tr><td>decision agreement ({esc(f.get('decision', 'argmin'))}) with the original on "
            f"{esc(f['n_domain_points'])} points of the task's domain</td>"
            f"<td class='num'>{100 * f['advisory_agreement']:.2f}%</td></tr>"]
    for care in f.get("care", []):
        acc = "-" if care["accuracy"] is None else f"{100 * care['accuracy']:.2f}%"
        vio = "-" if care["violation_rate"] is None else f"{100 * care['violation_rate']:.2f}%"
        rows.append(f"<tr><td>{esc(care['property'])} (CARE protocol): accuracy on {esc(care['n_correct'])} "
                    f"correct points</td><td class='num'>{acc}</td></tr>")
        rows.append(f"<tr><td>{esc(care['property'])}: still violating among {esc(care['n_counterexamples'])} "
                    f"counterexamples</td><td class='num'>{vio}</td></tr>")
    return "<table><tr><th>measure</th><th>value</th></tr>" + "".join(rows) + "</table>"


def _file_row(role: str, entry: dict | None, folder: Path, relative: RelativeLink) -> str:
    if not entry or not entry.get("path"):
        return f"<tr><td>{esc(role)}</td><td>none</td><td></td></tr>"
    rel = relative(entry["path"], folder)
    sha = esc(entry.get("sha256") or "")
    return f"<tr><td>{esc(role)}</td><td>{link(rel, rel)}</td><td><code>{sha}</code></td></tr>"


def _files_table(report: dict, folder: Path, relative: RelativeLink) -> str:
    rows = [_file_row("input", report["input"], folder, relative)]
    if report["output"]["path"]:
        role = "delivered network" if report["certified"] else "NOT CERTIFIED network at --out"
        rows.append(_file_row(role, report["output"], folder, relative))
    elif report["status"] == "not_needed":
        rows.append("<tr><td>delivered network</td><td>none: the input is certified as it is</td><td></td></tr>")
    else:
        rows.append("<tr><td>delivered network</td><td>none: nothing was delivered</td><td></td></tr>")
    if report.get("candidate"):
        rows.append(_file_row("UNCERTIFIED candidate", report["candidate"], folder, relative))
    rows.append(f"<tr><td>certificate</td><td>{link('certificate.json', 'certificate.json')}</td><td></td></tr>")
    rows.append(f"<tr><td>machine-readable report</td><td>{link('report.json', 'report.json')}</td><td></td></tr>")
    return "<table><tr><th></th><th>file (relative to this report)</th><th>sha256</th></tr>" + "".join(rows) + \
        "</table>"


def _rounds_table(report: dict) -> str:
    if not report["rounds"]:
        return "<p>No repair round was needed.</p>"
    rows = []
    for r in report["rounds"]:
        verdicts = ", ".join(f"{k}: {v}" for k, v in r["verdicts"].items())
        objective = "-" if r["objective"] is None else f"{r['objective']:.4g}"
        label = f"{r['index'] + 1}" + (" (shrink)" if r.get("kind") == "shrink" else "")
        layer = "-" if r["layer_index"] is None else r["layer_index"]
        rows.append(f"<tr><td>{esc(label)}</td><td>{esc(layer)}</td><td>{esc(r['solver_status'])}</td>"
                    f"<td class='num'>{esc(objective)}</td><td class='num'>{esc(r['new_counterexamples'])}</td>"
                    f"<td class='num'>{esc(r['pool_size'])}</td><td>{esc(verdicts)}</td>"
                    f"<td class='num'>{r['time_s']:.1f}</td></tr>")
    return ("<table><tr><th>round</th><th>layer</th><th>solve status</th><th>objective</th><th>new points</th>"
            "<th>pool</th><th>verdicts after</th><th>time s</th></tr>" + "".join(rows) + "</table>")


def render_html(report: dict, plots: Mapping[str, str | Path], folder: str | Path, relative: RelativeLink) -> str:
    """The whole report page.

    Parameters
    ----------
    report : dict -- :func:`verirepair.report.build_report_dict`
    plots : mapping of title to PNG path -- embedded in this order (missing files are skipped)
    folder : path -- the report folder (links are relative to it)
    relative : callable(path, folder) -> str -- how a file's path is linked from ``folder``
        (:func:`verirepair.report.relative_link`, the same as report.md's links)

    Returns
    -------
    str -- an HTML document that needs no other file to display
    """
    folder = Path(folder)
    state = "good" if report["certified"] else "bad"
    verdict = "CERTIFIED" if report["certified"] else "NOT CERTIFIED"
    reason = report["headline"].split(": ", 1)[1] if ": " in report["headline"] else report["headline"]
    warning = ("" if report["certified"] else
               "<p class='bad'>No network from this run may be used as a verified network; the verdicts below "
               "describe an uncertified network.</p>")
    figures = "".join(f"<figure><figcaption>{esc(title)}</figcaption>{embedded_png(path, title)}</figure>"
                      for title, path in plots.items() if Path(path).is_file())
    task = report.get("task") or {}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{esc(verdict)}: verirepair report for {esc(report['input']['network'])}</title>
<style>{STYLE}</style></head><body>
<div class="banner {state}" id="status">{esc(verdict)}: {esc(reason)}</div>
{warning}
<p>verirepair report for <b>{esc(report['input']['network'])}</b> ({esc(task.get('description', ''))}):
status <b>{esc(str(report['status']).upper())}</b> after {len(report['rounds'])} round(s),
{float(report['time_s']):.1f} s.</p>
<h2>Properties</h2>
{_properties_table(report)}
<h2>The change</h2>
{_change_section(report)}
<h2>Fidelity</h2>
{_fidelity_section(report)}
<h2>Plots</h2>
{figures or "<p>No plot (nothing was changed).</p>"}
<h2>Files</h2>
{_files_table(report, folder, relative)}
<h2>Rounds</h2>
{_rounds_table(report)}
<h2>Configuration</h2>
<p>The whole configuration is in {link('config.toml', 'config.toml')} (repeat the run with
<code>--config</code> on it).</p>
<details><summary>as JSON</summary><pre>{esc(json.dumps(report['config'], indent=2))}</pre></details>
<p><small>{esc(report['tool']['name'])} {esc(report['tool']['version'])}, {esc(report['created_utc'])}</small></p>
</body></html>
"""
