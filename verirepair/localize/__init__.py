"""Fault localization: which hidden neurons cause a property violation.

Pipeline position: ``(Network, counterexamples, properties) --localize-->
Localization(ranked (layer_index, unit, effect))``, read by the repair stage.
The default method is the causal one of CARE (:mod:`.causal`); the activation
and gradient baselines live in :mod:`.baselines`.
"""

from verirepair.localize.config import InterventionRange, LocalizeConfig, LocalizeMethod
from verirepair.localize.localizer import METHODS, localize
from verirepair.localize.plot import plot_localization
from verirepair.localize.result import Localization, NeuronEffect
from verirepair.localize.samples import pgd_counterexamples, sample_correct, sample_counterexamples

__all__ = [
    "InterventionRange", "LocalizeConfig", "LocalizeMethod", "Localization", "NeuronEffect",
    "METHODS", "localize",
    "pgd_counterexamples", "plot_localization", "sample_correct", "sample_counterexamples",
]
