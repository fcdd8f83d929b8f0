"""Input sets for localization: counterexamples and correct inputs.

Pipeline position: the verifier's counterexamples are the normal source of the
violating inputs; these samplers supply them when the verifier is not used
(benchmarks, planted faults) and always supply the *correct* inputs, which
the verifier does not produce.  Every returned point was checked by a float64
forward pass (:func:`verirepair.localize.scoring.violating`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verirepair.localize.scoring import combined_scores, violating
from verirepair.network.model import Network
from verirepair.properties.property import Box, Property
from verirepair.verify.falsify import adam_attack, nearest_box_bounds

#: Points drawn per forward pass by the samplers (memory ~ batch x width x 8 B).
SAMPLE_BATCH = 4096
#: Input coordinates drawn at once while ranking the seeds of
#: :func:`pgd_counterexamples` (8 bytes each: 32 MB; the sampler briefly holds
#: two copies).  500,000 seeds of 5 ACAS Xu inputs fit in one chunk; of 784
#: pixels they would take 3.1 GB, so they are drawn in chunks and only the
#: best ``restarts`` per polytope are kept.
SEED_CHUNK_VALUES = 1 << 22


def _draw(props: Sequence[Property], rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` points, split evenly between the properties' regions; (n, d)."""
    counts = rng.multinomial(n, np.full(len(props), 1.0 / len(props)))
    parts = [prop.sample_inputs(rng, int(k)) for prop, k in zip(props, counts, strict=True) if k]
    return np.vstack(parts)


def _check(network: Network, props: Sequence[Property]) -> None:
    if not props:
        raise ValueError("at least one property is needed")
    if any(prop.n_inputs != network.n_inputs or prop.n_outputs != network.n_outputs
           for prop in props):
        raise ValueError(
            f"property dimensions do not match the network ({network.n_inputs} inputs, "
            f"{network.n_outputs} outputs)")


def sample_counterexamples(network: Network, props: Sequence[Property], n: int,
                           rng: np.random.Generator, max_draws: int = 100_000) -> np.ndarray:
    """Find violating inputs by uniform sampling of the property regions.

    Parameters
    ----------
    network : Network
    props : sequence of Property
    n : int
        Stop after this many counterexamples.
    rng : numpy Generator
    max_draws : int
        Give up after drawing this many points.

    Returns
    -------
    array, shape (k, n_inputs), k <= n
        Confirmed counterexamples (each violates a property whose region
        contains it), in the order they were drawn.
    """
    _check(network, props)
    found: list[np.ndarray] = []
    total, drawn = 0, 0
    while total < n and drawn < max_draws:
        batch = min(SAMPLE_BATCH, max_draws - drawn)
        x = _draw(props, rng, batch)
        drawn += batch
        hits = x[violating(props, x, network.forward(x))]
        found.append(hits)
        total += hits.shape[0]
    out = np.vstack(found) if found else np.zeros((0, network.n_inputs))
    return out[:n]


def sample_correct(network: Network, props: Sequence[Property], n: int,
                   rng: np.random.Generator, domain: Box | None = None,
                   max_draws: int = 100_000) -> np.ndarray:
    """Draw inputs that violate none of the properties.

    Parameters
    ----------
    network : Network
    props : sequence of Property
    n : int
    rng : numpy Generator
    domain : Box or None
        Where to draw from; by default the union of the property regions
        (the inputs whose correctness the properties actually constrain).
    max_draws : int

    Returns
    -------
    array, shape (k, n_inputs), k <= n
    """
    _check(network, props)
    found: list[np.ndarray] = []
    total, drawn = 0, 0
    while total < n and drawn < max_draws:
        batch = min(SAMPLE_BATCH, max_draws - drawn)
        x = domain.sample(rng, batch) if domain is not None else _draw(props, rng, batch)
        drawn += batch
        keep = x[~violating(props, x, network.forward(x))]
        found.append(keep)
        total += keep.shape[0]
    out = np.vstack(found) if found else np.zeros((0, network.n_inputs))
    return out[:n]


def pgd_counterexamples(network: Network, props: Sequence[Property], n: int,
                        rng: np.random.Generator, restarts: int = 256, steps: int = 500,
                        n_seed_samples: int = 500_000, lr: float = 1e-3) -> np.ndarray:
    """Find violating inputs by projected gradient ascent on the violation score.

    For each unsafe polytope of each property separately (the max of a
    disjunction only passes gradient to its current best polytope), the
    ``restarts`` best of ``n_seed_samples`` uniform samples are pushed up the
    polytope's violation score by Adam in box-normalised coordinates
    (:func:`verirepair.verify.falsify.adam_attack`; learning rate ``lr`` =
    fraction of the box edge), projected onto the box; every 10th iterate
    that a float64 forward pass confirms is kept.  Rare
    counterexamples (ACAS Xu phi7 on N1,9) need these ranked starts and small
    steps: plain random-start signed-gradient steps miss them.

    Parameters
    ----------
    network : Network
    props : sequence of Property
    n : int
        Return at most this many counterexamples (the most violating ones).
    rng : numpy Generator
    restarts : int
        Start points per polytope.
    steps : int
    n_seed_samples : int
        Uniform samples ranked to choose the start points.
    lr : float

    Returns
    -------
    array, shape (k, n_inputs), k <= n
        Confirmed, distinct counterexamples, most violating first.
    """
    _check(network, props)
    found: list[np.ndarray] = [np.zeros((0, network.n_inputs))]
    for prop in props:
        singles = [Property(prop.input_boxes, (poly,), prop.name) for poly in prop.unsafe]
        for single, starts in zip(singles, _best_seeds(network, prop, singles, rng,
                                                       n_seed_samples, restarts), strict=True):
            lower, upper = nearest_box_bounds(single, starts)
            iterates = adam_attack(network, single, starts, lower, upper, steps, lr)
            # Keep only the confirmed points of each attack: all iterates of
            # every polytope would be ~0.7 GB for 784 inputs.
            cand = np.vstack(iterates) if iterates else np.zeros((0, network.n_inputs))
            found.append(cand[violating(props, cand, network.forward(cand))])
    cand = np.unique(np.vstack(found), axis=0)
    if cand.shape[0] == 0:
        return cand
    score = combined_scores(props, cand, network.forward(cand))
    return cand[np.argsort(-score, kind="stable")][:n]


def _best_seeds(network: Network, prop: Property, singles: Sequence[Property],
                rng: np.random.Generator, n_seed_samples: int, restarts: int
                ) -> list[np.ndarray]:
    """Per single-polytope property, the ``restarts`` best of ``n_seed_samples`` uniform seeds.

    Seeds are drawn in chunks of at most :data:`SEED_CHUNK_VALUES` coordinates
    and only the running best are kept, so memory does not grow with the
    number of seeds times the input dimension.  Ties keep the earlier seed
    (the order of a stable sort of all seeds at once).

    Returns
    -------
    list of arrays, shapes (k, n_inputs) with k <= restarts, best first
    """
    chunk = max(SAMPLE_BATCH, SEED_CHUNK_VALUES // max(1, network.n_inputs))
    kept_x = [np.zeros((0, network.n_inputs)) for _ in singles]
    kept_score = [np.zeros(0) for _ in singles]
    drawn = 0
    while drawn < n_seed_samples:
        seeds = prop.sample_inputs(rng, min(chunk, n_seed_samples - drawn))
        drawn += seeds.shape[0]
        outputs = np.vstack([network.forward(seeds[i:i + SAMPLE_BATCH * 16])
                             for i in range(0, seeds.shape[0], SAMPLE_BATCH * 16)])
        for index, single in enumerate(singles):
            # The kept seeds come first: on ties the earlier seed wins.
            kept = kept_score[index].shape[0]
            score = np.concatenate([kept_score[index], single.violation_score(outputs)])
            best = np.argsort(-score, kind="stable")[:restarts]
            from_kept = best < kept
            rows = np.empty((best.shape[0], network.n_inputs))
            rows[from_kept] = kept_x[index][best[from_kept]]
            rows[~from_kept] = seeds[best[~from_kept] - kept]
            kept_x[index], kept_score[index] = rows, score[best]
    return kept_x
