"""Specification of the branch-and-bound search (verirepair.verify.bab).

Oracle: on tiny networks the verdict must equal an exact big-M MILP answer
computed with PuLP + CBC (written here, independent of our bounds code apart
from using plain interval bounds as big-M constants).
"""

from __future__ import annotations

import time

import numpy as np
import pulp
import pytest

from hard_instances import hard_property
from verirepair.network.model import AffineLayer, Network, random_network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.verify import bab
from verirepair.verify.bounds import interval_bounds
from verirepair.verify.result import Verdict, VerifyConfig

#: MILP answers closer to zero than this are too close to call and skipped.
AMBIGUOUS = 1e-5


def milp_best_margin(net: Network, box: Box, poly: HalfSpaces) -> float:
    """Exact ``max over the box of min_i (b_i - a_i y)`` by a big-M MILP (CBC)."""
    prob = pulp.LpProblem("oracle", pulp.LpMaximize)
    x = [pulp.LpVariable(f"x{i}", box.lower[i], box.upper[i]) for i in range(box.dim)]
    ib = interval_bounds(net, box.lower[None], box.upper[None])
    h = x
    for j, layer in enumerate(net.layers):
        lo, hi = ib.pre_lower[j][0], ib.pre_upper[j][0]
        z = [pulp.lpSum(layer.weight[r, c] * h[c] for c in range(len(h))) + layer.bias[r]
             for r in range(layer.out_features)]
        if not layer.relu:
            h = z
            break
        nxt = []
        for r, expr in enumerate(z):
            v = pulp.LpVariable(f"h{j}_{r}", 0.0, max(hi[r], 0.0))
            if lo[r] >= 0:
                prob += v == expr
            elif hi[r] <= 0:
                prob += v == 0
            else:
                a = pulp.LpVariable(f"a{j}_{r}", cat="Binary")
                prob += v >= expr
                prob += v <= expr - lo[r] * (1 - a)
                prob += v <= hi[r] * a
            nxt.append(v)
        h = nxt
    t = pulp.LpVariable("t")
    prob += t
    for row, b in zip(poly.A, poly.b, strict=True):
        prob += t <= b - pulp.lpSum(row[m] * h[m] for m in range(len(h)))
    prob.solve(pulp.PULP_CBC_CMD(msg=False))
    assert pulp.LpStatus[prob.status] == "Optimal" and prob.sol_status == 1
    return float(pulp.value(t))


def milp_violated(net: Network, prop: Property) -> float:
    """Best margin over every (box, polytope) pair: >= 0 iff the property is violated."""
    return max(milp_best_margin(net, box, poly)
               for box in prop.input_boxes for poly in prop.unsafe)


def _random_instance(seed: int) -> tuple[Network, Property]:
    """A 3-8-8-2 network and a property whose threshold sits near the output range edge."""
    rng = np.random.default_rng(seed)
    net = random_network([3, 8, 8, 2], seed=seed)
    centre = rng.uniform(-0.5, 0.5, 3)
    boxes = [Box(centre - 0.4, centre + 0.4)]
    if seed % 3 == 0:     # a union of two boxes
        boxes.append(Box(centre + 0.5, centre + 0.8))
    x = np.vstack([b.sample(rng, 3000) for b in boxes])
    y = net.forward(x)
    polys = []
    for _ in range(1 + seed % 2):          # a disjunction on odd seeds
        A = rng.normal(size=(int(rng.integers(1, 3)), 2))
        scores = (y @ A.T).min(axis=1) if A.shape[0] == 1 else (y @ A.T)[:, 0]
        b = A @ np.zeros(2) + np.quantile(y @ A.T, 0.002, axis=0) - rng.uniform(-0.02, 0.15)
        del scores
        polys.append(HalfSpaces(A, b))
    return net, Property(tuple(boxes), tuple(polys), f"random_{seed}")


def _search(net: Network, prop: Property, **kw) -> bab.SearchOutcome:
    config = VerifyConfig(timeout_s=60.0, **kw)
    return bab.search(net, prop, config, time.perf_counter() + config.timeout_s)


@pytest.mark.parametrize("seed", range(16))
def test_verdict_matches_exact_milp(seed: int) -> None:
    net, prop = _random_instance(seed)
    best = milp_violated(net, prop)
    if abs(best) < AMBIGUOUS:
        pytest.skip(f"MILP margin {best:.2e} too close to zero to call")
    outcome = _search(net, prop)
    expected = Verdict.VIOLATED if best > 0 else Verdict.HOLDS
    assert outcome.verdict is expected, f"MILP margin {best}"
    if expected is Verdict.VIOLATED:
        cex = outcome.counterexamples[0]
        assert cex.confirmed and cex.score >= 0.0 and prop.in_region(cex.x[None])[0]


def test_both_verdicts_occur_in_the_random_suite() -> None:
    margins = [milp_violated(*_random_instance(seed)) for seed in range(16)]
    assert any(m > AMBIGUOUS for m in margins) and any(m < -AMBIGUOUS for m in margins)


@pytest.mark.parametrize("seed", [1, 4, 6])
def test_lp_refinement_agrees_and_counts_lp_calls(seed: int) -> None:
    net, prop = _random_instance(seed)
    plain = _search(net, prop)
    with_lp = _search(net, prop, use_lp=True)
    assert with_lp.verdict is plain.verdict
    if plain.verdict is Verdict.HOLDS and plain.splits > 0:
        assert with_lp.lp_calls > 0
        assert with_lp.subproblems <= plain.subproblems


def test_toy_relu_by_hand() -> None:
    """y = relu(x) on [-1, 1]: y >= 1.5 is unreachable, y >= 0.5 is reached for x >= 0.5."""
    net = Network((AffineLayer([[1.0]], [0.0], True), AffineLayer([[1.0]], [0.0], False)))
    box = (Box([-1.0], [1.0]),)
    safe = Property(box, (HalfSpaces([[-1.0]], [-1.5]),))
    unsafe = Property(box, (HalfSpaces([[-1.0]], [-0.5]),))
    assert _search(net, safe).verdict is Verdict.HOLDS
    outcome = _search(net, unsafe)
    assert outcome.verdict is Verdict.VIOLATED
    assert outcome.counterexamples[0].x[0] >= 0.5


def test_boundary_touching_property_is_violated_with_closed_semantics() -> None:
    """max y = 1 exactly at x = 1; y >= 1 (closed) is violated at the corner."""
    net = Network((AffineLayer([[1.0]], [0.0], True), AffineLayer([[1.0]], [0.0], False)))
    prop = Property((Box([-1.0], [1.0]),), (HalfSpaces([[-1.0]], [-1.0]),))
    outcome = _search(net, prop)
    assert outcome.verdict is Verdict.VIOLATED
    assert outcome.counterexamples[0].x[0] == 1.0


def test_timeout_is_honoured() -> None:
    net, prop = hard_property()
    config = VerifyConfig(timeout_s=0.5, batch_size=64)
    start = time.perf_counter()
    outcome = bab.search(net, prop, config, start + config.timeout_s)
    elapsed = time.perf_counter() - start
    assert outcome.verdict is Verdict.TIMEOUT
    assert elapsed < config.timeout_s + 0.5
    assert outcome.subproblems > 0 and "open sub-boxes" in outcome.message


def test_split_prefers_the_influential_dimension() -> None:
    """Only input 0 matters: every split goes along dimension 0."""
    net = Network((AffineLayer([[3.0, 0.0], [-2.0, 0.0]], [0.1, 0.2], True),
                   AffineLayer([[1.0, 1.0]], [0.0], False)))
    lower, upper = np.array([[-1.0, -1.0]]), np.array([[1.0, 1.0]])
    ib = interval_bounds(net, lower, upper)
    smear = bab.smear_scores(net, np.array([[[-1.0]]]), np.ones((1, 1), bool),
                             list(ib.pre_lower), list(ib.pre_upper), lower, upper)
    assert smear.shape == (1, 2) and smear[0, 0] > 0.0 and smear[0, 1] == 0.0


def test_output_relu_and_linear_hidden_layer_are_handled_soundly() -> None:
    """A net ending in a ReLU, with a linear hidden layer: verdicts match dense sampling."""
    rng = np.random.default_rng(0)
    layers = [AffineLayer(rng.normal(size=(6, 2)), rng.normal(size=6) * 0.1, True),
              AffineLayer(rng.normal(size=(6, 6)) / 2, rng.normal(size=6) * 0.1, False),
              AffineLayer(rng.normal(size=(2, 6)) / 2, rng.normal(size=2) * 0.1, True)]
    net = Network(tuple(layers))
    box = Box(-np.ones(2), np.ones(2))
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 401), np.linspace(-1, 1, 401)), -1)
    y = net.forward(grid.reshape(-1, 2))
    assert np.all(y >= 0.0)
    top = float(y[:, 0].max())
    for threshold, expected in ((top + 0.05, Verdict.HOLDS), (top - 0.05, Verdict.VIOLATED)):
        prop = Property((box,), (HalfSpaces([[-1.0, 0.0]], [-threshold]),))
        assert _search(net, prop).verdict is expected
        assert _search(net, prop, use_lp=True).verdict is expected
    # y1 <= -0.01 is impossible after the output ReLU (a linear-output reading would miss it)
    below = Property((box,), (HalfSpaces([[0.0, 1.0]], [-0.01]),))
    assert _search(net, below).verdict is Verdict.HOLDS


def test_row_sums_exclude_a_conjunction_no_single_row_excludes() -> None:
    """y = (x, -x) on [-1, 1]; unsafe: y0 <= -0.5 and y1 <= -0.5 (empty).

    Each row alone is reachable, but (y0 + y1) = 0 > -1 = b0 + b1 proves the
    conjunction empty on the root box, with no split.
    """
    net = Network((AffineLayer([[1.0], [-1.0]], [0.0, 0.0], False),))
    prop = Property((Box([-1.0], [1.0]),), (HalfSpaces(np.eye(2), [-0.5, -0.5]),))
    outcome = _search(net, prop)
    assert outcome.verdict is Verdict.HOLDS
    assert outcome.subproblems == 1 and outcome.splits == 0


def test_measure_zero_unsafe_set_gives_unknown_not_a_loop() -> None:
    """y = x - 1/3 on [0, 1]; unsafe: y == 0 (two rows).  Only x = 1/3 violates,
    which no dyadic split point or box corner hits: the search must stop at
    MIN_BOX_WIDTH with UNKNOWN instead of claiming HOLDS or running forever."""
    net = Network((AffineLayer([[1.0]], [-1.0 / 3.0], False),))
    prop = Property((Box([0.0], [1.0]),), (HalfSpaces([[1.0], [-1.0]], [0.0, 0.0]),))
    outcome = _search(net, prop)
    assert outcome.verdict is Verdict.UNKNOWN
    assert "narrower than" in outcome.message
    assert outcome.max_depth >= 30
