"""The repair pipeline: verify, localize, repair, apply, re-verify, deliver.

Pipeline position: this module strings the stages together (CONVENTIONS.md,
"The shape of the house").  It runs a :class:`verirepair.task.RepairTask`
with a :class:`verirepair.run_config.RunConfig` and knows no benchmark.  It
never prints; progress goes through an ``on_event(stage, info)`` callback that
the CLI renders.  The rounds of repair and re-verification are
:class:`verirepair.certify_loop.CertifyLoop`'s.

The final network is written with ``save_onnx`` (same graph, new
initializers) to a temporary file, loaded back and re-verified from it, so
the certificate speaks about the delivered bytes; a second engine
cross-checks it in a child process.  Only a REPAIRED run renames the file to
``out_path``, after its report is written.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verirepair.certify_loop import CertifyLoop, EventCallback, LoopOutcome, verify_all
from verirepair.network.model import Network
from verirepair.outcome import (
    UNCERTIFIED_NAME,
    FidelityReport,
    PipelineResult,
    PipelineStatus,
    PropertyOutcome,
    VerdictRecord,
    WeightChange,
)
from verirepair.pac import PacStatement
from verirepair.run_config import RunConfig
from verirepair.task import RepairTask
from verirepair.verify.result import Verdict, VerificationResult

__all__ = ["UNCERTIFIED_NAME", "PipelineResult", "PipelineStatus", "check_outputs", "run_pipeline"]

#: Share of ``timeout_s`` kept back from the certify loop for the delivery
#: (re-verifying the file, fidelity, report and plots), clamped to
#: [DELIVERY_RESERVE_MIN_S, DELIVERY_RESERVE_MAX_S] and at most half the budget.
#: Measured on N2,1 (four properties): fidelity and report take about 3 s.
DELIVERY_RESERVE_SHARE = 0.1
DELIVERY_RESERVE_MIN_S = 4.0
DELIVERY_RESERVE_MAX_S = 60.0

#: Seconds of the budget kept for writing the report and its plots (measured
#: about 1.5 s with matplotlib's import on this machine).
REPORT_RESERVE_S = 2.5


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


def run_pipeline(network: Network, task: RepairTask, config: RunConfig, out_path: Path,
                 report_dir: Path, source_path: Path | None = None,
                 on_event: EventCallback | None = None, started: float | None = None) -> PipelineResult:
    """Repair ``network`` until every property of ``task`` is proven, and deliver the results.

    The whole run, cross-check, fidelity and report included, ends within
    ``config.timeout_s`` (up to a few seconds of rounding).  Only a run that
    ends REPAIRED writes ``out_path``; any other writes its best candidate,
    if it has one, as ``UNCERTIFIED_candidate.onnx`` in the report folder.
    An interrupted run (KeyboardInterrupt) leaves no network at ``out_path``.

    Parameters
    ----------
    network : Network -- the original (never modified)
    task : RepairTask -- the properties to establish, the decision rule, the samples
    config : RunConfig
    out_path : Path -- repaired ONNX file (written atomically; never the input file)
    report_dir : Path -- receives report.json, report.md, certificate.json, config.toml and plots
    source_path : Path or None -- the input file, hashed into the report
    on_event : callable(stage, info) or None -- progress callback
    started : float or None -- ``time.perf_counter()`` value from which ``config.timeout_s``
        counts (the CLI passes its own start, so that loading is inside the budget); default: now

    Returns
    -------
    PipelineResult

    Raises
    ------
    OutputError -- before any work, when an output cannot be written
    """
    emit = on_event or (lambda stage, info: None)
    started = time.perf_counter() if started is None else started
    deadline = started + config.timeout_s
    check_outputs(Path(out_path), Path(report_dir), source_path)
    rng = np.random.default_rng(config.seed)
    preserve_x = task.preservation_points(network, rng, config.loop.n_preserve)

    loop_deadline = deadline - delivery_reserve_s(config.timeout_s)
    loop = CertifyLoop(network, task, config, preserve_x, rng, loop_deadline, emit)
    state = loop.run()
    delivery = _Delivery(network, task, config, Path(out_path), Path(report_dir), source_path,
                         started, deadline, emit)
    return delivery.run(state)


def _status(state: LoopOutcome, all_hold: bool, refuted: bool) -> PipelineStatus:
    if refuted:
        return PipelineStatus.PARTIAL
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
    task: RepairTask
    config: RunConfig
    out_path: Path
    report_dir: Path
    source_path: Path | None
    started: float
    deadline: float
    emit: EventCallback
    _moved: bool = False

    def run(self, state: LoopOutcome) -> PipelineResult:
        temp: Path | None = None
        self._moved = False
        try:
            temp, delivered, results = self._save_and_reverify(state)
            outcomes = {name: PropertyOutcome(VerdictRecord.of(res)) for name, res in state.before.items()}
            if state.patch is not None:
                outcomes = {name: dataclasses.replace(o, after=VerdictRecord.of(results[name]))
                            for name, o in outcomes.items()}
            all_hold = all(res.verdict is Verdict.HOLDS for res in results.values())
            status = _status(state, all_hold, refuted=False)
            if self.config.delivery.cross_check and temp is not None and status is PipelineStatus.REPAIRED:
                outcomes = self._cross_check(temp, outcomes)
                # A cross-check counterexample is confirmed by a forward pass: our proof was wrong.
                refuted = any(o.cross_check is not None and o.cross_check.verdict is Verdict.VIOLATED
                              for o in outcomes.values())
                status = _status(state, all_hold, refuted)
            # Before fidelity, whose sampling may use the rest of the budget: the statement is cheap
            # (ln(1/delta)/eps forward passes) and says more about an undecided property.
            pac = self._pac(delivered, results)
            change, fidelity = self._fidelity(state, delivered, outcomes)
            output_path = candidate_path = None
            if temp is not None and status is PipelineStatus.REPAIRED:
                output_path = self.out_path
            elif temp is not None:
                candidate_path = self.report_dir / UNCERTIFIED_NAME
            result = PipelineResult(status, delivered, output_path, self.report_dir, outcomes,
                                    tuple(state.rounds), change, fidelity,
                                    time.perf_counter() - self.started, state.patch, candidate_path, pac,
                                    self.config.strategy.name)
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

    def _save_and_reverify(self, state: LoopOutcome
                           ) -> tuple[Path | None, Network, dict[str, VerificationResult]]:
        """``(temp file or None, network read back from it, verdicts of what is delivered)``."""
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
                   for a, b in zip(delivered.layers, state.current.layers, strict=True))
        if not same:
            # The file does not hold exactly what we verified: verify the file itself.
            self.emit("verify", {"text": "re-verifying the delivered file", "log": True})
            base = dataclasses.replace(self.config.verify, seed=self.config.seed, max_counterexamples=1)
            results = verify_all(delivered, self.task.properties, base, self._work_deadline(), "own", self.emit)
        return temp, delivered, results

    def _work_deadline(self) -> float:
        return self.deadline - delivery_reserve_s(self.config.timeout_s)

    def _cross_check(self, temp: Path, outcomes: dict[str, PropertyOutcome]) -> dict[str, PropertyOutcome]:
        from verirepair.cross_check import CrossCheckEntry, cross_check

        delivery = self.config.delivery
        engine = str(delivery.cross_check)
        self.emit("crosscheck", {"text": f"{engine} on every property", "log": True})

        def on_verdict(name: str, entry: CrossCheckEntry) -> None:
            self.emit("crosscheck", {"text": f"{name}: {entry.verdict.value} ({entry.time_s:.1f} s)"
                                             + (f" {entry.message}" if entry.message else ""), "log": True})

        entries = cross_check(temp, self.task.properties, engine, delivery.cross_check_timeout_s,
                              self._work_deadline(), self.config.seed, on_verdict)
        return {name: dataclasses.replace(o, cross_check=entries[name]) if name in entries else o
                for name, o in outcomes.items()}

    def _fidelity(self, state: LoopOutcome, delivered: Network, outcomes: dict[str, PropertyOutcome]
                  ) -> tuple[WeightChange | None, FidelityReport | None]:
        from verirepair.fidelity import care_fidelity, decision_agreement

        if state.patch is None:
            return None, None
        self.emit("fidelity", {"text": "measuring fidelity", "log": True})
        delivery = self.config.delivery
        rng = np.random.default_rng(self.config.seed + 1)
        x = self.task.fidelity_points(rng, delivery.n_fidelity)
        agreement = decision_agreement(self.original, delivered, x, self.task.decision)
        repaired = [n for n, o in outcomes.items() if o.before.verdict is Verdict.VIOLATED]
        named = dict(self.task.properties)
        care = tuple(care_fidelity(self.original, delivered, n, named[n], delivery.n_care, rng,
                                   self.deadline - REPORT_RESERVE_S) for n in repaired)
        return (WeightChange.of(state.patch),
                FidelityReport(agreement, int(x.shape[0]), self.task.decision, care))

    def _pac(self, network: Network, results: dict[str, VerificationResult]) -> dict[str, PacStatement]:
        """Sampling statements (not proofs) for the properties no verdict decided (see :mod:`verirepair.pac`)."""
        from verirepair.pac import pac_statement

        delivery = self.config.delivery
        undecided = [n for n, r in results.items() if r.verdict in (Verdict.TIMEOUT, Verdict.UNKNOWN)]
        if delivery.pac_epsilon is None or not undecided:
            return {}
        self.emit("pac", {"text": f"sampling {', '.join(undecided)} (statistical, not a proof)", "log": True})
        rng = np.random.default_rng(self.config.seed + 3)
        named = dict(self.task.properties)
        return {name: pac_statement(network, name, named[name], delivery.pac_epsilon, delivery.pac_delta, rng,
                                    self.deadline - REPORT_RESERVE_S) for name in undecided}

    def _finish(self, result: PipelineResult, state: LoopOutcome, temp: Path | None) -> None:
        """Write the report, then put the network where it belongs (one rename)."""
        from verirepair import report

        self.emit("report", {"text": f"writing {self.report_dir}", "log": True})
        self.report_dir.mkdir(parents=True, exist_ok=True)
        if temp is not None and result.candidate_path is not None:
            shutil.move(str(temp), str(result.candidate_path))
        elif temp is not None and result.output_path is not None:
            os.replace(temp, result.output_path)
            self._moved = True
        report.write_report(result, self.original, self.task, self.config, self.source_path,
                            state.localization, self.deadline)
        if (self.config.delivery.certificates and result.output_path is not None
                and result.status is PipelineStatus.REPAIRED):
            from verirepair.repair_certificates import attach_certificates

            self.emit("report", {"text": "writing a checkable certificate per property", "log": True})
            attach_certificates(self.report_dir, result.output_path, self.task.properties, self.config.verify,
                                self.deadline)
