"""The public entry point of the localization stage.

Pipeline position: ``(Network, counterexamples, properties) --localize-->
Localization``; the repair stage then edits ``suggested_layer``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from verirepair.localize.baselines import activation_effects, gradient_effects
from verirepair.localize.causal import causal_effects
from verirepair.localize.config import LocalizeConfig, LocalizeMethod
from verirepair.localize.result import Localization, NeuronEffect
from verirepair.localize.scoring import region_mask
from verirepair.network.model import Network
from verirepair.properties.property import Property

EffectFn = Callable[[Network, Sequence[Property], np.ndarray, np.ndarray, LocalizeConfig],
                    list[NeuronEffect]]

#: Registry of localization methods (CONVENTIONS.md, 6).
METHODS: dict[LocalizeMethod, EffectFn] = {
    LocalizeMethod.CAUSAL: causal_effects,
    LocalizeMethod.ACTIVATION: activation_effects,
    LocalizeMethod.GRADIENT: gradient_effects,
}


def _as_inputs(x: np.ndarray, network: Network, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2 and x.shape[0] == 0:
        return np.zeros((0, network.n_inputs))
    if x.ndim != 2 or x.shape[1] != network.n_inputs:
        raise ValueError(f"{what} must have shape (n, {network.n_inputs}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return x


def _subsample(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` rows of ``x``, a seeded subset in the original order."""
    if x.shape[0] <= limit:
        return x
    return x[np.sort(rng.choice(x.shape[0], size=limit, replace=False))]


def _rank(effects: list[NeuronEffect], weight: float, tie_rtol: float
          ) -> tuple[NeuronEffect, ...]:
    """Sort by ``effect_violation - weight * effect_correct``, best first.

    Consecutive keys within ``tie_rtol`` (relative) of their group's leading
    key form a tie group, ordered deepest layer first, then by unit (see
    :class:`~verirepair.localize.config.LocalizeConfig`, ``tie_rtol``).
    """
    def key(e: NeuronEffect) -> float:
        return e.effect_violation - weight * e.effect_correct

    ordered = sorted(effects, key=lambda e: (-key(e), -e.layer_index, e.unit))
    ranking: list[NeuronEffect] = []
    start = 0
    while start < len(ordered):
        lead = key(ordered[start])
        stop = start + 1
        while stop < len(ordered) and lead - key(ordered[stop]) <= tie_rtol * abs(lead):
            stop += 1
        ranking.extend(sorted(ordered[start:stop], key=lambda e: (-e.layer_index, e.unit)))
        start = stop
    return tuple(ranking)


def _suggest(network: Network, ranking: tuple[NeuronEffect, ...], config: LocalizeConfig
             ) -> tuple[tuple[float, ...], int, tuple[int, ...]]:
    """Layer scores, the suggested layer and its top neurons."""
    weight = config.collateral_weight
    per_layer: dict[int, list[NeuronEffect]] = {}
    for effect in ranking:                       # ranking order => best first per layer
        per_layer.setdefault(effect.layer_index, []).append(effect)
    scores = [0.0] * network.n_layers
    for layer_index, effects in per_layer.items():
        keys = [e.effect_violation - weight * e.effect_correct for e in effects[:config.top_k]]
        scores[layer_index] = float(sum(max(key, 0.0) for key in keys))
    best = max(per_layer, key=lambda i: (scores[i], -i))
    units = tuple(e.unit for e in per_layer[best][:config.top_k])
    return tuple(scores), best, units


def localize(network: Network, props: Sequence[Property], cex_x: np.ndarray,
             correct_x: np.ndarray, config: LocalizeConfig | None = None) -> Localization:
    """Rank the hidden neurons by how much they cause the property violation.

    Parameters
    ----------
    network : Network
    props : sequence of Property
        The violated properties; an input's score is the max over the
        properties whose region contains it.
    cex_x : array, shape (n, n_inputs)
        Confirmed counterexamples (e.g. ``[c.x for c in result.counterexamples]``).
        Each must lie in some property's input region.
    correct_x : array, shape (m, n_inputs)
        Inputs that satisfy the properties (e.g. from
        :func:`verirepair.localize.samples.sample_correct`); used for the
        intervention ranges and the collateral effect.
    config : LocalizeConfig or None
        Defaults to ``LocalizeConfig()`` (causal method).

    Returns
    -------
    Localization
        With an empty ranking (and ``suggested_layer=None``) when ``cex_x``
        has no rows: nothing is violated, so there is nothing to localize.

    Raises
    ------
    ValueError
        On inputs of the wrong shape, a counterexample outside every property
        region, a property that does not fit the network, or a network
        without hidden ReLU layers.
    """
    start = time.perf_counter()
    config = LocalizeConfig() if config is None else config
    props = list(props)
    if not props:
        raise ValueError("localize needs at least one property")
    if any(p.n_inputs != network.n_inputs or p.n_outputs != network.n_outputs for p in props):
        raise ValueError("property dimensions do not match the network")
    if not any(layer.nonlinear for layer in network.layers[:-1]):
        raise ValueError("the network has no hidden (non-linear) layer to localize in")
    rng = np.random.default_rng(config.seed)
    cex_x = _subsample(_as_inputs(cex_x, network, "cex_x"), config.max_samples, rng)
    correct_x = _subsample(_as_inputs(correct_x, network, "correct_x"), config.max_samples, rng)
    # The config holds a LocalizeMethod after __post_init__ (a str is accepted when building it).
    method = LocalizeMethod(config.method)
    if cex_x.shape[0] == 0:
        return Localization((), (0.0,) * network.n_layers, None, (), method.value, config.k_values,
                            0, int(correct_x.shape[0]), config.seed,
                            time.perf_counter() - start, config.collateral_weight)
    outside = ~region_mask(props, cex_x).any(axis=1)
    if outside.any():
        raise ValueError(
            f"{int(outside.sum())} counterexample(s) lie outside every property region")
    effects = METHODS[method](network, props, cex_x, correct_x, config)
    ranking = _rank(effects, config.collateral_weight, config.tie_rtol)
    layer_scores, layer, units = _suggest(network, ranking, config)
    return Localization(ranking, layer_scores, layer, units, method.value, config.k_values,
                        int(cex_x.shape[0]), int(correct_x.shape[0]), config.seed,
                        time.perf_counter() - start, config.collateral_weight)
