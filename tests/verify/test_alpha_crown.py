"""Specification of alpha-CROWN (verirepair.verify.alpha_crown) and of its use by the search.

Oracles: central finite differences for the hand-written slope gradient, plain
CROWN (:func:`backward_lower`) for zero steps, and the clock: alpha-CROWN is
plain numpy, so a short budget uses it too (it used to be skipped below 5 s
because importing torch might not fit).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import verirepair
from hard_instances import hard_property
from verirepair.network.model import random_network
from verirepair.verify import Verdict, VerifyConfig, bab, verify
from verirepair.verify.alpha_crown import (
    _bound_and_slope_gradients,
    _relaxations,
    optimize_spec_lower,
)
from verirepair.verify.bounds import backward_lower, intermediate_bounds, with_linear_output


def _instance(seed: int, n: int = 6, k: int = 3):
    rng = np.random.default_rng(seed)
    net = with_linear_output(random_network([4, 10, 10, 10, 3], seed=seed))
    centre = rng.uniform(-1.0, 1.0, (n, 4))
    radius = rng.uniform(0.2, 0.6, (n, 4))
    lower, upper = centre - radius, centre + radius
    pre_l, pre_u = intermediate_bounds(net, lower, upper, "backward")
    C = np.broadcast_to(rng.normal(size=(k, 3)), (n, k, 3))
    return rng, net, lower, upper, pre_l, pre_u, C


@pytest.mark.parametrize("seed", range(3))
def test_slope_gradient_matches_finite_differences(seed: int) -> None:
    rng, net, lower, upper, pre_l, pre_u, C = _instance(seed)
    relax = _relaxations(net, pre_l, pre_u)
    alphas = [rng.uniform(0.1, 0.9, (C.shape[0], C.shape[1], r.s.shape[2])) for r in relax]
    _, _, grads = _bound_and_slope_gradients(net, relax, alphas, C, lower, upper, True)
    h = 1e-6
    checked = 0
    for j, alpha in enumerate(alphas):
        for index in zip(*np.nonzero(np.broadcast_to(relax[j].unstable, alpha.shape)), strict=True):
            up = [a.copy() for a in alphas]
            down = [a.copy() for a in alphas]
            up[j][index] += h
            down[j][index] -= h
            b_up, _, _ = _bound_and_slope_gradients(net, relax, up, C, lower, upper, False)
            b_down, _, _ = _bound_and_slope_gradients(net, relax, down, C, lower, upper, False)
            numeric = (b_up - b_down)[index[:2]] / (2 * h)
            assert grads[j][index] == pytest.approx(numeric, rel=1e-5, abs=1e-6)
            checked += 1
    assert checked > 10                       # the instance has unstable units to check
    stable = ~np.broadcast_to(relax[0].unstable, alphas[0].shape)
    assert np.all(grads[0][stable] == 0.0)   # a stable unit has no free slope


def test_zero_steps_is_plain_crown() -> None:
    _, net, lower, upper, pre_l, pre_u, C = _instance(5)
    plain, plain_coef, _ = backward_lower(net, pre_l, pre_u, np.ascontiguousarray(C),
                                          net.n_layers - 1, lower, upper)
    best, coef = optimize_spec_lower(net, pre_l, pre_u, C[0], lower, upper, steps=0)
    np.testing.assert_allclose(best, plain, rtol=0, atol=1e-12)
    np.testing.assert_allclose(coef, plain_coef, rtol=0, atol=1e-12)


def test_a_short_budget_still_uses_alpha_crown(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = bab.optimize_spec_slopes

    def counting(*args, **kwargs):
        calls.append(args[4].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(bab, "optimize_spec_slopes", counting)
    net, prop = hard_property()
    start = time.perf_counter()
    result = verify(net, prop, VerifyConfig(timeout_s=2.0, pgd_steps=0))
    elapsed = time.perf_counter() - start
    assert result.verdict is Verdict.TIMEOUT
    assert calls and sum(calls) > 0            # open boxes got the alpha-CROWN treatment
    assert elapsed < 2.0 + 1.0


def test_verify_never_imports_torch() -> None:
    tests_dir = Path(__file__).resolve().parent
    root = Path(verirepair.__file__).resolve().parents[1]
    code = textwrap.dedent("""
        import sys
        from hard_instances import hard_property
        from verirepair.verify import VerifyConfig, verify
        net, prop = hard_property()
        result = verify(net, prop, VerifyConfig(timeout_s=1.5))
        assert result.stats.subproblems > 256, result.stats      # alpha-CROWN's threshold
        assert "torch" not in sys.modules
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(tests_dir)]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.acasxu
def test_acasxu_n19_phi7_is_violated_within_five_seconds() -> None:
    """At 5 s this used to time out (alpha-CROWN skipped); at 6 s it was violated in 2 s."""
    from verirepair.properties import parse_vnnlib
    from verirepair.tasks.acasxu import networks as acasxu_nets

    acasxu_nets.data_or_skip(("onnx",))
    net = acasxu_nets.load_acasxu((1, 9))
    props = parse_vnnlib(str(acasxu_nets.vnnlib_path(7)))
    start = time.perf_counter()
    result = verify(net, props, VerifyConfig(timeout_s=5.0))
    elapsed = time.perf_counter() - start
    assert result.verdict is Verdict.VIOLATED, result.message
    assert result.counterexamples[0].confirmed
    assert elapsed < 5.0 + 1.0
