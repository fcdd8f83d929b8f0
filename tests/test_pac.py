"""PAC statements (verirepair.pac): the bound, its edge cases, and sampling that must see planted violations."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from verirepair.network.model import AffineLayer, Network
from verirepair.pac import pac_epsilon, pac_samples_needed, pac_statement
from verirepair.properties.property import Box, HalfSpaces, Property


def test_epsilon_is_log_one_over_delta_over_n():
    assert pac_epsilon(1000, 0.05) == pytest.approx(math.log(20) / 1000)
    assert pac_epsilon(1, 1 / math.e) == pytest.approx(1.0)
    # (1 - eps)^n <= exp(-eps n) = delta: the defining inequality, checked numerically.
    n, delta = 6908, 1e-3
    assert (1 - pac_epsilon(n, delta)) ** n <= delta


def test_samples_needed_is_the_least_n_meeting_the_bound():
    assert pac_samples_needed(0.01, 0.05) == 300             # ln(20)/0.01 = 299.57
    assert pac_samples_needed(1e-3, 1e-3) == 6908            # ln(1000)/1e-3 = 6907.76
    for eps, delta in ((0.01, 0.05), (1e-3, 1e-3), (0.2, 0.5)):
        n = pac_samples_needed(eps, delta)
        assert n >= math.log(1 / delta) / eps > n - 1
        assert pac_epsilon(n, delta) <= eps


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 2.0, float("nan")])
def test_delta_and_epsilon_outside_the_open_unit_interval_are_refused(bad):
    with pytest.raises(ValueError, match="delta"):
        pac_epsilon(10, bad)
    with pytest.raises(ValueError, match="epsilon"):
        pac_samples_needed(bad, 0.1)


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_sample_counts_below_one_or_fractional_are_refused(n):
    with pytest.raises(ValueError, match="samples"):
        pac_epsilon(n, 0.1)


def _identity_net() -> Network:
    """y = x on two inputs."""
    return Network((AffineLayer(np.eye(2), np.zeros(2), relu=False),), "identity")


def _prop(threshold: float) -> Property:
    """x in [0, 1]^2; unsafe: y0 >= threshold (the violating part of the region has measure 1 - threshold)."""
    return Property((Box(np.zeros(2), np.ones(2)),), (HalfSpaces(np.array([[-1.0, 0.0]]), np.array([-threshold])),),
                    "planted")


def test_a_safe_region_gets_the_bound_from_all_its_samples():
    statement = pac_statement(_identity_net(), "safe", [_prop(1.5)], 0.01, 0.05, np.random.default_rng(0),
                              time.perf_counter() + 30)
    assert statement.n_violations == 0 and statement.n_samples == 300
    assert statement.epsilon == pytest.approx(math.log(20) / 300)
    assert "NOT a proof" in statement.text
    assert statement.to_dict()["proof"] is False


def test_a_planted_violation_of_small_measure_is_found_and_no_bound_is_claimed():
    # 1 % of the region violates; 6908 samples miss it with probability 0.99^6908 < 1e-30.
    statement = pac_statement(_identity_net(), "planted", [_prop(0.99)], 1e-3, 1e-3, np.random.default_rng(1),
                              time.perf_counter() + 30)
    assert statement.n_violations >= 1
    assert statement.epsilon is None
    x = np.array(statement.counterexample)
    assert x[0] >= 0.99 and np.all((0 <= x) & (x <= 1))     # a forward pass (the identity) confirms it
    assert "violated" in statement.text and "at most" not in statement.text


def test_no_time_no_samples_no_statement():
    statement = pac_statement(_identity_net(), "late", [_prop(1.5)], 0.01, 0.05, np.random.default_rng(0),
                              time.perf_counter() - 1)
    assert statement.n_samples == 0 and statement.epsilon is None
    assert "no statement" in statement.text


def test_a_group_samples_every_member_region():
    left = Property((Box(np.zeros(2), np.array([0.5, 1.0])),), (HalfSpaces(np.array([[-1.0, 0.0]]), np.array([-2.0])),),
                    "left")
    right = Property((Box(np.array([0.5, 0.0]), np.ones(2)),), (HalfSpaces(np.array([[-1.0, 0.0]]), np.array([-0.5])),),
                     "right")                               # every point of the right half violates
    statement = pac_statement(_identity_net(), "group", [left, right], 0.01, 0.05, np.random.default_rng(2),
                              time.perf_counter() + 30)
    assert statement.n_violations >= 1 and statement.epsilon is None
