"""The repair pipeline: verify, localize, repair, apply, re-verify, deliver.

Pipeline position: this module strings the stages together (CONVENTIONS.md,
"The shape of the house").  It never prints; progress goes through an
``on_event(stage, info)`` callback that the CLI renders.  The rounds of
repair and re-verification are :class:`verirepair.certify_loop.CertifyLoop`'s.

The final network is written with ``save_onnx`` (same graph, new
initializers), loaded back from the file, and re-verified from the file, so the
certificate speaks about the delivered bytes; Marabou cross-checks it.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from verirepair.certify_loop import CertifyLoop, EventCallback, LoopOutcome, RoundRecord, verify_all
from verirepair.network.model import Network
from verirepair.pipeline_inputs import (NamedProperties, collect_properties, input_domain,
                                        localize_network, preservation_points, read_counterexamples,
                                        sha256_file)
from verirepair.tolerances import MARGIN
from verirepair.verify.result import Verdict, VerificationResult


#: Re-exported from :mod:`verirepair.pipeline_inputs` and :mod:`verirepair.certify_loop`
#: for the CLI and the report.
__all__ = ["PipelineConfig", "PipelineResult", "PipelineStatus", "RoundRecord", "collect_properties",
           "config_dict", "input_domain", "localize_network", "read_counterexamples", "run_pipeline",
           "sha256_file"]


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
    workers : int
        Processes for our verifier's branch and bound (see
        :mod:`verirepair.verify.parallel`); 1 keeps it in this process.
    guilty_neurons : int or None
        Restrict the change to the guilty neurons: only the rows of the
        repaired layer's ``guilty_neurons`` most guilty units and the columns
        of the previous layer's (see
        :func:`verirepair.certify_loop.guilty_restriction`).  None: the whole layer.
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
    guilty_neurons: int | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("PipelineConfig.workers must be at least 1")
        if self.guilty_neurons is not None and self.guilty_neurons < 1:
            raise ValueError("PipelineConfig.guilty_neurons must be at least 1 (or None)")
        for name in ("timeout_s", "verify_timeout_s", "margin", "margin_growth",
                     "undecided_margin_growth"):
            if getattr(self, name) <= 0:
                raise ValueError(f"PipelineConfig.{name} must be positive")
        if self.margin_growth < 1 or self.undecided_margin_growth < 1 or self.shrink_steps < 0:
            raise ValueError("margin growth factors must be >= 1 and shrink_steps >= 0")
    repair_depth: int = 2
    layer_time_s: float = 180.0
    preserve_penalty: float | None = 10.0


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
    candidate_path: Path | None = None


def _verdict_entry(result: VerificationResult) -> dict:
    return {"verdict": result.verdict.value, "engine": result.engine, "time_s": result.stats.time_s,
            "subproblems": result.stats.subproblems, "message": result.message}


#: Share of ``timeout_s`` kept back from the certify loop for the delivery
#: (re-verifying the file, fidelity, report and plots), clamped to
#: [DELIVERY_RESERVE_MIN_S, DELIVERY_RESERVE_MAX_S].  Measured on N2,1 (two
#: properties): fidelity and report take about 3 s.
DELIVERY_RESERVE_SHARE = 0.1
DELIVERY_RESERVE_MIN_S = 4.0
DELIVERY_RESERVE_MAX_S = 60.0

#: Seconds of the budget kept for writing the report and its plots (measured
#: about 1.5 s with matplotlib's import on this machine).
REPORT_RESERVE_S = 2.5

#: File name of a run's best candidate when it is not certified (in the report folder).
UNCERTIFIED_NAME = "UNCERTIFIED_candidate.onnx"


def delivery_reserve_s(timeout_s: float) -> float:
    """Seconds of the total budget kept for the delivery (see ``DELIVERY_RESERVE_SHARE``)."""
    return min(DELIVERY_RESERVE_MAX_S, max(DELIVERY_RESERVE_MIN_S, DELIVERY_RESERVE_SHARE * timeout_s),
               0.5 * timeout_s)


def check_outputs(out_path: Path, report_dir: Path, source_path: Path | None) -> None:
    """Fail before any work when the outputs cannot be written or would overwrite the input.

    Raises
    ------
    OutputError
    """
    from verirepair.atomic import check_writable
    from verirepair.errors import OutputError

    if source_path is not None and Path(out_path).resolve() == Path(source_path).resolve():
        raise OutputError(f"refusing to overwrite the input network {source_path}; choose another --out")
    check_writable(Path(out_path), "--out")
    check_writable(Path(report_dir), "--report", directory=True)


def run_pipeline(network: Network, named: NamedProperties, config: PipelineConfig, out_path: Path,
                 report_dir: Path, source_path: Path | None = None,
                 on_event: EventCallback | None = None) -> PipelineResult:
    """Repair ``network`` until every property is proven, and deliver the results.

    The whole run, cross-check, fidelity and report included, ends within
    ``config.timeout_s`` (up to a few seconds of rounding).  Only a run that
    ends REPAIRED writes ``out_path``; any other writes its best candidate,
    if it has one, as ``UNCERTIFIED_candidate.onnx`` in the report folder.
    An interrupted run (KeyboardInterrupt) leaves no network at ``out_path``.

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

    Raises
    ------
    OutputError -- before any work, when an output cannot be written
    """
    emit = on_event or (lambda stage, info: None)
    started = time.perf_counter()
    deadline = started + config.timeout_s
    check_outputs(Path(out_path), Path(report_dir), source_path)
    rng = np.random.default_rng(config.seed)
    all_props = [p for _, props in named for p in props]
    domain = input_domain(network, all_props)
    preserve_x = preservation_points(network, all_props, domain, config.n_preserve, rng)

    loop_deadline = deadline - delivery_reserve_s(config.timeout_s)
    loop = CertifyLoop(network, named, config, preserve_x, rng, loop_deadline, emit)
    state = loop.run()
    record = {name: {"before": _verdict_entry(res)} for name, res in state.before.items()}
    delivery = _Delivery(network, named, config, Path(out_path), Path(report_dir), source_path,
                         started, deadline, emit)
    return delivery.run(state, record)


def _status(state: LoopOutcome, all_hold: bool) -> PipelineStatus:
    if state.patch is None and not state.failed and all_hold and not state.rounds:
        return PipelineStatus.NOT_NEEDED
    if all_hold and state.patch is not None:
        return PipelineStatus.REPAIRED
    if state.failed and state.patch is None:
        return PipelineStatus.FAILED
    return PipelineStatus.PARTIAL


@dataclass(slots=True)
class _Delivery:
    """Save the candidate, re-verify it from disk, cross-check, measure fidelity, report, deliver.

    The candidate is written to a hidden temporary file beside ``out_path``;
    it becomes ``out_path`` (one rename) only when the run is REPAIRED, after
    the report is written.  Any other ending, and any exception, removes it.
    """

    original: Network
    named: NamedProperties
    config: PipelineConfig
    out_path: Path
    report_dir: Path
    source_path: Path | None
    started: float
    deadline: float
    emit: EventCallback
    _moved: bool = False

    def run(self, state: LoopOutcome, record: dict) -> PipelineResult:
        temp: Path | None = None
        self._moved = False
        try:
            temp, delivered, results = self._save_and_reverify(state)
            for name, res in results.items():
                record[name]["after"] = _verdict_entry(res)
            all_hold = all(res.verdict is Verdict.HOLDS for res in results.values())
            status = _status(state, all_hold)
            if self.config.cross_check and temp is not None and status is PipelineStatus.REPAIRED:
                self._cross_check(temp, record)
            change, fidelity = self._fidelity(state, delivered, record)
            output_path = candidate_path = None
            if temp is not None and status is PipelineStatus.REPAIRED:
                output_path = self.out_path
            elif temp is not None:
                candidate_path = self.report_dir / UNCERTIFIED_NAME
            result = PipelineResult(status, delivered, output_path, self.report_dir, record,
                                    tuple(state.rounds), change, fidelity,
                                    time.perf_counter() - self.started, state.patch, candidate_path)
            self._finish(result, state, temp)
            temp = None
            return result
        except BaseException:
            # Interrupted (or failed) after the rename, while the report was written:
            # a delivered network without its report must not stay behind.
            if self._moved:
                self.out_path.unlink(missing_ok=True)
            raise
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)

    def _save_and_reverify(self, state: LoopOutcome):
        """``(temp file or None, network read back from it, verdicts of what is delivered)``."""
        import tempfile

        from verirepair.network import load_network, save_onnx

        if state.patch is None:
            return None, state.current, state.results
        self.emit("deliver", {"text": "writing the candidate", "log": True})
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.out_path.name}.", suffix=".candidate.onnx",
                                    dir=self.out_path.parent)
        os.close(fd)
        temp = Path(name)
        try:
            save_onnx(state.current, temp)
            # Read back what the file holds; it keeps the original's name (not the temp file's).
            delivered = dataclasses.replace(load_network(temp), name=self.original.name)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        results = state.results
        same = all(np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
                   for a, b in zip(delivered.layers, state.current.layers))
        if not same:
            # The file does not hold exactly what we verified: verify the file itself.
            self.emit("verify", {"text": "re-verifying the delivered file", "log": True})
            results = verify_all(delivered, self.named, self.config, self._work_deadline(), "own",
                                 self.config.verify_timeout_s, 1, self.emit)
        return temp, delivered, results

    def _work_deadline(self) -> float:
        return self.deadline - delivery_reserve_s(self.config.timeout_s)

    def _cross_check(self, temp: Path, record: dict) -> None:
        from verirepair.cross_check import cross_check

        engine = str(self.config.cross_check)
        self.emit("crosscheck", {"text": f"{engine} on every property", "log": True})

        def on_verdict(name: str, entry) -> None:
            self.emit("crosscheck", {"text": f"{name}: {entry.verdict.value} ({entry.time_s:.1f} s)"
                                             + (f" {entry.message}" if entry.message else ""), "log": True})

        entries = cross_check(temp, self.named, engine, self.config.cross_check_timeout_s,
                              self._work_deadline(), self.config.seed, on_verdict)
        for name, entry in entries.items():
            record[name]["cross_check"] = entry.to_dict()

    def _fidelity(self, state: LoopOutcome, delivered: Network, record: dict):
        from verirepair.fidelity import advisory_agreement, care_fidelity

        patch = state.patch
        if patch is None:
            return None, None
        self.emit("fidelity", {"text": "measuring fidelity", "log": True})
        rng = np.random.default_rng(self.config.seed + 1)
        all_props = [p for _, props in self.named for p in props]
        domain = input_domain(self.original, all_props)
        change = {"layer_index": int(patch.layer_index), "l1": float(patch.l1), "linf": float(patch.linf),
                  "n_changed": int(patch.n_changed)}
        repaired = [n for n, e in record.items() if e["before"]["verdict"] == Verdict.VIOLATED.value]
        fidelity = {
            "advisory_agreement": advisory_agreement(self.original, delivered, domain,
                                                     self.config.n_fidelity, rng),
            "n_domain_points": self.config.n_fidelity,
            "care": [care_fidelity(self.original, delivered, n, dict(self.named)[n], self.config.n_care,
                                   rng, self.deadline - REPORT_RESERVE_S).to_dict() for n in repaired],
        }
        return change, fidelity

    def _finish(self, result: PipelineResult, state: LoopOutcome, temp: Path | None) -> None:
        """Write the report, then put the network where it belongs (one rename)."""
        import shutil

        from verirepair import report

        self.emit("report", {"text": f"writing {self.report_dir}", "log": True})
        self.report_dir.mkdir(parents=True, exist_ok=True)
        if temp is not None and result.candidate_path is not None:
            shutil.move(str(temp), str(result.candidate_path))
        elif temp is not None and result.output_path is not None:
            os.replace(temp, result.output_path)
            self._moved = True
        report.write_report(result, self.original, self.named, self.config, self.source_path,
                            state.localization)


def config_dict(config: PipelineConfig) -> dict:
    """The configuration as a JSON-ready dict."""
    return asdict(config)
