"""The certify loop itself: repair, apply, re-verify, until every property is proven.

Pipeline position: :func:`verirepair.pipeline.run_pipeline` prepares the
inputs (preservation points), runs a :class:`CertifyLoop` and delivers its
outcome (file, cross-check, fidelity, report).  Nothing here prints; progress
goes through the ``emit(stage, info)`` callback.

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
from typing import TYPE_CHECKING

import numpy as np

from verirepair.network.model import Network
from verirepair.pipeline_inputs import NamedProperties, densify
from verirepair.verify.result import Verdict, VerificationResult, VerifyConfig

if TYPE_CHECKING:
    from verirepair.pipeline import PipelineConfig

EventCallback = Callable[[str, dict], None]


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """What happened in one round."""

    index: int
    verdicts: dict
    new_counterexamples: int
    pool_size: int
    layer_index: int | None
    solver_status: str
    objective: float | None
    time_s: float
    margins: dict = field(default_factory=dict)
    kind: str = "repair"           # or "shrink": a trial of narrower margins


#: A property is not started with less than this many seconds left of the run's
#: budget; it is recorded as TIMEOUT instead (the budget is a total budget).
MIN_VERIFY_BUDGET_S = 0.5


def verify_all(network: Network, named: NamedProperties, config: PipelineConfig, deadline: float,
               engine: str, timeout_s: float, max_cex: int,
               emit: EventCallback | None = None) -> dict[str, VerificationResult]:
    """Verify every named property group, each with at most ``timeout_s`` of what is left.

    ``emit("verify", ...)`` reports each verdict as soon as it is decided.
    """
    from verirepair.verify import verify
    from verirepair.verify.result import VerifyStats

    results: dict[str, VerificationResult] = {}
    for name, props in named:
        left = deadline - time.perf_counter()
        if left < MIN_VERIFY_BUDGET_S:
            results[name] = VerificationResult(Verdict.TIMEOUT, stats=VerifyStats(), engine=engine,
                                               property_name=name,
                                               message="not started: the run's budget ran out")
        else:
            vconfig = VerifyConfig(timeout_s=min(timeout_s, left), seed=config.seed,
                                   max_counterexamples=max_cex,
                                   workers=config.workers if engine == "own" else 1)
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


def _candidate_layers(network: Network, named: NamedProperties, pool: np.ndarray,
                      config: PipelineConfig, rng: np.random.Generator, emit: EventCallback):
    """Layers to try, best first, and the localization that ranked them.

    With a fixed ``config.layer`` the localization runs only when
    ``config.guilty_neurons`` needs its ranking.
    """
    if config.layer is not None and not 0 <= config.layer < network.n_layers:
        from verirepair.errors import VerirepairError

        raise VerirepairError(f"--layer {config.layer} is out of range: the network has layers "
                              f"0..{network.n_layers - 1}")
    if config.layer is not None and config.guilty_neurons is None:
        return [config.layer], None
    from verirepair.localize import LocalizeConfig, localize
    from verirepair.localize.samples import sample_correct

    all_props = [p for _, props in named for p in props]
    emit("localize", {"text": f"{config.localize_method} on {pool.shape[0]} counterexamples"})
    correct = sample_correct(network, all_props, 512, rng)
    loc = localize(network, all_props, pool, correct,
                   LocalizeConfig(method=config.localize_method, seed=config.seed))
    if config.layer is not None:
        return [config.layer], loc
    scores = np.asarray(loc.layer_scores, dtype=float)
    last = network.n_layers - 1
    # The output layer's repair is an exact LP (no activation pattern to hold)
    # and solves in well under a second on ACAS Xu, so it goes first.  Hidden
    # layers follow in the localization's order, but only the last
    # ``config.repair_depth`` of them: every ReLU layer after the repaired one
    # adds fixed-pattern rows for every sample, and an ACAS Xu layer-3 LP with
    # ~2000 samples did not finish in 150 s on this machine.
    allowed = set(range(max(0, last - config.repair_depth), last))
    ranked = [last] + [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > 0 and i in allowed]
    return ranked, loc


def guilty_restriction(network: Network, loc, layer_index: int, count: int | None
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


def _solve_repair(network: Network, named: NamedProperties, pool: np.ndarray, preserve_x: np.ndarray,
                  layers: list[int], config: PipelineConfig, deadline: float, emit: EventCallback,
                  margins: dict[str, float], loc=None):
    from verirepair.repair import RepairConfig, RepairStatus, repair_layer

    all_props = [p for _, props in named for p in props]
    last = None
    for layer_index in layers:
        remaining = deadline - time.perf_counter()
        if remaining <= 1.0:
            break
        emit("repair", {"text": f"layer {layer_index}, {pool.shape[0]} counterexamples, "
                                f"{preserve_x.shape[0]} preservation points ({config.solver})"})
        neurons, inputs = guilty_restriction(network, loc, layer_index, config.guilty_neurons)
        rconfig = RepairConfig(norm=config.norm, solver=config.solver, encoding=config.encoding,
                               max_delta=config.max_delta, neurons=neurons, inputs=inputs,
                               property_margins=tuple(margins[n] for n, props in named for _ in props),
                               time_limit_s=max(1.0, min(remaining, config.layer_time_s)))
        last = repair_layer(network, all_props, pool, preserve_x, layer_index, rconfig)
        if last.status is RepairStatus.INFEASIBLE and config.preserve_penalty is not None:
            emit("repair", {"text": f"layer {layer_index}: hard preservation infeasible, "
                                    f"retrying with soft preservation", "log": True})
            rconfig = replace(rconfig, preserve_penalty=config.preserve_penalty,
                              time_limit_s=max(1.0, min(deadline - time.perf_counter(), config.layer_time_s)))
            last = repair_layer(network, all_props, pool, preserve_x, layer_index, rconfig)
        emit("repair", {"text": f"layer {layer_index}: {last.status.value} ({last.message})", "log": True})
        if last.status is RepairStatus.REPAIRED:
            return last, layer_index
    return last, None


def _round_points(current: Network, named: NamedProperties, results: dict[str, VerificationResult],
                  todo: list[str], anchored: set[str], rng: np.random.Generator,
                  config: PipelineConfig) -> np.ndarray:
    """The points a round adds to the pool, for every property in ``todo``.

    A violated property contributes its counterexamples, densified; one the
    verifier could not decide contributes the centres of the sub-boxes it left
    open plus ``open_box_samples`` uniform points in each.  The first time a
    property needs repair, ``n_region_anchors`` points sampled over its whole
    region join too (``anchored`` remembers which properties have them).
    """
    parts = [np.zeros((0, current.n_inputs))]
    for name in todo:
        props, res = dict(named)[name], results[name]
        if res.verdict is Verdict.VIOLATED:
            seeds = np.array([c.x for c in res.counterexamples])
            parts.append(densify(current, props, seeds, rng, config.cex_per_property))
        for lower, upper in res.open_boxes:
            parts.append(((lower + upper) / 2.0)[None, :])
            parts.append(rng.uniform(lower, upper, size=(config.open_box_samples, lower.shape[0])))
        if name not in anchored:
            anchored.add(name)
            parts.extend(prop.sample_inputs(rng, config.n_region_anchors) for prop in props)
    return np.vstack(parts)


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
    patch: object | None = None
    rounds: list[RoundRecord] = field(default_factory=list)
    localization: object | None = None
    failed: bool = False


class CertifyLoop:
    """One run of the certify loop (see the module docstring).

    Parameters
    ----------
    network : Network -- the original, never modified; every repair starts from it
    named : list of (name, list of Property)
    config : PipelineConfig
    preserve_x : array, shape (n, n_inputs) -- preservation points
    rng : numpy Generator
    deadline : float -- ``time.perf_counter()`` value at which to stop
    emit : callable(stage, info)
    """

    def __init__(self, network: Network, named: NamedProperties, config: PipelineConfig,
                 preserve_x: np.ndarray, rng: np.random.Generator, deadline: float,
                 emit: EventCallback) -> None:
        self.network, self.named, self.config = network, named, config
        self.preserve_x, self.rng, self.deadline, self.emit = preserve_x, rng, deadline, emit
        self.pool = np.zeros((0, network.n_inputs))
        self.margins = {name: config.margin for name, _ in named}
        self.undecided_at: dict[str, float] = {}   # widest margin at which a property stayed undecided
        self.anchored: set[str] = set()
        self.layers: list[int] = []
        self.localization = None

    def verify(self, network: Network) -> dict[str, VerificationResult]:
        """Our engine on every property, with the per-round budget; emits each verdict."""
        return verify_all(network, self.named, self.config, self.deadline, "own",
                          self.config.verify_timeout_s, self.config.cex_per_property, self.emit)

    def attempt(self, margins: dict[str, float]):
        """Solve the repair at ``margins``, apply it to a new network and verify every property.

        Returns ``(outcome, layer_index, candidate, results)``; the last three
        are None when no layer admitted a repair.
        """
        from verirepair.repair import apply_patch

        outcome, layer_index = _solve_repair(self.network, self.named, self.pool, self.preserve_x,
                                             self.layers, self.config, self.deadline, self.emit, margins,
                                             self.localization)
        if layer_index is None:
            return outcome, None, None, None
        candidate = float32_exact(apply_patch(self.network, outcome.patch))
        self.emit("verify", {"text": "re-verifying every property", "log": True})
        return outcome, layer_index, candidate, self.verify(candidate)

    def run(self) -> LoopOutcome:
        """Verify the original, then repair round after round; see the module docstring."""
        self.emit("verify", {"text": f"{len(self.named)} properties on the original network", "log": True})
        before = self.verify(self.network)
        state = LoopOutcome(before, before, self.network)
        for round_index in range(self.config.max_rounds):
            if not self._round(state, round_index):
                break
        if (state.patch is not None and self.undecided_at
                and all(r.verdict is Verdict.HOLDS for r in state.results.values())):
            self.shrink(state)
        return state

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
        new_x = _round_points(state.current, self.named, state.results, todo, self.anchored, self.rng,
                              self.config)
        self.pool = np.vstack([self.pool, new_x])
        self.layers, found_loc = _candidate_layers(self.network, self.named, self.pool, self.config,
                                                   self.rng, self.emit)
        self.localization = state.localization = found_loc or state.localization
        used = dict(self.margins)
        self.emit("round", {"text": f"round {round_index + 1}", "log": True})
        outcome, layer_index, candidate, found = self.attempt(used)
        if candidate is None:
            state.failed = True
            state.rounds.append(RoundRecord(
                round_index, {n: r.verdict.value for n, r in state.results.items()}, int(new_x.shape[0]),
                int(self.pool.shape[0]), None, outcome.status.value if outcome else "no_time", None,
                time.perf_counter() - start, used))
            return False
        state.patch, state.current, state.results = outcome.patch, candidate, found
        for name, res in found.items():
            if res.verdict is Verdict.VIOLATED:
                self.margins[name] *= self.config.margin_growth
            elif res.verdict is not Verdict.HOLDS:
                self.undecided_at[name] = used[name]
                self.margins[name] *= self.config.undecided_margin_growth
        state.rounds.append(RoundRecord(
            round_index, {n: r.verdict.value for n, r in found.items()}, int(new_x.shape[0]),
            int(self.pool.shape[0]), layer_index, outcome.status.value, outcome.objective,
            time.perf_counter() - start, used))
        return True

    def shrink(self, state: LoopOutcome) -> None:
        """Bisect (geometrically) the margins that were widened for undecided properties.

        ``state.rounds[-1]`` is the proven round.  Each trial is recorded as a
        ``"shrink"`` round; a proven trial replaces the patch in ``state``.
        """
        proven, low = dict(state.rounds[-1].margins), dict(self.undecided_at)
        for _ in range(self.config.shrink_steps):
            if time.perf_counter() > self.deadline:
                break
            trial = {n: float(np.sqrt(low[n] * m)) if n in low else m for n, m in proven.items()}
            start = time.perf_counter()
            self.emit("round", {"text": "shrink: " + ", ".join(f"{n} margin {trial[n]:.3g}" for n in low),
                                "log": True})
            outcome, layer_index, candidate, found = self.attempt(trial)
            state.rounds.append(RoundRecord(
                len(state.rounds), {n: r.verdict.value for n, r in (found or {}).items()}, 0,
                int(self.pool.shape[0]), layer_index, outcome.status.value if outcome else "no_time",
                outcome.objective if outcome else None, time.perf_counter() - start, trial, "shrink"))
            if candidate is not None and all(r.verdict is Verdict.HOLDS for r in found.values()):
                state.patch, state.current, state.results, proven = outcome.patch, candidate, found, trial
            else:
                low = {n: trial[n] for n in low}
