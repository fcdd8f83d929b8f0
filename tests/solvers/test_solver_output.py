"""Specification: solvers print nothing (no HiGHS banner, no CBC log) on stdout or stderr.

Oracle: the file descriptors themselves.  HiGHS prints its banner from the C++
constructor of the first ``Highs`` of a process, so an in-process test would
pass vacuously once any earlier test had made one; each check therefore runs
in a fresh interpreter whose fd 1 and fd 2 are captured, plus an in-process
``capfd`` check of the same calls.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import verirepair
from verirepair.solvers import get_backend, list_backends, problem_from_inequalities

PACKAGE_ROOT = Path(verirepair.__file__).resolve().parents[1]


def run_fresh(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter that imports this checkout; stdout/stderr captured."""
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def _lp():
    return problem_from_inequalities([-1.0, -1.0], [[1, 2], [3, 1]], [4, 6])


@pytest.mark.parametrize("name", ["highs", "cbc"])
def test_a_solve_in_a_fresh_process_prints_nothing(name: str) -> None:
    if name not in list_backends(only_available=True):
        pytest.skip(f"backend {name} not available")
    done = run_fresh(f"""
        from verirepair.solvers import get_backend, problem_from_inequalities
        lp = problem_from_inequalities([-1.0, -1.0], [[1, 2], [3, 1]], [4, 6])
        backend = get_backend({name!r})
        assert backend.solve(lp, time_limit_s=10).status.has_solution
        session = backend.open_session(lp)
        if session is not None:
            assert session.solve(time_limit_s=10).status.has_solution
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""


def test_highs_solve_and_session_print_nothing_in_process(capfd: pytest.CaptureFixture) -> None:
    backend = get_backend("highs")
    assert backend.solve(_lp(), time_limit_s=10).status.has_solution
    session = backend.open_session(_lp())
    assert session.solve(time_limit_s=10).status.has_solution
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_stdout_before_and_after_the_silenced_block_survives() -> None:
    done = run_fresh("""
        import os
        from verirepair.solvers.quiet import quiet_highs, stdout_silenced
        print("before")
        quiet_highs()
        with stdout_silenced():
            print("hidden")
            os.write(1, b"hidden too\\n")
        print("after")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "before\nafter\n"
