"""Fixed-seed ONNX fuzzing: structural and byte-level mutants of an ACAS Xu-shaped model.

The mutators and the onnxruntime oracle live in ``benchmarks/fuzz_onnx.py`` (which runs
the larger campaign); this module runs a few hundred mutants per base in CI and checks:

* no exception escapes ``load_onnx`` other than a ``VerirepairError``;
* every mutant onnxruntime refuses (session or run on a valid input) we refuse too;
* for every mutant both accept, our forward pass equals onnxruntime's (``RTOL``);
* every refusal is one line without numpy reprs.

The generated base always runs; the real ACAS Xu N1,1 file runs when the data is present.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from verirepair.network import onnx_io

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_onnx.py"
N_MUTANTS = 1000
SEED = 20260901


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_onnx", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_onnx", module)
    spec.loader.exec_module(module)
    return module


fuzz = _fuzz_module()


def _assert_clean(campaign) -> None:
    counts = campaign.counts
    assert counts["mutants"] == N_MUTANTS
    assert min(counts["structural mutants"], counts["byte mutants"]) >= N_MUTANTS // 3, counts
    findings = fuzz.report(campaign, show=5)
    assert {key: counts[key] for key in fuzz.BUGS} == dict.fromkeys(fuzz.BUGS, 0), findings
    # the campaign exercised all three outcomes, so the checks above are not vacuous
    assert counts["refused by ort"] >= N_MUTANTS // 2, findings
    assert counts["accepted by both"] >= 30, findings
    assert counts["refused by us"] >= counts["refused by ort"], findings


def test_fuzz_generated_acasxu_shaped_model(tmp_path) -> None:
    campaign = fuzz.run_campaign(fuzz.acasxu_like_model(), N_MUTANTS, SEED, tmp_path)
    _assert_clean(campaign)


@pytest.mark.acasxu
def test_fuzz_the_acasxu_file(acasxu_dir, tmp_path) -> None:
    base = (acasxu_dir / "onnx" / "ACASXU_run2a_1_1_batch_2000.onnx").read_bytes()
    campaign = fuzz.run_campaign(base, N_MUTANTS, SEED + 1, tmp_path)
    _assert_clean(campaign)


def test_the_oracle_catches_a_reader_without_validation(tmp_path, monkeypatch) -> None:
    """With validation switched off, the same campaign finds the issue's bugs: mutants
    onnxruntime refuses load anyway (Relu(x, b) and friends), and the converters crash
    (caught only by the safety net, as "malformed ONNX model")."""
    monkeypatch.setattr(onnx_io, "validate_model", lambda model, path: 13)
    campaign = fuzz.run_campaign(fuzz.acasxu_like_model(), 300, SEED, tmp_path)
    assert campaign.counts["refused by ort, accepted by us"] > 0
    assert any(rule.startswith("malformed ONNX model") for rule in campaign.refusal_rules)
