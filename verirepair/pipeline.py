"""The certify loop: verify, localize, repair, apply, re-verify, deliver.

Pipeline position: this module strings the stages together (CONVENTIONS.md,
"The shape of the house").  It never prints; progress goes through an
``on_event(stage, info)`` callback that the CLI renders.

One round:

1. verify every property with our engine; stop (``REPAIRED``) when all hold;
2. add the new confirmed counterexamples to the pool;
3. localize on the *original* network with the whole pool;
4. solve the layer repair from the *original* network (the next-ranked layer
   is tried when a layer is infeasible);
5. apply the patch to a new network and go back to 1.

The final network is written with ``save_onnx`` (same graph, new
initializers), loaded back from the file, and re-verified from the file, so the
certificate speaks about the delivered bytes; Marabou cross-checks it.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from verirepair.network.model import Network
from verirepair.pipeline_inputs import (NamedProperties, collect_properties, densify, input_domain,
                                        localize_network, preservation_points, read_counterexamples,
                                        sha256_file)
from verirepair.spec.property import Property
from verirepair.tolerances import MARGIN
from verirepair.verify.result import Verdict, VerificationResult, VerifyConfig

logger = logging.getLogger(__name__)

#: Re-exported from :mod:`verirepair.pipeline_inputs` for the CLI and the report.
__all__ = ["PipelineConfig", "PipelineResult", "PipelineStatus", "RoundRecord", "collect_properties",
           "config_dict", "input_domain", "localize_network", "read_counterexamples", "run_pipeline",
           "sha256_file"]

EventCallback = Callable[[str, dict], None]


class PipelineStatus(enum.Enum):
    """How a repair run ended."""

    REPAIRED = "repaired"          # every property proven on the delivered file
    NOT_NEEDED = "not_needed"      # every property held before any change
    PARTIAL = "partial"            # budget ran out or a verdict stayed open
    FAILED = "failed"              # no layer admitted a repair


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Settings of :func:`run_pipeline`.

    Parameters
    ----------
    layer : int or None
        Layer to repair; None takes the localization's ranking.
    norm : {"l1", "linf", "mix"}
    solver : {"cbc", "highs", "gurobi"}
    encoding : {"lp", "milp"}
    localize_method : {"causal", "activation", "gradient"}
    max_rounds : int
    timeout_s : float
        Total wall-clock budget of the run.
    verify_timeout_s : float
        Budget of one property's verification inside a round.
    cross_check : str or None
        Second engine for the final check (``"marabou"``), or None.
    cross_check_timeout_s : float
    seed : int
    n_preserve : int
        Preservation points sampled over the input domain for the LP.
    n_fidelity : int
        Points for advisory fidelity (uniform over the domain).
    n_care : int
        CARE-protocol samples per property region (correct and violating).
    cex_per_property : int
        Counterexamples gathered per violated property and round.
    max_delta : float
        Bound on each weight change.
    n_region_anchors : int
        Points sampled in each violated property's region, safe or not, that
        the repair must keep (or make) safe with a margin.  Without them the
        LP fixes only the counterexamples it sees and the next verification
        finds fresh ones beside them; with them every round constrains the
        whole region.
    margin : float
        Distance by which repaired points must leave the unsafe set in round 1.
    margin_growth : float
        The margin is multiplied by this after every round that still finds a
        violation.  With a fixed small margin the LP puts the decision boundary
        right past the known counterexamples, and the next verification finds
        a fresh one just beyond it (measured on N2,5 phi2: one new
        counterexample per round for 8 rounds); a growing margin pushes the
        boundary away from the region instead.
    undecided_margin_growth : float
        After a round whose re-verification could not decide a property
        (TIMEOUT or UNKNOWN), that property's margin is multiplied by this, and
        points sampled in the sub-boxes the verifier left open join the pool.
        A repair that leaves the outputs a hair outside the unsafe set over a
        large region is correct but beyond any verifier's reach: on N1,9 phi7
        (the whole input domain) the original network's outputs are within
        4e-4 of a tie on 1% of the domain, and the margin-1e-3 repair was not
        proven in 300 s.  A wider margin buys a proof at the price of a larger
        weight change (see benchmarks/results/repair_acasxu.md).
    open_box_samples : int
        Points sampled per open sub-box of an undecided property (plus its centre).
    shrink_steps : int
        Once every property is proven, margins that were widened for an
        undecided property may be wider than the proof needs.  Each step tries
        the geometric mean of the widest margin that stayed undecided and the
        one that was proven, and keeps the smaller change if it is proven too.
    repair_depth : int
        With ``layer=None``: besides the output layer, the last
        ``repair_depth`` hidden layers may be repaired (localization orders them).
    layer_time_s : float
        Solver budget of one layer attempt.
    preserve_penalty : float or None
        When a layer's repair with hard preservation is infeasible, it is
        retried with soft preservation at this penalty per unit of slack
        (see :class:`verirepair.repair.RepairConfig`); None: hard only.
    """

    layer: int | None = None
    norm: str = "l1"
    solver: str = "cbc"
    encoding: str = "lp"
    localize_method: str = "causal"
    max_rounds: int = 8
    timeout_s: float = 1800.0
    verify_timeout_s: float = 300.0
    cross_check: str | None = "marabou"
    cross_check_timeout_s: float = 300.0
    seed: int = 0
    n_preserve: int = 2000
    n_fidelity: int = 5000
    n_care: int = 10016
    cex_per_property: int = 64
    max_delta: float = 10.0
    n_region_anchors: int = 1000
    margin: float = MARGIN
    margin_growth: float = 2.0
    undecided_margin_growth: float = 8.0
    open_box_samples: int = 3
    shrink_steps: int = 2
    repair_depth: int = 2
    layer_time_s: float = 180.0
    preserve_penalty: float | None = 10.0


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


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """Outcome of :func:`run_pipeline` (also serialised into ``report.json``)."""

    status: PipelineStatus
    network: Network
    output_path: Path | None
    report_dir: Path
    properties: dict
    rounds: tuple[RoundRecord, ...]
    change: dict | None
    fidelity: dict | None
    time_s: float
    patch: object | None = field(default=None, repr=False)


# ----------------------------------------------------------------------------- stages
def _verify_all(network: Network, named: NamedProperties, config: PipelineConfig, deadline: float,
                engine: str, timeout_s: float, max_cex: int) -> dict[str, VerificationResult]:
    from verirepair.verify import verify

    results: dict[str, VerificationResult] = {}
    for name, props in named:
        budget = max(1.0, min(timeout_s, deadline - time.perf_counter()))
        vconfig = VerifyConfig(timeout_s=budget, seed=config.seed, max_counterexamples=max_cex)
        results[name] = verify(network, props, vconfig, engine=engine)
    return results


def _verdict_entry(result: VerificationResult) -> dict:
    return {"verdict": result.verdict.value, "engine": result.engine, "time_s": result.stats.time_s,
            "subproblems": result.stats.subproblems, "message": result.message}


# ----------------------------------------------------------------------------- the loop
def _float32_exact(network: Network) -> Network:
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
    """Layers to try, best first, and the localization that ranked them."""
    if config.layer is not None:
        if not 0 <= config.layer < network.n_layers:
            from verirepair.errors import VerirepairError

            raise VerirepairError(f"--layer {config.layer} is out of range: the network has layers "
                                  f"0..{network.n_layers - 1}")
        return [config.layer], None
    from verirepair.localize import LocalizeConfig, localize
    from verirepair.localize.samples import sample_correct

    all_props = [p for _, props in named for p in props]
    emit("localize", {"text": f"{config.localize_method} on {pool.shape[0]} counterexamples"})
    correct = sample_correct(network, all_props, 512, rng)
    loc = localize(network, all_props, pool, correct,
                   LocalizeConfig(method=config.localize_method, seed=config.seed))
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


def _solve_repair(network: Network, named: NamedProperties, pool: np.ndarray, preserve_x: np.ndarray,
                  layers: list[int], config: PipelineConfig, deadline: float, emit: EventCallback,
                  margins: dict[str, float]):
    from verirepair.repair import RepairConfig, RepairStatus, repair_layer

    all_props = [p for _, props in named for p in props]
    last = None
    for layer_index in layers:
        remaining = deadline - time.perf_counter()
        if remaining <= 1.0:
            break
        emit("repair", {"text": f"layer {layer_index}, {pool.shape[0]} counterexamples, "
                                f"{preserve_x.shape[0]} preservation points ({config.solver})"})
        rconfig = RepairConfig(norm=config.norm, solver=config.solver, encoding=config.encoding,
                               max_delta=config.max_delta,
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


def _attempt(network: Network, named: NamedProperties, pool: np.ndarray, preserve_x: np.ndarray,
             layers: list[int], config: PipelineConfig, deadline: float, emit: EventCallback,
             margins: dict[str, float]):
    """Solve the repair at ``margins``, apply it to a new network and verify every property.

    Returns ``(outcome, layer_index, candidate, results)``; the last three are
    None when no layer admitted a repair.
    """
    from verirepair.repair import apply_patch

    outcome, layer_index = _solve_repair(network, named, pool, preserve_x, layers, config, deadline, emit,
                                         margins)
    if layer_index is None:
        return outcome, None, None, None
    candidate = _float32_exact(apply_patch(network, outcome.patch))
    emit("verify", {"text": "re-verifying every property", "log": True})
    results = _verify_all(candidate, named, config, deadline, "own", config.verify_timeout_s,
                          config.cex_per_property)
    for name, res in results.items():
        emit("verify", {"text": f"{name}: {res.verdict.value} ({res.stats.time_s:.1f} s)", "log": True})
    return outcome, layer_index, candidate, results


def _shrink(network: Network, named: NamedProperties, pool: np.ndarray, preserve_x: np.ndarray,
            layers: list[int], config: PipelineConfig, deadline: float, emit: EventCallback,
            undecided_at: dict[str, float], rounds: list):
    """Bisect (geometrically) the margins that were widened for undecided properties.

    ``rounds[-1]`` is the proven round; each trial is appended to ``rounds``.
    Returns ``(patch, network, results)`` of the narrowest proven trial, or
    None when no trial was proven.
    """
    proven, low, best = dict(rounds[-1].margins), dict(undecided_at), None
    for _ in range(config.shrink_steps):
        if time.perf_counter() > deadline:
            break
        trial = {n: float(np.sqrt(low[n] * m)) if n in low else m for n, m in proven.items()}
        start = time.perf_counter()
        emit("round", {"text": "shrink: " + ", ".join(f"{n} margin {trial[n]:.3g}" for n in low),
                       "log": True})
        outcome, layer_index, candidate, found = _attempt(network, named, pool, preserve_x, layers,
                                                          config, deadline, emit, trial)
        rounds.append(RoundRecord(len(rounds), {n: r.verdict.value for n, r in (found or {}).items()},
                                  0, int(pool.shape[0]), layer_index,
                                  outcome.status.value if outcome else "no_time",
                                  outcome.objective if outcome else None,
                                  time.perf_counter() - start, trial, "shrink"))
        if candidate is not None and all(r.verdict is Verdict.HOLDS for r in found.values()):
            best, proven = (outcome.patch, candidate, found), trial
        else:
            low = {n: trial[n] for n in low}
    return best


def run_pipeline(network: Network, named: NamedProperties, config: PipelineConfig, out_path: Path,
                 report_dir: Path, source_path: Path | None = None,
                 on_event: EventCallback | None = None) -> PipelineResult:
    """Repair ``network`` until every property is proven, and deliver the results.

    Parameters
    ----------
    network : Network -- the original (never modified)
    named : list of (name, list of Property) -- every property that applies
    config : PipelineConfig
    out_path : Path -- repaired ONNX file (written atomically; never the input file)
    report_dir : Path -- receives report.json, report.md, certificate.json and plots
    source_path : Path or None -- the input file, hashed into the report
    on_event : callable(stage, info) or None -- progress callback

    Returns
    -------
    PipelineResult
    """
    from verirepair.errors import VerirepairError

    emit = on_event or (lambda stage, info: None)
    started = time.perf_counter()
    deadline = started + config.timeout_s
    if source_path is not None and Path(out_path).resolve() == Path(source_path).resolve():
        raise VerirepairError(f"refusing to overwrite the input network {source_path}; choose another --out")
    rng = np.random.default_rng(config.seed)
    all_props = [p for _, props in named for p in props]
    domain = input_domain(network, all_props)
    preserve_x = preservation_points(network, all_props, domain, config.n_preserve, rng)

    emit("verify", {"text": f"{len(named)} properties on the original network", "log": True})
    results = _verify_all(network, named, config, deadline, "own", config.verify_timeout_s,
                          config.cex_per_property)
    record = {name: {"before": _verdict_entry(res)} for name, res in results.items()}
    for name, res in results.items():
        emit("verify", {"text": f"{name}: {res.verdict.value} ({res.stats.time_s:.1f} s)", "log": True})
    pool = np.zeros((0, network.n_inputs))
    margins = {name: config.margin for name, _ in named}
    undecided_at: dict[str, float] = {}     # widest margin at which a property stayed undecided
    anchored: set[str] = set()
    current, patch, rounds, loc, layers = network, None, [], None, []
    failed = False
    for round_index in range(config.max_rounds):
        # The original network is repaired only for a violation; after a
        # change, a property the verifier cannot decide needs another round too.
        if patch is None:
            todo = [n for n, r in results.items() if r.verdict is Verdict.VIOLATED]
        else:
            todo = [n for n, r in results.items() if r.verdict is not Verdict.HOLDS]
        if not todo or time.perf_counter() > deadline:
            break
        round_start = time.perf_counter()
        new_x = _round_points(current, named, results, todo, anchored, rng, config)
        pool = np.vstack([pool, new_x])
        layers, found_loc = _candidate_layers(network, named, pool, config, rng, emit)
        loc = found_loc or loc
        used = dict(margins)
        emit("round", {"text": f"round {round_index + 1}", "log": True})
        outcome, layer_index, candidate, found = _attempt(network, named, pool, preserve_x, layers,
                                                          config, deadline, emit, used)
        if candidate is None:
            failed = True
            rounds.append(RoundRecord(round_index, {n: r.verdict.value for n, r in results.items()},
                                      int(new_x.shape[0]), int(pool.shape[0]), None,
                                      outcome.status.value if outcome else "no_time", None,
                                      time.perf_counter() - round_start, used))
            break
        patch, current, results = outcome.patch, candidate, found
        for name, res in results.items():
            if res.verdict is Verdict.VIOLATED:
                margins[name] *= config.margin_growth
            elif res.verdict is not Verdict.HOLDS:
                undecided_at[name] = used[name]
                margins[name] *= config.undecided_margin_growth
        rounds.append(RoundRecord(round_index, {n: r.verdict.value for n, r in results.items()},
                                  int(new_x.shape[0]), int(pool.shape[0]), layer_index,
                                  outcome.status.value, outcome.objective,
                                  time.perf_counter() - round_start, used))
    if patch is not None and undecided_at and all(r.verdict is Verdict.HOLDS for r in results.values()):
        best = _shrink(network, named, pool, preserve_x, layers, config, deadline, emit, undecided_at, rounds)
        if best is not None:
            patch, current, results = best
    return _deliver(network, current, named, results, record, rounds, patch, loc, failed, config,
                    out_path, report_dir, source_path, started, emit)


def _deliver(original: Network, current: Network, named: NamedProperties,
             results: dict[str, VerificationResult], record: dict, rounds: list, patch, loc,
             failed: bool, config: PipelineConfig, out_path: Path, report_dir: Path,
             source_path: Path | None, started: float, emit: EventCallback) -> PipelineResult:
    """Save the repaired file, re-verify it from disk, cross-check, measure fidelity, report."""
    from verirepair import report
    from verirepair.fidelity import advisory_agreement, care_fidelity
    from verirepair.network import load_network, save_onnx

    all_hold = all(res.verdict is Verdict.HOLDS for res in results.values())
    output_path = None
    delivered = current
    if patch is not None:
        emit("deliver", {"text": f"writing {out_path}", "log": True})
        output_path = save_onnx(current, Path(out_path))
        delivered = load_network(output_path)
        same = all(np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
                   for a, b in zip(delivered.layers, current.layers))
        if not same:
            # The file does not hold exactly what we verified: verify the file itself.
            emit("verify", {"text": "re-verifying the delivered file", "log": True})
            results = _verify_all(delivered, named, config, started + config.timeout_s + 600, "own",
                                  config.verify_timeout_s, 1)
            all_hold = all(res.verdict is Verdict.HOLDS for res in results.values())
    for name, res in results.items():
        record[name]["after"] = _verdict_entry(res)
    if config.cross_check:
        emit("crosscheck", {"text": f"{config.cross_check} on every property", "log": True})
        cross = _cross_check(delivered, named, config)
        for name, entry in cross.items():
            record[name]["cross_check"] = entry
    if patch is None and not failed and all_hold and not rounds:
        status = PipelineStatus.NOT_NEEDED
    elif all_hold and patch is not None:
        status = PipelineStatus.REPAIRED
    elif failed and patch is None:
        status = PipelineStatus.FAILED
    else:
        status = PipelineStatus.PARTIAL
    change = fidelity = None
    if patch is not None:
        emit("fidelity", {"text": "measuring fidelity", "log": True})
        rng = np.random.default_rng(config.seed + 1)
        all_props = [p for _, props in named for p in props]
        domain = input_domain(original, all_props)
        change = {"layer_index": int(patch.layer_index), "l1": float(patch.l1), "linf": float(patch.linf),
                  "n_changed": int(patch.n_changed)}
        repaired_names = [n for n, e in record.items() if e["before"]["verdict"] == Verdict.VIOLATED.value]
        fidelity = {
            "advisory_agreement": advisory_agreement(original, delivered, domain, config.n_fidelity, rng),
            "n_domain_points": config.n_fidelity,
            "care": [care_fidelity(original, delivered, n, dict(named)[n], config.n_care, rng).to_dict()
                     for n in repaired_names],
        }
    result = PipelineResult(status, delivered, output_path, Path(report_dir), record, tuple(rounds),
                            change, fidelity, time.perf_counter() - started, patch)
    emit("report", {"text": f"writing {report_dir}", "log": True})
    report.write_report(result, original, named, config, source_path, loc)
    return result


def _cross_check(network: Network, named: NamedProperties, config: PipelineConfig) -> dict:
    """Verdicts of the independent engine; an unavailable engine is recorded, not fatal."""
    from verirepair.errors import SolverUnavailableError
    from verirepair.verify import verify

    entries = {}
    for name, props in named:
        try:
            res = verify(network, props, VerifyConfig(timeout_s=config.cross_check_timeout_s,
                                                      seed=config.seed), engine=config.cross_check)
            entries[name] = _verdict_entry(res)
        except SolverUnavailableError as exc:
            entries[name] = {"verdict": Verdict.UNKNOWN.value, "engine": config.cross_check,
                             "time_s": 0.0, "message": str(exc)}
    return entries


def config_dict(config: PipelineConfig) -> dict:
    """The configuration as a JSON-ready dict."""
    return asdict(config)
