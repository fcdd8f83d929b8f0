"""Which repair strategy the certify loop uses, and the settings of the BIRDNN strategies.

Pipeline position: :class:`verirepair.run_config.RunConfig` holds one
:class:`StrategyConfig` (table ``[strategy]`` of a run file, ``--strategy`` on
the command line); :mod:`verirepair.repair.strategy` reads its ``name`` and
hands the rest to :mod:`verirepair.repair.imitation` or
:mod:`verirepair.repair.finetune`.  The ``lp`` strategy reads only
:class:`~verirepair.repair.config.RepairConfig`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

#: The strategies, in the order ``--help`` lists them (the registry in
#: :mod:`verirepair.repair.strategy` holds one entry for each).
STRATEGY_NAMES = ("lp", "cover", "imitation", "finetune")

#: Optimisers of the ``finetune`` strategy.
FINETUNE_OPTIMIZERS = ("adam", "pso")


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    """The repair strategy of a run and the settings of the trained ones.

    Parameters
    ----------
    name : {"lp", "cover", "imitation", "finetune"}
        ``lp``: minimal change of one layer by LP.  ``cover`` (the default):
        ``lp`` while the verifier decides every property; once it has left
        one undecided, a minimal change of the output layer that the LP proves
        itself on a cover of that property's region (the others kept by the
        pool's points and the loop's re-verification, as with ``lp``;
        :mod:`verirepair.repair.cover`).  ``imitation``
        (BIRDNN retraining): every weight may change; counterexamples learn the
        outputs of their nearest safe samples while a fidelity term keeps the
        original's outputs elsewhere.  ``finetune`` (BIRDNN fine-tuning): only
        the incoming weights of the hidden neurons whose activations differ
        most between safe and violating samples change.
    epochs : int
        Most full-batch optimisation steps of one repair attempt (Adam), or
        iterations (particle swarm).  Training stops earlier once every
        sample of a property region is outside its unsafe set by the
        property's margin and the fidelity term stopped improving.
    learning_rate : float
        Adam's step size (network coordinates; ACAS Xu weights are O(0.1-1)).
    fidelity_weight : float
        Weight of the fidelity term (mean squared output difference to the
        original on the positive samples) against the repair terms.
    decision_weight : float
        Weight of the decision term: how far positive samples fall short of
        the decision rule's keep rows (the LP's preservation rows).
    imitation_weight : float
        ``imitation``: weight of the imitation term (mean squared distance of a
        counterexample's output to the original's outputs at its nearest safe
        samples).
    n_neighbours : int
        ``imitation``: safe samples whose original outputs a counterexample
        imitates (their mean).
    n_neurons : int
        ``finetune``: how many hidden neurons (ranked by activation
        difference) have their incoming weights and bias adjusted.
    optimizer : {"adam", "pso"}
        ``finetune``: gradient-based (Adam) or particle swarm (BIRDNN's choice).
    particles : int
        ``finetune`` with ``pso``: swarm size.
    min_agreement : float
        A trained candidate whose positive samples keep their decision less
        often than this is rejected (SOLVER_FAILED), even if it fixes every
        counterexample: the penalty schedule lets the margins win at any
        price, and a widened margin once gave a proven network with 35 %
        fidelity (ACAS Xu N3,5, finetune; benchmarks/results/birdnn_strategies.md).
    seed_offset : int
        Added to the run's seed for torch's generator (the training itself is
        deterministic given the seed; single-threaded).
    """

    name: str = "cover"
    epochs: int = 600
    learning_rate: float = 2e-3
    fidelity_weight: float = 10.0
    decision_weight: float = 10.0
    imitation_weight: float = 1.0
    n_neighbours: int = 3
    n_neurons: int = 8
    optimizer: str = "adam"
    particles: int = 24
    min_agreement: float = 0.9
    seed_offset: int = 0

    def __post_init__(self) -> None:
        if self.name not in STRATEGY_NAMES:
            raise ValueError(f"StrategyConfig.name must be one of {', '.join(STRATEGY_NAMES)}, got {self.name!r}")
        if self.optimizer not in FINETUNE_OPTIMIZERS:
            raise ValueError(f"StrategyConfig.optimizer must be one of {', '.join(FINETUNE_OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")
        for name, least in (("epochs", 1), ("n_neighbours", 1), ("n_neurons", 1), ("particles", 2),
                            ("seed_offset", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise ValueError(f"StrategyConfig.{name} must be an integer >= {least}, got {value}")
        if not (isinstance(self.min_agreement, numbers.Real) and 0 <= float(self.min_agreement) <= 1):
            raise ValueError(f"StrategyConfig.min_agreement must lie in [0, 1], got {self.min_agreement}")
        for name in ("learning_rate", "fidelity_weight", "decision_weight", "imitation_weight"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and float(value) > 0):
                raise ValueError(f"StrategyConfig.{name} must be a finite number > 0, got {value}")
