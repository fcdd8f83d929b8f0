"""classify_repair: targets met with the margin, keep points kept, the change minimal."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from verirepair.network.model import AffineLayer, Network, random_network
from verirepair.repair import RepairConfig, RepairStatus
from verirepair.tasks.classify_repair import class_properties, repair_to_targets


def _identity_net() -> Network:
    """y = relu(x): class 0 when x0 > x1."""
    return Network((AffineLayer(np.eye(2), np.zeros(2), True), AffineLayer(np.eye(2), np.zeros(2), False)),
                   "identity")


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_hand_computed_minimum(solver: str) -> None:
    # Fix (1, 0) -> class 1 with margin 0.5: y1 - y0 goes from -1 to 0.5, each unit of
    # L1 on W[1,0], W[0,0], b1, b0 buys one unit, so the minimum is 1.5.  The keep
    # point (0, 0) (tie y = (0, 0), class 0, gap 0) forbids b1 - b0 > 0, so the whole
    # change must sit on the weights from hidden unit 0.
    net = _identity_net()
    out, stats = repair_to_targets(net, np.array([[1.0, 0.0]]), np.array([1]),
                                   np.array([[0.0, 0.0], [0.0, 1.0]]), np.array([0, 1]),
                                   layer_index=1, margin=0.5, config=RepairConfig(solver=solver))
    assert stats.status is RepairStatus.REPAIRED
    assert stats.l1 == pytest.approx(1.5, abs=1e-7)
    y = out.forward(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))
    assert y[0, 1] - y[0, 0] >= 0.5 - 1e-9
    assert np.argmax(y[1]) == 0 and np.argmax(y[2]) == 1
    assert stats.patch is not None
    assert stats.patch.delta_bias[1] - stats.patch.delta_bias[0] <= 1e-9
    assert stats.n_fix_met == 1 and stats.n_keep_kept == 2 and stats.min_fix_margin >= 0.5 - 1e-9


def _oracle_l1(net: Network, fix_x: np.ndarray, fix_t: np.ndarray, keep_x: np.ndarray,
               margin: float, preserve_margin: float) -> float:
    """The exact L1-minimal change of the output layer, as an independent scipy LP."""
    last = net.layers[-1]
    h_fix = net.forward_all(fix_x)[-2]
    h_keep = net.forward_all(keep_x)[-2]
    n_out, n_h = last.weight.shape
    n_var = n_out * (n_h + 1)
    rows, rhs = [], []

    def add(h: np.ndarray, y: np.ndarray, c: int, j: int, level: float) -> None:
        # (y_c - y_j) + (dW_c - dW_j) . h + (db_c - db_j) >= level
        a = np.zeros(n_var)
        aug = np.append(h, 1.0)
        a[c * (n_h + 1):(c + 1) * (n_h + 1)] += aug
        a[j * (n_h + 1):(j + 1) * (n_h + 1)] -= aug
        rows.append(-np.concatenate([a, -a]))
        rhs.append(-(level - (y[c] - y[j])))

    for h, t in zip(h_fix, fix_t, strict=True):
        y = last.weight @ h + last.bias
        for j in range(n_out):
            if j != t:
                add(h, y, int(t), j, margin)
    for h in h_keep:
        y = last.weight @ h + last.bias
        c = int(np.argmax(y))
        gap = np.sort(y)[-1] - np.sort(y)[-2]
        for j in range(n_out):
            if j != c:
                add(h, y, c, j, min(preserve_margin, gap / 2))
    res = linprog(np.ones(2 * n_var), A_ub=np.array(rows), b_ub=np.array(rhs), bounds=(0, 10), method="highs")
    assert res.status == 0
    return float(res.fun)


def test_output_layer_repair_equals_exact_lp() -> None:
    net = random_network([6, 8, 4], seed=3)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (17, 6))
    cls = np.argmax(net.forward(x), axis=1)
    fix_x, keep_x = x[:5], x[5:]
    fix_t = (cls[:5] + 1) % 4
    config = RepairConfig(solver="highs", preserve_margin=1e-3)
    out, stats = repair_to_targets(net, fix_x, fix_t, keep_x, cls[5:], layer_index=1, margin=0.2, config=config)
    assert stats.status is RepairStatus.REPAIRED
    assert stats.l1 == pytest.approx(_oracle_l1(net, fix_x, fix_t, keep_x, 0.2, 1e-3), rel=1e-6, abs=1e-7)
    assert np.array_equal(np.argmax(out.forward(fix_x), axis=1), fix_t)
    assert np.array_equal(np.argmax(out.forward(keep_x), axis=1), cls[5:])


def test_hidden_layer_and_iteration_on_fresh_failures() -> None:
    net = random_network([6, 12, 8, 3], seed=1)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (300, 6))
    cls = np.argmax(net.forward(x), axis=1)
    fix = np.flatnonzero(cls == 0)[:30]
    keep = np.setdiff1d(np.arange(300), fix)[:100]
    out, stats = repair_to_targets(net, x[fix], np.full(fix.size, 1), x[keep], cls[keep], layer_index=1,
                                   margin=0.05, config=RepairConfig(solver="highs"), fix_batch=5,
                                   max_rounds=10)
    assert stats.status is RepairStatus.REPAIRED, stats.message
    assert stats.rounds >= 1 and stats.n_fix_active <= fix.size
    assert np.all(np.argmax(out.forward(x[fix]), axis=1) == 1)
    assert np.array_equal(np.argmax(out.forward(x[keep]), axis=1), cls[keep])
    assert stats.patch is not None and stats.patch.layer_index == 1


def test_neurons_restrict_the_change() -> None:
    net = random_network([4, 6, 3], seed=5)
    x = np.random.default_rng(1).uniform(-1, 1, (20, 4))
    cls = np.argmax(net.forward(x), axis=1)
    _, stats = repair_to_targets(net, x[:2], (cls[:2] + 1) % 3, x[2:], cls[2:], layer_index=0, margin=0.01,
                                 config=RepairConfig(solver="highs"), neurons=(1, 4))
    if stats.patch is not None:
        assert set(stats.patch.changed_units) <= {1, 4}
    else:
        assert stats.status is RepairStatus.INFEASIBLE


def test_mismatched_keep_points_are_dropped_and_counted() -> None:
    net = _identity_net()
    _, stats = repair_to_targets(net, np.array([[1.0, 0.0]]), np.array([1]), np.array([[0.0, 2.0]]),
                                 np.array([0]), layer_index=1, margin=0.1, config=RepairConfig(solver="highs"))
    assert stats.n_keep_dropped == 1 and stats.n_keep_kept == 0


def test_not_needed_when_targets_already_met() -> None:
    net = _identity_net()
    out, stats = repair_to_targets(net, np.array([[2.0, 0.0]]), np.array([0]), np.zeros((0, 2)),
                                   np.zeros(0, int), layer_index=1, margin=0.5)
    assert stats.status is RepairStatus.NOT_NEEDED and out is net


def test_class_properties_semantics() -> None:
    props = class_properties(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1, 1]), 3)
    assert len(props) == 1 and len(props[0].unsafe) == 2
    assert props[0].is_violated_by(np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.2], [0.0, 1.0, 1.0]])).tolist() == \
        [True, False, True]


@pytest.mark.parametrize(("fix_x", "fix_t", "match"), [
    (np.zeros((1, 3)), np.array([1]), "fix_x must have shape"),
    (np.array([[np.nan, 0.0]]), np.array([1]), "NaN or infinite"),
    (np.zeros((1, 2)), np.array([2]), "must lie in 0..1"),
    (np.zeros((1, 2)), np.array([0.5]), "integer classes"),
    (np.array([[0.0, 1.0]]), np.array([0]), "also a keep point"),
])
def test_bad_inputs(fix_x: np.ndarray, fix_t: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        repair_to_targets(_identity_net(), fix_x, fix_t, np.array([[0.0, 1.0]]), np.array([1]), layer_index=1,
                          margin=0.1)


def test_bad_margin_and_layer() -> None:
    with pytest.raises(ValueError, match="margin"):
        repair_to_targets(_identity_net(), np.zeros((1, 2)), np.array([1]), np.zeros((0, 2)), np.zeros(0, int),
                          layer_index=1, margin=0.0)
    with pytest.raises(ValueError, match="layer_index"):
        repair_to_targets(_identity_net(), np.zeros((1, 2)), np.array([1]), np.zeros((0, 2)), np.zeros(0, int),
                          layer_index=5, margin=0.1)
