"""The campaign's index page: the summary table and one row per job, linking its report.

Pipeline position: written by :func:`verirepair.harness.campaign.runner.write_summary_files`
as ``DIR/index.html`` after every finished job.  One self-contained file (inline style, no
script, nothing fetched); links are relative, so the folder can be moved or served as it is.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from verirepair.harness.campaign.jobs import JobResult
from verirepair.harness.campaign.spec import CampaignSpec
from verirepair.report_html import STYLE, link, word_class


def render_index(spec: CampaignSpec, results: dict[str, JobResult], sessions: Sequence[dict]) -> str:
    """The index page of a campaign folder.

    Parameters
    ----------
    spec : CampaignSpec
    results : dict of job_id to JobResult -- the finished jobs
    sessions : sequence of dict -- the runs of the campaign (campaign.json's ``sessions``)

    Returns
    -------
    str -- a whole HTML document
    """
    total = len(spec.jobs)
    counts: dict[str, int] = {}
    for finished in results.values():
        counts[finished.result] = counts.get(finished.result, 0) + 1
    missing = total - len(results)
    bad = sum(n for word, n in counts.items() if word_class(word) == "bad")
    state = "bad" if bad else ("warn" if missing or any(word_class(w) == "warn" for w in counts) else "good")
    headline = f"{len(results)} of {total} jobs finished" + (f", {missing} not run yet" if missing else "")
    rows = []
    for job in spec.jobs:
        r = results.get(job.job_id)
        if r is None:
            rows.append(f"<tr><td>{html.escape(job.network)}</td><td>{html.escape(job.vnnlib or '-')}</td>"
                        "<td class='warn'>not run yet</td><td></td><td></td><td></td></tr>")
            continue
        report = r.outputs.get("report_html") or r.outputs.get("report_md") or r.outputs.get("result_file")
        anchor = link(report, "report" if "report" in (report or "") else "result file") if report else "-"
        certified = "" if r.certified is None else ("yes" if r.certified else "no")
        rows.append(f"<tr><td>{html.escape(r.network)}</td><td>{html.escape(r.vnnlib or '-')}</td>"
                    f"<td class='{word_class(r.result)}'>{html.escape(r.result)}</td>"
                    f"<td>{certified}</td><td class='num'>{r.time_s:.1f}</td>"
                    f"<td>{anchor}{' &mdash; ' + html.escape(r.message) if r.message else ''}</td></tr>")
    summary = "".join(f"<tr><td class='{word_class(w)}'>{html.escape(w)}</td><td class='num'>{n}</td></tr>"
                      for w, n in sorted(counts.items()))
    if missing:
        summary += f"<tr><td class='warn'>not run yet</td><td class='num'>{missing}</td></tr>"
    summary += f"<tr><th>total</th><th class='num'>{total}</th></tr>"
    session_rows = "".join(
        f"<tr><td>{html.escape(str(s.get('started_utc', '')))}</td><td>{html.escape(str(s.get('scheduler', '')))}"
        f"</td><td class='num'>{s.get('workers', '')}</td><td class='num'>{s.get('ran', '')}</td>"
        f"<td class='num'>{s.get('wall_s', '')}</td><td>{html.escape(str(s.get('status', '')))}</td></tr>"
        for s in sessions)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>verirepair campaign: {html.escape(spec.path)}</title>
<style>{STYLE}</style></head><body>
<div class="banner {state}">{html.escape(headline)}</div>
<p>Campaign <code>{html.escape(spec.path)}</code> ({html.escape(spec.kind)} jobs).
Machine-readable: {link('results.csv', 'results.csv')}, {link('campaign.json', 'campaign.json')}.</p>
<h2>Summary</h2>
<table><tr><th>result</th><th>jobs</th></tr>{summary}</table>
<h2>Jobs</h2>
<table><tr><th>network</th><th>property</th><th>result</th><th>certified</th><th>time (s)</th><th>report</th></tr>
{''.join(rows)}</table>
<h2>Runs of this campaign</h2>
<table><tr><th>started (UTC)</th><th>scheduler</th><th>workers</th><th>jobs run</th><th>wall (s)</th>
<th>status</th></tr>
{session_rows}</table>
</body></html>
"""
