"""The ``finetune`` strategy: BIRDNN's neuron-difference fine-tuning, ending in the certify loop's proof.

Pipeline position: registered in :mod:`verirepair.repair.strategy`; the
certify loop calls :func:`finetune_repair` once per round and verifies every
property on what it returns.

BIRDNN (Liang et al., 2023) ranks the hidden neurons by how differently they
behave on positive and negative samples and adjusts only the most suspicious
ones, by particle swarm optimisation.  Here the ranking is the ``activation``
localizer's (:func:`verirepair.localize.baselines.activation_effects`: the
difference of mean activations on negatives and positives in units of the
neuron's spread), the top ``n_neurons`` of all hidden layers are chosen, and
only their incoming weights and biases (rows of their layer) change, by

* ``adam`` (default): full-batch gradient descent on the loss of
  :mod:`verirepair.repair.training` (margin hinge plus fidelity), or
* ``pso``: a particle swarm over the same rows minimising the same loss
  (BIRDNN's optimiser; no gradients needed).

``benchmarks/results/birdnn_strategies.md`` compares the two.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from verirepair.repair.strategy_context import StrategyContext, StrategyOutcome
from verirepair.repair.training import (
    CHECK_EVERY,
    MAX_REPAIR_WEIGHT,
    PATIENCE_EPOCHS,
    REL_IMPROVEMENT,
    REPAIR_WEIGHT_GROWTH,
    Objective,
    TrainingRun,
    TrainingSamples,
    linear_parameters,
    negatives_fixed,
    network_from_module,
    single_threaded_torch,
    split_samples,
    train_adam,
    trained_outcome,
)

if TYPE_CHECKING:
    import torch

#: At most this many positives and negatives are given to the neuron ranking (seeded subset).
RANKING_SAMPLES = 1024

#: Particle swarm constants (inertia, cognitive and social weights; Clerc's constriction values).
PSO_INERTIA, PSO_COGNITIVE, PSO_SOCIAL = 0.729, 1.494, 1.494

#: Initial spread of the particles, relative to the mean absolute weight of the chosen rows.
PSO_SPREAD = 0.05


def rank_neurons(context: StrategyContext, samples: TrainingSamples) -> list[tuple[int, int]]:
    """Every hidden ``(layer_index, unit)``, largest activation difference first (ties: lower layer, unit)."""
    from verirepair.localize.baselines import activation_effects
    from verirepair.localize.config import LocalizeConfig

    rng = np.random.default_rng(context.seed)
    # Without violating points (only undecided properties' open sub-boxes), the region
    # points stand for the negatives: the margin hinge acts on them.
    neg = samples.negative_x if samples.negative_x.shape[0] else samples.region_x
    pos = samples.positive_x
    if neg.shape[0] == 0 or pos.shape[0] == 0 or context.network.n_layers < 2:
        return _fallback_neurons(context)
    neg = neg[rng.permutation(neg.shape[0])[:RANKING_SAMPLES]]
    pos = pos[rng.permutation(pos.shape[0])[:RANKING_SAMPLES]]
    effects = activation_effects(context.network, context.properties, neg, pos, LocalizeConfig())
    ranked = sorted(effects, key=lambda e: (-e.effect_violation, e.layer_index, e.unit))
    return [(e.layer_index, e.unit) for e in ranked]


def finetune_repair(context: StrategyContext) -> StrategyOutcome:
    """Adjust the incoming weights of the most suspicious neurons (see the module docstring).

    The top ``n_neurons`` go first; when their rows cannot make every
    negative safe, the set doubles (the next-ranked neurons join) until it
    works, every hidden neuron was tried, or the deadline comes.

    Returns
    -------
    StrategyOutcome -- REPAIRED with a NetworkPatch when every negative sample is
        safe on the float32-rounded result; SOLVER_FAILED otherwise
    """
    from verirepair.repair.config import RepairStatus

    samples = split_samples(context.network, context.properties, context.pool, context.preserve_x)
    ranked = rank_neurons(context, samples)
    count = min(context.config.n_neurons, len(ranked))
    while True:
        outcome = _finetune(context, samples, ranked[:count])
        result = outcome.result
        if (result is not None and result.status is RepairStatus.REPAIRED) or count >= len(ranked) \
                or time.perf_counter() > context.deadline:
            return outcome
        context.emit("repair", {"text": f"finetune: {count} neurons could not fix every counterexample "
                                        f"({result.message if result else ''}); trying {min(2 * count, len(ranked))}",
                                "log": True})
        count = min(2 * count, len(ranked))


def _finetune(context: StrategyContext, samples: TrainingSamples, chosen: list[tuple[int, int]]
              ) -> StrategyOutcome:
    """One fine-tuning of the rows of ``chosen``."""
    from verirepair.network.torch_export import to_torch

    cfg = context.config
    context.emit("repair", {"text": f"finetune ({cfg.optimizer}): neurons "
                                    + ", ".join(f"{layer}:{unit}" for layer, unit in chosen)})
    with single_threaded_torch(context.seed + cfg.seed_offset):
        import torch

        module = to_torch(context.network)
        layers = linear_parameters(module)
        masks: dict[int, torch.Tensor] = {}
        for layer_index, unit in chosen:
            weight, bias = layers[layer_index]
            masks.setdefault(id(weight), torch.zeros_like(weight))[unit, :] = 1.0
            masks.setdefault(id(bias), torch.zeros_like(bias))[unit] = 1.0
        objective = Objective(samples, context.properties, context.margins, cfg.fidelity_weight,
                              decision=(context.decision, cfg.decision_weight))
        accept = negatives_fixed(context, samples, module)
        if cfg.optimizer == "pso":
            run = _particle_swarm(module, objective, chosen, cfg.epochs, cfg.particles, context.deadline,
                                  np.random.default_rng(context.seed + cfg.seed_offset), accept)
        else:
            run = train_adam(module, objective, cfg.epochs, cfg.learning_rate, context.deadline, masks, accept)
        candidate = network_from_module(context.network, module)
    n_vars = sum(context.network.layers[layer].in_features + 1 for layer, _ in chosen)
    return trained_outcome(context, samples, candidate, run, f"finetune/{cfg.optimizer}", n_vars)


def _fallback_neurons(context: StrategyContext) -> list[tuple[int, int]]:
    """Without both kinds of samples: the units of the last hidden layer (the output layer's, if none)."""
    last = max(context.network.n_layers - 2, 0)
    return [(last, unit) for unit in range(context.network.layers[last].out_features)]


def _particle_swarm(module: torch.nn.Module, objective: Objective, chosen: list[tuple[int, int]], iterations: int,
                    n_particles: int, deadline: float, rng: np.random.Generator,
                    accept: Callable[[], bool]) -> TrainingRun:
    """Minimise ``objective`` over the chosen rows by a global-best particle swarm; leaves the best in ``module``."""
    import torch

    start = time.perf_counter()
    layers = linear_parameters(module)
    base = [(w.detach().clone(), b.detach().clone()) for w, b in layers]
    widths = [layers[layer][0].shape[1] + 1 for layer, _ in chosen]
    offsets = np.concatenate([[0], np.cumsum(widths)])
    scale = float(np.mean([np.abs(base[layer][0][unit].numpy()).mean() for layer, unit in chosen]))

    def place(theta: np.ndarray) -> None:
        with torch.no_grad():
            for (layer, unit), lo, hi in zip(chosen, offsets[:-1], offsets[1:], strict=True):
                weight, bias = layers[layer]
                delta = torch.from_numpy(theta[lo:hi])
                weight[unit] = base[layer][0][unit] + delta[:-1]
                bias[unit] = base[layer][1][unit] + delta[-1]

    def fitness(theta: np.ndarray) -> tuple[float, float]:
        place(theta)
        with torch.no_grad():
            loss, repair = objective(module)
        return float(loss), repair

    dim = int(offsets[-1])
    pos = rng.normal(0.0, PSO_SPREAD * max(scale, 1e-3), size=(n_particles, dim))
    pos[0] = 0.0                      # the original is one particle: the swarm never ends worse
    vel = np.zeros_like(pos)
    scores = [fitness(p) for p in pos]
    best_pos, best_f = pos.copy(), np.array([s[0] for s in scores])
    g = int(np.argmin(best_f))
    g_pos, g_f, g_repair = best_pos[g].copy(), float(best_f[g]), scores[g][1]
    since, step = 0, 0
    while step < iterations:
        step += 1
        r1, r2 = rng.random(pos.shape), rng.random(pos.shape)
        vel = PSO_INERTIA * vel + PSO_COGNITIVE * r1 * (best_pos - pos) + PSO_SOCIAL * r2 * (g_pos - pos)
        pos = pos + vel
        improved = False
        for i in range(n_particles):
            f, repair = fitness(pos[i])
            if f < best_f[i]:
                best_pos[i], best_f[i] = pos[i], f
            if f < g_f * (1 - REL_IMPROVEMENT):
                improved = True
            if f < g_f:
                g_pos, g_f, g_repair = pos[i].copy(), f, repair
        since = 0 if improved else since + 1
        if step % CHECK_EVERY == 0 and g_repair > 0.0:
            # The penalty schedule of train_adam: the margins must win; the scores change scale,
            # so the remembered bests are scored again.
            objective.repair_weight = min(objective.repair_weight * REPAIR_WEIGHT_GROWTH, MAX_REPAIR_WEIGHT)
            rescored = [fitness(p) for p in best_pos]
            best_f = np.array([f for f, _ in rescored])
            g = int(np.argmin(best_f))
            g_pos, g_f, g_repair, since = best_pos[g].copy(), float(best_f[g]), rescored[g][1], 0
        if g_repair == 0.0 and since >= PATIENCE_EPOCHS:
            break
        if time.perf_counter() > deadline:
            break
    place(g_pos)
    converged = accept()
    return TrainingRun(step, g_f, g_repair, converged, time.perf_counter() - start)
