"""Repair of smooth networks: the output-layer LP applies unchanged; hidden smooth layers are refused."""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.errors import UnsupportedActivationError
from verirepair.network import RELU, TANH, Activation, ActivationKind, AffineLayer, Network, random_network
from verirepair.repair import RepairConfig, RepairStatus, apply_patch, repair_layer
from verirepair.repair.encoding import fixed_pattern_applies
from verirepair.tolerances import MARGIN

ESCAPE = MARGIN * np.sqrt(2.0)
NO_POINTS = np.zeros((0, 2))


@pytest.fixture
def tanh_net() -> Network:
    """``h = tanh(I x)``, ``y = I h``: at x = (2, 1), y = (tanh 2, tanh 1), so y0 > y1."""
    return Network((AffineLayer(np.eye(2), np.zeros(2), activation=TANH),
                    AffineLayer(np.eye(2), np.zeros(2))), "tanh_identity")


@pytest.mark.parametrize("norm", ["l1", "linf"])
def test_output_layer_lp_repairs_a_tanh_network_exactly(tanh_net, y0_max_prop, norm) -> None:
    # The features a~ = (tanh 2, tanh 1, 1) are fixed numbers, so the LP is exact:
    # y1 - y0 must grow by NEED = tanh 2 - tanh 1 + ESCAPE.  L1: the cheapest lever
    # is a bias (coefficient 1): NEED.  Linf: all six variables move by t:
    # 2 t (tanh 2 + tanh 1 + 1) = NEED.
    cex = np.array([[2.0, 1.0]])
    need = np.tanh(2.0) - np.tanh(1.0) + ESCAPE
    expected = need if norm == "l1" else need / (2 * (np.tanh(2.0) + np.tanh(1.0) + 1))
    result = repair_layer(tanh_net, [y0_max_prop], cex, NO_POINTS, 1, RepairConfig(norm=norm, solver="highs"))
    assert result.status is RepairStatus.REPAIRED
    assert result.objective == pytest.approx(expected, abs=1e-7)
    repaired = apply_patch(tanh_net, result.patch)
    assert repaired.layers[0].activation == TANH                    # the activation is kept
    y = repaired.forward(cex)[0]
    assert y[1] - y[0] >= ESCAPE - 1e-9


def test_hidden_smooth_layer_is_refused_in_one_line(tanh_net, y0_max_prop) -> None:
    cex = np.array([[2.0, 1.0]])
    with pytest.raises(UnsupportedActivationError,
                       match=r"cannot repair layer 0 by LP: layer 0 has activation Tanh.*output layer 1"):
        repair_layer(tanh_net, [y0_max_prop], cex, NO_POINTS, 0, RepairConfig(solver="highs"))
    with pytest.raises(UnsupportedActivationError, match="layer 0 has activation Tanh"):
        repair_layer(tanh_net, [y0_max_prop], cex, NO_POINTS, 0, RepairConfig(solver="highs", encoding="milp"))


def test_which_layers_the_fixed_pattern_encoding_covers() -> None:
    relu = random_network([2, 4, 4, 2], seed=0, activation=RELU)
    assert all(fixed_pattern_applies(relu, i) for i in range(3))
    for activation in (TANH, Activation(ActivationKind.LEAKY_RELU, 0.1), Activation(ActivationKind.ELU)):
        smooth = random_network([2, 4, 4, 2], seed=0, activation=activation)
        assert [fixed_pattern_applies(smooth, i) for i in range(3)] == [False, False, True]
