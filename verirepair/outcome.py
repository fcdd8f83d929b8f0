"""Typed results of a repair run: verdicts, rounds, the weight change, fidelity, the run itself.

Pipeline position: :mod:`verirepair.certify_loop` records :class:`RoundRecord`
objects, :func:`verirepair.pipeline.run_pipeline` returns a
:class:`PipelineResult`, and :mod:`verirepair.report` turns them into JSON and
Markdown (the only place where they become dicts, through ``to_dict``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from verirepair.network.model import Network
from verirepair.pac import PacStatement
from verirepair.repair.config import RepairStatus
from verirepair.repair.network_patch import Change, layer_patches
from verirepair.verify.result import Verdict, VerificationResult

#: File name of a run's best candidate when it is not certified (in the report folder).
UNCERTIFIED_NAME = "UNCERTIFIED_candidate.onnx"


class PipelineStatus(enum.Enum):
    """How a repair run ended."""

    REPAIRED = "repaired"          # every property proven on the delivered file
    NOT_NEEDED = "not_needed"      # every property held before any change
    PARTIAL = "partial"            # budget ran out, a verdict stayed open, or a cross-check refuted a proof
    FAILED = "failed"              # no layer admitted a repair


class RoundKind(enum.Enum):
    """A round of repair, or a trial of narrower margins after everything was proven."""

    REPAIR = "repair"
    SHRINK = "shrink"


@dataclass(frozen=True, slots=True)
class VerdictRecord:
    """One engine's answer on one property group.

    Parameters
    ----------
    verdict : Verdict
    engine : str
    time_s : float
    subproblems : int
    message : str -- why the answer is not a proof or a counterexample, if it is not
    """

    verdict: Verdict
    engine: str
    time_s: float = 0.0
    subproblems: int = 0
    message: str = ""

    @classmethod
    def of(cls, result: VerificationResult) -> VerdictRecord:
        """The record of a verification result."""
        return cls(result.verdict, result.engine, float(result.stats.time_s), int(result.stats.subproblems),
                   result.message)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"verdict": self.verdict.value, "engine": self.engine, "time_s": self.time_s,
                "subproblems": self.subproblems, "message": self.message}


@dataclass(frozen=True, slots=True)
class PropertyOutcome:
    """A property group's verdicts: on the original, on the delivered network, by the cross-check."""

    before: VerdictRecord
    after: VerdictRecord | None = None
    cross_check: VerdictRecord | None = None

    @property
    def final(self) -> VerdictRecord:
        """The last verdict of our engine: after the repair, else before."""
        return self.after or self.before

    def to_dict(self) -> dict:
        """JSON-ready form (absent entries omitted)."""
        out = {"before": self.before.to_dict()}
        if self.after is not None:
            out["after"] = self.after.to_dict()
        if self.cross_check is not None:
            out["cross_check"] = self.cross_check.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class WeightChange:
    """Size of the delivered change.

    ``layer_index`` is the changed layer when there is one (the ``lp``
    strategy), None when several layers changed; ``layers`` lists them all.
    """

    layer_index: int | None
    l1: float
    linf: float
    n_changed: int
    layers: tuple[int, ...] = ()

    @classmethod
    def of(cls, patch: Change) -> WeightChange:
        """The change a patch (one layer's or several layers') makes."""
        layers = tuple(int(p.layer_index) for p in layer_patches(patch))
        return cls(layers[0] if len(layers) == 1 else None, float(patch.l1), float(patch.linf),
                   int(patch.n_changed), layers)

    @property
    def where(self) -> str:
        """``"layer 5"`` or ``"layers 0, 1, 2"``."""
        if self.layer_index is not None:
            return f"layer {self.layer_index}"
        return "layers " + ", ".join(str(i) for i in self.layers)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"layer_index": self.layer_index, "layers": list(self.layers), "l1": self.l1, "linf": self.linf,
                "n_changed": self.n_changed}


@dataclass(frozen=True, slots=True)
class CareFidelity:
    """CARE-protocol numbers for one property region (see :mod:`verirepair.fidelity`)."""

    property_name: str
    n_correct: int
    n_counterexamples: int
    accuracy: float | None
    violation_rate: float | None

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"property": self.property_name, "n_correct": self.n_correct,
                "n_counterexamples": self.n_counterexamples, "accuracy": self.accuracy,
                "violation_rate": self.violation_rate}


@dataclass(frozen=True, slots=True)
class FidelityReport:
    """How closely the repaired network behaves like the original.

    Parameters
    ----------
    decision_agreement : float -- share of the task's fidelity points whose decision is unchanged
    n_points : int -- how many points
    decision : str -- the decision rule's name
    care : tuple of CareFidelity -- per repaired property
    """

    decision_agreement: float
    n_points: int
    decision: str
    care: tuple[CareFidelity, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready form (``advisory_agreement`` kept as the key the reports have used)."""
        return {"advisory_agreement": self.decision_agreement, "n_domain_points": self.n_points,
                "decision": self.decision, "care": [c.to_dict() for c in self.care]}


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """What happened in one round of the certify loop.

    Parameters
    ----------
    index : int
    verdicts : dict name -> Verdict -- after the round's repair (or of the network it started from)
    new_counterexamples : int -- points the round added to the pool
    pool_size : int
    layer_index : int or None -- the repaired layer; None when no layer admitted a repair
    solve_status : RepairStatus or None -- None when there was no time to solve
    objective : float or None
    time_s : float
    margins : dict name -> float -- the margins the round's repair used
    kind : RoundKind
    """

    index: int
    verdicts: dict[str, Verdict]
    new_counterexamples: int
    pool_size: int
    layer_index: int | None
    solve_status: RepairStatus | None
    objective: float | None
    time_s: float
    margins: dict[str, float] = field(default_factory=dict)
    kind: RoundKind = RoundKind.REPAIR

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"index": self.index, "verdicts": {n: v.value for n, v in self.verdicts.items()},
                "new_counterexamples": self.new_counterexamples, "pool_size": self.pool_size,
                "layer_index": self.layer_index,
                "solver_status": self.solve_status.value if self.solve_status else "no_time",
                "objective": self.objective, "time_s": self.time_s, "margins": dict(self.margins),
                "kind": self.kind.value}


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """Outcome of :func:`verirepair.pipeline.run_pipeline`.

    Parameters
    ----------
    status : PipelineStatus
    network : Network -- the delivered network (read back from its file), else the best candidate
    output_path : Path or None -- the delivered file; only for REPAIRED
    report_dir : Path
    properties : dict name -> PropertyOutcome
    rounds : tuple of RoundRecord
    change : WeightChange or None
    fidelity : FidelityReport or None
    time_s : float
    patch : Patch, NetworkPatch or None
    candidate_path : Path or None -- the uncertified candidate of a PARTIAL run, in the report folder
    pac : dict name -> PacStatement -- sampling statements (NOT proofs) for the properties that ended
        TIMEOUT or UNKNOWN; verdicts stay as they are
    strategy : str -- the repair strategy of the run
    """

    status: PipelineStatus
    network: Network
    output_path: Path | None
    report_dir: Path
    properties: dict[str, PropertyOutcome]
    rounds: tuple[RoundRecord, ...]
    change: WeightChange | None
    fidelity: FidelityReport | None
    time_s: float
    patch: Change | None = field(default=None, repr=False)
    candidate_path: Path | None = None
    pac: dict[str, PacStatement] = field(default_factory=dict)
    strategy: str = "lp"
