"""The certify loop end to end on the shipped demo network (planted violation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from pipeline_helpers import run_config
from verirepair.atomic import sha256_file
from verirepair.counterexamples import read_counterexamples
from verirepair.demo import demo_paths, demo_task
from verirepair.errors import VerirepairError
from verirepair.network import load_network
from verirepair.outcome import RoundKind
from verirepair.pipeline import PipelineStatus, run_pipeline
from verirepair.properties import parse_vnnlib
from verirepair.tasks.vnnlib import build_vnnlib_task
from verirepair.verify import verify
from verirepair.verify.result import Verdict, VerifyConfig

NET_PATH, PROP_PATHS = demo_paths()
FAST = run_config(max_rounds=6, timeout_s=240, n_preserve=1500, n_fidelity=2000, n_care=500,
                  cross_check="marabou", cross_check_timeout_s=60, solver="highs", certificates=True)


def _task(network, paths=PROP_PATHS):
    return build_vnnlib_task(NET_PATH, network, paths, "argmin")


@pytest.fixture(scope="module")
def repaired(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("demo")
    network = load_network(NET_PATH)
    named = [(p.stem, parse_vnnlib(p)) for p in PROP_PATHS]
    before_hash = sha256_file(NET_PATH)
    events = []
    result = run_pipeline(network, demo_task(network), FAST, out_dir / "fixed.onnx", out_dir / "report",
                          source_path=NET_PATH, on_event=lambda stage, info: events.append(stage))
    return result, named, before_hash, events


def test_demo_is_repaired_and_every_property_proven(repaired):
    result, named, _, events = repaired
    assert result.status is PipelineStatus.REPAIRED
    assert result.properties["demo_prop_1"].before.verdict is Verdict.VIOLATED
    for name, _ in named:
        assert result.properties[name].after.verdict is Verdict.HOLDS
    assert {"verify", "localize", "repair", "report"} <= set(events)


def test_delivered_file_is_proven_by_a_fresh_verification(repaired):
    result, named, _, _ = repaired
    delivered = load_network(result.output_path)
    for _, props in named:
        assert verify(delivered, props, VerifyConfig(timeout_s=60)).verdict is Verdict.HOLDS


def test_cross_check_by_marabou_agrees(repaired):
    pytest.importorskip("maraboupy")
    result, named, _, _ = repaired
    for name, _ in named:
        assert result.properties[name].cross_check.verdict is Verdict.HOLDS


def test_original_untouched_and_same_graph(repaired):
    import onnx

    result, _, before_hash, _ = repaired
    assert sha256_file(NET_PATH) == before_hash
    original = onnx.load(str(NET_PATH))
    fixed = onnx.load(str(result.output_path))
    assert [n.op_type for n in original.graph.node] == [n.op_type for n in fixed.graph.node]
    assert [i.name for i in original.graph.initializer] == [i.name for i in fixed.graph.initializer]


def test_repaired_file_runs_in_onnxruntime_like_our_forward(repaired):
    result, _, _, _ = repaired
    session = ort.InferenceSession(str(result.output_path))
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(-0.5, 0.5, size=(64, 5)).astype(np.float32)
    ours = result.network.forward(x.astype(np.float64))
    theirs = np.vstack([session.run(None, {name: row[None, :]})[0] for row in x])
    assert np.max(np.abs(ours - theirs)) < 1e-5


def test_change_is_confined_to_one_layer_and_reported(repaired):
    result, _, _, _ = repaired
    original = load_network(NET_PATH)
    changed = [i for i, (a, b) in enumerate(zip(original.layers, result.network.layers, strict=True))
               if not (np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias))]
    assert changed == [result.change.layer_index]
    layer = changed[0]
    delta = np.hstack([(result.network.layers[layer].weight - original.layers[layer].weight).ravel(),
                       result.network.layers[layer].bias - original.layers[layer].bias])
    assert result.change.linf == pytest.approx(np.abs(delta).max(), abs=1e-6)
    assert 0.9 <= result.fidelity.decision_agreement <= 1.0


def test_report_files_are_complete(repaired):
    result, _, _, _ = repaired
    report = json.loads((result.report_dir / "report.json").read_text())
    assert report["input"]["sha256"] == sha256_file(NET_PATH)
    assert report["output"]["sha256"] == sha256_file(result.output_path)
    assert report["status"] == "repaired" and report["rounds"]
    assert report["seed"] == FAST.seed and report["config"]["repair"]["solver"] == "highs"
    certificate = json.loads((result.report_dir / "certificate.json").read_text())
    assert certificate["all_properties_hold"] is True
    assert certificate["network_sha256"] == sha256_file(result.output_path)
    markdown = (result.report_dir / "report.md").read_text()
    assert "REPAIRED" in markdown and "weight_change.png" in markdown
    for png in ("weight_change.png", "violation_scores.png", "fidelity.png"):
        assert (result.report_dir / png).stat().st_size > 1000


def test_refuses_to_overwrite_the_input(tmp_path):
    network = load_network(NET_PATH)
    with pytest.raises(VerirepairError, match="overwrite"):
        run_pipeline(network, _task(network, PROP_PATHS[:1]), FAST, NET_PATH, tmp_path / "r", source_path=NET_PATH)


def test_nothing_to_repair_when_properties_hold(tmp_path):
    network = load_network(NET_PATH)
    config = run_config(cross_check=None, n_fidelity=100, n_care=10)
    result = run_pipeline(network, _task(network, PROP_PATHS[1:]), config, tmp_path / "o.onnx", tmp_path / "r")
    assert result.status is PipelineStatus.NOT_NEEDED
    assert result.output_path is None and not (tmp_path / "o.onnx").exists()
    assert json.loads((tmp_path / "r" / "report.json").read_text())["status"] == "not_needed"


@pytest.mark.parametrize("suffix", [".npy", ".json"])
def test_read_counterexamples(tmp_path, suffix):
    x = np.arange(10.0).reshape(2, 5)
    path = tmp_path / f"c{suffix}"
    if suffix == ".npy":
        np.save(path, x)
    else:
        path.write_text(json.dumps({"x": x.tolist()}))
    assert np.array_equal(read_counterexamples(path, 5), x)
    with pytest.raises(VerirepairError, match="the network has 3"):
        read_counterexamples(path, 3)


def test_undecided_property_gets_a_wider_margin_and_another_round(tmp_path, monkeypatch):
    """A re-verification that times out is not the end: the next round widens that
    property's margin and samples the sub-boxes the verifier left open."""
    import verirepair.certify_loop as certify_loop
    from verirepair.verify.result import VerificationResult

    network = load_network(NET_PATH)
    named = [(p.stem, parse_vnnlib(p)) for p in PROP_PATHS]
    box = named[0][1][0].input_boxes[0]
    open_box = (box.lower, box.lower + box.width / 4)
    real = certify_loop.verify_all
    calls = []

    def first_recheck_times_out(net, named_, base, deadline, engine="own", emit=None):
        calls.append(net)
        results = real(net, named_, base, deadline, engine, emit)
        if len(calls) == 2:
            name = named_[0][0]
            results[name] = VerificationResult(Verdict.TIMEOUT, engine="own", message="forced",
                                               open_boxes=(open_box,))
        return results

    monkeypatch.setattr(certify_loop, "verify_all", first_recheck_times_out)
    config = run_config(max_rounds=4, timeout_s=240, n_preserve=500, n_fidelity=500, n_care=100,
                            cross_check=None, solver="highs", open_box_samples=5)
    result = run_pipeline(network, _task(network), config, tmp_path / "f.onnx", tmp_path / "r")
    first, second = result.rounds[0], result.rounds[1]
    name = named[0][0]
    assert first.verdicts[name] is Verdict.TIMEOUT
    assert second.margins[name] == pytest.approx(first.margins[name] * config.loop.undecided_margin_growth)
    # The open box's centre and 5 samples joined the pool.
    assert second.new_counterexamples >= 6
    assert result.status is PipelineStatus.REPAIRED
    # Proven at the widened margin, the loop then tries narrower ones between
    # the undecided and the proven margin (geometric bisection).
    shrink = [r for r in result.rounds if r.kind is RoundKind.SHRINK]
    assert len(shrink) == config.loop.shrink_steps
    low, high = first.margins[name], second.margins[name]
    assert shrink[0].margins[name] == pytest.approx(np.sqrt(low * high))
    assert low < shrink[1].margins[name] < high
    # The delivered change is the narrowest proven one.
    proven = [r for r in result.rounds if all(v is Verdict.HOLDS for v in r.verdicts.values())]
    assert result.patch.l1 <= min(r.objective for r in proven) + 1e-9


def test_guilty_restriction_picks_rows_and_columns_from_the_ranking():
    from types import SimpleNamespace

    from verirepair.certify_loop import guilty_restriction
    from verirepair.localize.result import NeuronEffect
    from verirepair.network.model import random_network

    net = random_network([3, 4, 4, 2], seed=0)          # layers 0, 1 hidden; 2 = output
    loc = SimpleNamespace(ranking=(NeuronEffect(1, 3, 0.9, 0.0), NeuronEffect(0, 2, 0.5, 0.0),
                                   NeuronEffect(1, 0, 0.4, 0.0), NeuronEffect(0, 1, 0.0, 0.0),
                                   NeuronEffect(1, 2, -0.1, 0.0)))
    assert guilty_restriction(net, loc, 2, 2) == (None, (3, 0))     # output layer: columns only
    assert guilty_restriction(net, loc, 1, 1) == ((3,), (2,))
    assert guilty_restriction(net, loc, 0, 5) == ((2,), None)       # no effect <= 0, inputs free
    assert guilty_restriction(net, loc, 1, None) == (None, None)
    assert guilty_restriction(net, None, 1, 3) == (None, None)


def test_guilty_neurons_confine_the_change(tmp_path):
    network = load_network(NET_PATH)
    config = run_config(max_rounds=4, timeout_s=240, n_preserve=500, n_fidelity=500, n_care=100,
                            cross_check=None, solver="highs", guilty_neurons=2)
    result = run_pipeline(network, _task(network), config, tmp_path / "f.onnx", tmp_path / "r")
    assert result.status is PipelineStatus.REPAIRED
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    layer = result.patch.layer_index
    ranking = [e for e in report["localization"]["ranking"] if e["layer_index"] == layer - 1 and e["effect"] > 0]
    allowed = {e["unit"] for e in sorted(ranking, key=lambda e: -e["effect"])[:2]}
    changed_columns = set(np.flatnonzero(np.any(result.patch.delta_weight != 0.0, axis=0)))
    assert changed_columns <= allowed


def test_checkable_certificates_of_the_delivered_file(repaired):
    """With ``delivery.certificates`` each proven property of the delivered file gets a certificate
    that the independent checker accepts for exactly those bytes, and ``check REPORT_DIR`` checks them."""
    import json
    import subprocess
    import sys

    from verirepair.checker import check_certificate

    result, named, _, _ = repaired
    folder = Path(result.report_dir)
    listing = json.loads((folder / "certificate.json").read_text())["checkable_certificates"]
    entries = listing["entries"]
    assert [e["property"] for e in entries] == [name for name, _ in named]
    for entry in entries:
        assert entry["certificate"] is not None, entry.get("reason")
        check_certificate(folder / entry["certificate"], result.output_path, folder / entry["vnnlib"])
    done = subprocess.run([sys.executable, "-m", "verirepair.cli", "check", str(folder)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    # The original network is not what the certificates prove: the checker refuses it.
    refused = subprocess.run([sys.executable, "-m", "verirepair.cli", "check", str(folder / entries[0]["certificate"]),
                              str(NET_PATH), str(folder / entries[0]["vnnlib"])], capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
