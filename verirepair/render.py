"""Rich renderables (tables, panels) for the command line.

Pipeline position: presentation only.  Functions here *build* ``rich`` objects
from results; :mod:`verirepair.cli` prints them.  Nothing here prints.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence

import numpy as np
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from verirepair.localize.result import Localization
from verirepair.network.model import Network
from verirepair.outcome import PipelineResult, VerdictRecord
from verirepair.properties.property import HalfSpaces, Property
from verirepair.verify.result import Verdict

_VERDICT_STYLES = {
    Verdict.HOLDS: "bold green",
    Verdict.VIOLATED: "bold red",
    Verdict.UNKNOWN: "bold yellow",
    Verdict.TIMEOUT: "bold yellow",
}


def verdict_style(verdict: Verdict) -> str:
    """The rich style used for a verdict everywhere in the CLI."""
    return _VERDICT_STYLES[verdict]


def network_table(network: Network, path: str) -> Table:
    """A table of the network's affine layers: shapes, activation, parameters."""
    table = Table(title=f"{path}  ({network.n_inputs} inputs -> {network.n_outputs} outputs)",
                  title_justify="left")
    table.add_column("layer_index", justify="right")
    table.add_column("type")
    table.add_column("weight (out, in)", justify="right")
    table.add_column("activation")
    table.add_column("parameters", justify="right")
    table.add_column("|W| max", justify="right")
    for index, layer in enumerate(network.layers):
        table.add_row(str(index), "affine", f"{layer.out_features} x {layer.in_features}",
                      layer.activation.label, f"{layer.weight.size + layer.bias.size:,}",
                      f"{np.abs(layer.weight).max():.3g}")
    table.caption = (f"{network.n_layers} affine layers, hidden widths {list(network.hidden_sizes)}, "
                     f"{network.n_parameters:,} parameters"
                     + (f", source {network.source.format}" if network.source else "")
                     + (", with input normalisation metadata" if network.normalization else ""))
    return table


def _halfspace_text(poly: HalfSpaces) -> str:
    rows = []
    for a_row, b_value in zip(poly.A, poly.b, strict=True):
        terms = []
        for j, coef in enumerate(a_row):
            if coef == 0:
                continue
            sign = "-" if coef < 0 else "+"
            mag = abs(coef)
            term = f"Y_{j}" if mag == 1 else f"{mag:g}*Y_{j}"
            terms.append((sign, term))
        if not terms:
            text = "0"
        else:
            first_sign, first = terms[0]
            text = ("-" if first_sign == "-" else "") + first
            text += "".join(f" {s} {t}" for s, t in terms[1:])
        rows.append(f"{text} <= {b_value:.9g}")
    return "\n         and ".join(rows)


def property_panel(prop: Property, index: int, count: int) -> Panel:
    """A panel showing a property's input boxes and its unsafe set."""
    boxes = Table(show_header=True, header_style="bold", box=None)
    boxes.add_column("input")
    for k in range(len(prop.input_boxes)):
        boxes.add_column(f"box {k}" if len(prop.input_boxes) > 1 else "range")
    for i in range(prop.n_inputs):
        boxes.add_row(f"X_{i}", *[f"[{b.lower[i]:.9g}, {b.upper[i]:.9g}]" for b in prop.input_boxes])
    unsafe = Text()
    for k, poly in enumerate(prop.unsafe):
        prefix = "   or " if k else "      "
        unsafe.append(prefix + _halfspace_text(poly) + "\n")
    body = Table.grid(padding=(0, 1))
    body.add_row(Text("Input region (union of boxes):", style="bold"))
    body.add_row(boxes)
    body.add_row(Text("Unsafe iff the output satisfies:", style="bold"))
    body.add_row(unsafe)
    title = f"{prop.name}" + (f"  [{index + 1}/{count}]" if count > 1 else "")
    subtitle = (f"{prop.n_inputs} inputs, {prop.n_outputs} outputs, {len(prop.input_boxes)} box(es), "
                f"{len(prop.unsafe)} unsafe polytope(s)")
    return Panel(body, title=title, subtitle=subtitle, title_align="left")


def bench_summary_table(rows: Sequence) -> Table:
    """Per-engine summary of bench rows: solved, by verdict, total/median/max time."""
    table = Table(title="Benchmark summary", title_justify="left")
    for column in ("engine", "runs", "solved", "holds", "viol.", "t/o", "other", "total s", "med. s", "max s"):
        table.add_column(column, justify="right" if column != "engine" else "left", no_wrap=True)
    table.caption = "viol. = violated, t/o = timeout, other = unknown or error"
    for engine in sorted({row.engine for row in rows}):
        mine = [row for row in rows if row.engine == engine]
        counts = Counter(row.verdict for row in mine)
        times = [row.time_s for row in mine]
        solved = counts.get("holds", 0) + counts.get("violated", 0)
        other = len(mine) - solved - counts.get("timeout", 0)
        table.add_row(engine, str(len(mine)), str(solved), str(counts.get("holds", 0)),
                      str(counts.get("violated", 0)), str(counts.get("timeout", 0)), str(other),
                      f"{sum(times):.1f}", f"{statistics.median(times):.2f}" if times else "-",
                      f"{max(times):.2f}" if times else "-")
    return table


def disagreement_table(disagreements: Sequence, engines: Sequence[str]) -> Table | Text:
    """Every instance where two engines gave contradicting definite answers."""
    if not disagreements:
        return Text(f"No disagreement between {engines[0]} and {engines[1]} where both answered.",
                    style="bold green")
    table = Table(title=f"{len(disagreements)} DISAGREEMENT(S)", title_style="bold red", title_justify="left")
    table.add_column("network")
    table.add_column("property")
    table.add_column("engine A")
    table.add_column("engine B")
    for item in disagreements:
        table.add_row(str(item.onnx), str(item.vnnlib), f"{item.engine_a}: {item.verdict_a}",
                      f"{item.engine_b}: {item.verdict_b}")
    return table


def localization_table(loc: Localization, top: int) -> Table:
    """The top-ranked neurons of a localization, with layer scores in the caption."""
    table = Table(title=f"Fault localization ({loc.method}, K={loc.k_values}, "
                        f"{loc.n_counterexamples} counterexamples, {loc.n_correct} correct inputs)",
                  title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("layer_index", justify="right")
    table.add_column("unit", justify="right")
    table.add_column("effect on violation", justify="right")
    table.add_column("effect on correct", justify="right")
    for rank, entry in enumerate(loc.ranking[:top], start=1):
        table.add_row(str(rank), str(entry.layer_index), str(entry.unit),
                      f"{entry.effect_violation:.4g}", f"{entry.effect_correct:.4g}")
    scores = ", ".join(f"{i}: {s:.3g}" for i, s in enumerate(loc.layer_scores))
    table.caption = (f"layer scores {{{scores}}}; suggested layer {loc.suggested_layer}, "
                     f"neurons {list(loc.suggested_neurons)}")
    return table


def repair_summary_table(result: PipelineResult, network_name: str | None = None) -> Table:
    """Per-property verdicts before and after repair, plus the change and fidelity.

    The title starts with CERTIFIED (green) or NOT CERTIFIED (white on red)
    and the reason, as the first line of ``report.md`` does (both come from
    :func:`verirepair.report.certify`).

    Parameters
    ----------
    result : PipelineResult
    network_name : str or None -- named in the title (e.g. the input file's stem)
    """
    from verirepair.report import certify

    candidate = result.candidate_path
    verdict = certify(result.status.value, {n: o.to_dict() for n, o in result.properties.items()},
                      network_name, output_written=result.output_path is not None,
                      candidate_written=candidate is not None)
    title = Text()
    if verdict.certified:
        title.append("CERTIFIED", style="bold white on green")
    else:
        title.append("NOT CERTIFIED", style="bold white on red")
    title.append(f": {verdict.reason}\n", style="bold")
    title.append(f"Repair: {result.status.value.upper()} after {len(result.rounds)} round(s), "
                 f"{result.time_s:.1f} s")
    table = Table(title=title, title_justify="left")
    table.add_column("property")
    table.add_column("before")
    table.add_column("after (own)" if verdict.certified else "after (own, NOT certified)")
    table.add_column("cross-check")
    for name, outcome in result.properties.items():
        table.add_row(name, _verdict_text(outcome.before), _verdict_text(outcome.after),
                      _verdict_text(outcome.cross_check))
    change = result.change
    fidelity = result.fidelity
    parts = []
    if change:
        parts.append(f"{result.strategy}, {change.where}: L1 {change.l1:.4g}, Linf {change.linf:.4g}, "
                     f"{change.n_changed} weights changed")
    if fidelity:
        parts.append(f"decision fidelity ({fidelity.decision}) {100 * fidelity.decision_agreement:.2f}% on "
                     f"{fidelity.n_points} points")
    parts.extend(statement.text for statement in result.pac.values())
    if candidate is not None:
        parts.append(f"UNCERTIFIED candidate: {candidate}")
    table.caption = "; ".join(parts)
    return table


def _verdict_text(record: VerdictRecord | None) -> Text:
    if record is None:
        return Text("-")
    return Text(f"{record.verdict.value} ({record.time_s:.1f} s)", style=verdict_style(record.verdict))
