"""Which hidden neurons make the decision depend on the protected attribute (CARE's causal method).

Pipeline position: between measurement and repair.  The effect is the
fairness violation of discriminatory pairs ``(x, x')`` (``x'`` = ``x`` with the
protected attribute changed, and a different decision): the violation score of
the pair's margins ``(m(x), m(x'))`` under the product network's "the copies
disagree" property (:data:`~verirepair.tasks.fairness.product.DISAGREE`),
positive while the decisions differ.

The intervention is the localize stage's own :func:`~verirepair.localize.causal.intervene`:
``do(h = v)`` sets hidden unit ``h`` to ``v`` for *both* members of a pair (an
intervened neuron no longer depends on the protected attribute, which is the
question asked), over ``LocalizeConfig.k_values`` values spread over the
observed range, restricted as ``LocalizeConfig.intervention_range`` says.  The
effect of a neuron is, as in :mod:`verirepair.localize.causal`, the largest
reduction of the mean violation one intervention achieves; the collateral
effect is the share of non-discriminated individuals whose decision the best
intervention changes.  Neurons are ranked by ``effect_violation -
collateral_weight * effect_correct``, ties broken toward the output; the
fairness repair uses ``collateral_weight = 1``, because a neuron whose
ablation makes every decision the same (say, the one carrying the main
feature) also "removes" the discrimination, at the cost of every other
decision, and is not its cause.
"""

from __future__ import annotations

import time

import numpy as np

from verirepair.localize import InterventionRange, Localization, LocalizeConfig, NeuronEffect
from verirepair.localize.causal import intervene
from verirepair.network.model import Network
from verirepair.properties.property import Box, Property
from verirepair.tasks.classifier import predict
from verirepair.tasks.fairness.product import DISAGREE

__all__ = ["localize_fairness", "pair_violation"]

_PAIR_PROPERTY = Property((Box(np.zeros(2), np.zeros(2)),), DISAGREE, "pair_disagrees")


def pair_violation(y_a: np.ndarray, y_b: np.ndarray) -> np.ndarray:
    """Violation of pairs of 2-class outputs ``(..., 2)``: ``> 0`` where the decisions differ, else 0.

    The disagreement property's violation score, clipped at 0: an
    intervention that makes a pair agree has removed its discrimination, and
    one that pushes both decisions far from the boundary has not removed more
    (it is what the collateral effect measures).
    """
    m_a = y_a[..., 1] - y_a[..., 0]
    m_b = y_b[..., 1] - y_b[..., 0]
    pairs = np.stack([m_a, m_b], axis=-1)
    return np.maximum(_PAIR_PROPERTY.violation_score(pairs.reshape(-1, 2)).reshape(m_a.shape), 0.0)


def localize_fairness(network: Network, x_a: np.ndarray, x_b: np.ndarray, correct_x: np.ndarray,
                      config: LocalizeConfig = LocalizeConfig()) -> Localization:
    """Rank hidden neurons by their causal effect on the disagreement of pairs ``(x_a[i], x_b[i])``.

    Parameters
    ----------
    network : Network
        A 2-class classifier.
    x_a, x_b : arrays, shape (n, d)
        Discriminatory pairs (``x_b`` = ``x_a`` with the protected attribute changed).
    correct_x : array, shape (m, d)
        Individuals that are not discriminated (for the collateral effect).
    config : LocalizeConfig
        Uses ``k_values``, ``top_k``, ``max_samples`` (a seeded subset of the
        pairs and of ``correct_x``), ``seed``, ``collateral_weight``,
        ``tie_rtol`` and ``intervention_range``.

    Returns
    -------
    Localization
        ``n_counterexamples`` counts the pairs used; empty when there are none.
    """
    start = time.perf_counter()
    if not any(layer.relu for layer in network.layers[:-1]):
        raise ValueError("the network has no hidden ReLU layer to localize in")
    rng = np.random.default_rng(config.seed)
    if x_a.shape[0] > config.max_samples:
        pick = np.sort(rng.choice(x_a.shape[0], config.max_samples, replace=False))
        x_a, x_b = x_a[pick], x_b[pick]
    if correct_x.shape[0] > config.max_samples:
        correct_x = correct_x[np.sort(rng.choice(correct_x.shape[0], config.max_samples, replace=False))]
    if x_a.shape[0] == 0:
        return Localization((), (0.0,) * network.n_layers, None, (), "causal", config.k_values, 0,
                            int(correct_x.shape[0]), config.seed, time.perf_counter() - start,
                            config.collateral_weight)
    acts_a, acts_b, acts_c = network.forward_all(x_a), network.forward_all(x_b), network.forward_all(correct_x)
    decision_c = predict(network, correct_x)
    baseline = float(np.mean(pair_violation(acts_a[-1], acts_b[-1])))
    effects: list[NeuronEffect] = []
    for layer_index, layer in enumerate(network.layers[:-1]):
        if not layer.relu:
            continue
        a, b, c = acts_a[layer_index + 1], acts_b[layer_index + 1], acts_c[layer_index + 1]
        grid = np.linspace(0.0, 1.0, config.k_values)[:, None]
        values = grid * np.vstack([a, b, c]).max(axis=0)[None, :]                    # (K, u)
        scores = np.empty(values.shape)
        for (units, out_a), (_, out_b) in zip(intervene(network, layer_index, a, values, config.row_budget),
                                              intervene(network, layer_index, b, values, config.row_budget),
                                              strict=True):
            scores[:, units] = pair_violation(out_a, out_b).mean(axis=2)
        if config.intervention_range is InterventionRange.DOWN:
            allowed = values <= np.vstack([a, b]).mean(axis=0)[None, :]
            allowed[0] = True
            scores = np.where(allowed, scores, np.inf)
        best = values[np.argmin(scores, axis=0), np.arange(values.shape[1])]
        collateral = np.zeros(values.shape[1])
        if c.shape[0]:
            for units, out in intervene(network, layer_index, c, best[None, :], config.row_budget):
                collateral[units] = np.mean(np.argmax(out[0], axis=-1) != decision_c[None, :], axis=1)
        effects.extend(NeuronEffect(layer_index, unit, float(baseline - scores[:, unit].min()),
                                    float(collateral[unit])) for unit in range(values.shape[1]))
    return _ranked(network, effects, x_a.shape[0], correct_x.shape[0], config, time.perf_counter() - start)


def _ranked(network: Network, effects: list[NeuronEffect], n_pairs: int, n_correct: int,
            config: LocalizeConfig, elapsed: float) -> Localization:
    """Rank (ties within ``tie_rtol`` toward the output), score layers and suggest one."""
    def key(e: NeuronEffect) -> float:
        return e.effect_violation - config.collateral_weight * e.effect_correct

    lead = max((abs(key(e)) for e in effects), default=0.0)
    tie = config.tie_rtol * lead if lead else 0.0
    ranking = tuple(sorted(effects, key=lambda e: (-round(key(e) / tie) if tie else -key(e), -e.layer_index,
                                                   e.unit)))
    scores = [0.0] * network.n_layers
    best_units: dict[int, list[int]] = {}
    for effect in ranking:
        units = best_units.setdefault(effect.layer_index, [])
        if len(units) < config.top_k:
            units.append(effect.unit)
            scores[effect.layer_index] += max(key(effect), 0.0)
    layer = max(best_units, key=lambda i: (scores[i], i))
    return Localization(ranking, tuple(scores), layer, tuple(best_units[layer]), "causal", config.k_values,
                        n_pairs, n_correct, config.seed, elapsed, config.collateral_weight)
