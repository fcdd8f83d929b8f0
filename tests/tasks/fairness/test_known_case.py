"""The hand-built case (fairness_helpers): measurement, product network, proofs, localization, repair."""

from __future__ import annotations

import numpy as np
import pytest
from fairness_helpers import GUILTY_UNIT, fair_case_data, fair_case_network

from verirepair.localize import LocalizeConfig
from verirepair.network.activation import RELU, TANH
from verirepair.network.model import random_network
from verirepair.repair import RepairConfig
from verirepair.tasks.classifier import predict
from verirepair.tasks.fairness.localization import localize_fairness
from verirepair.tasks.fairness.measure import discriminated, estimate, sample_domain
from verirepair.tasks.fairness.product import (
    fairness_property,
    product_network,
    prove_individuals,
    split_product_input,
)
from verirepair.tasks.fairness.protected import protected_attribute
from verirepair.tasks.fairness.repair import FairRepairConfig, repair_fairness
from verirepair.verify import Verdict, VerifyConfig, verify


def _individual(male: bool, x1: float, x2: float = 0.5) -> np.ndarray:
    return np.array([0.0 if male else 1.0, 1.0 if male else 0.0, x1, x2])


def test_discriminated_exactly_in_the_band() -> None:
    encoding, _ = fair_case_data(50)
    sex = protected_attribute(encoding, "sex")
    x = np.array([_individual(False, 0.4), _individual(True, 0.4), _individual(False, 0.25),
                  _individual(True, 0.6), _individual(False, 0.3), _individual(True, 0.5)])
    mask, flipped = discriminated(fair_case_network(), x, sex)
    # x1 + 0.2 male > 0.5 decides: (0.3, 0.5] flips, 0.3 itself gives 0 for both (0.5 is not > 0.5)
    np.testing.assert_array_equal(mask, [True, True, False, False, False, True])
    np.testing.assert_array_equal(flipped[0], [False, True])     # a woman's flip is to "male"


def test_domain_rate_and_interval() -> None:
    encoding, _ = fair_case_data(50)
    sex = protected_attribute(encoding, "sex")
    domain = sample_domain(encoding, 4000, np.random.default_rng(0))
    assert set(np.unique(domain[:, :2].sum(axis=1))) == {1.0} and domain[:, 2:].min() >= 0
    est = estimate(fair_case_network(), domain, sex, "domain")
    assert est.ci_low <= 0.2 <= est.ci_high and est.ci_high - est.ci_low < 0.03
    assert est.k == int(np.count_nonzero((domain[:, 2] > 0.3) & (domain[:, 2] <= 0.5)))


def test_age_groups_are_decades() -> None:
    from verirepair.tasks.fairness.data import encode_rows, fit_encoding

    rows = [{"age": str(a)} for a in (19, 33, 47, 75)]
    encoding = fit_encoding(rows, ("age",), frozenset({"age"}))
    age = protected_attribute(encoding, "age")
    assert age.labels == ("10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79")
    years = age.values[:, 0] * encoding.features[0].scale + encoding.features[0].offset
    np.testing.assert_allclose(years, [19, 25, 35, 45, 55, 65, 75])    # midpoints clipped to 19..75
    np.testing.assert_array_equal(age.groups(encode_rows(encoding, rows)), [0, 2, 3, 6])


@pytest.mark.parametrize("activation", [RELU, TANH], ids=["relu", "tanh"])
def test_product_network_matches_two_forward_passes(activation) -> None:
    encoding, x = fair_case_data(60)
    net = random_network([4, 7, 5, 2], seed=3, activation=activation)
    for attribute in (protected_attribute(encoding, "sex"), protected_attribute(encoding, "x1")):
        product = product_network(net, attribute)
        other = np.roll(x[:, attribute.indices], 1, axis=0)
        shared = np.setdiff1d(np.arange(4), attribute.indices)
        z = np.hstack([x[:, shared], x[:, attribute.indices], other])
        x_a, x_b = split_product_input(z, 4, attribute)
        np.testing.assert_array_equal(x_a, x)
        y, ya, yb = product.forward(z), net.forward(x_a), net.forward(x_b)
        np.testing.assert_allclose(y[:, 0], ya[:, 1] - ya[:, 0], atol=1e-12)
        np.testing.assert_allclose(y[:, 1], yb[:, 1] - yb[:, 0], atol=1e-12)


def test_fairness_property_box() -> None:
    encoding, _ = fair_case_data(50)
    sex = protected_attribute(encoding, "sex")
    prop = fairness_property(_individual(False, 0.995, 0.2), sex, encoding, 0.01)
    (box,) = prop.input_boxes                      # one other value: male
    # shared (x1, x2) +- 0.01 clipped to [0, 1]; copy a = female, copy b = male
    np.testing.assert_allclose(box.lower, [0.985, 0.19, 1, 0, 0, 1])
    np.testing.assert_allclose(box.upper, [1.0, 0.21, 1, 0, 0, 1])


def test_proof_fails_before_and_holds_after_a_hand_repair() -> None:
    encoding, _ = fair_case_data(50)
    sex = protected_attribute(encoding, "sex")
    net = fair_case_network()
    woman = _individual(False, 0.4)
    result = verify(product_network(net, sex), fairness_property(woman, sex, encoding, 0.01),
                    VerifyConfig(timeout_s=20))
    assert result.verdict is Verdict.VIOLATED
    x_a, x_b = split_product_input(result.counterexamples[0].x, 4, sex)
    assert predict(net, x_a)[0] != predict(net, x_b)[0]
    fair = net.replace_layer(1, np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), net.layers[1].bias)
    assert prove_individuals(fair, woman[None, :], sex, encoding, 0.01).proven == 1
    # far from the band the original network is already provably fair
    summary = prove_individuals(net, np.array([_individual(True, 0.9), woman]), sex, encoding, 0.01)
    assert summary.verdicts == ("holds", "violated") and summary.share == 0.5


def test_localization_finds_the_sex_neuron() -> None:
    encoding, x = fair_case_data(300)
    sex = protected_attribute(encoding, "sex")
    net = fair_case_network()
    mask, flipped = discriminated(net, x, sex)
    variants, _ = sex.variants(x[mask])
    x_b = variants[np.arange(variants.shape[0]), np.argmax(flipped[mask], axis=1)]
    loc = localize_fairness(net, x[mask], x_b, x[~mask], LocalizeConfig(decision="argmax", top_k=1,
                                                                        collateral_weight=1.0))
    assert loc.suggested_layer == 0 and loc.suggested_neurons == (GUILTY_UNIT,)
    top = loc.ranking[0]
    assert top.unit == GUILTY_UNIT and top.effect_correct == 0.0 and top.effect_violation > 0
    # the x1 neuron also ends the disagreement, by changing other decisions: it ranks below
    x1_neuron = next(e for e in loc.ranking if e.unit == 0)
    assert x1_neuron.effect_correct > 0


@pytest.mark.parametrize("neurons", ["localized"])
def test_repair_removes_the_dependence(neurons: str) -> None:
    encoding, x = fair_case_data(300)
    sex = protected_attribute(encoding, "sex")
    net = fair_case_network()
    config = FairRepairConfig(margin=0.02, max_rounds=3, max_new_individuals=40, n_keep=200, neurons=neurons,
                              localize=LocalizeConfig(decision="argmax", top_k=1, collateral_weight=1.0),
                              repair=RepairConfig(solver="highs", decision="argmax", time_limit_s=60))
    result = repair_fairness(net, encoding, [sex], x, config)
    assert result.repaired and result.layer_index == 0 and result.neurons == (GUILTY_UNIT,)
    assert result.stats is not None and result.stats.patch is not None
    assert result.stats.patch.changed_units == (GUILTY_UNIT,)
    # training individuals: none discriminated any more, every decision kept
    assert not discriminated(result.network, x, sex)[0].any()
    np.testing.assert_array_equal(predict(result.network, x), predict(net, x))
    domain = sample_domain(encoding, 4000, np.random.default_rng(5))
    before, after = estimate(net, domain, sex, "domain"), estimate(result.network, domain, sex, "domain")
    assert before.rate > 0.15 and after.rate < 0.25 * before.rate
    woman = _individual(False, 0.4)
    assert prove_individuals(net, woman[None, :], sex, encoding, 0.01).proven == 0
    assert prove_individuals(result.network, woman[None, :], sex, encoding, 0.01).proven == 1


def test_product_network_refuses_activated_outputs_and_float32_rounding_keeps_activations() -> None:
    from verirepair.network.model import AffineLayer, Network
    from verirepair.tasks.classifier import as_float32

    encoding, x = fair_case_data(20)
    net = random_network([4, 6, 2], seed=1, activation=TANH)
    squashed = Network((net.layers[0], AffineLayer(net.layers[1].weight, net.layers[1].bias, activation=TANH)))
    with pytest.raises(ValueError, match="linear output"):
        product_network(squashed, protected_attribute(encoding, "sex"))
    rounded = as_float32(net)
    assert [layer.activation for layer in rounded.layers] == [layer.activation for layer in net.layers]
    for before, after in zip(net.layers, rounded.layers, strict=True):    # values rounded to float32
        np.testing.assert_array_equal(after.weight, before.weight.astype(np.float32).astype(np.float64))
    assert any(not np.array_equal(a.weight, b.weight) for a, b in zip(net.layers, rounded.layers, strict=True))
    np.testing.assert_allclose(rounded.forward(x), net.forward(x), atol=1e-5)
