"""Falsification for wide input boxes: PGD restarts, and attacks seeded by the search's bounds.

Pipeline position: :mod:`verirepair.verify.relu_bab` calls :func:`restarts`
before its search (after the engine's :func:`~verirepair.verify.falsify.falsify`
found nothing) and :func:`from_minimisers` on every batch of open
sub-domains.  Both reuse :func:`~verirepair.verify.falsify.pgd_attack` and
return only points confirmed by :func:`~verirepair.verify.confirm.confirm`.

* :func:`restarts` -- rounds of PGD from fresh uniform starts (plus the box
  centre and the corners the root bound points at) until a share of the
  budget is spent.  On an L-inf ball in 784 dimensions a uniform sample is
  almost never a counterexample, but 30 signed-gradient steps from it are
  (the property's gradient is dense), so restarts beat more samples.
* :func:`from_minimisers` -- the linear lower bound of an open sub-domain is
  minimised at a box corner; that corner, pushed by a few PGD steps, is where
  the bound says a violation would be.  This is what finds the rare
  counterexamples the uniform falsifier misses.
"""

from __future__ import annotations

import time

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Property
from verirepair.verify.confirm import confirm
from verirepair.verify.falsify import pgd_attack
from verirepair.verify.result import Counterexample

#: PGD starts per restart round and steps per start.
RESTART_STARTS = 32
RESTART_STEPS = 30
#: PGD steps from the bound minimisers of each batch, and how many start points.
MINIMISER_STARTS = 16
MINIMISER_STEPS = 10


def restarts(network: Network, prop: Property, lower: np.ndarray, upper: np.ndarray,
             rng: np.random.Generator, budget_s: float, deadline: float,
             seeds: np.ndarray | None = None) -> list[Counterexample]:
    """PGD restarts inside one box until a counterexample or ``budget_s`` seconds.

    Parameters
    ----------
    network, prop : the instance
    lower, upper : array, shape (d,) -- the box
    rng : numpy Generator -- for the uniform starts
    budget_s : float -- wall-clock seconds to spend at most (at least one round runs)
    deadline : float -- ``time.perf_counter()`` value never to pass
    seeds : array (s, d), optional -- extra first-round starts (e.g. bound minimisers)

    Returns
    -------
    list of Counterexample -- confirmed, best first; empty if none was found
    """
    stop = min(deadline, time.perf_counter() + budget_s)
    first = [(lower + upper)[None, :] / 2.0]
    if seeds is not None and seeds.size:
        first.append(np.clip(seeds, lower, upper))
    round_index = 0
    while True:
        starts = rng.uniform(lower, upper, size=(RESTART_STARTS, lower.shape[0]))
        if round_index == 0:
            starts = np.vstack(first + [starts])
        n = starts.shape[0]
        lo, hi = np.broadcast_to(lower, (n, lower.shape[0])), np.broadcast_to(upper, (n, upper.shape[0]))
        x_best, score = pgd_attack(network, prop, starts, lo, hi, RESTART_STEPS, stop)
        found = confirm(network, prop, x_best[score >= 0.0], "attack")
        if found:
            return found
        round_index += 1
        if time.perf_counter() >= stop:
            return []


def bound_minimisers(coef: np.ndarray, best_row: np.ndarray, open_polys: np.ndarray,
                     lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box centres plus, per open polytope, the corner minimising its best row's linear bound.

    Parameters
    ----------
    coef : (n, k, d) -- input coefficients of the rows' linear lower bounds
    best_row : (n, P) int and open_polys : (n, P) bool
    lower, upper : (n, d)

    Returns
    -------
    points (N, d) and owners (N,) -- the sub-domain each point comes from
    """
    n = lower.shape[0]
    points, owners = [(lower + upper) / 2.0], [np.arange(n)]
    for poly in range(best_row.shape[1]):
        rows = coef[np.arange(n), best_row[:, poly]]
        points.append(np.where(rows > 0, lower, upper)[open_polys[:, poly]])
        owners.append(np.flatnonzero(open_polys[:, poly]))
    return np.vstack(points), np.concatenate(owners)


def from_minimisers(network: Network, prop: Property, points: np.ndarray, lower: np.ndarray,
                    upper: np.ndarray, deadline: float) -> list[Counterexample]:
    """Confirm the bound minimisers, else PGD from the most promising of them.

    Parameters
    ----------
    network, prop : the instance
    points : array (N, d) -- candidate points, each inside its box
    lower, upper : array (N, d) -- the box each point may move in
    deadline : float

    Returns
    -------
    list of Counterexample -- confirmed; empty if none
    """
    if points.shape[0] == 0:
        return []
    scores = prop.violation_score(network.forward(points))
    found = confirm(network, prop, points[scores >= 0.0], "bab")
    if found or MINIMISER_STEPS == 0:
        return found
    top = np.argsort(-scores)[:MINIMISER_STARTS]
    x_best, best = pgd_attack(network, prop, points[top], lower[top], upper[top], MINIMISER_STEPS,
                              deadline)
    return confirm(network, prop, x_best[best >= 0.0], "bab")
