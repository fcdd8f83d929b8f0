"""Layer repair on a real ACAS Xu network (N2,1 violates property 2)."""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.repair import RepairConfig, RepairStatus, apply_patch, repair_layer

pytestmark = pytest.mark.acasxu


@pytest.fixture(scope="module")
def n21_prop2():
    from verirepair.properties import parse_vnnlib
    from verirepair.tasks.acasxu import networks as acasxu_nets

    acasxu_nets.data_or_skip(("onnx",))
    net = acasxu_nets.load_acasxu((2, 1))
    prop = parse_vnnlib(acasxu_nets.vnnlib_path(2))[0]
    rng = np.random.default_rng(0)
    x = prop.sample_inputs(rng, 50000)
    cex = x[prop.is_violated_by(net.forward(x))][:60]
    preserve = rng.uniform(-0.5, 0.5, size=(1000, 5))
    return net, prop, cex, preserve


def test_output_layer_repair_fixes_sampled_counterexamples(n21_prop2):
    net, prop, cex, preserve = n21_prop2
    assert len(cex) >= 20  # N2,1 violates prop 2 on a visible share of its box
    result = repair_layer(net, [prop], cex, preserve, 6, RepairConfig(solver="highs"))
    assert result.status is RepairStatus.REPAIRED
    assert result.stats.cex_fixed == len(cex) and result.stats.preserve_agreement == 1.0
    repaired = apply_patch(net, result.patch)
    assert (prop.violation_score(repaired.forward(cex)) < 0).all()
    advisory = np.argmin(net.forward(preserve), axis=1)
    assert (np.argmin(repaired.forward(preserve), axis=1) == advisory).all()
    assert 0 < result.patch.l1 < 1.0  # a small change of the last layer suffices


def test_hidden_layer_repair_with_fixed_patterns(n21_prop2):
    net, prop, cex, preserve = n21_prop2
    result = repair_layer(net, [prop], cex[:20], preserve[:300], 5,
                          RepairConfig(solver="highs", time_limit_s=120))
    assert result.status is RepairStatus.REPAIRED
    assert result.stats.pattern_changes == 0
    assert result.stats.n_vars >= 2550
