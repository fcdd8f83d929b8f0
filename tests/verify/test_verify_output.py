"""Specification: ``verify(..., use_lp=True)`` prints nothing (the HiGHS banner used to leak).

``verify --lp --json`` must put nothing but JSON on stdout; the CLI is the only
module that prints.  The banner comes from the first HiGHS model of a process,
so the oracle is a fresh interpreter's captured fd 1 and fd 2, plus ``capfd``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import verirepair
from hard_instances import lp_property
from verirepair.verify import Verdict, VerifyConfig, verify

TESTS_DIR = Path(__file__).resolve().parent
PACKAGE_ROOT = Path(verirepair.__file__).resolve().parents[1]


def test_lp_tightened_verify_in_a_fresh_process_prints_nothing() -> None:
    code = textwrap.dedent("""
        from hard_instances import lp_property
        from verirepair.verify import Verdict, VerifyConfig, verify
        net, prop = lp_property()
        result = verify(net, prop, VerifyConfig(timeout_s=60, use_lp=True))
        assert result.verdict is Verdict.HOLDS and result.stats.lp_calls > 0, result
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE_ROOT), str(TESTS_DIR)]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""


def test_lp_tightened_verify_prints_nothing_in_process(capfd: pytest.CaptureFixture) -> None:
    net, prop = lp_property()
    result = verify(net, prop, VerifyConfig(timeout_s=60, use_lp=True))
    assert result.verdict is Verdict.HOLDS and result.stats.lp_calls > 0
    out, err = capfd.readouterr()
    assert out == "" and err == ""
