"""What a repair run leaves behind, and when: only a certified run delivers; the budget is total.

Specifications:
* a PARTIAL run writes nothing at ``out_path``; its candidate goes into the
  report folder under a name that says uncertified, and its report says so;
* an interrupted run (KeyboardInterrupt anywhere in the delivery) leaves no
  network at ``out_path`` and no temporary file beside it;
* ``timeout_s`` bounds the whole run (checked on a property too hard to decide);
* outputs that cannot be written are refused before any work.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from verirepair import certify_loop, pipeline
from verirepair.demo import demo_paths, demo_task
from verirepair.errors import OutputError
from verirepair.network import load_network
from verirepair.pipeline import UNCERTIFIED_NAME, PipelineStatus, run_pipeline
from verirepair.task import RepairTask, bounding_box
from verirepair.verify.result import Verdict, VerificationResult

sys.path.insert(0, str(Path(__file__).parent / "verify"))
from hard_instances import hard_property  # noqa: E402
from pipeline_helpers import run_config  # noqa: E402

NET_PATH, PROP_PATHS = demo_paths()
FAST = dict(n_preserve=300, n_fidelity=300, n_care=100, cross_check=None, solver="highs")


def _named():
    return demo_task(load_network(NET_PATH))


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_partial_run_delivers_nothing_and_keeps_the_candidate_in_the_report(tmp_path, monkeypatch):
    real = certify_loop.verify_all
    calls = []

    def never_proven(net, named, base, deadline, engine="own", emit=None):
        calls.append(1)
        results = real(net, named, base, deadline, engine, emit)
        if len(calls) > 1:          # after the first change: never decided
            results = {n: VerificationResult(Verdict.TIMEOUT, message="forced") for n in results}
        return results

    monkeypatch.setattr(certify_loop, "verify_all", never_proven)
    out, report_dir = tmp_path / "out" / "net.onnx", tmp_path / "rep"
    result = run_pipeline(load_network(NET_PATH), _named(), run_config(max_rounds=2, **FAST), out, report_dir)
    assert result.status is PipelineStatus.PARTIAL
    assert result.output_path is None and not out.exists()
    assert not out.parent.exists() or _files(out.parent) == []
    assert result.candidate_path == report_dir / UNCERTIFIED_NAME and result.candidate_path.is_file()
    load_network(result.candidate_path)          # a valid network, for inspection
    first = (report_dir / "report.md").read_text().splitlines()[0]
    assert "NOT CERTIFIED" in first


def test_repaired_run_delivers_exactly_one_file_and_no_temporary(tmp_path):
    out = tmp_path / "out" / "net.onnx"
    result = run_pipeline(load_network(NET_PATH), _named(), run_config(**FAST), out, tmp_path / "rep")
    assert result.status is PipelineStatus.REPAIRED
    assert _files(out.parent) == ["net.onnx"]
    assert result.candidate_path is None


@pytest.mark.parametrize("stage", ["fidelity", "report"])
def test_interrupt_during_delivery_leaves_no_network(tmp_path, monkeypatch, stage):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if stage == "fidelity":
        monkeypatch.setattr("verirepair.fidelity.decision_agreement", interrupt)
    else:
        monkeypatch.setattr("verirepair.report.write_report", interrupt)
    out = tmp_path / "out" / "net.onnx"
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(load_network(NET_PATH), _named(), run_config(**FAST), out, tmp_path / "rep")
    assert _files(out.parent) == []


def test_an_earlier_file_at_out_survives_an_interrupted_run(tmp_path, monkeypatch):
    monkeypatch.setattr("verirepair.fidelity.decision_agreement",
                        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    out = tmp_path / "net.onnx"
    out.write_bytes(b"earlier result")
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(load_network(NET_PATH), _named(), run_config(**FAST), out, tmp_path / "rep")
    assert out.read_bytes() == b"earlier result"


def test_total_budget_holds_on_an_undecidable_property(tmp_path):
    net, prop = hard_property()
    start = time.perf_counter()
    task = RepairTask("test", [("hard", [prop])], "argmax", bounding_box([prop]))
    result = run_pipeline(net, task, run_config(timeout_s=6.0, verify_timeout_s=300, **FAST),
                          tmp_path / "o.onnx", tmp_path / "rep")
    elapsed = time.perf_counter() - start
    assert result.status is PipelineStatus.PARTIAL
    assert elapsed < 6.0 + 2.0
    assert not (tmp_path / "o.onnx").exists()


def test_unwritable_outputs_are_refused_before_any_work(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "CertifyLoop", lambda *a, **k: calls.append(1))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        run_pipeline(load_network(NET_PATH), _named(), run_config(**FAST), blocker / "o.onnx", tmp_path / "r")
    with pytest.raises(OutputError, match="--report"):
        run_pipeline(load_network(NET_PATH), _named(), run_config(**FAST), tmp_path / "o.onnx", blocker)
    assert calls == []


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_cli_repair_stops_within_two_seconds_of_a_signal(tmp_path, signame):
    """The console script, interrupted while our verifier searches: exit 130/143 at once, nothing delivered."""
    import signal
    import subprocess

    from verirepair.network import save_onnx
    from verirepair.properties import write_vnnlib

    net, prop = hard_property()
    net_path = save_onnx(net, tmp_path / "hard.onnx")
    prop_path = tmp_path / "hard.vnnlib"
    prop_path.write_text(write_vnnlib(prop))
    out = tmp_path / "out" / "repaired.onnx"
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "verirepair.cli", "repair", str(net_path), "--property", str(prop_path),
         "--out", str(out), "--cross-check", "none", "--timeout", "600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell's background job starts with SIGINT ignored; a user's terminal does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(6.0)                      # past imports, inside the first verification
    assert proc.poll() is None
    sent = time.perf_counter()
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=60)
    assert time.perf_counter() - sent < 2.0
    assert proc.returncode == {"SIGINT": 130, "SIGTERM": 143}[signame]
    assert len(err.splitlines()) == 1 and "no repaired network" in err
    assert not out.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))
