"""The certify loop itself: repair, apply, re-verify, until every property is proven.

Pipeline position: :func:`verirepair.pipeline.run_pipeline` prepares the
inputs (the task's preservation points), runs a :class:`CertifyLoop` and
delivers its outcome (file, cross-check, fidelity, report).  The loop knows
the task only through :class:`verirepair.task.RepairTask` (its properties and
decision rule) and reads its settings from
:class:`verirepair.run_config.RunConfig`.  Nothing here prints; progress goes
through the ``emit(stage, info)`` callback.

One round:

1. gather points: the counterexamples of violated properties (densified), the
   open sub-boxes of undecided ones, and once per property samples of its
   whole region ("anchors");
2. localize on the *original* network with the whole pool and rank layers;
3. solve the layer repair from the *original* network at the current
   per-property margins (the next-ranked layer is tried when one fails);
4. round the patched network to float32 as the file will store it, and
   re-verify every property;
5. grow the margin of each property that is still violated (``margin_growth``)
   or undecided (``undecided_margin_growth``).

When every property is proven after margins were widened for undecided
properties, :meth:`CertifyLoop.shrink` bisects those margins and keeps the
narrowest change that is still proven.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from verirepair.counterexamples import densify
from verirepair.localize.config import LocalizeMethod
from verirepair.localize.result import Localization
from verirepair.network.model import Network
from verirepair.outcome import RoundKind, RoundRecord
from verirepair.repair.config import RepairResult, RepairStatus
from verirepair.repair.network_patch import Change
from verirepair.run_config import RunConfig
from verirepair.task import NamedProperties, RepairTask
from verirepair.verify.result import Verdict, VerificationResult, VerifyConfig, VerifyStats

EventCallback = Callable[[str, dict], None]

#: A property is not started with less than this many seconds left of the run's
#: budget; it is recorded as TIMEOUT instead (the budget is a total budget).
MIN_VERIFY_BUDGET_S = 0.5

#: A layer repair is not started with less than this many seconds left.
MIN_REPAIR_BUDGET_S = 1.0


def verify_all(network: Network, named: NamedProperties, base: VerifyConfig, deadline: float,
               engine: str = "own", emit: EventCallback | None = None) -> dict[str, VerificationResult]:
    """Verify every named property group, each with at most ``base.timeout_s`` of what is left.

    ``emit("verify", ...)`` reports each verdict as soon as it is decided.
    """
    from verirepair.verify import verify

    results: dict[str, VerificationResult] = {}
    for name, props in named:
        left = deadline - time.perf_counter()
        if left < MIN_VERIFY_BUDGET_S:
            results[name] = VerificationResult(Verdict.TIMEOUT, stats=VerifyStats(), engine=engine,
                                               property_name=name,
                                               message="not started: the run's budget ran out")
        else:
            vconfig = replace(base, timeout_s=min(base.timeout_s, left),
                              workers=base.workers if engine == "own" else 1)
            results[name] = verify(network, props, vconfig, engine=engine)
        if emit is not None:
            res = results[name]
            emit("verify", {"text": f"{name}: {res.verdict.value} ({res.stats.time_s:.1f} s)", "log": True})
    return results


def float32_exact(network: Network) -> Network:
    """The network whose weights are exactly what a float32 ONNX file stores.

    We verify the float64 semantics of the stored float32 weights, so every
    candidate is rounded this way *before* it is verified: the certificate
    then speaks about the bytes that are delivered.
    """
    result = network
    for index, layer in enumerate(network.layers):
        result = result.replace_layer(index, layer.weight.astype(np.float32), layer.bias.astype(np.float32))
    return result


def _candidate_layers(network: Network, task: RepairTask, pool: np.ndarray, config: RunConfig,
                      rng: np.random.Generator, emit: EventCallback) -> tuple[list[int], Localization | None]:
    """Layers to try, best first, and the localization that ranked them.

    With a fixed ``loop.layer`` the localization runs only when
    ``loop.guilty_neurons`` needs its ranking.
    """
    loop = config.loop
    if loop.layer is not None and not 0 <= loop.layer < network.n_layers:
        from verirepair.errors import VerirepairError

        raise VerirepairError(f"--layer {loop.layer} is out of range: the network has layers "
                              f"0..{network.n_layers - 1}")
    if loop.layer is not None and loop.guilty_neurons is None:
        return [loop.layer], None
    from verirepair.localize import localize
    from verirepair.localize.samples import sample_correct

    lconfig = replace(config.localize, seed=config.seed, decision=task.decision)
    method = lconfig.method.value if isinstance(lconfig.method, LocalizeMethod) else lconfig.method
    emit("localize", {"text": f"{method} on {pool.shape[0]} counterexamples"})
    correct = sample_correct(network, task.all_properties, loop.n_localize_correct, rng)
    loc = localize(network, task.all_properties, pool, correct, lconfig)
    if loop.layer is not None:
        return [loop.layer], loc
    scores = np.asarray(loc.layer_scores, dtype=float)
    last = network.n_layers - 1
    # The output layer's repair is an exact LP (no activation pattern to hold)
    # and solves in well under a second on ACAS Xu, so it goes first.  Hidden
    # layers follow in the localization's order, but only the last
    # ``loop.repair_depth`` of them (see LoopConfig.repair_depth).
    allowed = set(range(max(0, last - loop.repair_depth), last))
    # Only layers the fixed-pattern LP encodes exactly (a smooth network: the output layer).
    from verirepair.repair.encoding import fixed_pattern_applies

    allowed = {i for i in allowed if fixed_pattern_applies(network, i)}
    ranked = [last] + [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > 0 and i in allowed]
    return ranked, loc


def guilty_restriction(network: Network, loc: Localization | None, layer_index: int, count: int | None
                       ) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """``(neurons, inputs)`` of :class:`~verirepair.repair.RepairConfig` for ``layer_index``.

    The rows that may change are the ``count`` most guilty units of the layer
    itself (every row of the output layer, whose units are the outputs), and
    the columns the ``count`` most guilty units of the layer before (every
    column of layer 0, whose inputs are the network's).  Guilty means a
    positive effect in the localization's ranking; a layer with none is not
    restricted.  ``count=None`` or no localization: no restriction.
    """
    if count is None or loc is None:
        return None, None

    def top(layer: int) -> tuple[int, ...] | None:
        units = [e.unit for e in sorted(loc.ranking, key=lambda e: -e.effect_violation)
                 if e.layer_index == layer and e.effect_violation > 0]
        return tuple(units[:count]) or None

    neurons = None if layer_index == network.n_layers - 1 else top(layer_index)
    inputs = top(layer_index - 1) if layer_index >= 1 else None
    return neurons, inputs


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One solve-apply-verify: the solver's result, and when it repaired, the candidate and its verdicts."""

    outcome: RepairResult | None
    layer_index: int | None = None
    candidate: Network | None = None
    results: dict[str, VerificationResult] | None = None


@dataclass(slots=True)
class LoopOutcome:
    """Where :meth:`CertifyLoop.run` ended.

    ``before`` holds the original network's verdicts, ``results`` those of
    ``current`` (the original when ``patch`` is None).  ``failed`` is True when
    a round found no layer that admitted a repair.
    """

    before: dict[str, VerificationResult]
    results: dict[str, VerificationResult]
    current: Network
    patch: Change | None = None
    rounds: list[RoundRecord] = field(default_factory=list)
    localization: Localization | None = None
    failed: bool = False


class CertifyLoop:
    """One run of the certify loop (see the module docstring).

    Parameters
    ----------
    network : Network -- the original, never modified; every repair starts from it
    task : RepairTask -- the properties and the decision rule
    config : RunConfig
    preserve_x : array, shape (n, n_inputs) -- preservation points
    rng : numpy Generator
    deadline : float -- ``time.perf_counter()`` value at which to stop
    emit : callable(stage, info)
    """

    def __init__(self, network: Network, task: RepairTask, config: RunConfig, preserve_x: np.ndarray,
                 rng: np.random.Generator, deadline: float, emit: EventCallback) -> None:
        self.network, self.task, self.config = network, task, config
        self.named = task.properties
        self.preserve_x, self.rng, self.deadline, self.emit = preserve_x, rng, deadline, emit
        self.pool = np.zeros((0, network.n_inputs))
        self.margins = {name: config.repair.margin for name, _ in self.named}
        self.undecided_at: dict[str, float] = {}   # widest margin at which a property stayed undecided
        self.shrinking = False                     # inside shrink(): told to the strategy
        self.anchored: set[str] = set()
        self.layers: list[int] = []
        self.localization: Localization | None = None
        self.verify_config = replace(config.verify, seed=config.seed,
                                     max_counterexamples=config.loop.cex_per_property)

    def verify(self, network: Network) -> dict[str, VerificationResult]:
        """Our engine on every property, with the per-round budget; emits each verdict."""
        return verify_all(network, self.named, self.verify_config, self.deadline, "own", self.emit)

    def _solve(self, layers: list[int], margins: dict[str, float]) -> tuple[RepairResult | None, int | None]:
        """The first layer of ``layers`` that admits a repair at ``margins``, and its result."""
        from verirepair.repair import repair_layer

        base = replace(self.config.repair, decision=self.task.decision,
                       property_margins=tuple(margins[n] for n, props in self.named for _ in props))
        penalty = self.config.loop.fallback_preserve_penalty
        last = None
        for layer_index in layers:
            remaining = self.deadline - time.perf_counter()
            if remaining <= MIN_REPAIR_BUDGET_S:
                break
            self.emit("repair", {"text": f"layer {layer_index}, {self.pool.shape[0]} counterexamples, "
                                         f"{self.preserve_x.shape[0]} preservation points ({base.solver})"})
            neurons, inputs = guilty_restriction(self.network, self.localization, layer_index,
                                                 self.config.loop.guilty_neurons)
            rconfig = replace(base, neurons=neurons, inputs=inputs,
                              time_limit_s=max(MIN_REPAIR_BUDGET_S, min(remaining, base.time_limit_s)))
            last = repair_layer(self.network, self.task.all_properties, self.pool, self.preserve_x,
                                layer_index, rconfig)
            remaining = self.deadline - time.perf_counter()
            if last.status is RepairStatus.INFEASIBLE and penalty is not None and remaining > MIN_REPAIR_BUDGET_S:
                self.emit("repair", {"text": f"layer {layer_index}: hard preservation infeasible, "
                                             f"retrying with soft preservation", "log": True})
                rconfig = replace(rconfig, preserve_penalty=penalty,
                                  time_limit_s=max(MIN_REPAIR_BUDGET_S, min(remaining, base.time_limit_s)))
                last = repair_layer(self.network, self.task.all_properties, self.pool, self.preserve_x,
                                    layer_index, rconfig)
            self.emit("repair", {"text": f"layer {layer_index}: {last.status.value} ({last.message})",
                                 "log": True})
            if last.status is RepairStatus.REPAIRED:
                return last, layer_index
        return last, None

    def _propose(self, margins: dict[str, float]) -> tuple[RepairResult | None, int | None]:
        """The run's repair strategy at ``margins`` (``lp``: the layer LP over the ranked layers)."""
        from verirepair.repair.strategy import get_strategy
        from verirepair.repair.strategy_context import StrategyContext

        deadline = min(self.deadline, time.perf_counter() + self.config.repair.time_limit_s)
        context = StrategyContext(self.network, tuple(self.task.all_properties),
                                  tuple(margins[n] for n, props in self.named for _ in props), self.pool,
                                  self.preserve_x, self.task.decision, self.config.strategy, self.config.seed,
                                  deadline, self.emit, lambda: self._solve(self.layers, margins),
                                  self.config.repair,
                                  tuple(n in self.undecided_at for n, props in self.named for _ in props),
                                  self.shrinking)
        found = get_strategy(self.config.strategy.name)(context)
        if self.config.strategy.name != "lp" and found.result is not None:
            self.emit("repair", {"text": f"{found.result.status.value} ({found.result.message})", "log": True})
        return found.result, found.layer_index

    def attempt(self, margins: dict[str, float]) -> _Attempt:
        """Solve the repair at ``margins``, apply it to a new network and verify every property."""
        from verirepair.repair.network_patch import apply_change

        outcome, layer_index = self._propose(margins)
        if layer_index is None or outcome is None or outcome.patch is None:
            return _Attempt(outcome)
        candidate = float32_exact(apply_change(self.network, outcome.patch))
        self.emit("verify", {"text": "re-verifying every property", "log": True})
        return _Attempt(outcome, layer_index, candidate, self.verify(candidate))

    def run(self) -> LoopOutcome:
        """Verify the original, then repair round after round; see the module docstring."""
        self.emit("verify", {"text": f"{len(self.named)} properties on the original network", "log": True})
        before = self.verify(self.network)
        state = LoopOutcome(before, before, self.network)
        for round_index in range(self.config.loop.max_rounds):
            if not self._round(state, round_index):
                break
        if (state.patch is not None and self.undecided_at
                and all(r.verdict is Verdict.HOLDS for r in state.results.values())):
            self.shrink(state)
        return state

    def _round_points(self, state: LoopOutcome, todo: list[str]) -> np.ndarray:
        """The points a round adds to the pool, for every property in ``todo``.

        A violated property contributes its counterexamples, densified; one the
        verifier could not decide contributes the centres of the sub-boxes it left
        open plus ``open_box_samples`` uniform points in each.  The first time a
        property needs repair, ``n_region_anchors`` points sampled over its whole
        region join too.
        """
        loop = self.config.loop
        parts = [np.zeros((0, state.current.n_inputs))]
        for name in todo:
            props, res = dict(self.named)[name], state.results[name]
            if res.verdict is Verdict.VIOLATED:
                seeds = np.array([c.x for c in res.counterexamples])
                parts.append(densify(state.current, props, seeds, self.rng, loop.cex_per_property))
            for lower, upper in res.open_boxes:
                parts.append(((lower + upper) / 2.0)[None, :])
                parts.append(self.rng.uniform(lower, upper, size=(loop.open_box_samples, lower.shape[0])))
            if name not in self.anchored:
                self.anchored.add(name)
                parts.extend(prop.sample_inputs(self.rng, loop.n_region_anchors) for prop in props)
        return np.vstack(parts)

    def _round(self, state: LoopOutcome, round_index: int) -> bool:
        """One round; returns False when the loop is over."""
        # The original network is repaired only for a violation; after a
        # change, a property the verifier cannot decide needs another round too.
        if state.patch is None:
            todo = [n for n, r in state.results.items() if r.verdict is Verdict.VIOLATED]
        else:
            todo = [n for n, r in state.results.items() if r.verdict is not Verdict.HOLDS]
        if not todo or time.perf_counter() > self.deadline:
            return False
        start = time.perf_counter()
        new_x = self._round_points(state, todo)
        self.pool = np.vstack([self.pool, new_x])
        # Only the LP strategies read the ranked layers; the trained ones rank their own neurons.
        from verirepair.repair.strategy import uses_ranked_layers

        self.layers, found_loc = (_candidate_layers(self.network, self.task, self.pool, self.config,
                                                    self.rng, self.emit)
                                  if uses_ranked_layers(self.config.strategy.name) else ([], None))
        self.localization = state.localization = found_loc or state.localization
        used = dict(self.margins)
        self.emit("round", {"text": f"round {round_index + 1}", "log": True})
        tried = self.attempt(used)
        if tried.candidate is None or tried.results is None or tried.outcome is None:
            state.failed = True
            state.rounds.append(RoundRecord(
                round_index, {n: r.verdict for n, r in state.results.items()}, int(new_x.shape[0]),
                int(self.pool.shape[0]), None, tried.outcome.status if tried.outcome else None, None,
                time.perf_counter() - start, used))
            return False
        state.patch, state.current, state.results = tried.outcome.patch, tried.candidate, tried.results
        for name, res in tried.results.items():
            if res.verdict is Verdict.VIOLATED:
                self.margins[name] *= self.config.loop.margin_growth
            elif res.verdict is not Verdict.HOLDS:
                self.undecided_at[name] = used[name]
                self.margins[name] *= self.config.loop.undecided_margin_growth
        state.rounds.append(RoundRecord(
            round_index, {n: r.verdict for n, r in tried.results.items()}, int(new_x.shape[0]),
            int(self.pool.shape[0]), tried.layer_index, tried.outcome.status, tried.outcome.objective,
            time.perf_counter() - start, used))
        return True

    def shrink(self, state: LoopOutcome) -> None:
        """Bisect (geometrically) the margins that were widened for undecided properties.

        ``state.rounds[-1]`` is the proven round.  Each trial is recorded as a
        ``SHRINK`` round; a proven trial narrows the margins for the next one and
        replaces the patch in ``state`` unless its change is larger (with the
        ``cover`` strategy a narrower margin does not always give a smaller change).
        """
        proven, low = dict(state.rounds[-1].margins), dict(self.undecided_at)
        best = state.rounds[-1].objective
        self.shrinking = True
        for _ in range(self.config.loop.shrink_steps):
            if time.perf_counter() > self.deadline:
                break
            trial = {n: float(np.sqrt(low[n] * m)) if n in low else m for n, m in proven.items()}
            start = time.perf_counter()
            self.emit("round", {"text": "shrink: " + ", ".join(f"{n} margin {trial[n]:.3g}" for n in low),
                                "log": True})
            tried = self.attempt(trial)
            outcome = tried.outcome
            state.rounds.append(RoundRecord(
                len(state.rounds), {n: r.verdict for n, r in (tried.results or {}).items()}, 0,
                int(self.pool.shape[0]), tried.layer_index, outcome.status if outcome else None,
                outcome.objective if outcome else None, time.perf_counter() - start, trial, RoundKind.SHRINK))
            if (tried.candidate is not None and tried.results is not None and outcome is not None
                    and all(r.verdict is Verdict.HOLDS for r in tried.results.values())):
                proven = trial
                if best is None or outcome.objective is None or outcome.objective <= best:
                    state.patch, state.current, state.results = outcome.patch, tried.candidate, tried.results
                    best = outcome.objective
            else:
                low = {n: trial[n] for n in low}
        self.shrinking = False
