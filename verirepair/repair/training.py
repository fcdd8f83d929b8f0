"""The torch machinery the BIRDNN strategies share: samples, the loss, the training loop.

Pipeline position: :mod:`verirepair.repair.imitation` and
:mod:`verirepair.repair.finetune` split the certify loop's points into
negative samples (violating a property whose region contains them on the
original) and positive samples (safe on the original: the task's
preservation points and the safe points of the property regions), build an
:class:`Objective` and minimise it with :func:`train_adam`.  The result is
checked by a float64 forward pass of its float32 rounding; only the certify
loop's verification can make it a proof.

The loss of a candidate network ``f`` (outputs in network coordinates) is

* repair: ``repair_weight * mean over region points of relu(score_p(f(x)) + margin_p)``, for
  every property ``p`` whose region contains ``x`` (``score`` as
  :meth:`~verirepair.properties.property.Property.violation_score`: every
  region point must end ``margin_p`` outside the unsafe set, as in the LP);
* fidelity: ``fidelity_weight * mean ||f(x) - f0(x)||^2`` on the positives,
  plus ``decision_weight`` times the mean (per positive) violation of the
  decision rule's keep rows (:meth:`DecisionRule.keep_rows` at ``MARGIN``,
  the rows the LP keeps as preservation constraints): squared output error
  alone lets ACAS Xu advisories whose scores are close flip;
* imitation (``imitation`` only): ``imitation_weight * mean ||f(x) - t(x)||^2``
  on the negatives, ``t(x)`` the original's mean output at the nearest positives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Property, violating_mask
from verirepair.repair.strategy_context import StrategyContext, StrategyOutcome
from verirepair.tolerances import MARGIN

if TYPE_CHECKING:
    import torch

#: Training stops once the repair term is zero and the total loss has not
#: improved by this relative amount over ``PATIENCE_EPOCHS``.
REL_IMPROVEMENT = 1e-3
PATIENCE_EPOCHS = 25

#: Epochs between two float64 checks of the float32-rounded candidate.
CHECK_EVERY = 10

#: Every ``CHECK_EVERY`` epochs with margins still unmet, the repair term's weight
#: grows by this factor, up to ``MAX_REPAIR_WEIGHT``.
REPAIR_WEIGHT_GROWTH = 2.0
MAX_REPAIR_WEIGHT = 1e6


@dataclass(frozen=True, slots=True)
class TrainingSamples:
    """The points a BIRDNN strategy learns from (every array batch-first).

    Parameters
    ----------
    region_x : array, shape (r, d) -- pool points inside some property region
    in_region : bool array, shape (r, n_props) -- which property regions contain each
    negative : bool array, shape (r,) -- violating on the original
    positive_x : array, shape (p, d) -- safe on the original (preservation points and safe region points)
    positive_y : array, shape (p, m) -- the original's outputs there
    """

    region_x: np.ndarray
    in_region: np.ndarray
    negative: np.ndarray
    positive_x: np.ndarray
    positive_y: np.ndarray

    @property
    def negative_x(self) -> np.ndarray:
        """The negative samples, (k, d)."""
        return self.region_x[self.negative]


def split_samples(network: Network, props: Sequence[Property], pool: np.ndarray,
                  preserve_x: np.ndarray) -> TrainingSamples:
    """Negative and positive samples from the loop's pool and preservation points (see the module docstring)."""
    d = network.n_inputs
    pool = np.asarray(pool, dtype=np.float64).reshape(-1, d)
    preserve_x = np.asarray(preserve_x, dtype=np.float64).reshape(-1, d)
    in_region = np.stack([p.in_region(pool) for p in props], axis=1) if props else np.zeros((pool.shape[0], 0), bool)
    inside = in_region.any(axis=1)
    region_x, in_region = pool[inside], in_region[inside]
    negative = violating_mask(props, region_x, network.forward(region_x))
    candidates = np.vstack([preserve_x, region_x[~negative]])
    safe = ~violating_mask(props, candidates, network.forward(candidates))
    positive_x = candidates[safe]
    return TrainingSamples(region_x, in_region, negative, positive_x, network.forward(positive_x))


def nearest_targets(samples: TrainingSamples, props: Sequence[Property], k: int) -> np.ndarray:
    """BIRDNN's imitation targets: for each negative, the original's mean output at its ``k`` nearest positives.

    A negative's neighbours are taken among the positives of its own property
    regions when it has any there, else among all positives (the rest of the
    domain).  Distances are Euclidean in network input coordinates.

    Returns
    -------
    array, shape (n_negatives, m)

    Raises
    ------
    ValueError -- there are negatives but no positive sample at all
    """
    neg_x, neg_regions = samples.negative_x, samples.in_region[samples.negative]
    if neg_x.shape[0] and samples.positive_x.shape[0] == 0:
        raise ValueError("imitation needs safe samples to imitate; none of the points is safe on the original")
    pos_regions = (np.stack([p.in_region(samples.positive_x) for p in props], axis=1)
                   if props else np.zeros((samples.positive_x.shape[0], 0), bool))
    targets = np.zeros((neg_x.shape[0], samples.positive_y.shape[1]))
    for i, (x, regions) in enumerate(zip(neg_x, neg_regions, strict=True)):
        same = (pos_regions & regions[None, :]).any(axis=1)
        pool = np.flatnonzero(same) if same.any() else np.arange(samples.positive_x.shape[0])
        dist = np.linalg.norm(samples.positive_x[pool] - x[None, :], axis=1)
        nearest = pool[np.argsort(dist, kind="stable")[:k]]
        targets[i] = samples.positive_y[nearest].mean(axis=0)
    return targets


@contextmanager
def single_threaded_torch(seed: int) -> Iterator[None]:
    """Seed torch and run it on one thread (the machine is shared); restores the thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def linear_parameters(module: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(weight, bias)`` of every Linear of ``module`` in order: the network's affine layers."""
    import torch

    return [(m.weight, m.bias) for m in module.modules() if isinstance(m, torch.nn.Linear)]


def network_from_module(network: Network, module: torch.nn.Module, stored: bool = True) -> Network:
    """``network`` with its affine parameters replaced by the module's (same graph).

    ``stored=True`` rounds them to the float32 values an ONNX file stores (the
    values the certify loop verifies), so that the forward checks here see
    what will be verified.
    """
    dtype = np.float32 if stored else np.float64
    result = network
    for index, (weight, bias) in enumerate(linear_parameters(module)):
        result = result.replace_layer(index, weight.detach().numpy().astype(dtype).astype(np.float64),
                                      bias.detach().numpy().astype(dtype).astype(np.float64))
    return result


def forward_check(original: Network, candidate: Network, samples: TrainingSamples,
                  props: Sequence[Property], decision: str) -> tuple[int, float]:
    """``(negatives made safe, share of positives whose decision is kept)`` by a float64 forward pass."""
    from verirepair.decision import get_decision_rule
    from verirepair.repair.repair import ADVISORY_TIE_TOL

    neg_x = samples.negative_x
    fixed = int(neg_x.shape[0] - np.count_nonzero(violating_mask(props, neg_x, candidate.forward(neg_x))))
    agreement = 1.0
    if samples.positive_x.shape[0]:
        kept = get_decision_rule(decision).kept(samples.positive_y, candidate.forward(samples.positive_x),
                                                ADVISORY_TIE_TOL)
        agreement = float(np.mean(kept))
    return fixed, agreement


def negatives_fixed(context: StrategyContext, samples: TrainingSamples, module: torch.nn.Module
                    ) -> Callable[[], bool]:
    """A check for :func:`train_adam`: on the module's float32 rounding, is every negative safe, and do the
    positives keep at least ``min_agreement`` of their decisions?  (Training goes on while either fails, so a
    candidate that met its margins early keeps recovering fidelity.)"""
    n_neg = int(samples.negative_x.shape[0])

    def accept() -> bool:
        candidate = network_from_module(context.network, module)
        fixed, agreement = forward_check(context.network, candidate, samples, context.properties, context.decision)
        return fixed == n_neg and agreement >= context.config.min_agreement

    return accept


def trained_outcome(context: StrategyContext, samples: TrainingSamples, candidate: Network,
                    run: TrainingRun, label: str, n_vars: int) -> StrategyOutcome:
    """The :class:`StrategyOutcome` of a trained candidate (already rounded to float32).

    REPAIRED when every negative sample is safe on it (float64 forward pass)
    and the positive samples keep their decisions at least ``min_agreement``
    of the time; the certify loop then verifies every property.  Otherwise
    SOLVER_FAILED, with the counts in the message.
    """
    from verirepair.repair.config import RepairResult, RepairStats, RepairStatus
    from verirepair.repair.network_patch import NetworkPatch

    fixed, agreement = forward_check(context.network, candidate, samples, context.properties, context.decision)
    n_neg = int(samples.negative_x.shape[0])
    stats = RepairStats(solver=label, solver_status="margins met" if run.converged else "margins not met",
                        n_vars=n_vars, solve_time_s=run.time_s, rounds=run.steps, n_counterexamples=n_neg,
                        n_preserve=int(samples.positive_x.shape[0]), cex_fixed=fixed,
                        preserve_agreement=agreement)
    patch = NetworkPatch.between(context.network, candidate)
    if patch is None:
        return StrategyOutcome(RepairResult(RepairStatus.SOLVER_FAILED, None, None, stats,
                                            f"{label}: training changed no weight"), None)
    summary = (f"{label}: {fixed}/{n_neg} counterexamples fixed after {run.steps} steps, positive-sample "
               f"decision agreement {agreement:.4f}, L1 {patch.l1:.6g}, Linf {patch.linf:.6g}, "
               f"{patch.n_changed} parameters changed")
    floor = context.config.min_agreement
    if fixed == n_neg and agreement < floor:
        return StrategyOutcome(RepairResult(RepairStatus.SOLVER_FAILED, patch, run.loss, stats,
                                            f"decision agreement on the positive samples below the floor "
                                            f"min_agreement={floor:g}: {summary}"), None)
    if fixed == n_neg:
        return StrategyOutcome(RepairResult(RepairStatus.REPAIRED, patch, run.loss, stats, summary),
                               patch.layer_indices[0])
    return StrategyOutcome(RepairResult(RepairStatus.SOLVER_FAILED, patch, run.loss, stats,
                                        f"not every counterexample is safe: {summary}"), None)


class Objective:
    """The loss of the module docstring over fixed samples (torch float64).

    Parameters
    ----------
    samples : TrainingSamples
    props : sequence of Property
    margins : sequence of float -- aligned with ``props``
    fidelity_weight : float
    imitation : (targets (k, m), weight) or None -- imitation targets for the negatives
    decision : (rule name, weight) or None -- the decision rule whose keep rows the positives must meet
    """

    def __init__(self, samples: TrainingSamples, props: Sequence[Property], margins: Sequence[float],
                 fidelity_weight: float, imitation: tuple[np.ndarray, float] | None = None,
                 decision: tuple[str, float] | None = None) -> None:
        import torch

        from verirepair.decision import get_decision_rule

        self.props, self.margins = list(props), [float(m) for m in margins]
        self.region_x = torch.as_tensor(samples.region_x)
        self.masks = [torch.as_tensor(samples.in_region[:, j]) for j in range(len(self.props))]
        self.positive_x = torch.as_tensor(samples.positive_x)
        self.positive_y = torch.as_tensor(samples.positive_y)
        self.negative_x = torch.as_tensor(samples.negative_x)
        self.fidelity_weight = fidelity_weight
        #: Raised by the optimiser while the margins are not met (a penalty schedule:
        #: the repair is the constraint, fidelity what is traded for it).
        self.repair_weight = 1.0
        self.imitation = None if imitation is None else (torch.as_tensor(imitation[0]), imitation[1])
        self.keep = None
        if decision is not None and samples.positive_x.shape[0]:
            rows = get_decision_rule(decision[0]).keep_rows(samples.positive_y, MARGIN)
            self.keep = (torch.as_tensor(rows.sample), torch.as_tensor(rows.c), torch.as_tensor(rows.lower),
                         torch.as_tensor(rows.upper), decision[1])

    def repair_term(self, module: torch.nn.Module) -> torch.Tensor:
        """Mean hinge ``relu(score + margin)`` over (region point, containing property) pairs."""
        import torch

        from verirepair.properties.property import violation_score_torch

        total, count = torch.zeros((), dtype=torch.float64), 0
        if self.region_x.shape[0]:
            y = module(self.region_x)
            for prop, mask, margin in zip(self.props, self.masks, self.margins, strict=True):
                if bool(mask.any()):
                    total = total + torch.relu(violation_score_torch(prop, y[mask]) + margin).sum()
                    count += int(mask.sum())
        return total / max(count, 1)

    def __call__(self, module: torch.nn.Module) -> tuple[torch.Tensor, float]:
        """``(total loss, repair term)``."""
        import torch

        repair = self.repair_term(module)
        total = self.repair_weight * repair
        if self.positive_x.shape[0]:
            y = module(self.positive_x)
            total = total + self.fidelity_weight * torch.mean((y - self.positive_y) ** 2)
            if self.keep is not None:
                sample, c, lower, upper, weight = self.keep
                value = (c * y[sample]).sum(dim=1)
                # Each row is a decision-keeping inequality the original meets; a free side is infinite.
                excess = torch.relu(lower - value) + torch.relu(value - upper)
                total = total + weight * excess.sum() / y.shape[0]
        if self.imitation is not None and self.negative_x.shape[0]:
            targets, weight = self.imitation
            total = total + weight * torch.mean((module(self.negative_x) - targets) ** 2)
        return total, float(repair.detach())


@dataclass(frozen=True, slots=True)
class TrainingRun:
    """How a training ended: steps taken, final loss and repair term, whether the margins were met, seconds."""

    steps: int
    loss: float
    repair_term: float
    converged: bool
    time_s: float


def train_adam(module: torch.nn.Module, objective: Objective, epochs: int, learning_rate: float,
               deadline: float, masks: dict[int, torch.Tensor] | None = None,
               accept: Callable[[], bool] | None = None) -> TrainingRun:
    """Full-batch Adam on ``objective`` until the margins hold and the loss settles, or ``epochs``/``deadline``.

    Parameters
    ----------
    module : torch module -- trained in place
    objective : Objective
    epochs : int
    learning_rate : float
    deadline : float -- ``time.perf_counter()`` value
    masks : dict id(parameter) -> 0/1 tensor of its shape, or None -- only entries with 1 change
        (the others are frozen: their gradient is zeroed before every step)
    accept : callable or None -- every ``CHECK_EVERY`` steps with a zero repair term, the float64 check
        of the rounded candidate; training stops once it passes and the loss has settled

    Returns
    -------
    TrainingRun
    """
    import torch

    start = time.perf_counter()
    params = [p for p in module.parameters() if masks is None or id(p) in masks]
    optimiser = torch.optim.Adam(params, lr=learning_rate)
    best, since, loss_value, repair, step, converged = np.inf, 0, np.inf, np.inf, 0, False
    for step in range(1, epochs + 1):
        optimiser.zero_grad()
        loss, repair = objective(module)
        loss.backward()
        if masks is not None:
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(masks[id(p)])
        optimiser.step()
        loss_value = float(loss.detach())
        since = 0 if loss_value < best * (1 - REL_IMPROVEMENT) else since + 1
        best = min(best, loss_value)
        if step % CHECK_EVERY == 0 and repair > 0.0:
            objective.repair_weight = min(objective.repair_weight * REPAIR_WEIGHT_GROWTH, MAX_REPAIR_WEIGHT)
            since = 0           # the loss changed scale
            best = np.inf
        elif step % CHECK_EVERY == 0:
            converged = accept() if accept is not None else True
            if converged and since >= PATIENCE_EPOCHS:
                break
        if time.perf_counter() > deadline:
            break
    if accept is not None:
        converged = accept()
    return TrainingRun(step, loss_value, repair, converged, time.perf_counter() - start)
