"""Fidelity of a repaired network to the original, measured two ways.

Pipeline position: after repair, for the report (see
``../shared/reference/acasxu.md``, section 3).

* **Advisory agreement** (the provable tools' protocol, e.g. Veritex): points
  uniform over the whole input domain, labelled by the *original* network's
  advisory (the arg-min output); the share where the repaired network agrees.
* **CARE protocol**: in each repaired property's region, sample until there
  are ``n`` points the original handles correctly ("drawdown" set) and ``n``
  counterexamples; accuracy is the share of drawdown points still correct, the
  violation rate is the share of counterexamples still violating.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from verirepair.network.model import Network
from verirepair.spec.property import Box, Property

#: Draws per batch and the cap on batches when sampling rare counterexamples.
_BATCH = 65536
_MAX_BATCHES = 60


@dataclass(frozen=True, slots=True)
class CareFidelity:
    """CARE-protocol numbers for one property region."""

    property_name: str
    n_correct: int
    n_counterexamples: int
    accuracy: float | None
    violation_rate: float | None

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"property": self.property_name, "n_correct": self.n_correct,
                "n_counterexamples": self.n_counterexamples, "accuracy": self.accuracy,
                "violation_rate": self.violation_rate}


def advisory_agreement(original: Network, repaired: Network, domain: Box, n: int,
                       rng: np.random.Generator) -> float:
    """Share of ``n`` uniform domain points whose arg-min advisory is unchanged.

    Parameters
    ----------
    original, repaired : Network
    domain : Box -- the input domain, shape (d,)
    n : int
    rng : numpy Generator

    Returns
    -------
    float in [0, 1]
    """
    x = domain.sample(rng, n)
    before = np.argmin(original.forward(x), axis=1)
    after = np.argmin(repaired.forward(x), axis=1)
    return float(np.mean(before == after))


def _violating(prop_list: list[Property], network: Network, x: np.ndarray) -> np.ndarray:
    y = network.forward(x)
    bad = np.zeros(x.shape[0], dtype=bool)
    for prop in prop_list:
        inside = prop.in_region(x)
        bad |= inside & prop.is_violated_by(y)
    return bad


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
