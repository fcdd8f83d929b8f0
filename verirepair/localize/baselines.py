"""Baseline neuron rankings the causal method is compared with.

Pipeline position: :func:`verirepair.localize.localizer.localize` calls these
for ``method="activation"`` and ``method="gradient"``.

* Activation difference (BIRDNN-style): a neuron is suspicious when its mean
  activation on the counterexamples differs from its mean on the correct
  inputs, measured in units of its activation spread.
* Gradient x activation: the first-order estimate ``g_j * h_j`` of how much
  the violation score would drop if the neuron were switched off, averaged
  over the counterexamples; ranked by magnitude.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verirepair.localize.config import LocalizeConfig
from verirepair.localize.result import NeuronEffect
from verirepair.localize.scoring import masked_scores_torch, region_mask
from verirepair.network.model import Network
from verirepair.network.torch_export import torch_activation
from verirepair.properties.property import Property

#: Added to a neuron's activation standard deviation before dividing by it, so
#: that dead or constant neurons get a finite (and large only if their means
#: really differ) score.  Activations are O(0.1..10) on the benchmark nets.
ACT_SCALE_FLOOR = 1e-6


def _hidden(network: Network) -> list[int]:
    return [i for i, layer in enumerate(network.layers) if layer.nonlinear and i + 1 < network.n_layers]


def activation_effects(network: Network, props: Sequence[Property], cex_x: np.ndarray,
                       correct_x: np.ndarray, config: LocalizeConfig) -> list[NeuronEffect]:
    """Activation-difference effects (BIRDNN-style).

    Parameters
    ----------
    network : Network
    props : sequence of Property (unused: the method only looks at activations)
    cex_x : array, shape (n, n_inputs), n >= 1
    correct_x : array, shape (m, n_inputs), m >= 1
    config : LocalizeConfig (unused)

    Returns
    -------
    list of NeuronEffect
        ``effect_violation = |mean_cex - mean_correct| / (std_pooled + floor)``;
        ``effect_correct = mean_correct / (std_pooled + floor)`` (how much the
        correct behaviour relies on the neuron).

    Raises
    ------
    ValueError
        When there are no correct inputs to compare with.
    """
    del props, config
    if correct_x.shape[0] == 0:
        raise ValueError("the activation method needs correct inputs to compare with")
    acts_cex = network.forward_all(cex_x)
    acts_cor = network.forward_all(correct_x)
    effects: list[NeuronEffect] = []
    for layer_index in _hidden(network):
        a, c = acts_cex[layer_index + 1], acts_cor[layer_index + 1]
        scale = np.vstack([a, c]).std(axis=0) + ACT_SCALE_FLOOR
        diff = np.abs(a.mean(axis=0) - c.mean(axis=0)) / scale
        used = c.mean(axis=0) / scale
        effects.extend(NeuronEffect(layer_index, unit, float(diff[unit]), float(used[unit]))
                       for unit in range(a.shape[1]))
    return effects


def _grad_times_act(network: Network, props: Sequence[Property],
                    x: np.ndarray) -> dict[int, np.ndarray]:
    """Mean of ``dscore/dh * h`` over inputs ``x`` (n, d), per hidden layer; (u,) each."""
    import torch

    hidden = _hidden(network)
    if x.shape[0] == 0:
        return {i: np.zeros(network.layers[i].out_features) for i in hidden}
    mask = region_mask(props, x)
    h = torch.tensor(x)
    kept: dict[int, torch.Tensor] = {}
    for index, layer in enumerate(network.layers):
        h = h @ torch.tensor(layer.weight).T + torch.tensor(layer.bias)
        module = torch_activation(layer.activation)
        if module is not None:
            h = module(h)
        if index in hidden:
            h = h.detach().requires_grad_(True)
            kept[index] = h
    score = masked_scores_torch(props, h, mask)
    finite = torch.isfinite(score)
    total = torch.where(finite, score, torch.zeros_like(score)).sum()
    grads = torch.autograd.grad(total, [kept[i] for i in hidden], allow_unused=True)
    out = {}
    for index, grad in zip(hidden, grads, strict=True):
        grad = torch.zeros_like(kept[index]) if grad is None else grad
        out[index] = (grad * kept[index]).mean(dim=0).detach().numpy()
    return out


def gradient_effects(network: Network, props: Sequence[Property], cex_x: np.ndarray,
                     correct_x: np.ndarray, config: LocalizeConfig) -> list[NeuronEffect]:
    """Gradient x activation effects (torch autograd).

    Parameters
    ----------
    network : Network
    props : sequence of Property
    cex_x : array, shape (n, n_inputs), n >= 1
    correct_x : array, shape (m, n_inputs), m >= 0
    config : LocalizeConfig (unused)

    Returns
    -------
    list of NeuronEffect
        ``effect_violation = |mean_cex(g * h)|``, ``effect_correct =
        |mean_correct(g * h)|`` (inputs in no property region count 0).

    Notes
    -----
    The activations are detached per layer, so ``g`` is the derivative of the
    score with respect to the layer's output holding the earlier layers fixed,
    i.e. exactly the total effect of changing that one activation.
    """
    del config
    on_cex = _grad_times_act(network, props, cex_x)
    on_cor = _grad_times_act(network, props, correct_x)
    return [NeuronEffect(layer_index, unit, float(abs(on_cex[layer_index][unit])),
                         float(abs(on_cor[layer_index][unit])))
            for layer_index in _hidden(network)
            for unit in range(network.layers[layer_index].out_features)]
