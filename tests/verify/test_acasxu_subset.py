"""A handful of real ACAS Xu instances (VNN-COMP 2021 files), each a few seconds.

Expected answers: the VNN-COMP ground truth, cross-checked here by the
counterexamples themselves (sat) and, for the unsat ones, by the fact that a
strong sampling attack finds nothing.  Every counterexample is re-evaluated by
onnxruntime on the original ONNX file (float32, input shape [1, 1, 1, 5]).

Float32 caveat: a point whose float64 violation score is barely >= 0 could
leave the unsafe set in float32; the engine therefore pushes every
counterexample deeper by a few PGD steps (``falsify.deepen``), and the test
requires the float32 output to violate as well.
"""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.properties import parse_vnnlib
from verirepair.tasks.acasxu import networks as acasxu_nets
from verirepair.verify import Verdict, VerifyConfig, verify

pytestmark = pytest.mark.acasxu

#: (x, y, property, expected verdict, budget in seconds)
CASES = [
    ((1, 1), 1, Verdict.HOLDS),
    ((2, 1), 2, Verdict.VIOLATED),      # found by the falsifier
    ((1, 3), 2, Verdict.VIOLATED),      # found inside the search, not by sampling
    ((1, 2), 3, Verdict.HOLDS),
    ((1, 7), 3, Verdict.VIOLATED),
    ((1, 1), 4, Verdict.HOLDS),
    ((2, 9), 8, Verdict.VIOLATED),
    ((4, 5), 10, Verdict.HOLDS),
]


def _onnx_output(key: tuple[int, int], x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(acasxu_nets.onnx_path(key)))
    name = session.get_inputs()[0].name
    out = session.run(None, {name: x.reshape(1, 1, 1, 5).astype(np.float32)})[0]
    return np.asarray(out, dtype=np.float64).reshape(1, -1)


@pytest.mark.parametrize(("key", "number", "expected"), CASES,
                         ids=[f"N{k[0]}{k[1]}-prop{n}" for k, n, _ in CASES])
def test_acasxu_instance(key: tuple[int, int], number: int, expected: Verdict) -> None:
    acasxu_nets.data_or_skip(("onnx",))
    net = acasxu_nets.load_acasxu(key)
    props = parse_vnnlib(str(acasxu_nets.vnnlib_path(number)))
    result = verify(net, props, VerifyConfig(timeout_s=30.0))
    assert result.verdict is expected, result.message
    if expected is Verdict.VIOLATED:
        cex = result.counterexamples[0]
        assert cex.confirmed and cex.score >= 0.0
        assert props[0].in_region(cex.x[None])[0]
        y32 = _onnx_output(key, cex.x)
        np.testing.assert_allclose(y32[0], cex.y, atol=1e-4)
        assert props[0].violation_score(y32)[0] >= 0.0
    else:
        prop = props[0]
        x = prop.sample_inputs(np.random.default_rng(0), 20000)
        assert np.all(prop.violation_score(net.forward(x)) < 0.0)


def test_bounds_sound_on_a_real_acasxu_network() -> None:
    """Sampled outputs of N2,7 on random sub-boxes of prop 1's region lie inside
    the CROWN and alpha-CROWN bounds of the prop 2 rows."""
    from verirepair.tolerances import BOUND_TOL
    from verirepair.verify.alpha_crown import optimize_spec_lower
    from verirepair.verify.bounds import intermediate_bounds, symbolic_bounds

    acasxu_nets.data_or_skip(("onnx",))
    net = acasxu_nets.load_acasxu((2, 7))
    box = parse_vnnlib(str(acasxu_nets.vnnlib_path(1)))[0].input_boxes[0]
    rng = np.random.default_rng(0)
    centre = box.sample(rng, 64)
    radius = box.width * rng.uniform(0.0, 0.25, size=(64, 5))
    lower = np.maximum(centre - radius, box.lower)
    upper = np.minimum(centre + radius, box.upper)
    C = parse_vnnlib(str(acasxu_nets.vnnlib_path(2)))[0].unsafe[0].A
    x = lower[:, None, :] + (upper - lower)[:, None, :] * rng.uniform(size=(64, 200, 5))
    cy = (net.forward(x.reshape(-1, 5)) @ C.T).reshape(64, 200, -1)
    sb = symbolic_bounds(net, lower, upper, C, intermediate="backward")
    assert np.all(cy >= sb.spec_lower[:, None, :] - BOUND_TOL)
    assert np.all(cy <= sb.spec_upper[:, None, :] + BOUND_TOL)
    pre_l, pre_u = intermediate_bounds(net, lower, upper, "backward")
    best, _ = optimize_spec_lower(net, pre_l, pre_u, C, lower, upper, steps=6)
    assert np.all(cy >= best[:, None, :] - BOUND_TOL)
