"""Soft preservation: when keeping every advisory is impossible, give up the fewest points."""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.network.model import AffineLayer, Network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.repair import RepairConfig, RepairStatus, apply_patch, repair_layer


def _toy():
    # One affine layer: y0 = x, y1 = 0.5.  Advisory = argmin.
    net = Network((AffineLayer([[1.0], [0.0]], [0.0, 0.5], relu=False),), name="toy")
    # On x in [0.9, 1.0] the output must not satisfy y0 >= y1 (i.e. y1 - y0 <= 0 is unsafe).
    prop = Property((Box([0.9], [1.0]),), (HalfSpaces([[-1.0, 1.0]], [0.0]),), name="p")
    return net, prop


def test_hard_preservation_is_infeasible_by_convexity():
    # x = 0.95 lies between x = 0.8 and x = 1.05, where advisory 1 (y1 < y0) must stay;
    # y1 - y0 is affine in x, so it cannot be positive at 0.95 and negative at both ends.
    net, prop = _toy()
    result = repair_layer(net, [prop], np.array([[0.95]]), np.array([[0.8], [1.05]]), 0,
                          RepairConfig(solver="highs", max_delta=5.0))
    assert result.status is RepairStatus.INFEASIBLE


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_soft_preservation_repairs_and_reports_what_it_gave_up(solver):
    net, prop = _toy()
    cex = np.array([[0.95]])
    keep = np.array([[0.8], [1.05]])
    result = repair_layer(net, [prop], cex, keep, 0,
                          RepairConfig(solver=solver, max_delta=5.0, preserve_penalty=10.0))
    assert result.status is RepairStatus.REPAIRED
    repaired = apply_patch(net, result.patch)
    assert not prop.is_violated_by(repaired.forward(cex)).any()
    agreement = result.stats.preserve_agreement
    assert 0.0 < agreement < 1.0  # at least one point kept, at least one given up (convexity)
    kept = np.argmin(repaired.forward(keep), axis=1) == np.argmin(net.forward(keep), axis=1)
    assert np.mean(kept) == pytest.approx(agreement)


def test_penalty_must_be_positive():
    with pytest.raises(ValueError, match="preserve_penalty"):
        RepairConfig(preserve_penalty=0.0)
