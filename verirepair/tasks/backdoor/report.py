"""The backdoor repair's report: ``report.json``, ``report.md`` and its plots.

Pipeline position: the last step of ``verirepair backdoor repair``; reads a
:class:`~verirepair.tasks.backdoor.removal.RemovalResult` and writes files
atomically (:mod:`verirepair.atomic`, :func:`verirepair.report_plots.save_figure`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from verirepair.atomic import write_text_atomic
from verirepair.report_plots import save_figure
from verirepair.tasks.backdoor.data import SIDE
from verirepair.tasks.backdoor.removal import RemovalResult
from verirepair.tasks.backdoor.trigger import Trigger


def figure_triggers(result: RemovalResult) -> Any:
    """Images of the trigger(s): what a stamp writes (``m * p``) and the mask, true and repaired-against."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, np.ndarray]] = []

    def add(label: str, trig: Trigger) -> None:
        panels.append((f"{label}: mask", trig.mask.reshape(SIDE, SIDE)))
        panels.append((f"{label}: mask x pattern", (trig.mask * trig.pattern).reshape(SIDE, SIDE)))

    if result.true_trigger is not None:
        add(f"true ({result.true_trigger.name})", result.true_trigger)
    if not result.trigger_known:
        add("recovered", result.repair_trigger)
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), squeeze=False)
    for ax, (label, image) in zip(axes[0], panels, strict=True):
        shown = ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        region = result.proof_region
        for i in region:
            r, c = divmod(int(i), SIDE)
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="tab:red", lw=0.8))
    fig.colorbar(shown, ax=axes[0].tolist(), fraction=0.02)
    fig.suptitle(f"trigger to class {result.target} (red: proof region)", fontsize=9)
    return fig


def figure_rates(result: RemovalResult) -> Any:
    """Bars: clean accuracy, attack success and proven share, before and after the repair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["clean accuracy", "attack success", "proven share"]
    pb = result.proof_before.proven_share if result.proof_before else float("nan")
    pa = result.proof_after.proven_share if result.proof_after else float("nan")
    before = [result.accuracy_before, result.attack_before, pb]
    after = [result.accuracy_after, result.attack_after, pa]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    pos = np.arange(len(names))
    for offset, values, label, colour in ((-0.2, before, "before", "tab:gray"), (0.2, after, "after", "tab:blue")):
        bars = ax.bar(pos + offset, values, 0.4, label=label, color=colour)
        for bar, value in zip(bars, values, strict=True):
            if np.isfinite(value):
                ax.annotate(f"{100 * value:.1f}%", (bar.get_x() + bar.get_width() / 2, value),
                            ha="center", va="bottom", fontsize=8)
    ax.set_xticks(pos, names)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share of test images")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"backdoor to class {result.target}: before and after repair", fontsize=9)
    return fig


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.2f}%"


def markdown(result: RemovalResult, payload: dict[str, Any], source: str) -> str:
    """The readable report."""
    s = result.stats
    lines = [f"# Backdoor repair of `{source}` (target class {result.target})", "",
             f"Status: **{s.status.value}** ({s.message})", "",
             "| measure (held-out test images) | before | after |", "| --- | --- | --- |",
             f"| clean accuracy | {_pct(result.accuracy_before)} | {_pct(result.accuracy_after)} |",
             f"| attack success ({payload['attack_success_measured_with']}) | {_pct(result.attack_before)} | "
             f"{_pct(result.attack_after)} |"]
    if result.true_trigger is not None and not result.trigger_known:
        lines.append(f"| attack success (recovered trigger) | {_pct(result.attack_repair_trigger_before)} | "
                     f"{_pct(result.attack_repair_trigger_after)} |")
    for label, proof_b, proof_a in (("proven (trigger box)", result.proof_before, result.proof_after),):
        if proof_b is not None and proof_a is not None:
            lines.append(f"| {label} | {proof_b.proven}/{proof_b.n} ({_pct(proof_b.proven_share)}) | "
                         f"{proof_a.proven}/{proof_a.n} ({_pct(proof_a.proven_share)}) |")
    lines += ["", "![rates](rates.png)", "", "## Trigger", ""]
    if result.trigger_known:
        lines.append("The trigger was given (`--trigger-mask`, `--trigger-pattern`).")
    else:
        rev = result.reversed
        assert rev is not None  # an unknown trigger is always reverse-engineered
        lines.append(f"The trigger was reverse-engineered (Neural Cleanse): mask L1 {rev.mask_l1:.2f}, "
                     f"sends {_pct(rev.success)} of clean training images to class {result.target}.")
        if result.anomaly is not None:
            lines.append(f"Anomaly index of class {result.target}: {result.anomaly[result.target]:.2f} "
                         "(Neural Cleanse flags > 2); all classes: "
                         + ", ".join(f"{k}: {v:.2f}" for k, v in result.anomaly.items()) + ".")
        if payload["trigger_closeness"]:
            c = payload["trigger_closeness"]
            lines.append(f"Closeness to the true trigger: region IoU {c['region_iou']:.2f}, share of the "
                         f"recovered mask on true trigger pixels {c['mask_overlap']:.2f}, cosine of the "
                         f"stamped values {c['effect_cosine']:.2f}.")
    lines += ["", "![trigger](trigger.png)", "", "## Localization and repair", "",
              f"Causal localization (CARE): suggested layer {result.localization.suggested_layer}; most guilty "
              "neurons (layer, unit, effect on the target's lead): "
              + ", ".join(f"({e.layer_index}, {e.unit}, {e.effect_violation:.2f})"
                          for e in result.localization.ranking[:8]) + ".", "",
              f"Repaired layer {result.repair_layer} (scope {result.scope_used}"
              + (f", weights from units {list(result.repair_inputs)}" if result.repair_inputs else "")
              + f"): L1 {s.l1:.4g}, Linf {s.linf:.4g}, {s.n_changed} parameters changed, {s.rounds} LP round(s), "
              f"{s.n_fix_active} of {s.n_fix} stamped training images in the last LP, all {s.n_fix_met} classified "
              f"as their true class; {s.n_keep_kept}/{s.n_keep - s.n_keep_dropped} clean training images kept.", "",
              "## What is proven", "", payload["proof_statement"] + f"; region: pixels {payload['proof_region']}.",
              "Images are a seeded subset of the test images not of the target class.", "",
              "Times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.times_s.items()) + "."]
    return "\n".join(lines) + "\n"


def write_report(result: RemovalResult, directory: Path, source: str, extra: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """Write ``report.json``, ``report.md``, ``trigger.png`` and ``rates.png`` into ``directory``.

    Returns
    -------
    dict -- the ``report.json`` payload
    """
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    payload = result.to_json_dict() | {"network": source} | (extra or {})
    for name, make in (("trigger.png", figure_triggers), ("rates.png", figure_rates)):
        fig = make(result)
        save_figure(fig, directory / name)
        plt.close(fig)
    write_text_atomic(directory / "report.json", json.dumps(payload, indent=2, default=float) + "\n")
    write_text_atomic(directory / "report.md", markdown(result, payload, source))
    return payload
