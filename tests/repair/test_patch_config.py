"""Specification of Patch, apply_patch and RepairConfig validation."""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.network.model import random_network
from verirepair.repair import Patch, RepairConfig, apply_patch


def test_patch_norms_and_counts():
    patch = Patch(0, np.array([[0.5, 0.0], [0.0, -2.0]]), np.array([0.0, 1e-12]))
    assert patch.l1 == pytest.approx(2.5 + 1e-12)
    assert patch.linf == pytest.approx(2.0)
    assert patch.n_changed == 2  # 1e-12 is below PATCH_ZERO_TOL
    assert patch.changed_units == (0, 1)
    with pytest.raises(ValueError):
        patch.delta_weight[0, 0] = 1.0


def test_apply_patch_returns_new_network_and_keeps_original():
    net = random_network([3, 4, 2], seed=1)
    dw = np.zeros((4, 3))
    dw[2, 1] = 0.25
    db = np.array([0.0, 0.0, -0.5, 0.0])
    patched = apply_patch(net, Patch(0, dw, db))
    np.testing.assert_array_equal(patched.layers[0].weight, net.layers[0].weight + dw)
    np.testing.assert_array_equal(patched.layers[0].bias, net.layers[0].bias + db)
    np.testing.assert_array_equal(patched.layers[1].weight, net.layers[1].weight)
    assert net.layers[0].weight[2, 1] != patched.layers[0].weight[2, 1]


def test_apply_patch_rejects_wrong_shape_and_layer():
    net = random_network([3, 4, 2], seed=1)
    with pytest.raises(ValueError, match="shape"):
        apply_patch(net, Patch(1, np.zeros((4, 3)), np.zeros(4)))
    with pytest.raises(ValueError, match="layer_index"):
        apply_patch(net, Patch(5, np.zeros((2, 4)), np.zeros(2)))


@pytest.mark.parametrize("kwargs", [
    {"norm": "l2"}, {"encoding": "sat"}, {"disjunct": "first"}, {"max_delta": 0.0},
    {"margin": -1.0}, {"time_limit_s": 0.0}, {"bound_output_change": 0.0}, {"neurons": ()},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match="RepairConfig"):
        RepairConfig(**kwargs)


def test_config_normalises_neurons():
    assert RepairConfig(neurons=(3, 1, 3)).neurons == (1, 3)


def test_patch_equality_compares_values():
    a = Patch(1, np.eye(2), np.zeros(2))
    assert a == Patch(1, np.eye(2), np.zeros(2)) and hash(a) == hash(Patch(1, np.eye(2), np.zeros(2)))
    assert a != Patch(0, np.eye(2), np.zeros(2))
    assert a != Patch(1, 2 * np.eye(2), np.zeros(2))
