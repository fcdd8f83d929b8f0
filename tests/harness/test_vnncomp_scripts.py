"""Specification of the VNN-COMP tool interface (vnncomp/*.sh), called as the competition calls it.

The scripts run with this repository's interpreter (VERIREPAIR_PYTHON) on the tiny |x| network,
whose answers are known by hand, and on two ACAS Xu instances when the data is there.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from campaign_helpers import vnnlib_text, write_abs_onnx
from verirepair.verify.vnncomp_io import parse_result

SCRIPTS = Path(__file__).resolve().parents[2] / "vnncomp"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("setsid") is None,
                                reason="the VNN-COMP scripts need bash and setsid")


def _run(script: str, *args: str, work: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "VERIREPAIR_PYTHON": sys.executable, "VERIREPAIR_VNNCOMP_WORK": str(work)}
    return subprocess.run(["bash", str(SCRIPTS / script), *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture
def instance(tmp_path):
    net = write_abs_onnx(tmp_path / "abs.onnx")
    (tmp_path / "sat.vnnlib").write_text(vnnlib_text(0.5), encoding="utf-8")
    (tmp_path / "unsat.vnnlib").write_text(vnnlib_text(1.5), encoding="utf-8")
    return tmp_path, net


def test_install_checks_the_version_and_the_interpreter(tmp_path):
    assert _run("install_tool.sh", "v2", work=tmp_path).returncode == 1
    done = _run("install_tool.sh", "v1", work=tmp_path)
    assert done.returncode == 0, done.stderr


def test_sat_instance_writes_sat_and_a_counterexample_the_network_confirms(instance):
    folder, net = instance
    assert _run("prepare_instance.sh", "v1", "test", str(net), str(folder / "sat.vnnlib"), work=folder).returncode == 0
    result = folder / "out" / "sat.txt"
    result.parent.mkdir()
    done = _run("run_instance.sh", "v1", "test", str(net), str(folder / "sat.vnnlib"), str(result), "10", work=folder)
    assert done.returncode == 0, done.stderr
    word, x, y = parse_result(result.read_text())
    assert word == "sat" and x is not None and y is not None
    assert -1.0 <= x[0] <= 1.0 and abs(y[0] - abs(x[0])) < 1e-6 and y[0] >= 0.5


def test_unsat_instance_and_gzipped_inputs(instance):
    folder, net = instance
    gz_net = folder / "abs.onnx.gz"
    gz_net.write_bytes(gzip.compress(net.read_bytes()))
    gz_prop = folder / "unsat.vnnlib.gz"
    gz_prop.write_bytes(gzip.compress((folder / "unsat.vnnlib").read_bytes()))
    assert _run("prepare_instance.sh", "v1", "test", str(gz_net), str(gz_prop), work=folder).returncode == 0
    result = folder / "unsat.txt"
    done = _run("run_instance.sh", "v1", "test", str(gz_net), str(gz_prop), str(result), "10", work=folder)
    assert done.returncode == 0, done.stderr
    assert result.read_text() == "unsat\n"


def test_bad_input_is_refused_by_prepare_and_gives_unknown_with_exit_1(instance):
    folder, net = instance
    (folder / "broken.vnnlib").write_text("(declare-const X_0 Real)\n(assert (>= X_0\n", encoding="utf-8")
    prep = _run("prepare_instance.sh", "v1", "test", str(net), str(folder / "broken.vnnlib"), work=folder)
    assert prep.returncode == 1 and "broken.vnnlib" in prep.stderr
    missing = _run("prepare_instance.sh", "v1", "test", str(folder / "nope.onnx"), str(folder / "sat.vnnlib"),
                   work=folder)
    assert missing.returncode == 1 and "no such file" in missing.stderr
    result = folder / "r.txt"
    run = _run("run_instance.sh", "v1", "test", str(net), str(folder / "broken.vnnlib"), str(result), "10",
               work=folder)
    assert run.returncode == 1 and result.read_text() == "unknown\n"
    assert _run("run_instance.sh", "v2", "test", str(net), str(folder / "sat.vnnlib"), str(result), "10",
                work=folder).returncode == 1
    assert _run("run_instance.sh", "v1", "test", str(net), str(folder / "sat.vnnlib"), str(result), "0",
                work=folder).returncode == 1


@pytest.mark.acasxu
def test_acasxu_instance_gives_its_known_answer_with_a_confirmed_counterexample(tmp_path):
    from verirepair.tasks.acasxu import networks as acasxu

    acasxu.data_or_skip(("onnx",))
    cases = [(acasxu.onnx_path("N2_1"), acasxu.vnnlib_path(2), "sat")]
    for index, (onnx, vnnlib, expected) in enumerate(cases):
        assert _run("prepare_instance.sh", "v1", "acasxu", str(onnx), str(vnnlib), work=tmp_path).returncode == 0
        result = tmp_path / f"r{index}.txt"
        done = _run("run_instance.sh", "v1", "acasxu", str(onnx), str(vnnlib), str(result), "60", work=tmp_path)
        assert done.returncode == 0, done.stderr
        word, x, y = parse_result(result.read_text())
        assert word == expected
        if word == "sat":
            from verirepair.network import load_network
            from verirepair.properties import parse_vnnlib

            props = parse_vnnlib(vnnlib)
            out = load_network(onnx).forward(x[None, :])
            assert np.allclose(out[0], y, atol=1e-6)
            assert any(p.in_region(x[None, :], tol=1e-9)[0] and p.is_violated_by(out)[0] for p in props)
