"""The ``cover`` strategy: an output-layer change the LP itself proves on covers of the regions.

Specifications: on a one-input network the minimal change is computed by hand
(a bias shift of exactly 0.5 plus the margin); the two lower-bound forms are
checked against sampled outputs for arbitrary (not only the natural) splits
of the coefficients, on random networks and random changes; a repaired random
network is proven by the complete verifier; refining the cover never makes the
LP worse; bad networks get one clear line.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from verirepair.network.model import AffineLayer, Network, random_network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.repair.config import RepairConfig, RepairStatus
from verirepair.repair.cover import _COVER_CACHE, MAX_ROW_COMBOS, CoverProblem, _refine, cover_repair
from verirepair.repair.patch import apply_patch
from verirepair.repair.strategy import get_strategy
from verirepair.repair.strategy_config import StrategyConfig
from verirepair.repair.strategy_context import StrategyContext
from verirepair.solvers.registry import get_backend
from verirepair.tolerances import BOUND_TOL
from verirepair.verify import verify
from verirepair.verify.result import Verdict, VerifyConfig

HIGHS = RepairConfig(solver="highs")


def _abs_network() -> Network:
    """h = (relu(x), relu(-x)), y0 = h0 + h1 = |x|, y1 = 0.5 on x in [-1, 1]."""
    return Network((AffineLayer(np.array([[1.0], [-1.0]]), np.zeros(2), relu=True),
                    AffineLayer(np.array([[1.0, 1.0], [0.0, 0.0]]), np.array([0.0, 0.5]))), "abs")


def _abs_prop() -> Property:
    """Unsafe iff y0 <= y1 (the row y0 - y1 <= 0... written as -y0 + y1 >= 0): violated on |x| <= 0.5."""
    return Property((Box(np.array([-1.0]), np.array([1.0])),),
                    (HalfSpaces(np.array([[1.0, -1.0]]), np.zeros(1)),), "abs_above_half")


def _context(network, props, margins, hard, pool=None, preserve=None, seconds=60.0, decision="argmin"):
    d = network.n_inputs
    return StrategyContext(network, tuple(props), tuple(margins),
                           np.zeros((0, d)) if pool is None else pool,
                           np.zeros((0, d)) if preserve is None else preserve, decision,
                           StrategyConfig(name="cover"), 0, time.perf_counter() + seconds,
                           lambda stage, info: None, lambda: (None, None), HIGHS, tuple(hard))


def test_the_minimal_change_is_the_hand_computed_bias_shift():
    """At x = 0 both features are 0, so only the biases can fix y0 - y1 = -0.5: the cheapest
    proven change raises y0's bias (or lowers y1's) by 0.5 plus the margin times ||(1, -1)||."""
    network, prop = _abs_network(), _abs_prop()
    margin = 0.01
    outcome = cover_repair(_context(network, [prop], [margin], [True]))
    result = outcome.result
    assert result.status is RepairStatus.REPAIRED, result.message
    assert outcome.layer_index == 1
    expected = 0.5 + margin * np.sqrt(2.0) + BOUND_TOL
    assert result.objective == pytest.approx(expected, abs=1e-6)
    repaired = apply_patch(network, result.patch)
    x = np.linspace(-1, 1, 2001)[:, None]
    y = repaired.forward(x)
    assert np.min(y[:, 0] - y[:, 1]) >= margin * np.sqrt(2.0) - 1e-9
    assert verify(repaired, [prop], VerifyConfig(timeout_s=30)).verdict is Verdict.HOLDS
    assert "proven by construction on a cover" in result.message


def test_without_a_hard_property_it_is_the_layer_lp():
    """Nothing left undecided: the loop's layer LP (over its ranked layers) answers, untouched."""
    network, prop = _abs_network(), _abs_prop()
    sentinel = object()
    context = _context(network, [prop], [0.01], [False])
    context = StrategyContext(**{**{f: getattr(context, f) for f in context.__slots__},
                                 "solve_lp": lambda: (sentinel, 7)})
    outcome = cover_repair(context)
    assert outcome.result is sentinel and outcome.layer_index == 7


def test_the_properties_not_flagged_keep_only_their_pool_points():
    """A hard property that holds by far needs nothing; the other one only its pool points,
    so the change is the hand-computed 0.1 + margin and the verifier still finds a violation."""
    network, prop = _abs_network(), _abs_prop()
    never = Property(prop.input_boxes, (HalfSpaces(np.array([[1.0, -1.0]]), np.array([-10.0])),), "never")
    pool = np.array([[0.4], [-0.45]])  # |x| <= 0.5: violating; the worst needs 0.1 more
    outcome = cover_repair(_context(network, [never, prop], [0.01, 0.01], [True, False], pool=pool))
    assert outcome.result.status is RepairStatus.REPAIRED
    assert outcome.result.objective == pytest.approx(0.1 + 0.01 * np.sqrt(2.0) + BOUND_TOL, abs=1e-6)
    repaired = apply_patch(network, outcome.result.patch)
    assert verify(repaired, [prop], VerifyConfig(timeout_s=30)).verdict is Verdict.VIOLATED
    assert verify(repaired, [never], VerifyConfig(timeout_s=30)).verdict is Verdict.HOLDS


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    network = random_network([3, 8, 8, 3], seed=seed)
    lower, upper = -np.ones(3), np.ones(3)
    x = rng.uniform(lower, upper, (4000, 3))
    y = network.forward(x)
    diff = y[:, 0] - y[:, 1]
    threshold = float(np.quantile(diff, 0.3))  # violated on about 30% of the region
    prop = Property((Box(lower, upper),),
                    (HalfSpaces(np.array([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]]),
                                np.array([threshold, threshold + 5.0])),), f"random{seed}")
    return network, prop, rng


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_both_bound_forms_are_below_every_sampled_value_for_any_split(seed):
    """Soundness oracle: the feature and shift bounds of every row, with a random change and
    splits p - q = c', u - v = C D carrying an arbitrary common excess, never exceed the
    sampled row values on any box of the cover."""
    network, prop, rng = _random_case(seed)
    problem = CoverProblem(network, (prop,), (0.0,), (True,), np.zeros((0, 3)), np.zeros((0, 3)),
                           "argmin", HIGHS)
    problem.x_delta = rng.normal(0, 0.1, problem.n_delta)
    parts = problem.natural_parts(0)
    for plus, minus in (("p", "q"), ("u", "v")):  # a non-natural split: both parts raised alike
        excess = rng.uniform(0, 0.5, parts[plus].shape)
        parts[plus], parts[minus] = parts[plus] + excess, parts[minus] + excess
    cover = problem.covers[0]
    feat, shift = problem._row_bounds(cover, parts)
    D, e = problem.split_delta()
    repaired = network.replace_layer(network.n_layers - 1, network.layers[-1].weight + D,
                                     network.layers[-1].bias + e)
    spec = problem.specs[0]
    for box in rng.choice(len(cover), size=12, replace=False):
        x = rng.uniform(cover.lower[box], cover.upper[box], (500, 3))
        values = repaired.forward(x) @ spec.C.T - spec.b[None, :]
        assert np.all(values.min(axis=0) >= feat[box] - 1e-9)
        assert np.all(values.min(axis=0) >= shift[box] - 1e-9)


@pytest.mark.parametrize("seed", [0, 3])
def test_a_repaired_random_network_is_proven_by_the_complete_verifier(seed):
    network, prop, rng = _random_case(seed)
    assert verify(network, [prop], VerifyConfig(timeout_s=30)).verdict is Verdict.VIOLATED
    preserve = rng.uniform(-1, 1, (300, 3))
    outcome = cover_repair(_context(network, [prop], [1e-3], [True], preserve=preserve))
    assert outcome.result.status is RepairStatus.REPAIRED, outcome.result.message
    repaired = apply_patch(network, outcome.result.patch)
    assert verify(repaired, [prop], VerifyConfig(timeout_s=60)).verdict is Verdict.HOLDS
    # Decisions of the preservation points outside the unsafe set are kept (hard rows).
    if "dropped" not in outcome.result.message:
        assert outcome.result.stats.preserve_agreement == pytest.approx(1.0)


def test_refining_the_cover_never_makes_the_lp_worse():
    network, prop, _ = _random_case(1)
    problem = CoverProblem(network, (prop,), (1e-3,), (True,), np.zeros((0, 3)), np.zeros((0, 3)),
                           "argmin", HIGHS)
    backend = get_backend("highs")
    objectives = []
    for _ in range(4):
        status, objective, *_ = problem.solve(backend, time.perf_counter() + 60)
        assert status.has_solution
        objectives.append(objective)
        assert _refine(problem, 64) > 0
    assert all(b <= a + 1e-7 for a, b in zip(objectives, objectives[1:], strict=False)), objectives
    assert objectives[-1] < objectives[0]  # and it helps: the first cover is coarse


def test_a_network_with_an_activation_on_its_outputs_is_refused_in_one_line():
    network = Network((AffineLayer(np.array([[1.0], [-1.0]]), np.zeros(2), relu=True),
                       AffineLayer(np.eye(2), np.zeros(2), relu=True)), "relu_out")
    outcome = get_strategy("cover")(_context(network, [_abs_prop()], [0.01], [True]))
    assert outcome.result.status is RepairStatus.SOLVER_FAILED and outcome.layer_index is None
    assert "output layer" in outcome.result.message and "\n" not in outcome.result.message


def test_margins_and_flags_must_match_the_properties():
    with pytest.raises(ValueError, match="one entry per property"):
        CoverProblem(_abs_network(), (_abs_prop(),), (0.01, 0.02), (True,), np.zeros((0, 1)),
                     np.zeros((0, 1)), "argmin", HIGHS)


def test_an_impossible_repair_is_infeasible_not_a_patch():
    """max_delta 0.1 cannot buy the 0.5 the hand-computed case needs."""
    network, prop = _abs_network(), _abs_prop()
    context = _context(network, [prop], [0.01], [True])
    context = StrategyContext(**{**{f: getattr(context, f) for f in context.__slots__},
                                 "repair": RepairConfig(solver="highs", max_delta=0.1)})
    outcome = cover_repair(context)
    assert outcome.result.status is RepairStatus.INFEASIBLE and outcome.result.patch is None


def test_a_later_call_on_the_same_network_goes_on_from_the_refined_cover():
    """The loop starts every attempt from the original network: the second call reuses the
    first call's cover (never one of another network, and re-indexed to its own property list)."""
    network, prop, _ = _random_case(2)
    other_prop = Property(prop.input_boxes, (HalfSpaces(np.array([[0.0, 1.0, -1.0]]), np.array([-50.0])),),
                          "never")
    first = cover_repair(_context(network, [prop], [1e-3], [True], seconds=20))
    problem = CoverProblem(network, (other_prop, prop), (1e-3, 1e-3), (True, True), np.zeros((0, 3)),
                           np.zeros((0, 3)), "argmin", HIGHS)
    assert len(problem.covers[1]) > 64 and problem.covers[1].prop_index == 1
    assert len(problem.covers[0]) == 64  # a fresh cover for the property seen for the first time
    fresh = CoverProblem(random_network([3, 8, 8, 3], seed=9), (prop,), (1e-3,), (True,), np.zeros((0, 3)),
                         np.zeros((0, 3)), "argmin", HIGHS)
    assert len(fresh.covers[0]) == 64
    assert first.result.status is RepairStatus.REPAIRED


def test_when_the_cover_lp_fails_the_layer_lp_answers_and_says_so():
    """An output activation rules the cover out; the loop's layer LP is asked instead."""
    network = Network((AffineLayer(np.array([[1.0], [-1.0]]), np.zeros(2), relu=True),
                       AffineLayer(np.eye(2), np.zeros(2), relu=True)), "relu_out")
    context = _context(network, [_abs_prop()], [0.01], [True])
    from verirepair.repair.config import RepairResult, RepairStats

    answer = RepairResult(RepairStatus.REPAIRED, None, 0.5, RepairStats(solver="highs", solver_status="optimal"),
                          "layer 0 repaired")
    context = StrategyContext(**{**{f: getattr(context, f) for f in context.__slots__},
                                 "solve_lp": lambda: (answer, 0)})
    outcome = cover_repair(context)
    assert outcome.layer_index == 0 and outcome.result.objective == 0.5
    assert outcome.result.message.startswith("cover not usable (the cover strategy repairs the output layer")
    assert outcome.result.message.endswith("layer LP: layer 0 repaired")


def test_the_layer_lp_is_offered_in_the_first_hard_round_and_while_shrinking_only_after_its_proof():
    """The first round with a new hard set returns the layer LP's candidate when it is smaller; later
    rounds are the cover's.  The shrink phase starts from the last round's candidate: if that was the
    layer LP's (after a fallback), a smaller layer-LP candidate is offered on every shrink call; if it
    was the cover's, the cover answers."""
    from verirepair.repair.config import RepairResult, RepairStats

    cheap = RepairResult(RepairStatus.REPAIRED, None, 0.01, RepairStats(solver="highs", solver_status="optimal"),
                         "layer 1 repaired")

    def run(network, lp_answer, shrink, max_delta=10.0):
        base = _context(network, [_abs_prop()], [0.01], [True])
        return cover_repair(StrategyContext(**{**{f: getattr(base, f) for f in base.__slots__},
                                               "solve_lp": lambda: (lp_answer, 1), "shrink": shrink,
                                               "repair": RepairConfig(solver="highs", max_delta=max_delta)}))

    network = _abs_network()
    first = run(network, cheap, False).result           # first round with this hard set: the smaller LP
    assert first.objective == 0.01 and "tried first (once for these hard properties)" in first.message
    assert "proven by construction" in run(network, cheap, False).result.message   # later rounds: the cover
    assert "proven by construction" in run(network, cheap, True).result.message    # proven one was the cover's
    costly = RepairResult(RepairStatus.REPAIRED, None, 5.0, RepairStats(solver="highs", solver_status="optimal"),
                          "layer 1 repaired")
    assert "proven by construction" in run(_abs_network(), costly, False).result.message  # larger: not offered
    other = _abs_network()
    fallback = run(other, cheap, False, max_delta=0.1)        # the cover LP is infeasible: the layer LP answers
    assert fallback.result.objective == 0.01 and fallback.result.message.startswith("cover not usable")
    for _ in range(2):
        offered = run(other, cheap, True).result
        assert offered.objective == 0.01 and "while shrinking margins" in offered.message


# -- the row search: which row each polytope uses on all of its boxes ---------------------------

def _two_polytope_case(seed: int):
    """Outputs y0..y4; unsafe iff y3 or y4 is the smallest of y0..y2 and itself (ACAS Xu phi7's form),
    thresholds set so that the original network violates it on part of the region."""
    rng = np.random.default_rng(seed)
    network = random_network([3, 8, 8, 5], seed=seed)
    lower, upper = -np.ones(3), np.ones(3)
    y = network.forward(rng.uniform(lower, upper, (4000, 3)))
    polys = []
    for target in (3, 4):
        A = np.zeros((3, 5))
        A[:, target] = 1.0
        A[[0, 1, 2], [0, 1, 2]] = -1.0
        gap = float(np.quantile((y[:, [target]] - y[:, :3]).max(axis=1), 0.2))
        polys.append(HalfSpaces(A, np.full(3, gap)))
    return network, Property((Box(lower, upper),), tuple(polys), f"two_polytopes{seed}"), rng


def _forced_objective(network, prop, assignment):
    problem = CoverProblem(network, (prop,), (1e-3,), (True,), np.zeros((0, 3)), np.zeros((0, 3)),
                           "argmin", HIGHS)
    problem.forced[0] = np.array(assignment)
    status, objective, *_ = problem.solve(get_backend("highs"), time.perf_counter() + 60)
    assert status.has_solution
    return objective


@pytest.mark.parametrize("seed", [0, 1])
def test_the_row_search_is_no_worse_than_any_assignment_of_rows(seed):
    """With few assignments all are tried: the search's change is at most the smallest change of
    every (polytope -> row, or each box its own) assignment, each solved on its own."""
    _COVER_CACHE.clear()
    network, prop, _ = _two_polytope_case(seed)
    problem = CoverProblem(network, (prop,), (1e-3,), (True,), np.zeros((0, 3)), np.zeros((0, 3)),
                           "argmin", HIGHS)
    spec = problem.specs[0]
    status, found, *_ = problem.search_rows(get_backend("highs"), time.perf_counter() + 600)
    assert status.has_solution
    options = [[-1, *np.flatnonzero(spec.poly_of_row == p).tolist()] for p in range(spec.n_polys)]
    assert np.prod([len(o) for o in options]) <= MAX_ROW_COMBOS  # the exhaustive branch
    every = {a: _forced_objective(network, prop, a) for a in itertools.product(*options)}
    assert found <= min(every.values()) * (1 + 1e-6) + 1e-9
    # and on these networks it helps: each box's own best row (the first try) costs more
    assert found < 0.9 * every[(-1, -1)]
    # The state left behind is the best try's: its rows, and a change of that size.
    assert every[tuple(int(r) for r in problem.searched[0])] == pytest.approx(found, rel=1e-6, abs=1e-9)
    D, e = problem.split_delta()
    assert np.abs(D).sum() + np.abs(e).sum() == pytest.approx(found, rel=1e-6, abs=1e-9)
    # Later rounds choose each box's row at the current change again: it stays feasible, so
    # refining and solving never give a larger change.
    assert np.all(problem.forced[0] == -1)
    for _ in range(2):
        assert _refine(problem, 64) > 0
        status, later, *_ = problem.solve(get_backend("highs"), time.perf_counter() + 60)
        assert status.has_solution and later <= found * (1 + 1e-6) + 1e-9
        found = later


def test_the_coordinate_search_ends_where_no_single_change_of_row_helps(monkeypatch):
    import verirepair.repair.cover as cover_module

    monkeypatch.setattr(cover_module, "MAX_ROW_COMBOS", 1)
    monkeypatch.setattr(cover_module, "MAX_ROW_SWEEPS", 20)
    _COVER_CACHE.clear()
    network, prop, _ = _two_polytope_case(2)
    problem = CoverProblem(network, (prop,), (1e-3,), (True,), np.zeros((0, 3)), np.zeros((0, 3)),
                           "argmin", HIGHS)
    status, found, *_ = problem.search_rows(get_backend("highs"), time.perf_counter() + 600)
    assert status.has_solution
    spec, result = problem.specs[0], tuple(int(r) for r in problem.searched[0])
    for poly in range(spec.n_polys):
        for r in [-1, *np.flatnonzero(spec.poly_of_row == poly).tolist()]:
            moved = result[:poly] + (r,) + result[poly + 1:]
            assert _forced_objective(network, prop, moved) >= found * (1 - cover_module.ROW_SEARCH_GAIN) - 1e-9


@pytest.mark.parametrize("seed", [0, 3])
def test_a_repair_with_searched_rows_is_proven_and_its_rows_are_kept_for_the_next_call(seed):
    _COVER_CACHE.clear()
    network, prop, _ = _two_polytope_case(seed)
    assert verify(network, [prop], VerifyConfig(timeout_s=30)).verdict is Verdict.VIOLATED
    outcome = cover_repair(_context(network, [prop], [1e-3], [True], seconds=8))
    assert outcome.result.status is RepairStatus.REPAIRED, outcome.result.message
    assert verify(apply_patch(network, outcome.result.patch), [prop],
                  VerifyConfig(timeout_s=60)).verdict is Verdict.HOLDS
    kept = _COVER_CACHE[prop.canonical()][2]
    again = CoverProblem(network, (prop,), (1e-3,), (True,), np.zeros((0, 3)), np.zeros((0, 3)),
                         "argmin", HIGHS)
    assert np.array_equal(again.searched[0], kept) and again.searched[0] is not kept
    assert np.all(again.forced[0] == -1)  # rows are forced only while the search runs


def test_on_acas_xu_n19_phi7_the_row_search_lowers_the_proven_change():
    """The case the search exists for (benchmarks/results/thin_margins.md, section 11): on the
    64-box cover each box picks y3 - y1 and y4 - y2 (1.17); one row shared by both polytopes is cheaper."""
    from verirepair.network.loader import load_network
    from verirepair.properties.vnnlib import parse_vnnlib
    from verirepair.tasks.acasxu import networks as acasxu_nets

    root = acasxu_nets.data_or_skip(formats=())
    network = load_network(root / "onnx" / "ACASXU_run2a_1_9_batch_2000.onnx")
    (prop,) = parse_vnnlib(root / "vnnlib" / "prop_7.vnnlib")
    _COVER_CACHE.clear()
    natural = CoverProblem(network, (prop,), (1e-3,), (True,), np.zeros((0, 5)), np.zeros((0, 5)),
                           "argmin", HIGHS)
    _, before, *_ = natural.solve(get_backend("highs"), time.perf_counter() + 120)
    searched = CoverProblem(network, (prop,), (1e-3,), (True,), np.zeros((0, 5)), np.zeros((0, 5)),
                            "argmin", HIGHS)
    status, after, *_ = searched.search_rows(get_backend("highs"), time.perf_counter() + 120)
    assert status.has_solution and after < 0.8 * before, (before, after)


def test_the_coarse_search_leaves_the_refined_covers_and_keeps_its_solution_as_a_candidate():
    """Rows are searched on fresh initial covers; the problem's own (refined) covers come back
    untouched with a zero change, and the coarse solution proves the property by itself."""
    _COVER_CACHE.clear()
    network, prop, _ = _two_polytope_case(0)
    problem = CoverProblem(network, (prop,), (1e-3,), (True,), np.zeros((0, 3)), np.zeros((0, 3)),
                           "argmin", HIGHS)
    backend = get_backend("highs")
    assert problem.solve(backend, time.perf_counter() + 60)[0].has_solution
    assert _refine(problem, 32) > 0 and len(problem.covers[0]) > 64
    refined = problem.covers[0]
    found = problem.search_rows_coarse(backend, time.perf_counter() + 120)
    assert problem.covers[0] is refined and not problem.x_delta.any()
    assert problem.coarse is not None and problem.coarse[1] == found and problem.coarse_boxes == 64
    assert np.all(problem.forced[0] == -1)
    D, e = problem.coarse[0][:problem.k * problem.m].reshape(problem.k, problem.m), problem.coarse[0][-problem.k:]
    repaired = network.replace_layer(network.n_layers - 1, network.layers[-1].weight + D,
                                     network.layers[-1].bias + e)
    assert verify(repaired, [prop], VerifyConfig(timeout_s=60)).verdict is Verdict.HOLDS
    # Without exploring, the searched rows are solved once: the same change.
    again = problem.search_rows_coarse(backend, time.perf_counter() + 120, explore=False)
    assert again == pytest.approx(found, rel=1e-6, abs=1e-9)
