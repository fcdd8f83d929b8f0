"""Typed inputs and outputs of the verification stage.

Pipeline position: ``verify(network, property, config)`` returns a
:class:`VerificationResult`; localization and repair consume its
counterexamples.  Every engine (our own, Marabou) speaks these types.
"""

from __future__ import annotations

import enum
import math
import numbers
from dataclasses import dataclass, field

import numpy as np


class Verdict(enum.Enum):
    """The answer of a verifier.

    ``HOLDS`` only with a proof; ``VIOLATED`` only with a confirmed counterexample.
    """

    HOLDS = "holds"
    VIOLATED = "violated"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"

    @property
    def vnncomp(self) -> str:
        """The VNN-COMP result word: ``unsat`` (holds), ``sat`` (violated), ..."""
        return {"holds": "unsat", "violated": "sat"}.get(self.value, self.value)


@dataclass(frozen=True, slots=True)
class Counterexample:
    """An input that drives the network into the unsafe set.

    Parameters
    ----------
    x : array, shape (n_inputs,)
    y : array, shape (n_outputs,) -- our float64 forward pass of ``x``
    score : float -- the property's violation score of ``y`` (>= 0 when violating)
    confirmed : bool -- True once a float64 forward pass put ``y`` in the unsafe set
        and ``x`` in the input region
    source : str -- who found it ("sampling", "pgd", "bab", "marabou", ...)
    """

    x: np.ndarray
    y: np.ndarray
    score: float
    confirmed: bool
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("x", "y"):
            arr = np.array(getattr(self, name), dtype=np.float64, copy=True).reshape(-1)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)


def _shown(value: object) -> str:
    """A setting's value for a message: numbers plainly (``2.5``, never ``np.float64(2.5)``)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return str(float(value)) if not isinstance(value, numbers.Integral) else str(int(value))
    return repr(value)


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """Settings of one verification call.

    Parameters
    ----------
    timeout_s : float
        Wall-clock budget; the engine returns ``TIMEOUT`` when it runs out.
    seed : int
        Seed of the falsifier's random sampling.
    use_lp : bool
        Enable LP (triangle relaxation, HiGHS) tightening of bounds.
    max_counterexamples : int
        How many distinct confirmed counterexamples to return at most.
    falsify_samples : int
        Random samples drawn by the falsifier before the search.
    pgd_steps : int
        Projected-gradient steps of the falsifier's attack.
    batch_size : int
        Sub-boxes bounded per vectorised step of branch and bound.
    workers : int
        Processes for branch and bound (our engine).  With more than one, a
        search still open after a short warm-up hands its open sub-boxes to a
        pool of that many worker processes (:mod:`verirepair.verify.parallel`).

    Raises
    ------
    ValueError
        When ``timeout_s`` is not a finite positive number (a NaN budget would
        never fire, an infinite one would never end), or a count is out of
        range (``max_counterexamples``, ``batch_size``, ``workers`` >= 1;
        ``falsify_samples``, ``pgd_steps`` >= 0).
    """

    timeout_s: float = 60.0
    seed: int = 0
    use_lp: bool = False
    max_counterexamples: int = 1
    falsify_samples: int = 2000
    pgd_steps: int = 50
    batch_size: int = 512
    workers: int = 1

    def __post_init__(self) -> None:
        try:
            timeout = float(self.timeout_s)
        except (TypeError, ValueError):
            raise ValueError(f"timeout_s must be a number of seconds, got {_shown(self.timeout_s)}") \
                from None
        if not (math.isfinite(timeout) and timeout > 0.0):
            raise ValueError(f"timeout_s must be finite and positive, got {timeout}")
        for name, least in (("max_counterexamples", 1), ("batch_size", 1), ("workers", 1),
                            ("falsify_samples", 0), ("pgd_steps", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                    or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {_shown(value)}")


@dataclass(frozen=True, slots=True)
class VerifyStats:
    """Effort statistics of one verification call."""

    time_s: float = 0.0
    subproblems: int = 0
    splits: int = 0
    lp_calls: int = 0
    max_depth: int = 0
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The outcome of verifying one property on one network.

    Parameters
    ----------
    verdict : Verdict
    counterexamples : tuple of Counterexample -- non-empty iff ``VIOLATED``
    stats : VerifyStats
    engine : str -- ``"own"`` or ``"marabou"``
    property_name : str
    message : str -- why the answer is UNKNOWN/TIMEOUT, if it is
    open_boxes : tuple of (lower, upper) arrays
        On TIMEOUT, some sub-boxes of the input region the engine left
        undecided (ours: the top of its search stack); empty otherwise.
    """

    verdict: Verdict
    counterexamples: tuple[Counterexample, ...] = ()
    stats: VerifyStats = field(default_factory=VerifyStats)
    engine: str = "own"
    property_name: str = ""
    message: str = ""
    open_boxes: tuple[tuple[np.ndarray, np.ndarray], ...] = ()

    def __post_init__(self) -> None:
        if self.verdict is Verdict.VIOLATED and not any(c.confirmed for c in self.counterexamples):
            raise ValueError("a VIOLATED result must carry a confirmed counterexample")
