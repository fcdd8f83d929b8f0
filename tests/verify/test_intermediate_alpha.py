"""Specification of the optimised intermediate bounds and of the search that uses them.

Oracles: an exact big-M MILP (:mod:`milp_oracle`, HiGHS) for the minimum and
maximum of every hidden unit over the box and for the property's exact
margin; sampled pre-activations (must lie inside every bound); the plain
CROWN bounds the optimised ones must never be looser than.
"""

from __future__ import annotations

import numpy as np
import pytest

from milp_oracle import exact_min
from verirepair.network.model import random_network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.verify import Verdict, VerifyConfig, bab, verify
from verirepair.verify.bounds import intermediate_bounds, with_linear_output
from verirepair.verify.intermediate_alpha import _truncated, tighten_intermediate
from verirepair.verify.search_state import SpecRows


def _instance(seed: int, sizes: tuple[int, ...] = (3, 10, 10, 10, 3), radius: float = 0.5):
    net = with_linear_output(random_network(list(sizes), seed=seed, scale=1.5))
    centre = np.random.default_rng(seed).uniform(-1, 1, sizes[0])
    return net, centre - radius, centre + radius


def _pre_activations(net, x: np.ndarray) -> list[np.ndarray]:
    h, out = x, []
    for layer in net.layers:
        z = h @ layer.weight.T + layer.bias
        out.append(z)
        h = layer.activate(z)
    return out


@pytest.mark.parametrize("seed", range(2))
def test_tightened_bounds_contain_samples_and_the_exact_range_and_are_never_looser(seed: int) -> None:
    net, lower, upper = _instance(seed)
    pre_l, pre_u = intermediate_bounds(net, lower[None], upper[None], "backward")
    new_l, new_u = tighten_intermediate(net, lower[None], upper[None], pre_l, pre_u, steps=8)
    x = np.random.default_rng(seed).uniform(lower, upper, size=(4000, lower.shape[0]))
    z = _pre_activations(net, x)
    for j in range(net.n_layers):
        assert np.all(new_l[j] >= pre_l[j]) and np.all(new_u[j] <= pre_u[j])
        assert np.all(z[j] >= new_l[j][0] - 1e-9) and np.all(z[j] <= new_u[j][0] + 1e-9)
    # exact range of the last hidden layer's units, the widest first (MILP on the truncated net)
    j = net.n_layers - 2
    sub = _truncated(net, j)
    for i in np.argsort(new_l[j][0] - new_u[j][0])[:5]:
        c = np.zeros(net.layers[j].out_features)
        c[i] = 1.0
        low, _ = exact_min(sub, lower, upper, c)
        high, _ = exact_min(sub, lower, upper, -c)
        assert new_l[j][0, i] <= low + 1e-7 and new_u[j][0, i] >= -high - 1e-7


def test_optimised_slopes_tighten_deep_layers_of_some_network() -> None:
    """Over a few random networks the deepest hidden layer gets strictly narrower somewhere."""
    gained = 0.0
    for seed in range(4):
        net, lower, upper = _instance(seed, (4, 16, 16, 16, 16, 3), radius=0.4)
        pre_l, pre_u = intermediate_bounds(net, lower[None], upper[None], "backward")
        new_l, new_u = tighten_intermediate(net, lower[None], upper[None], pre_l, pre_u)
        j = net.n_layers - 2
        gained += float(((pre_u[j] - pre_l[j]) - (new_u[j] - new_l[j])).sum())
        assert np.all(new_u[0] == pre_u[0]) and np.all(new_l[0] == pre_l[0])    # layer 0 is exact
    assert gained > 0.1


def test_a_batch_gives_each_box_its_own_bounds() -> None:
    """Boxes with different unstable sets in one call equal the boxes bounded one at a time."""
    net, lower, upper = _instance(1, (3, 12, 12, 3))
    lows = np.stack([lower, lower + 0.3, lower - 0.2])
    ups = np.stack([upper, upper + 0.1, upper - 0.4])
    pre_l, pre_u = intermediate_bounds(net, lows, ups, "backward")
    both_l, both_u = tighten_intermediate(net, lows, ups, pre_l, pre_u, steps=4)
    for b in range(3):
        one_l, one_u = tighten_intermediate(net, lows[b:b + 1], ups[b:b + 1], [a[b:b + 1] for a in pre_l],
                                            [a[b:b + 1] for a in pre_u], steps=4)
        for j in range(net.n_layers):
            np.testing.assert_allclose(both_l[j][b], one_l[j][0], atol=1e-12)
            np.testing.assert_allclose(both_u[j][b], one_u[j][0], atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_search_with_tightened_bounds_agrees_with_the_exact_milp(seed: int, monkeypatch) -> None:
    """Unsafe: y_1 - y_0 >= t.  Just above the MILP's exact maximum holds, just below is violated."""
    monkeypatch.setattr(bab, "INTERMEDIATE_ALPHA_AFTER", 0)
    calls = []
    real = bab.tighten_intermediate
    monkeypatch.setattr(bab, "tighten_intermediate", lambda *a, **k: calls.append(1) or real(*a, **k))
    net, lower, upper = _instance(seed, (3, 12, 12, 12, 3), radius=0.6)
    top = -exact_min(net, lower, upper, np.array([1.0, -1.0, 0.0]))[0]
    for t, expected in ((top + 0.01 * (1 + abs(top)), Verdict.HOLDS),
                        (top - 0.01 * (1 + abs(top)), Verdict.VIOLATED)):
        prop = Property((Box(lower, upper),), (HalfSpaces(np.array([[1.0, -1.0, 0.0]]), np.array([-t])),))
        result = verify(net, prop, VerifyConfig(timeout_s=20.0, falsify_samples=20, pgd_steps=3),
                        engine="own-input")
        assert result.verdict is expected, (t, top, result.message)
        if expected is Verdict.VIOLATED:
            x = result.counterexamples[0].x
            y = net.forward(x[None])[0]
            assert y[1] - y[0] >= t and prop.in_region(x[None])[0]
    assert calls, "the tightening was never used"


def test_a_certificate_search_keeps_crown_intermediate_bounds(monkeypatch) -> None:
    """With a recorder (a certificate) the search must not use bounds the checker cannot recompute."""
    from verirepair.verify.certificate_recorder import TreeRecorder

    monkeypatch.setattr(bab, "INTERMEDIATE_ALPHA_AFTER", 0)

    def refuse(*args, **kwargs):
        raise AssertionError("tightened intermediate bounds used in a certificate search")

    monkeypatch.setattr(bab, "tighten_intermediate", refuse)
    net, lower, upper = _instance(2, (3, 12, 12, 12, 3), radius=0.6)
    top = -exact_min(net, lower, upper, np.array([1.0, -1.0, 0.0]))[0]
    prop = Property((Box(lower, upper),), (HalfSpaces(np.array([[1.0, -1.0, 0.0]]),
                                                      np.array([-(top + 0.05 * (1 + abs(top)))])),))
    import time

    outcome = bab.search(net, prop, VerifyConfig(timeout_s=20.0), time.perf_counter() + 20.0,
                         TreeRecorder(net, SpecRows.of(prop)))
    assert outcome.verdict is Verdict.HOLDS


def test_the_deadline_holds_with_tightening_from_the_first_box(monkeypatch) -> None:
    """A tightened box costs about ten plain ones; the chunks keep the budget anyway."""
    import time

    from hard_instances import hard_property

    monkeypatch.setattr(bab, "INTERMEDIATE_ALPHA_AFTER", 0)
    net, prop = hard_property()
    # 256 input boxes: the first batch is all of them, tens of seconds of tightening in one piece
    edges = np.linspace(-1.0, 1.0, 5)
    cells = [np.array(c) for c in np.ndindex(4, 4, 4, 2, 2)]
    boxes = tuple(Box(np.array([edges[i] if k < 3 else -1.0 + i for k, i in enumerate(c)]),
                      np.array([edges[i + 1] if k < 3 else float(i) for k, i in enumerate(c)]))
                  for c in cells)
    prop = Property(boxes, prop.unsafe)
    start = time.perf_counter()
    outcome = bab.search(net, prop, VerifyConfig(timeout_s=1.5), start + 1.5)
    elapsed = time.perf_counter() - start
    assert outcome.verdict is Verdict.TIMEOUT
    assert elapsed < 1.5 + 1.5, elapsed
