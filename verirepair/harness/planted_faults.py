"""Planted faults: corrupt one hidden neuron of a safe network until it fails.

Pipeline position: an evaluation harness for the localization stage (the
benchmark ``benchmarks/bench_localize.py`` and the tests), not part of it (it
was ``localize/planted.py``; it moved here in issue 10).  A network that
satisfies its properties (as far as sampling can tell) gets one hidden neuron
corrupted, progressively, until sampling finds confirmed counterexamples; the
localizers are then scored by the rank they give the planted neuron.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from verirepair.localize.samples import sample_counterexamples
from verirepair.localize.scoring import masked_scores_torch, region_mask
from verirepair.network.model import Network
from verirepair.network.torch_export import torch_activation
from verirepair.properties.property import Property

#: Smallest reference magnitude used for a bias fault (network units), so that
#: a neuron whose pre-activation is ~0 on the samples can still be corrupted.
BIAS_REF_FLOOR = 1e-3


class FaultKind(enum.Enum):
    """How the planted neuron is corrupted.

    ``WEIGHTS`` multiplies its incoming weight row by ``scale``; ``BIAS`` adds
    ``(scale - 1) * ref`` to its bias, ``ref`` being the largest magnitude of
    its pre-activation on the region samples (at least ``BIAS_REF_FLOOR``).
    """

    BIAS = "bias"
    WEIGHTS = "weights"


@dataclass(frozen=True, slots=True)
class PlantedFault:
    """A network with one corrupted hidden neuron and its counterexamples.

    Parameters
    ----------
    network : Network
        The corrupted network (the original is untouched).
    layer_index, unit : int
        The corrupted neuron.
    kind : FaultKind
    scale : float
        The corruption factor at which violations first appeared.
    cex_x : array, shape (n, n_inputs)
        Confirmed counterexamples of the corrupted network (found by sampling).
    steps : int
        Number of growth steps taken (before the bisection).
    """

    network: Network
    layer_index: int
    unit: int
    kind: FaultKind
    scale: float
    cex_x: np.ndarray
    steps: int


def _corrupt(network: Network, layer_index: int, unit: int, kind: FaultKind,
             scale: float, ref: float) -> Network:
    layer = network.layers[layer_index]
    weight, bias = np.array(layer.weight), np.array(layer.bias)
    if kind is FaultKind.WEIGHTS:
        weight[unit] *= scale
    else:
        bias[unit] += (scale - 1.0) * ref
    return network.replace_layer(layer_index, weight, bias)


def _smallest_failing_scale(enough: Callable[[float], tuple[bool, Network]], growth: float,
                            max_steps: int, refine_steps: int
                            ) -> tuple[float, Network, int] | None:
    """Grow the scale geometrically until ``enough`` holds, then bisect back.

    Returns ``(scale, faulty network, growth steps)`` or None if no scale up to
    ``growth**max_steps`` fails.  Bisecting (in log scale) between the last
    safe and the first failing scale gives the smallest corruption that
    fails: the most realistic fault, and one that leaves plenty of correct
    inputs in the region.
    """
    for step in range(1, max_steps + 1):
        ok, faulty = enough(growth ** step)
        if not ok:
            continue
        low, high = growth ** (step - 1), growth ** step
        for _ in range(refine_steps):
            mid = float(np.sqrt(low * high))
            ok_mid, faulty_mid = enough(mid)
            if ok_mid:
                high, faulty = mid, faulty_mid
            else:
                low = mid
        return high, faulty, step
    return None


def _region_draws(props: Sequence[Property], rng: np.random.Generator, n: int) -> np.ndarray:
    return np.vstack([prop.sample_inputs(rng, max(1, n // len(props))) for prop in props])


def plant_fault(network: Network, props: Sequence[Property], layer_index: int, unit: int,
                kind: FaultKind | str, rng: np.random.Generator, growth: float = 1.5,
                max_steps: int = 60, n_draws: int = 4096,
                min_counterexamples: int = 10, n_counterexamples: int = 256,
                refine_steps: int = 6) -> PlantedFault:
    """Corrupt one neuron progressively until sampling finds violations.

    At step ``t = 1, 2, ...`` the neuron is corrupted with ``scale = growth**t``
    (see :class:`FaultKind`) until ``n_draws`` uniform samples of the property
    regions contain at least ``min_counterexamples`` confirmed
    counterexamples; the scale is then refined by ``refine_steps`` bisection
    steps (log scale) towards the smallest one that still does.

    Parameters
    ----------
    network : Network
        Must satisfy the properties on ``n_draws`` samples.
    props : sequence of Property
    layer_index, unit : int
        A hidden neuron (its layer has a ReLU and is not the last layer).
    kind : FaultKind or str
    rng : numpy Generator
    growth : float
        Factor by which the corruption grows per step (> 1).
    max_steps : int
    n_draws : int
        Samples per detection round.
    min_counterexamples : int
    n_counterexamples : int
        How many counterexamples to return at most (drawn once the scale is
        fixed, with up to ``16 * n_draws`` samples).
    refine_steps : int
        Bisection steps between the last safe and the first failing scale.

    Returns
    -------
    PlantedFault

    Raises
    ------
    ValueError
        If the neuron is not hidden, the original network already violates a
        property on the samples, or no scale up to ``growth**max_steps``
        produces enough violations.
    """
    kind = FaultKind(kind)
    if growth <= 1.0:
        raise ValueError(f"growth must exceed 1, got {growth}")
    layer = network.layers[layer_index]
    if not layer.relu or layer_index + 1 >= network.n_layers or not 0 <= unit < layer.out_features:
        raise ValueError(f"({layer_index}, {unit}) is not a hidden neuron")
    if sample_counterexamples(network, props, 1, rng, max_draws=n_draws).shape[0]:
        raise ValueError("the original network already violates the properties")
    pre = network.forward_all(_region_draws(props, rng, n_draws))[layer_index]
    pre = pre @ layer.weight[unit] + layer.bias[unit]
    ref = max(float(np.max(np.abs(pre))), BIAS_REF_FLOOR)
    def enough(scale: float) -> tuple[bool, Network]:
        faulty = _corrupt(network, layer_index, unit, kind, scale, ref)
        found = sample_counterexamples(faulty, props, min_counterexamples, rng, max_draws=n_draws)
        return found.shape[0] >= min_counterexamples, faulty

    failing = _smallest_failing_scale(enough, growth, max_steps, refine_steps)
    if failing is not None:
        scale, faulty, step = failing
        cex = sample_counterexamples(faulty, props, n_counterexamples, rng, max_draws=16 * n_draws)
        return PlantedFault(faulty, layer_index, unit, kind, scale, cex, step)
    raise ValueError(f"no violation found up to scale {growth ** max_steps:g}")


def fault_candidates(network: Network, props: Sequence[Property], layer_index: int,
                     rng: np.random.Generator, n_draws: int = 2048,
                     min_active: float = 0.05) -> np.ndarray:
    """Neurons of a layer where a fault can plausibly cause a violation.

    A candidate is active on at least ``min_active`` of the region samples
    (pass 0 for bias faults, which can wake a dead neuron up) and its mean
    derivative of the violation score (with respect to its own
    activation, later layers included) is positive, so that making it larger
    pushes the outputs toward the unsafe set.

    Parameters
    ----------
    network : Network
    props : sequence of Property
    layer_index : int
    rng : numpy Generator
    n_draws : int
    min_active : float

    Returns
    -------
    array of int, shape (c,)
        Candidate units, ascending.
    """
    import torch

    x = _region_draws(props, rng, n_draws)
    acts = network.forward_all(x)
    h = torch.tensor(acts[layer_index + 1], requires_grad=True)
    out = h
    for later in network.layers[layer_index + 1:]:
        out = out @ torch.tensor(later.weight).T + torch.tensor(later.bias)
        module = torch_activation(later.activation)
        out = module(out) if module is not None else out
    score = masked_scores_torch(props, out, region_mask(props, x))
    (grad,) = torch.autograd.grad(score.sum(), h)
    active = (acts[layer_index + 1] > 0).mean(axis=0)
    mean_grad = grad.numpy().mean(axis=0)
    return np.flatnonzero((active >= min_active) & (mean_grad > 0))
