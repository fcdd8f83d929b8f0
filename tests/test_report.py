"""The repair report: what report.md, report.json and certificate.json say, and the plots.

The results are built by hand on the shipped demo network, so every status
(REPAIRED, NOT_NEEDED, PARTIAL, FAILED) is tested without running a repair.
The command is run from ``tmp_path`` with relative paths, as a user would,
so that links relative to the working directory instead of the report
folder would break.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from pipeline_helpers import run_config
from verirepair.atomic import sha256_file
from verirepair.demo import demo_paths
from verirepair.network import load_network, save_onnx
from verirepair.outcome import (
    UNCERTIFIED_NAME,
    CareFidelity,
    FidelityReport,
    PipelineResult,
    PipelineStatus,
    PropertyOutcome,
    RoundRecord,
    VerdictRecord,
    WeightChange,
)
from verirepair.properties import parse_vnnlib
from verirepair.render import repair_summary_table
from verirepair.repair.config import RepairStatus
from verirepair.repair.patch import Patch, apply_patch
from verirepair.report import certify, write_report
from verirepair.report_plots import figure_fidelity, figure_violation_scores, figure_weight_change
from verirepair.task import RepairTask, bounding_box
from verirepair.verify.result import Verdict

CONFIG = run_config(solver="highs", cross_check=None, seed=3)
OUT = Path("deliver") / "fixed.onnx"
REPORT = Path("deliver") / "runs" / "fixed_report"


def _entry(verdict: str, time_s: float = 0.5, engine: str = "own") -> VerdictRecord:
    return VerdictRecord(Verdict(verdict), engine, time_s, 3, "")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory with the demo network copied into ``inputs/``; umask 022."""
    net_path, prop_paths = demo_paths()
    (tmp_path / "inputs").mkdir()
    shutil.copy(net_path, tmp_path / "inputs" / "demo.onnx")
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    yield tmp_path, [(p.stem, parse_vnnlib(p)) for p in prop_paths]
    os.umask(old)


def _patch(network) -> Patch:
    """A change of the output layer with magnitudes 1e-6 .. 0.05 (the small ones used to be invisible)."""
    layer = network.layers[-1]
    dw = np.zeros_like(layer.weight)
    dw[0, 0], dw[0, 3], dw[2, 5] = -0.05, 2e-6, 1e-4
    db = np.zeros_like(layer.bias)
    db[1] = 3e-3
    return Patch(network.n_layers - 1, dw, db)


def _result(status: PipelineStatus, network, named, properties: dict, *, output: Path | None,
            candidate: Path | None, patch: Patch | None) -> PipelineResult:
    rounds = () if patch is None else (
        RoundRecord(0, {n: Verdict.VIOLATED for n, _ in named}, 12, 12, patch.layer_index, RepairStatus.REPAIRED,
                    0.04, 1.5, {n: 1e-3 for n, _ in named}),
        RoundRecord(1, {n: properties[n].final.verdict for n, _ in named},
                    2, 14, patch.layer_index, RepairStatus.REPAIRED, 0.05, 1.2, {n: 2e-3 for n, _ in named}),
    )
    change = None if patch is None else WeightChange.of(patch)
    fidelity = None if patch is None else FidelityReport(
        1.0, 100, "argmin", (CareFidelity(named[0][0], 50, 20, 1.0, 0.0),))
    return PipelineResult(status, network, output, REPORT, properties, rounds, change, fidelity, 12.3, patch,
                          candidate_path=candidate)


def _write(status: PipelineStatus, workdir, after: dict | None, *, changed: bool = True):
    _, named = workdir
    original = load_network(Path("inputs/demo.onnx"))
    patch = _patch(original) if changed else None
    network = apply_patch(original, patch) if changed else original
    first, second = named[0][0], named[1][0]
    properties = {first: PropertyOutcome(_entry("violated")), second: PropertyOutcome(_entry("holds"))}
    for name, verdict in (after or {}).items():
        properties[name] = PropertyOutcome(properties[name].before, _entry(verdict))
    output = candidate = None
    if status is PipelineStatus.REPAIRED:
        output = save_onnx(network, OUT)
    elif changed:
        candidate = save_onnx(network, REPORT / UNCERTIFIED_NAME)
    result = _result(status, network, named, properties, output=output, candidate=candidate, patch=patch)
    task = RepairTask("test", named, "argmin", bounding_box([p for _, g in named for p in g]))
    folder = write_report(result, original, task, CONFIG, Path("inputs/demo.onnx"), None)
    return result, folder, named


def _json(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


def _links(markdown: str) -> list[str]:
    return [urllib.parse.unquote(t) for t in re.findall(r"\]\(([^)\s]+)\)", markdown)]


@pytest.fixture
def repaired(workdir):
    first, second = workdir[1][0][0], workdir[1][1][0]
    return _write(PipelineStatus.REPAIRED, workdir, {first: "holds", second: "holds"})


@pytest.fixture
def partial(workdir):
    first, second = workdir[1][0][0], workdir[1][1][0]
    return _write(PipelineStatus.PARTIAL, workdir, {first: "timeout", second: "holds"})


# ----------------------------------------------------------------------------- report.md
def test_repaired_report_says_certified_in_its_first_line(repaired):
    _, folder, named = repaired
    first_line = (folder / "report.md").read_text().splitlines()[0]
    assert first_line.startswith("# CERTIFIED: ")
    assert "demo" in first_line and all(name in first_line for name, _ in named)


def test_partial_report_says_not_certified_and_why(partial):
    _, folder, named = partial
    markdown = (folder / "report.md").read_text()
    first_line = markdown.splitlines()[0]
    assert first_line.startswith("# NOT CERTIFIED: ")
    assert f"{named[0][0]}: timeout" in first_line and UNCERTIFIED_NAME in first_line
    assert "CERTIFIED: " not in markdown.replace("NOT CERTIFIED: ", "")


@pytest.mark.parametrize("which", ["repaired", "partial"])
def test_every_link_resolves_from_the_report_folder(which, request):
    _, folder, _ = request.getfixturevalue(which)
    links = _links((folder / "report.md").read_text())
    assert links
    for link in links:
        assert not os.path.isabs(link), link
        assert (folder / link).is_file(), f"{link} does not resolve from {folder}"
    # The input and the network are among them, relative to the report, not to the cwd.
    resolved = {(folder / link).resolve() for link in links}
    assert Path("inputs/demo.onnx").resolve() in resolved
    expected = OUT if which == "repaired" else REPORT / UNCERTIFIED_NAME
    assert expected.resolve() in resolved
    for png in ("violation_scores.png", "weight_change.png", "fidelity.png"):
        assert (folder / png).resolve() in resolved


def test_rounds_table_names_its_columns_for_what_they_are(repaired):
    _, folder, _ = repaired
    markdown = (folder / "report.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| round |"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert "solve status" in cells and "solver" not in cells
    assert "**highs** solver" in markdown


# ----------------------------------------------------------------------------- report.json / certificate.json
def test_repaired_json_and_certificate(repaired):
    result, folder, _ = repaired
    report = _json(folder, "report.json")
    assert report["certified"] is True and report["headline"].startswith("CERTIFIED: ")
    assert report["output"]["path"] == os.path.abspath(OUT)
    certificate = _json(folder, "certificate.json")
    assert certificate["certified"] is True and certificate["all_properties_hold"] is True
    assert certificate["network_path"] == os.path.abspath(OUT)
    assert certificate["network_sha256"] == sha256_file(result.output_path)
    assert certificate["verdicts_refer_to"]["role"] == "delivered network"


def test_partial_certificate_certifies_nothing(partial):
    _, folder, _ = partial
    report = _json(folder, "report.json")
    assert report["certified"] is False and report["output"]["path"] is None
    candidate = (REPORT / UNCERTIFIED_NAME).resolve()
    assert report["candidate"]["path"] == str(candidate) and report["candidate"]["certified"] is False
    text = (folder / "certificate.json").read_text()
    certificate = json.loads(text)
    assert certificate["certified"] is False and certificate["all_properties_hold"] is False
    assert certificate["network_path"] is None and certificate["network_sha256"] is None
    assert "UNCERTIFIED" in certificate["verdicts_refer_to"]["role"]
    assert certificate["verdicts_refer_to"]["path"] == str(candidate)
    assert certificate["verdicts_refer_to"]["sha256"] == sha256_file(candidate)
    assert certificate["statement"].startswith("NOT CERTIFIED: ")
    assert str(OUT) not in text            # never a network that was not delivered


def test_not_needed_certifies_the_unchanged_input(workdir):
    _, named = workdir
    original = load_network(Path("inputs/demo.onnx"))
    properties = {n: PropertyOutcome(_entry("holds"), _entry("holds")) for n, _ in named}
    result = _result(PipelineStatus.NOT_NEEDED, original, named, properties, output=None, candidate=None,
                     patch=None)
    task = RepairTask("test", named, "argmin", bounding_box([p for _, g in named for p in g]))
    folder = write_report(result, original, task, CONFIG, Path("inputs/demo.onnx"), None)
    assert (folder / "report.md").read_text().startswith("# CERTIFIED: ")
    certificate = _json(folder, "certificate.json")
    assert certificate["certified"] is True
    assert certificate["network_path"] == os.path.abspath("inputs/demo.onnx")
    assert certificate["network_sha256"] == sha256_file(Path("inputs/demo.onnx"))
    assert not OUT.exists() and _json(folder, "report.json")["certified"] is True
    for link in _links((folder / "report.md").read_text()):
        assert (folder / link).is_file()


def test_failed_run_delivers_nothing(workdir):
    first, second = workdir[1][0][0], workdir[1][1][0]
    _, folder, _ = _write(PipelineStatus.FAILED, workdir, {first: "violated", second: "holds"}, changed=False)
    first_line = (folder / "report.md").read_text().splitlines()[0]
    assert first_line.startswith("# NOT CERTIFIED: ") and "repair failed" in first_line
    assert f"{first}: violated" in first_line and "no network was delivered" in first_line
    certificate = _json(folder, "certificate.json")
    assert certificate["certified"] is False and certificate["network_path"] is None
    assert certificate["all_properties_hold"] is False


def test_a_cross_check_violation_withdraws_the_certificate():
    properties = {"phi1": PropertyOutcome(_entry("violated"), _entry("holds"),
                                          _entry("violated", engine="marabou")).to_dict()}
    verdict = certify("repaired", properties, "N", output_written=True)
    assert not verdict.certified and verdict.contradicted == {"phi1": "marabou"}
    assert verdict.headline.startswith("NOT CERTIFIED: N: ") and "marabou" in verdict.headline
    properties["phi1"]["cross_check"] = _entry("timeout", engine="marabou").to_dict()
    assert certify("repaired", properties, "N").certified
    assert not certify("not_needed", {}, "N").certified          # nothing checked is nothing proven


# ----------------------------------------------------------------------------- CLI summary table
def _rendered(table) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(table)
    return console.export_text()


def test_summary_table_shows_certified(repaired):
    result, _, _ = repaired
    text = _rendered(repair_summary_table(result, network_name="demo"))
    assert text.lstrip().startswith("CERTIFIED: demo: repaired")


def test_summary_table_shows_not_certified(partial):
    result, _, _ = partial
    table = repair_summary_table(result)
    assert table.title.plain.startswith("NOT CERTIFIED: ")
    assert "NOT CERTIFIED" in _rendered(table)


# ----------------------------------------------------------------------------- plots
def test_plots_follow_the_umask(repaired):
    _, folder, _ = repaired
    for png in ("violation_scores.png", "weight_change.png", "fidelity.png"):
        path = folder / png
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_mode & 0o777 == 0o644
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]     # no temporary left over


def test_every_changed_weight_gets_a_visible_colour():
    rng = np.random.default_rng(0)
    dw = np.zeros((6, 8))
    dw[0, 0], dw[1, 1], dw[2, 2], dw[3, 3] = 0.5, -1e-6, 3e-4, -0.02
    db = np.zeros(6)
    db[5] = 1e-8 * (1 + rng.random())
    fig = figure_weight_change("N2,1", 6, dw, db)
    ax = fig.axes[0]
    assert "N2,1" in ax.get_title() and "layer 6" in ax.get_title()
    image = ax.images[0]
    delta = np.hstack([dw, db[:, None]])
    data = image.get_array()
    assert np.array_equal(np.ma.getmaskarray(data), delta == 0)      # unchanged cells are masked (grey)
    colours = image.cmap(image.norm(delta[delta != 0]))[:, :3]
    # Far from white and from the grey of unchanged cells: every change is visible.
    assert np.min(np.linalg.norm(colours - 1.0, axis=1)) > 0.3
    assert np.min(np.linalg.norm(colours - 0.93, axis=1)) > 0.25
    assert len(fig.axes) == 2                                        # a colour bar


def test_violation_histogram_shows_the_unsafe_tail():
    rng = np.random.default_rng(1)
    before = np.concatenate([rng.normal(-0.03, 0.002, 3967), rng.uniform(0.0, 0.02, 33)])
    after = before - 0.01
    fig = figure_violation_scores("ACASXU_run2a_2_1", [("phi2", before, after)])
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] < 1
    assert "phi2" in ax.get_title() and "ACASXU_run2a_2_1" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "before: 33 of 4000 samples unsafe" in labels
    assert any(line.get_xdata()[0] == 0 for line in ax.get_lines())      # the threshold is marked


def test_fidelity_labels_stay_inside_the_axes():
    fig = figure_fidelity("N", [("advisory agreement", 99.84), ("phi2 accuracy", 100.0),
                                ("phi2 still violating", 0.0)])
    fig.canvas.draw()
    ax = fig.axes[0]
    box = ax.get_window_extent()
    for text in ax.texts:
        extent = text.get_window_extent()
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1, text.get_text()
