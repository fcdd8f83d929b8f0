"""The typed result of the fault-localization stage.

Pipeline position: ``localize`` returns a :class:`Localization`; the repair
stage reads ``suggested_layer`` / ``suggested_neurons`` and the report
serialises it with :meth:`Localization.to_json_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NeuronEffect:
    """How strongly one hidden neuron is implicated in the violation.

    Parameters
    ----------
    layer_index : int
        Affine layer (from 0) whose post-ReLU output the neuron is.
    unit : int
        Index of the neuron in that layer's output.
    effect_violation : float
        Method-specific effect on the violation score over the counterexamples
        (causal: the largest reduction of the mean violation score that a
        single intervention ``do(h = v)`` achieves; larger = more to blame).
    effect_correct : float
        Method-specific collateral effect on the correct inputs (causal: the
        share of correct inputs that become violating or change their decision
        under that same best intervention).
    """

    layer_index: int
    unit: int
    effect_violation: float
    effect_correct: float

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"layer_index", "unit", "effect", "effect_correct"}``."""
        return {"layer_index": self.layer_index, "unit": self.unit,
                "effect": self.effect_violation, "effect_correct": self.effect_correct}


@dataclass(frozen=True, slots=True)
class Localization:
    """The ranked neurons and the suggested repair layer.

    Parameters
    ----------
    ranking : tuple of NeuronEffect
        Every hidden neuron, most to blame first (empty when there were no
        counterexamples, i.e. nothing to localize).  Near-equal keys (within
        ``LocalizeConfig.tie_rtol``) are ordered deepest layer first.
    layer_scores : tuple of float, shape (n_layers,)
        One score per affine layer (0 for the output layer and any layer
        without ReLU): the sum of the ranking keys (clipped at 0) of the
        layer's ``top_k`` best neurons.
    suggested_layer : int or None
        The layer with the largest score; None when the ranking is empty.
    suggested_neurons : tuple of int
        The ``top_k`` best neurons of the suggested layer, best first.
    method : str
    k_values : int
    n_counterexamples, n_correct : int
        Number of inputs actually used (after sub-sampling).
    seed : int
    time_s : float
        Wall-clock time of the call.
    collateral_weight : float
        The penalty weight used in the ranking key.
    """

    ranking: tuple[NeuronEffect, ...]
    layer_scores: tuple[float, ...]
    suggested_layer: int | None
    suggested_neurons: tuple[int, ...]
    method: str
    k_values: int
    n_counterexamples: int
    n_correct: int
    seed: int
    time_s: float
    collateral_weight: float = 0.0

    @property
    def is_empty(self) -> bool:
        """True when there was nothing to localize (no counterexamples)."""
        return not self.ranking

    def rank_of(self, layer_index: int, unit: int) -> int | None:
        """1-based rank of a neuron in the ranking, or None if it is absent."""
        for position, effect in enumerate(self.ranking, start=1):
            if effect.layer_index == layer_index and effect.unit == unit:
                return position
        return None

    def top(self, n: int) -> tuple[NeuronEffect, ...]:
        """The ``n`` neurons most to blame."""
        return self.ranking[:n]

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (plain Python types only)."""
        return {
            "method": self.method,
            "ranking": [effect.to_json_dict() for effect in self.ranking],
            "layer_scores": [float(score) for score in self.layer_scores],
            "suggested_layer": self.suggested_layer,
            "suggested_neurons": [int(unit) for unit in self.suggested_neurons],
            "k_values": self.k_values,
            "n_counterexamples": self.n_counterexamples,
            "n_correct": self.n_correct,
            "seed": self.seed,
            "time_s": self.time_s,
            "collateral_weight": self.collateral_weight,
        }
