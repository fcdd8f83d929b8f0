"""Fidelity of a repaired network to the original, measured two ways.

Pipeline position: after repair, for the report (see
``../shared/reference/acasxu.md``, section 3).

* **Decision agreement** (the provable tools' protocol, e.g. Veritex, which
  calls it advisory agreement for ACAS Xu): points from the task (uniform over
  the whole input domain by default), labelled by the *original* network's
  decision (the task's rule, arg-min for ACAS Xu); the share where the
  repaired network agrees.
* **CARE protocol**: in each repaired property's region, sample until there
  are ``n`` points the original handles correctly ("drawdown" set) and ``n``
  counterexamples; accuracy is the share of drawdown points still correct, the
  violation rate is the share of counterexamples still violating.
"""

from __future__ import annotations

import time

import numpy as np

from verirepair.decision import get_decision_rule
from verirepair.network.model import Network
from verirepair.outcome import CareFidelity
from verirepair.properties.property import Box, Property, violating_mask

#: Draws per batch and the cap on batches when sampling rare counterexamples.
_BATCH = 65536
_MAX_BATCHES = 60


def decision_agreement(original: Network, repaired: Network, x: np.ndarray, decision: str) -> float:
    """Share of the points ``x`` (n, d) whose decision (by the named rule) is unchanged.

    Returns
    -------
    float in [0, 1] (1.0 for no points)
    """
    if x.shape[0] == 0:
        return 1.0
    rule = get_decision_rule(decision)
    return float(np.mean(rule.decide(original.forward(x)) == rule.decide(repaired.forward(x))))


def advisory_agreement(original: Network, repaired: Network, domain: Box, n: int,
                       rng: np.random.Generator) -> float:
    """Share of ``n`` uniform domain points whose arg-min advisory is unchanged (ACAS Xu protocol)."""
    return decision_agreement(original, repaired, domain.sample(rng, n), "argmin")


def _violating(props: list[Property], network: Network, x: np.ndarray) -> np.ndarray:
    return violating_mask(props, x, network.forward(x))


def care_fidelity(original: Network, repaired: Network, name: str, props: list[Property], n: int,
                  rng: np.random.Generator, deadline: float | None = None) -> CareFidelity:
    """CARE's drawdown and counterexample sets for one property (file).

    Samples the property region until ``n`` correct and ``n`` violating points
    of the *original* are found (or the draw cap or ``deadline``, a
    ``time.perf_counter()`` value, is hit: the counts say how many were
    found), then measures the repaired network on both sets.  At least one
    batch is drawn whatever the deadline.
    """
    correct, violating = [], []
    found_correct = found_bad = 0
    for batch in range(_MAX_BATCHES):
        if batch and deadline is not None and time.perf_counter() > deadline:
            break
        x = np.vstack([p.sample_inputs(rng, _BATCH // len(props)) for p in props])
        bad = _violating(props, original, x)
        if found_correct < n:
            correct.append(x[~bad][: n - found_correct])
            found_correct += correct[-1].shape[0]
        if found_bad < n:
            violating.append(x[bad][: n - found_bad])
            found_bad += violating[-1].shape[0]
        if found_correct >= n and found_bad >= n:
            break
    correct_x = np.vstack(correct) if correct else np.zeros((0, original.n_inputs))
    bad_x = np.vstack(violating) if violating else np.zeros((0, original.n_inputs))
    accuracy = None
    violation_rate = None
    if correct_x.shape[0]:
        accuracy = float(np.mean(~_violating(props, repaired, correct_x)))
    if bad_x.shape[0]:
        violation_rate = float(np.mean(_violating(props, repaired, bad_x)))
    return CareFidelity(name, int(correct_x.shape[0]), int(bad_x.shape[0]), accuracy, violation_rate)
