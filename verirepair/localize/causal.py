"""Causality-based neuron ranking (CARE, Sun et al., ICSE 2022).

Pipeline position: :func:`verirepair.localize.localizer.localize` calls
:func:`causal_effects` for ``method="causal"``.

For each hidden neuron ``h`` (unit ``j`` of a ReLU layer ``l``) we intervene
``do(h = v)`` for ``K`` values ``v`` spread evenly over ``[0, max observed
activation of h]`` (observed on the counterexamples and the correct inputs),
propagate the *rest* of the network from layer ``l`` and measure the
interventional expectation ``E[score | do(h = v)]`` of the violation score
over the counterexamples.  The range always contains 0 (every ReLU unit can be
off), so ablating the neuron is one of the interventions.

Effect measure (our choice, and why).  CARE defines ``ACE_v = E[y | do(h=v)]
- baseline`` and uses the interventional curve to pick neurons for repair.
What we need is the neuron whose intervention removes the most violation, so
the violation effect of a neuron is::

    effect_violation = E[score] - min_{v in V} E[score | do(h = v)]

with ``E[score]`` the observed (non-intervened) mean score of the
counterexamples: the largest reduction of the mean violation that a single
intervention on that neuron achieves.  Unlike the spread ``max_v - min_v`` it
does not reward neurons that can only make the violation *worse*, and unlike
mean ``|ACE|`` it is not diluted by the many harmless values of ``v``.

``V`` is the grid restricted by ``config.intervention_range``: by default
(``"down"``) the values at or below the neuron's mean activation on the
counterexamples, 0 included.  A ReLU neuron *causes* a violation through its
activity; raising some other neuron far above its usual level can also cancel
the violation, but that neuron is a compensator, not the fault.  On planted
faults (``benchmarks/results/localize_planted.md``) the unrestricted grid
(``"full"``) ranks such compensators above the faulty neuron noticeably more
often; ``"full"`` is kept for repair-oriented use.

Collateral effect: under the best intervention ``v*`` of the neuron, the share
of the correct inputs that either become violating or change their decision
(the index of the minimal output, i.e. the ACAS Xu advisory).

Vectorisation: the intervention only changes column ``j`` of the activation,
so the next layer's pre-activation is ``Z0 + W[:, j] (v - a_j)``; all ``K``
values for a chunk of units and all samples form one ``(K, units, n, width)``
batch that goes through the remaining layers in one pass.  Chunks are sized
so that at most ``row_budget`` rows are in flight.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from verirepair.decision import get_decision_rule
from verirepair.localize.config import InterventionRange, LocalizeConfig
from verirepair.localize.result import NeuronEffect
from verirepair.localize.scoring import masked_scores, region_mask
from verirepair.network.model import Network
from verirepair.properties.property import Property
from verirepair.tolerances import CEX_TOL


def intervene(network: Network, layer_index: int, acts: np.ndarray, values: np.ndarray,
              row_budget: int) -> Iterator[tuple[slice, np.ndarray]]:
    """Outputs of the network under ``do(h_j = v)`` for every unit and value.

    Parameters
    ----------
    network : Network
    layer_index : int
        The intervened (hidden) layer.
    acts : array, shape (n, u)
        Observed post-ReLU activations of that layer on ``n`` inputs.
    values : array, shape (K, u)
        Intervention values per unit.
    row_budget : int
        At most this many intervened rows per batched forward pass.

    Yields
    ------
    units : slice
        A chunk ``J`` of consecutive units.
    outputs : array, shape (K, len(J), n, n_outputs)
        ``outputs[k, j, i]`` is the network output on input ``i`` with unit
        ``J[j]`` of layer ``layer_index`` set to ``values[k, J[j]]``.
    """
    n, width = acts.shape
    n_values = values.shape[0]
    nxt = network.layers[layer_index + 1]
    z0 = acts @ nxt.weight.T + nxt.bias                       # (n, u2)
    chunk = max(1, row_budget // max(1, n_values * n))
    for start in range(0, width, chunk):
        units = slice(start, min(width, start + chunk))
        delta = values[:, units, None] - acts.T[None, units, :]           # (K, J, n)
        z = z0[None, None] + delta[..., None] * nxt.weight[:, units].T[None, :, None, :]
        if nxt.relu:
            np.maximum(z, 0.0, out=z)
        elif nxt.nonlinear:
            z = nxt.activation.apply(z)
        flat = network.forward_from(layer_index + 1, z.reshape(-1, z.shape[-1]))
        yield units, flat.reshape(z.shape[:3] + (network.n_outputs,))


def _layer_effects(network: Network, props: Sequence[Property], layer_index: int,
                   cex: dict, cor: dict, config: LocalizeConfig) -> list[NeuronEffect]:
    """Violation and collateral effects of every unit of one hidden layer."""
    acts_cex = cex["acts"][layer_index + 1]
    acts_cor = cor["acts"][layer_index + 1]
    observed_max = np.vstack([acts_cex, acts_cor]).max(axis=0)             # (u,)
    observed_min = np.minimum(np.vstack([acts_cex, acts_cor]).min(axis=0), 0.0)
    grid = np.linspace(0.0, 1.0, config.k_values)[:, None]
    values = observed_min[None, :] + grid * (observed_max - observed_min)[None, :]  # (K, u)

    baseline = float(np.mean(cex["scores"]))
    mean_scores = np.empty(values.shape)
    for units, out in intervene(network, layer_index, acts_cex, values, config.row_budget):
        mean_scores[:, units] = masked_scores(props, out, cex["mask"]).mean(axis=2)
    if config.intervention_range is InterventionRange.DOWN:
        # values[0] == 0 <= mean activation, so every column keeps at least one value
        allowed = values <= acts_cex.mean(axis=0)[None, :]
        allowed[0] = True
        mean_scores = np.where(allowed, mean_scores, np.inf)
    effect_violation = baseline - mean_scores.min(axis=0)
    best = values[np.argmin(mean_scores, axis=0), np.arange(values.shape[1])]   # (u,)

    effect_correct = np.zeros(values.shape[1])
    if acts_cor.shape[0]:
        for units, out in intervene(network, layer_index, acts_cor, best[None, :],
                                    config.row_budget):
            out = out[0]                                                   # (J, m, out)
            now_violating = masked_scores(props, out, cor["mask"]) >= -CEX_TOL
            flipped = get_decision_rule(config.decision).decide(out) != cor["decision"][None, :]
            effect_correct[units] = np.mean(now_violating | flipped, axis=1)
    return [NeuronEffect(layer_index, unit, float(effect_violation[unit]),
                         float(effect_correct[unit])) for unit in range(values.shape[1])]


def _observe(network: Network, props: Sequence[Property], x: np.ndarray, decision: str) -> dict:
    """Activations, region mask, scores and decisions of inputs ``x`` (n, d)."""
    acts = network.forward_all(x) if x.shape[0] else [
        np.zeros((0, network.n_inputs))] + [np.zeros((0, layer.out_features))
                                            for layer in network.layers]
    mask = region_mask(props, x)
    return {"acts": acts, "mask": mask, "scores": masked_scores(props, acts[-1], mask),
            "decision": get_decision_rule(decision).decide(acts[-1]) if x.shape[0] else np.zeros(0, int)}


def causal_effects(network: Network, props: Sequence[Property], cex_x: np.ndarray,
                   correct_x: np.ndarray, config: LocalizeConfig) -> list[NeuronEffect]:
    """Causal effects of every hidden neuron on the violation (see module doc).

    Parameters
    ----------
    network : Network
    props : sequence of Property
    cex_x : array, shape (n, n_inputs), n >= 1
        Counterexamples (each inside some property's region).
    correct_x : array, shape (m, n_inputs), m >= 0
    config : LocalizeConfig
        Uses ``k_values``, ``intervention_range`` and ``row_budget``.

    Returns
    -------
    list of NeuronEffect
        One per hidden neuron, in layer/unit order (unranked).
    """
    cex = _observe(network, props, cex_x, config.decision)
    cor = _observe(network, props, correct_x, config.decision)
    effects: list[NeuronEffect] = []
    for layer_index, layer in enumerate(network.layers):
        if layer.nonlinear and layer_index + 1 < network.n_layers:
            effects.extend(_layer_effects(network, props, layer_index, cex, cor, config))
    return effects
