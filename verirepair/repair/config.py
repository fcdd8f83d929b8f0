"""Configuration and result types of the repair stage.

Pipeline position: the caller (``pipeline.py``) builds a :class:`RepairConfig`,
passes it to :func:`verirepair.repair.repair_layer` and receives a
:class:`RepairResult`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from verirepair.repair.network_patch import NetworkPatch
from verirepair.repair.patch import Patch
from verirepair.tolerances import MARGIN

NORMS = ("l1", "linf", "mix")
ENCODINGS = ("lp", "milp")
DISJUNCTS = ("cheapest", "exact")


@dataclass(frozen=True, slots=True)
class RepairConfig:
    """How one layer is repaired.

    Parameters
    ----------
    norm : {"l1", "linf", "mix"}
        Size of the change that is minimised: the L1 norm, the L-inf norm, or
        ``L1 + mix_weight * Linf`` of all changed weights and biases.
    mix_weight : float
        Weight of the L-inf term when ``norm == "mix"``.
    solver : str
        LP/MILP backend name (see :func:`verirepair.solvers.list_backends`).
    encoding : {"lp", "milp"}
        ``"lp"``: every sample keeps the activation pattern of the original
        network in the repaired layer and all layers after it (PRDNN-style, an
        LP; sound for the samples, a restriction of the search space).
        ``"milp"``: downstream ReLUs are big-M binaries with interval bounds
        over the allowed change (exact for the samples; small sample sets).
    disjunct : {"cheapest", "exact"}
        How "leave every unsafe polytope" (a disjunction over its rows) is
        encoded: ``"cheapest"`` fixes, per sample and polytope, the row that is
        estimated cheapest to violate (stays an LP); ``"exact"`` lets binaries
        choose.
    margin : float
        Counterexamples must end at least this far (Euclidean distance in the
        output space, as :meth:`Property.violation_score`) outside the unsafe set.
    property_margins : tuple of float or None
        Per-property margins, aligned with the ``props`` given to
        :func:`~verirepair.repair.repair_layer`; they replace ``margin``.  The
        certify loop widens the margin of one property (the one its verifier
        could not prove) without widening the others.
    preserve_margin : float
        Preservation points keep their advisory (argmin output) by this gap,
        capped at half of the point's original gap.
    max_delta : float
        Box bound on each weight/bias change.
    neurons : tuple of int or None
        Only these rows (units) of the layer may change; None = the whole layer.
    inputs : tuple of int or None
        Only the weights from these input units (columns: units of the previous
        layer, or network inputs for layer 0) may change; None = all.  The
        bias of every changeable row may always change.
    time_limit_s : float
        Total solver budget, seconds.
    bound_output_change : float or None
        If set, every output of every preservation point may move by at most this.
    preserve_penalty : float or None
        None (default): preservation is a hard constraint.  A number makes it
        soft (LP encoding only): each preservation point gets one slack
        variable that relaxes its advisory rows and its activation-sign rows,
        and the objective adds ``preserve_penalty * sum(slack)``.  Hard
        preservation is infeasible whenever a counterexample's features at the
        repaired layer are a convex combination of points that must keep the
        very advisory the repair removes; the soft form then gives up the
        fewest, least-violated preservation points instead of failing.
    max_lazy_rounds : int
        Rounds of lazy constraint generation (rows or samples added when the
        solution violates them) before giving up with SOLVER_FAILED.
    decision : str
        The decision rule whose decisions preservation points keep (a name of
        :func:`verirepair.decision.list_decision_rules`; a repair task sets it).
    """

    norm: str = "l1"
    mix_weight: float = 1.0
    solver: str = "cbc"
    encoding: str = "lp"
    disjunct: str = "cheapest"
    margin: float = MARGIN
    property_margins: tuple[float, ...] | None = None
    preserve_margin: float = MARGIN
    max_delta: float = 10.0
    neurons: tuple[int, ...] | None = None
    inputs: tuple[int, ...] | None = None
    time_limit_s: float = 180.0
    bound_output_change: float | None = None
    preserve_penalty: float | None = None
    max_lazy_rounds: int = 30
    decision: str = "argmin"

    def __post_init__(self) -> None:
        for field, value, allowed in (("norm", self.norm, NORMS),
                                      ("encoding", self.encoding, ENCODINGS),
                                      ("disjunct", self.disjunct, DISJUNCTS)):
            if value not in allowed:
                raise ValueError(f"RepairConfig.{field} must be one of {allowed}, got {value!r}")
        for field in ("mix_weight", "margin", "preserve_margin"):
            if getattr(self, field) < 0:
                raise ValueError(f"RepairConfig.{field} must be >= 0")
        if self.max_delta <= 0 or self.time_limit_s <= 0 or self.max_lazy_rounds < 1:
            raise ValueError("RepairConfig.max_delta, time_limit_s and max_lazy_rounds must be positive")
        from verirepair.decision import list_decision_rules

        if self.decision not in list_decision_rules():
            raise ValueError(f"RepairConfig.decision must be one of {', '.join(list_decision_rules())}, "
                             f"got {self.decision!r}")
        if self.preserve_penalty is not None and self.preserve_penalty <= 0:
            raise ValueError("RepairConfig.preserve_penalty must be positive or None")
        if self.bound_output_change is not None and self.bound_output_change <= 0:
            raise ValueError("RepairConfig.bound_output_change must be positive or None")
        if self.property_margins is not None:
            margins = tuple(float(m) for m in self.property_margins)
            if not margins or min(margins) < 0:
                raise ValueError("RepairConfig.property_margins must be non-empty and >= 0")
            object.__setattr__(self, "property_margins", margins)
        for name in ("neurons", "inputs"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(sorted({int(n) for n in value})))
                if not getattr(self, name):
                    raise ValueError(f"RepairConfig.{name} must name at least one unit (or be None)")


class RepairStatus(enum.Enum):
    """Outcome of a layer repair."""

    #: The patch, applied, makes every counterexample safe (float64 forward check).
    REPAIRED = "repaired"
    #: No change within the configured bounds satisfies the constraints.
    INFEASIBLE = "infeasible"
    #: The solver failed, or its solution does not repair the samples.
    SOLVER_FAILED = "solver_failed"
    TIMEOUT = "timeout"
    #: No counterexample violates any given property; nothing to do.
    NOT_NEEDED = "not_needed"


@dataclass(frozen=True, slots=True)
class RepairStats:
    """Numbers about one repair run (for reports).

    ``n_vars`` / ``n_constraints`` describe the last problem solved; times are
    sums over all lazy-generation rounds, in seconds.  ``cex_fixed`` is the
    number of counterexamples safe after the patch (float64 forward pass) and
    ``preserve_agreement`` the fraction of preservation points whose argmin
    output is unchanged (1.0 when there are none).
    """

    solver: str
    solver_status: str
    n_vars: int = 0
    n_constraints: int = 0
    n_binaries: int = 0
    build_time_s: float = 0.0
    solve_time_s: float = 0.0
    rounds: int = 0
    n_counterexamples: int = 0
    n_preserve: int = 0
    cex_fixed: int = 0
    preserve_agreement: float = 1.0
    pattern_changes: int = 0


@dataclass(frozen=True, slots=True)
class RepairResult:
    """What :func:`~verirepair.repair.repair_layer` returns.

    Parameters
    ----------
    status : RepairStatus
    patch : Patch, NetworkPatch or None
        A Patch from the LP (one layer), a NetworkPatch from a trained
        strategy (:mod:`verirepair.repair.strategy`).  Present for REPAIRED
        (and, for diagnosis, for SOLVER_FAILED when a solution existed but
        the forward check failed).
    objective : float or None
        The minimised norm of the change.
    stats : RepairStats
    message : str
    """

    status: RepairStatus
    patch: Patch | NetworkPatch | None
    objective: float | None
    stats: RepairStats
    message: str = ""
