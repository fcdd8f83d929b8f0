"""Settings of the fault-localization stage.

Pipeline position: ``localize(network, props, cex_x, correct_x, config)`` reads
one :class:`LocalizeConfig`; every default lives here and nowhere else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class LocalizeMethod(enum.Enum):
    """Which fault-localization algorithm ranks the hidden neurons.

    ``CAUSAL`` is the interventional method of CARE (Sun et al., ICSE 2022);
    ``ACTIVATION`` (BIRDNN-style activation difference) and ``GRADIENT``
    (gradient x activation) are the baselines it is compared with.
    """

    CAUSAL = "causal"
    ACTIVATION = "activation"
    GRADIENT = "gradient"


class InterventionRange(enum.Enum):
    """Which interventions ``do(h = v)`` count towards a neuron's causal effect.

    ``DOWN`` (default): only values at or below the neuron's mean activation on
    the counterexamples (0 included), i.e. "what if this neuron had been less
    active": a *cause* of the violation is excess activity.  ``FULL``: every
    value of the grid, i.e. the neuron whose setting can most reduce the
    violation in either direction (this also ranks neurons that could
    *compensate* for a fault elsewhere by being raised).
    """

    DOWN = "down"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class LocalizeConfig:
    """Settings of one localization call.

    Parameters
    ----------
    method : LocalizeMethod or str
        ``"causal"`` (default), ``"activation"`` or ``"gradient"``.
    k_values : int
        Number of intervention values ``v`` per neuron (causal method), spread
        evenly over ``[0, max observed activation]``.
    seed : int
        Seed of the sub-sampling of the inputs (see ``max_samples``); the
        result is a deterministic function of the inputs and this seed.
    top_k : int
        How many neurons of the suggested layer to suggest, and how many top
        neurons of each layer make up its layer score.
    max_samples : int
        At most this many counterexamples and at most this many correct inputs
        are used (a seeded random subset when there are more).
    collateral_weight : float
        Ranking key is ``effect_violation - collateral_weight * effect_correct``.
        The default 0 ranks by the violation effect alone, as CARE does; the
        collateral effect is still reported for every neuron.
    tie_rtol : float
        Ranking keys within this relative distance of a tie group's leading
        key are ties, and ties rank the neuron *closer to the output* first.
        Why: several neurons often have the same effect because intervening
        on any of them switches off the same downstream path (an upstream
        neuron silences the faulty one, which silences the output's driver);
        the one nearest the output is the proximate cause through which the
        others act, and the cheapest place to repair.  0 disables grouping.
    intervention_range : InterventionRange or str
        ``"down"`` (default) or ``"full"``; see :class:`InterventionRange`.
    row_budget : int
        Largest number of intervened rows pushed through the network in one
        batched forward pass (bounds memory: rows x width x 8 bytes).
    decision : str
        The decision rule of the collateral effect ("change their decision"): a
        name of :func:`verirepair.decision.list_decision_rules`; a repair task sets it.
    """

    method: LocalizeMethod | str = LocalizeMethod.CAUSAL
    k_values: int = 16
    seed: int = 0
    top_k: int = 5
    max_samples: int = 256
    collateral_weight: float = 0.0
    tie_rtol: float = 1e-3
    intervention_range: InterventionRange | str = InterventionRange.DOWN
    row_budget: int = 1 << 17
    decision: str = "argmin"

    def __post_init__(self) -> None:
        from verirepair.decision import list_decision_rules

        if self.decision not in list_decision_rules():
            raise ValueError(f"unknown decision rule {self.decision!r}; "
                             f"choose one of {', '.join(list_decision_rules())}")
        try:
            intervention_range = InterventionRange(self.intervention_range)
        except ValueError:
            raise ValueError(f"unknown intervention range {self.intervention_range!r}; "
                             "choose 'down' or 'full'") from None
        object.__setattr__(self, "intervention_range", intervention_range)
        try:
            method = LocalizeMethod(self.method)
        except ValueError:
            choices = ", ".join(m.value for m in LocalizeMethod)
            raise ValueError(f"unknown localization method {self.method!r}; "
                             f"choose one of {choices}") from None
        object.__setattr__(self, "method", method)
        if self.k_values < 2:
            raise ValueError(f"k_values must be at least 2, got {self.k_values}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, got {self.max_samples}")
        if self.collateral_weight < 0:
            raise ValueError(f"collateral_weight must be >= 0, got {self.collateral_weight}")
        if not 0.0 <= self.tie_rtol < 1.0:
            raise ValueError(f"tie_rtol must be in [0, 1), got {self.tie_rtol}")
        if self.row_budget < 1:
            raise ValueError(f"row_budget must be positive, got {self.row_budget}")
