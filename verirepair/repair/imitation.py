"""The ``imitation`` strategy: BIRDNN's behaviour-imitation retraining, ending in the certify loop's proof.

Pipeline position: registered in :mod:`verirepair.repair.strategy`; the
certify loop calls :func:`imitation_repair` once per round with the pool of
points it has gathered, and verifies every property on what it returns.

BIRDNN (Liang et al., 2023) retrains the whole network so that each negative
sample (a counterexample) imitates the behaviour of the closest positive
samples, while the positive samples keep the original's behaviour.  Here:

* negatives: the pool points that violate a property whose region contains
  them on the original; positives: the task's preservation points (the rest
  of the domain) and the pool's safe region points (see
  :func:`~verirepair.repair.training.split_samples`);
* the target of a negative is the original's mean output at its
  ``n_neighbours`` nearest positives of the same property region
  (:func:`~verirepair.repair.training.nearest_targets`);
* the loss adds the margin hinge of the LP (every region point must end the
  property's margin outside the unsafe set), without which imitation alone
  leaves points on the boundary that the next verification finds again.

Every layer's weights and biases may change (same graph); the change is a
:class:`~verirepair.repair.network_patch.NetworkPatch`.
"""

from __future__ import annotations

from verirepair.repair.strategy_context import StrategyContext, StrategyOutcome
from verirepair.repair.training import (
    Objective,
    nearest_targets,
    negatives_fixed,
    network_from_module,
    single_threaded_torch,
    split_samples,
    train_adam,
    trained_outcome,
)


def imitation_repair(context: StrategyContext) -> StrategyOutcome:
    """Retrain every layer of ``context.network`` (see the module docstring).

    Returns
    -------
    StrategyOutcome -- REPAIRED with a NetworkPatch when every negative sample is
        safe on the float32-rounded result; SOLVER_FAILED otherwise
    """
    from verirepair.network.torch_export import to_torch

    cfg = context.config
    samples = split_samples(context.network, context.properties, context.pool, context.preserve_x)
    targets = nearest_targets(samples, context.properties, cfg.n_neighbours)
    context.emit("repair", {"text": f"imitation: {samples.negative_x.shape[0]} negatives imitate their "
                                    f"{cfg.n_neighbours} nearest of {samples.positive_x.shape[0]} positives"})
    with single_threaded_torch(context.seed + cfg.seed_offset):
        module = to_torch(context.network)
        objective = Objective(samples, context.properties, context.margins, cfg.fidelity_weight,
                              (targets, cfg.imitation_weight),
                              (context.decision, cfg.decision_weight))
        run = train_adam(module, objective, cfg.epochs, cfg.learning_rate, context.deadline,
                         accept=negatives_fixed(context, samples, module))
        candidate = network_from_module(context.network, module)
    n_vars = sum(layer.weight.size + layer.bias.size for layer in context.network.layers)
    return trained_outcome(context, samples, candidate, run, "imitation/adam", n_vars)

