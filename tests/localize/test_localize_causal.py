"""Specification of the causal localizer (CARE-style interventions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from localize_helpers import CULPRIT_CEX, CULPRIT_CORRECT
from verirepair.localize import LocalizeConfig, localize, sample_correct, sample_counterexamples
from verirepair.localize.causal import intervene
from verirepair.network.model import AffineLayer, Network, random_network
from verirepair.properties.property import Box, HalfSpaces, Property


def test_culprit_ranked_first_with_hand_computed_effects(culprit):
    net, props = culprit
    loc = localize(net, props, CULPRIT_CEX, CULPRIT_CORRECT, LocalizeConfig())
    first, second = loc.ranking
    # Baseline mean score (y0 - 8) = (2 + 1.3) / 2 = 1.65.  do(h1 = 0) leaves y0 = 2 x0,
    # scores -7 and -6.2, mean -6.6: effect 8.25 (= 10 * mean x1).  do(h0 = 0) leaves
    # y0 = 10 x1, scores 1 and -0.5, mean 0.25: effect 1.4 (= 2 * mean x0).
    assert (first.layer_index, first.unit) == (0, 1)
    assert first.effect_violation == pytest.approx(8.25)
    assert (second.layer_index, second.unit) == (0, 0)
    assert second.effect_violation == pytest.approx(1.4)
    # Collateral: with h1 = 0 the correct input (0.1, 0.5) has y0 = 0.2 < y1 = 3, so its
    # advisory flips from 1 to 0 (1 of 2); with h0 = 0 nothing flips.
    assert first.effect_correct == pytest.approx(0.5)
    assert second.effect_correct == pytest.approx(0.0)
    assert loc.layer_scores == pytest.approx((8.25 + 1.4, 0.0))
    assert loc.suggested_layer == 0
    assert loc.suggested_neurons == (1, 0)
    assert (loc.n_counterexamples, loc.n_correct, loc.method) == (2, 2, "causal")


def test_full_range_agrees_when_only_ablation_helps(culprit):
    net, props = culprit
    down = localize(net, props, CULPRIT_CEX, CULPRIT_CORRECT, LocalizeConfig())
    full = localize(net, props, CULPRIT_CEX, CULPRIT_CORRECT,
                    LocalizeConfig(intervention_range="full"))
    assert [e.effect_violation for e in full.ranking] == pytest.approx(
        [e.effect_violation for e in down.ranking])


def test_full_range_also_credits_raising_a_compensating_neuron():
    # y0 = 10 h1 - 4 h0: raising h0 lowers the violation, lowering it cannot.
    net = Network((AffineLayer(np.eye(2), np.zeros(2), True),
                   AffineLayer([[-4.0, 10.0]], [0.0], False)))
    prop = Property((Box([0, 0], [1, 1]),), (HalfSpaces([[-1.0]], [-5.0]),))
    cex = np.array([[0.1, 0.9], [0.2, 0.8]])       # y0 = 8.6, 7.2
    correct = np.array([[1.0, 0.2], [0.5, 0.1]])   # h0 observed up to 1.0
    down = {e.unit: e.effect_violation for e in localize(net, [prop], cex, correct).ranking}
    full = {e.unit: e.effect_violation for e in localize(
        net, [prop], cex, correct, LocalizeConfig(intervention_range="full")).ranking}
    # Down: values <= the cex mean 0.15 of h0 are allowed (grid 0, 1/15, 2/15); lowering h0
    # raises y0, so the best is 2/15 with effect 4 * (2/15 - 0.15) < 0: not a cause.
    assert down[0] == pytest.approx(4 * (2 / 15 - 0.15))
    # Full: h0 = 1.0 gives y0 = 10 x1 - 4, effect 4 * (1 - 0.15) = 3.4.
    assert full[0] == pytest.approx(3.4)
    assert down[1] == pytest.approx(full[1]) == pytest.approx(8.5)


def test_collateral_weight_reorders_the_ranking(culprit):
    net, props = culprit
    loc = localize(net, props, CULPRIT_CEX, CULPRIT_CORRECT,
                   LocalizeConfig(collateral_weight=20.0))
    # keys: unit 1 -> 8.25 - 20 * 0.5 = -1.75; unit 0 -> 1.4.
    assert [e.unit for e in loc.ranking] == [0, 1]
    assert loc.layer_scores[0] == pytest.approx(1.4)
    assert loc.suggested_neurons == (0, 1)


def test_intervene_matches_a_naive_forward_pass():
    net = random_network([3, 6, 5, 4, 2], seed=3)
    x = np.random.default_rng(0).uniform(-1, 1, size=(7, 3))
    acts = net.forward_all(x)[2]                      # output of layer 1, (7, 5)
    values = np.random.default_rng(1).uniform(0, 2, size=(4, 5))
    got = np.concatenate([out for _, out in intervene(net, 1, acts, values, row_budget=50)],
                         axis=1)                      # chunks of 1 unit at this budget
    assert got.shape == (4, 5, 7, 2)
    for k in range(4):
        for j in range(5):
            h = acts.copy()
            h[:, j] = values[k, j]
            np.testing.assert_allclose(got[k, j], net.forward_from(1, h), atol=1e-12)


def _violated_random_case():
    net = random_network([4, 10, 10, 3], seed=5)
    prop = Property((Box(-np.ones(4), np.ones(4)),), (HalfSpaces([[-1.0, 0.0, 0.0]], [0.0]),))
    rng = np.random.default_rng(0)
    cex = sample_counterexamples(net, [prop], 400, rng)
    correct = sample_correct(net, [prop], 400, rng)
    assert cex.shape[0] == 400 and correct.shape[0] == 400
    return net, [prop], cex, correct


@pytest.mark.parametrize("method", ["causal", "activation", "gradient"])
def test_deterministic_given_seed(method):
    net, props, cex, correct = _violated_random_case()
    config = LocalizeConfig(method=method, seed=7, max_samples=100)  # forces sub-sampling
    first = localize(net, props, cex, correct, config).to_json_dict()
    second = localize(net, props, cex, correct, config).to_json_dict()
    first.pop("time_s"), second.pop("time_s")
    assert first == second
    other = localize(net, props, cex, correct,
                     LocalizeConfig(method=method, seed=8, max_samples=100)).to_json_dict()
    assert other["ranking"] != first["ranking"]
    assert first["n_counterexamples"] == 100 and first["n_correct"] == 100


def test_no_counterexamples_gives_an_empty_localization(culprit):
    net, props = culprit
    loc = localize(net, props, np.zeros((0, 2)), CULPRIT_CORRECT)
    assert loc.is_empty and loc.ranking == ()
    assert loc.suggested_layer is None and loc.suggested_neurons == ()
    assert loc.layer_scores == (0.0, 0.0)
    assert loc.to_json_dict()["ranking"] == []


def test_json_shape(culprit):
    net, props = culprit
    data = json.loads(json.dumps(localize(net, props, CULPRIT_CEX, CULPRIT_CORRECT).to_json_dict()))
    assert data["method"] == "causal"
    assert data["suggested_layer"] == 0 and data["suggested_neurons"] == [1, 0]
    assert len(data["layer_scores"]) == 2
    assert [set(row) for row in data["ranking"]] == [
        {"layer_index", "unit", "effect", "effect_correct"}] * 2
    assert data["ranking"][0] == {"layer_index": 0, "unit": 1,
                                  "effect": pytest.approx(8.25), "effect_correct": 0.5}
    for key in ("k_values", "n_counterexamples", "n_correct", "seed", "time_s"):
        assert key in data


def test_every_hidden_neuron_ranked_and_sorted():
    net, props, cex, correct = _violated_random_case()
    loc = localize(net, props, cex, correct, LocalizeConfig(top_k=3, tie_rtol=0.0))
    assert sorted((e.layer_index, e.unit) for e in loc.ranking) == (
        [(0, j) for j in range(10)] + [(1, j) for j in range(10)])
    effects = [e.effect_violation for e in loc.ranking]
    assert effects == sorted(effects, reverse=True)
    assert loc.layer_scores[2] == 0.0
    for layer in (0, 1):
        top3 = [e.effect_violation for e in loc.ranking if e.layer_index == layer][:3]
        assert loc.layer_scores[layer] == pytest.approx(sum(max(v, 0.0) for v in top3))
    assert loc.suggested_layer == int(np.argmax(loc.layer_scores))
    assert loc.suggested_neurons == tuple(
        e.unit for e in loc.ranking if e.layer_index == loc.suggested_layer)[:3]


def _chain_network() -> Network:
    """x -> h = relu(x0) (layer 0) -> g = relu(h) (layer 1) -> y = 10 g + x1-path.

    Switching off h or g removes the same contribution: an exact tie.
    """
    first = AffineLayer([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0], True)
    second = AffineLayer([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0], True)
    out = AffineLayer([[10.0, 1.0]], [0.0], False)
    return Network((first, second, out))


def test_ties_rank_the_neuron_closest_to_the_output_first():
    net = _chain_network()
    prop = Property((Box([0, 0], [1, 1]),), (HalfSpaces([[-1.0]], [-5.0]),))
    cex = np.array([[0.8, 0.5], [0.6, 0.9]])
    correct = np.array([[0.1, 0.2], [0.3, 0.1]])
    loc = localize(net, [prop], cex, correct)
    # do(h0 = 0) and do(g0 = 0) both remove 10 * x0: effect 10 * 0.7 = 7 each.
    assert [(e.layer_index, e.unit) for e in loc.ranking[:2]] == [(1, 0), (0, 0)]
    assert loc.ranking[0].effect_violation == pytest.approx(loc.ranking[1].effect_violation)
    assert loc.ranking[0].effect_violation == pytest.approx(7.0)
    assert loc.suggested_layer == 1
    # a tiny extra path h0 -> g1 -> y gives h0 the (0.01% larger) effect 7.0007: strict
    # sorting puts it first, tie grouping still prefers the proximate g0
    bumped = net.replace_layer(1, [[1.0, 0.0], [0.001, 1.0]], [0.0, 0.0])
    strict = localize(bumped, [prop], cex, correct, LocalizeConfig(tie_rtol=0.0))
    grouped = localize(bumped, [prop], cex, correct)
    assert (strict.ranking[0].layer_index, strict.ranking[0].unit) == (0, 0)
    assert (grouped.ranking[0].layer_index, grouped.ranking[0].unit) == (1, 0)


def test_bad_inputs_raise(culprit):
    net, props = culprit
    with pytest.raises(ValueError, match="outside every property region"):
        localize(net, props, np.array([[2.0, 0.5]]), CULPRIT_CORRECT)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        localize(net, props, np.zeros((3, 5)), CULPRIT_CORRECT)
    with pytest.raises(ValueError, match="unknown localization method"):
        LocalizeConfig(method="magic")
    with pytest.raises(ValueError, match="k_values"):
        LocalizeConfig(k_values=1)
    with pytest.raises(ValueError, match="at least one property"):
        localize(net, [], CULPRIT_CEX, CULPRIT_CORRECT)
