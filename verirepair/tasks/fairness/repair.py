"""The fairness repair loop: find discriminatory pairs, localize, change one layer by LP, re-measure, iterate.

Pipeline position: the task's driver, called by ``verirepair fairness repair``
and the benchmark.  One round:

1. **Find** discriminatory individuals on the current network, for every
   protected attribute, among the training individuals and a *fresh* seeded
   uniform sample of the feature domain (new seed each round).
2. **Fix points**: every variant of such an individual (its protected
   attribute set to each value, its own value included) gets the *original*
   network's decision on the individual as it is (for a training individual:
   as it appears in the data).  The labels are not used: the repair removes the
   dependence on the protected attribute and changes nothing else, so the
   accuracy change is a side effect to measure, not a goal.  Fix points
   accumulate over rounds, at most ``max_new_individuals`` new individuals per
   attribute per round (the furthest from agreement first).
3. **Keep points**: a seeded subset of the training individuals that are not
   fix points keeps the original network's class (hard constraints of the LP).
4. **Repair** with :func:`verirepair.tasks.classify_repair.repair_to_targets`
   (always from the original network, so the change stays minimal for the
   whole fix set), layer and neurons from :func:`localize_fairness` on the
   first round's pairs.  The result is rounded to float32, as written to ONNX,
   so every later number is about the delivered network.
5. Stop when a round finds no new discriminatory individual, or after
   ``max_rounds``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from verirepair.localize import Localization, LocalizeConfig
from verirepair.network.model import Network
from verirepair.repair import RepairConfig, RepairStatus
from verirepair.tasks.classifier import as_float32, margins, predict
from verirepair.tasks.classify_repair import ClassifyRepairStats, repair_to_targets
from verirepair.tasks.fairness.data import Encoding
from verirepair.tasks.fairness.localization import localize_fairness
from verirepair.tasks.fairness.measure import discriminated, sample_domain
from verirepair.tasks.fairness.protected import ProtectedAttribute

__all__ = ["FairRepairConfig", "FairRepairResult", "RoundRecord", "repair_fairness"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FairRepairConfig:
    """Settings of :func:`repair_fairness`.

    Parameters
    ----------
    margin : float
        Logit margin every fix point must get for its target class.
    max_rounds : int
        Repair rounds (fresh samples each).
    n_domain : int
        Uniform domain samples searched per round.
    max_new_individuals : int
        At most this many new discriminatory individuals per attribute per round.
    n_keep : int
        Training individuals kept at their class (hard LP constraints).
    layer_index : int or None
        The layer to change; None: the layer localization suggests.
    neurons : {"localized", "all"}
        Change only the suggested neurons' rows (``LocalizeConfig.top_k`` of
        them) or the whole layer.
    inputs : {"protected", "all"}
        When the repaired layer is the first one: change only the weights from
        the protected attributes' inputs (and the biases), the direct path of
        the dependence, or every weight of the changed rows.
    localize : LocalizeConfig
    repair : RepairConfig
        The core's LP settings (solver, norm, ``max_delta``, ``time_limit_s``
        for the whole repair).
    seed : int
    """

    margin: float = 0.05
    max_rounds: int = 6
    n_domain: int = 0
    max_new_individuals: int = 15
    n_keep: int = 300
    layer_index: int | None = None
    neurons: str = "localized"
    inputs: str = "all"
    localize: LocalizeConfig = field(default_factory=lambda: LocalizeConfig(decision="argmax", top_k=8,
                                                                                   collateral_weight=1.0))
    repair: RepairConfig = field(default_factory=lambda: RepairConfig(solver="highs", decision="argmax",
                                                                      time_limit_s=300.0))
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.margin > 0:
            raise ValueError("margin must be positive")
        for name in ("max_rounds", "max_new_individuals", "n_keep"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.n_domain < 0:
            raise ValueError("n_domain must be >= 0")
        if self.neurons not in ("localized", "all"):
            raise ValueError(f"neurons must be 'localized' or 'all', got {self.neurons!r}")
        if self.inputs not in ("protected", "all"):
            raise ValueError(f"inputs must be 'protected' or 'all', got {self.inputs!r}")


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """One round of the loop."""

    round: int
    new_individuals: dict[str, int]
    n_fix_points: int
    status: str
    message: str
    l1: float
    linf: float
    n_changed: int
    time_s: float

    def to_json(self) -> dict:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class FairRepairResult:
    """What :func:`repair_fairness` returns.

    ``network`` is the repaired network (float32-rounded), or the original one
    when no round produced a repair (``status`` says why).
    """

    network: Network
    status: str
    localization: Localization
    layer_index: int
    neurons: tuple[int, ...] | None
    rounds: tuple[RoundRecord, ...]
    stats: ClassifyRepairStats | None
    time_s: float

    @property
    def repaired(self) -> bool:
        """Whether some round produced a patch."""
        return self.stats is not None and self.stats.status is RepairStatus.REPAIRED


def _find_pairs(network: Network, x: np.ndarray, attribute: ProtectedAttribute
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Discriminatory rows of ``x``: their indices, all variants ``(n, k, d)`` and one flipping variant each."""
    mask, flipped = discriminated(network, x, attribute)
    rows = np.flatnonzero(mask)
    variants, _ = attribute.variants(x[rows])
    first_flip = np.argmax(flipped[rows], axis=1)
    return rows, variants, variants[np.arange(rows.size), first_flip]


def repair_fairness(network: Network, encoding: Encoding, attributes: Sequence[ProtectedAttribute],
                    x_train: np.ndarray, config: FairRepairConfig = FairRepairConfig(),
                    progress: Callable[[str], None] | None = None) -> FairRepairResult:
    """Remove the dependence of ``network``'s decisions on the protected attributes (module docstring).

    Parameters
    ----------
    network : Network
        A 2-class classifier over ``encoding``'s inputs.
    encoding : Encoding
    attributes : sequence of ProtectedAttribute
    x_train : array, shape (n, d)
        Training individuals (pairs and keep points are drawn from them).
    config : FairRepairConfig
    progress : callable, optional
        Called with a one-line message after each stage.

    Returns
    -------
    FairRepairResult
        When a round's LP has no solution, the round is retried with the
        easier half of its new individuals (those nearest agreement), at most
        twice; a round that still fails ends the loop with the last repaired
        network.
    """
    start = time.perf_counter()
    say = progress or (lambda message: None)
    rng = np.random.default_rng(config.seed)
    original = network
    keep_pool = rng.permutation(x_train.shape[0])
    state = _LoopState(np.zeros((0, network.n_inputs)), np.zeros(0, dtype=np.int64), set())
    current = network
    localization: Localization | None = None
    layer_index = config.layer_index
    neurons: tuple[int, ...] | None = None
    records: list[RoundRecord] = []
    stats: ClassifyRepairStats | None = None
    for round_no in range(1, config.max_rounds + 1):
        round_start = time.perf_counter()
        domain = sample_domain(encoding, config.n_domain, np.random.default_rng([config.seed, round_no]))
        batches = [_new_individuals(current, original, attribute, x_train, domain, config.max_new_individuals)
                   for attribute in attributes]
        new = {a.name: b.n for a, b in zip(attributes, batches, strict=True)}
        say(f"round {round_no}: new discriminatory individuals " + ", ".join(f"{a} {n}" for a, n in new.items()))
        if not sum(new.values()):
            records.append(RoundRecord(round_no, new, int(state.fix_x.shape[0]), "converged",
                                       "no discriminatory individual found", 0.0, 0.0, 0,
                                       time.perf_counter() - round_start))
            break
        if localization is None:
            x_a = np.vstack([b.x for b in batches])
            x_b = np.vstack([b.flip for b in batches])
            used = np.fromiter((r for b in batches for r in b.train_rows), int)
            correct = x_train[np.setdiff1d(keep_pool[:config.localize.max_samples * 4], used)]
            localization = localize_fairness(original, x_a, x_b, correct, config.localize)
            if layer_index is None:
                layer_index = int(localization.suggested_layer if localization.suggested_layer is not None
                                  else network.n_layers - 1)
            if config.neurons == "localized" and layer_index == localization.suggested_layer:
                neurons = localization.suggested_neurons
            say(f"localized: layer {layer_index}, neurons {list(localization.suggested_neurons)}")
        assert layer_index is not None  # set on the first round
        result: ClassifyRepairStats | None = None
        share = 1.0
        for _attempt in range(3):
            trial = state.extended([b.easiest(share) for b in batches])
            remaining = config.repair.time_limit_s - (time.perf_counter() - start)
            if remaining <= 1.0:
                break
            patched, result = _repair_round(original, trial, x_train, keep_pool, attributes, layer_index,
                                            neurons, config, remaining)
            say(f"round {round_no}: {result.status.value} with {trial.fix_x.shape[0]} fix points, "
                f"{result.n_keep} keep points, L1 {result.l1:.4g}, {result.n_changed} parameters changed")
            if result.status is not RepairStatus.INFEASIBLE:
                break
            share /= 2
        if result is None:
            records.append(RoundRecord(round_no, new, int(state.fix_x.shape[0]), "timeout",
                                       "repair time limit reached", 0.0, 0.0, 0, time.perf_counter() - round_start))
            break
        records.append(RoundRecord(round_no, new, int(trial.fix_x.shape[0]), result.status.value, result.message,
                                   result.l1, result.linf, result.n_changed, time.perf_counter() - round_start))
        if result.status is RepairStatus.NOT_NEEDED:
            state = trial
            continue
        if result.status is not RepairStatus.REPAIRED:
            break
        state, stats, current = trial, result, as_float32(patched)
    if localization is None:
        localization = Localization((), (0.0,) * network.n_layers, None, (), "causal",
                                    config.localize.k_values, 0, 0, config.localize.seed, 0.0)
    status = stats.status.value if stats is not None else (records[-1].status if records else "not_run")
    return FairRepairResult(current, status, localization, int(layer_index if layer_index is not None else -1),
                            neurons, tuple(records), stats, time.perf_counter() - start)


@dataclass(frozen=True, slots=True)
class _Batch:
    """New discriminatory individuals of one attribute in one round, hardest first."""

    x: np.ndarray                 # (n, d) the individuals
    flip: np.ndarray              # (n, d) one variant each whose decision differs
    variants: np.ndarray          # (n, k, d) every value of the attribute
    targets: np.ndarray           # (n,) the original network's decision on x
    train_rows: tuple[int, ...]   # rows of x_train among them

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def easiest(self, share: float) -> _Batch:
        """The last ``ceil(share * n)`` individuals (nearest agreement), or all when ``share == 1``."""
        if share >= 1.0:
            return self
        keep = int(np.ceil(share * self.n))
        part = slice(self.n - keep, self.n)
        # training individuals come first, so train_rows[i] belongs to x[i]
        rows = tuple(self.train_rows[i] for i in range(self.n - keep, min(self.n, len(self.train_rows))))
        return _Batch(self.x[part], self.flip[part], self.variants[part], self.targets[part], rows)


@dataclass(frozen=True, slots=True)
class _LoopState:
    """The accumulated fix points and the training rows they came from."""

    fix_x: np.ndarray
    fix_t: np.ndarray
    train_rows: set[int]

    def extended(self, batches: Sequence[_Batch]) -> _LoopState:
        parts_x = [self.fix_x] + [b.variants.reshape(-1, self.fix_x.shape[1]) for b in batches]
        parts_t = [self.fix_t] + [np.repeat(b.targets, b.variants.shape[1]) for b in batches]
        fix_x, first = np.unique(np.vstack(parts_x), axis=0, return_index=True)
        rows = set(self.train_rows)
        for b in batches:
            rows.update(b.train_rows)
        return _LoopState(fix_x, np.concatenate(parts_t)[first], rows)


def _new_individuals(current: Network, original: Network, attribute: ProtectedAttribute, x_train: np.ndarray,
                     domain: np.ndarray, limit: int) -> _Batch:
    """Up to ``limit`` discriminatory individuals of ``current`` (training ones first), hardest first."""
    xs: list[np.ndarray] = []
    flips: list[np.ndarray] = []
    variants: list[np.ndarray] = []
    rows_out: list[int] = []
    for source, pool in (("train", x_train), ("domain", domain)):
        if not pool.shape[0] or sum(x.shape[0] for x in xs) >= limit:
            continue
        mask, flipped = discriminated(current, pool, attribute)
        rows = np.flatnonzero(mask)
        if not rows.size:
            continue
        var, _ = attribute.variants(pool[rows])
        flip = var[np.arange(rows.size), np.argmax(flipped[rows], axis=1)]
        gap = np.abs(margins(current, flip, predict(current, pool[rows])))
        take = np.argsort(-gap, kind="stable")[: limit - sum(x.shape[0] for x in xs)]
        xs.append(pool[rows[take]])
        flips.append(flip[take])
        variants.append(var[take])
        if source == "train":
            rows_out.extend(int(r) for r in rows[take])
    if not xs:
        d = x_train.shape[1]
        return _Batch(np.zeros((0, d)), np.zeros((0, d)), np.zeros((0, 1, d)), np.zeros(0, np.int64), ())
    x = np.vstack(xs)
    return _Batch(x, np.vstack(flips), np.concatenate(variants), predict(original, x), tuple(rows_out))


def _repair_round(original: Network, state: _LoopState, x_train: np.ndarray, keep_pool: np.ndarray,
                  attributes: Sequence[ProtectedAttribute], layer_index: int, neurons: tuple[int, ...] | None,
                  config: FairRepairConfig, remaining_s: float) -> tuple[Network, ClassifyRepairStats]:
    """One LP repair of ``original`` for the accumulated fix points."""
    keep_rows = np.array([r for r in keep_pool if int(r) not in state.train_rows][:config.n_keep], dtype=int)
    keep_x = x_train[keep_rows]
    keep_x = keep_x[~_rows_in(keep_x, state.fix_x)]
    repair_config = dataclasses.replace(config.repair, time_limit_s=remaining_s)
    if layer_index == 0 and config.inputs == "protected":
        columns = np.unique(np.concatenate([a.indices for a in attributes]))
        repair_config = dataclasses.replace(repair_config, inputs=tuple(int(c) for c in columns))
    return repair_to_targets(original, state.fix_x, state.fix_t, keep_x, predict(original, keep_x),
                             layer_index=layer_index, margin=config.margin, config=repair_config, neurons=neurons)


def _rows_in(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether each row of ``a`` (n, d) equals some row of ``b`` (m, d); shape (n,)."""
    if not a.shape[0] or not b.shape[0]:
        return np.zeros(a.shape[0], dtype=bool)
    view = [("", a.dtype)] * a.shape[1]
    return np.isin(np.ascontiguousarray(a).view(view).ravel(), np.ascontiguousarray(b).view(view).ravel())
