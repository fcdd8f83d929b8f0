"""The cross-check runs in a child process that the budget and SIGINT can stop.

Oracles: a property that holds on a hand-made network gets the child's real
verdict; a property too hard to decide is killed at the deadline (TIMEOUT,
within a second of it); an interrupted parent leaves no child behind and
exits at once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from verirepair.cross_check import CrossCheckEntry, cross_check, verify_in_child
from verirepair.network import save_onnx
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.verify.result import Verdict, VerifyConfig

sys.path.insert(0, str(Path(__file__).parent / "verify"))
from hard_instances import abs_net, hard_property  # noqa: E402


def _abs_holds() -> Property:
    # |x| on [-1, 1] never exceeds 1: unsafe set y >= 1.5 is empty.
    return Property((Box(np.array([-1.0]), np.array([1.0])),),
                    (HalfSpaces(np.array([[-1.0]]), np.array([-1.5])),), "abs")


def test_child_returns_the_engines_verdict_on_the_file(tmp_path):
    path = save_onnx(abs_net(), tmp_path / "abs.onnx")
    result = verify_in_child(path, [_abs_holds()], "own", VerifyConfig(timeout_s=20),
                             time.perf_counter() + 60)
    assert result.verdict is Verdict.HOLDS


def test_violation_comes_back_with_its_counterexample(tmp_path):
    path = save_onnx(abs_net(), tmp_path / "abs.onnx")
    # unsafe: y >= 0.5, reached at |x| >= 0.5
    prop = Property((Box(np.array([-1.0]), np.array([1.0])),), (HalfSpaces(np.array([[-1.0]]), np.array([-0.5])),))
    result = verify_in_child(path, [prop], "own", VerifyConfig(timeout_s=20), time.perf_counter() + 60)
    assert result.verdict is Verdict.VIOLATED
    assert abs(result.counterexamples[0].x[0]) >= 0.5 - 1e-9


def test_hard_property_is_killed_at_the_deadline(tmp_path):
    net, prop = hard_property()
    path = save_onnx(net, tmp_path / "hard.onnx")
    start = time.perf_counter()
    entries = cross_check(path, [("hard", [prop])], "own", timeout_s=600, deadline=start + 4.0)
    elapsed = time.perf_counter() - start
    assert isinstance(entries["hard"], CrossCheckEntry)
    assert entries["hard"].verdict is Verdict.TIMEOUT
    assert elapsed < 5.5


def test_no_budget_left_means_not_started(tmp_path):
    path = save_onnx(abs_net(), tmp_path / "abs.onnx")
    seen = []
    entries = cross_check(path, [("a", [_abs_holds()])], "own", 60, time.perf_counter() + 0.1,
                          on_verdict=lambda name, entry: seen.append(name))
    assert entries["a"].verdict is Verdict.TIMEOUT and "not started" in entries["a"].message
    assert seen == ["a"]


def test_sigint_stops_the_parent_and_kills_the_child(tmp_path):
    net, prop = hard_property()
    path = save_onnx(net, tmp_path / "hard.onnx")
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time, os
        sys.path.insert(0, {str(Path(__file__).parent / "verify")!r})
        from hard_instances import hard_property
        from verirepair.cross_check import verify_in_child
        from verirepair.verify.result import VerifyConfig
        from pathlib import Path
        import multiprocessing
        if __name__ == "__main__":      # spawn re-imports this file in the child
            net, prop = hard_property()
            print("start", flush=True)
            try:
                verify_in_child(Path({str(path)!r}), [prop], "own", VerifyConfig(timeout_s=600),
                                time.perf_counter() + 600)
            except KeyboardInterrupt:
                print("children", len(multiprocessing.active_children()), flush=True)
                sys.exit(130)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "start"
    time.sleep(3.0)                      # the child is started and searching
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert time.perf_counter() - sent < 2.0
    assert proc.returncode == 130
    assert "children 0" in out
