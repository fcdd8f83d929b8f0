"""Probably-approximately-correct statements for properties that no proof decided.

Pipeline position: after the certify loop, :mod:`verirepair.pipeline` calls
:func:`pac_statement` for every property whose final verdict on the
delivered network (or the best candidate, or the original) is TIMEOUT or
UNKNOWN; the report shows the result *beside* the verdict, never in its
place, and says that it is not a proof.  A property that is proven needs no
statement, and one with a counterexample gets none.

The statement is BIRDNN's sampling bound.  Draw ``n`` points independently
from a distribution ``D`` over the property's input region and evaluate the
network on each.  If the violation probability ``p = P_D(violation)`` were
larger than ``eps``, all ``n`` points would be violation-free with probability
at most ``(1 - eps)^n <= exp(-eps n)``.  So when no violation is observed,
with confidence at least ``1 - delta`` (over the draw), ``p <= eps`` for
``eps = ln(1/delta) / n``; equivalently ``n >= ln(1/delta) / eps`` samples
support "at most eps".  ``D`` is uniform on each box of the region (boxes
weighted by volume, :meth:`Property.sample_inputs`), and for a group of
several properties the equal-weight mixture of theirs.  The statement is
about that distribution only: a violation set of measure zero (a single
point, a face) is invisible to it, which is exactly why it is not a proof.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Property, violating_mask

#: Points evaluated per batch (one forward pass each).
PAC_BATCH = 4096


def pac_epsilon(n_samples: int, delta: float) -> float:
    """``ln(1/delta) / n``: the violation probability bounded, at confidence ``1 - delta``, by ``n`` clean samples.

    Raises
    ------
    ValueError -- ``n_samples < 1`` or ``delta`` outside (0, 1)
    """
    _check_delta(delta)
    if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"the number of samples must be an integer >= 1, got {n_samples}")
    return math.log(1.0 / delta) / n_samples


def pac_samples_needed(epsilon: float, delta: float) -> int:
    """The least ``n`` with ``n >= ln(1/delta) / epsilon``.

    Raises
    ------
    ValueError -- ``epsilon`` or ``delta`` outside (0, 1)
    """
    _check_delta(delta)
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < 1):
        raise ValueError(f"epsilon must lie in (0, 1), got {epsilon}")
    return max(1, math.ceil(math.log(1.0 / delta) / epsilon - 1e-12))


def _check_delta(delta: float) -> None:
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise ValueError(f"delta must lie in (0, 1), got {delta}")


@dataclass(frozen=True, slots=True)
class PacStatement:
    """The sampling evidence about one property group (never a proof).

    Parameters
    ----------
    property_name : str
    n_samples : int -- points drawn and evaluated
    n_violations : int -- how many of them violate a property whose region contains them
    delta : float -- one minus the confidence
    epsilon : float or None -- the bound ``ln(1/delta) / n_samples``; None when a violation was seen
        or no sample could be drawn in time
    target_epsilon : float -- the bound asked for (``n_samples`` falls short of it when time ran out)
    time_s : float
    counterexample : tuple of float or None -- a sampled violating input (a forward pass confirms it)
    """

    property_name: str
    n_samples: int
    n_violations: int
    delta: float
    epsilon: float | None
    target_epsilon: float
    time_s: float
    counterexample: tuple[float, ...] | None = None

    @property
    def text(self) -> str:
        """The statement in words, saying that it is not a proof."""
        if self.n_violations:
            return (f"{self.property_name}: sampling found {self.n_violations} violating input(s) among "
                    f"{self.n_samples} uniform samples: the property is violated (counterexample confirmed "
                    "by a forward pass); no probability bound is given")
        if self.epsilon is None:
            return f"{self.property_name}: no sample could be drawn within the budget; no statement"
        return (f"{self.property_name}: violation probability at most {self.epsilon:.3g} with confidence "
                f"{1 - self.delta:.6g} over the property region (uniform), from {self.n_samples} violation-free "
                "samples. This is a statistical statement, NOT a proof.")

    def to_dict(self) -> dict:
        """JSON-ready form (``proof`` is always false)."""
        return {"property": self.property_name, "proof": False, "n_samples": self.n_samples,
                "n_violations": self.n_violations, "delta": self.delta, "confidence": 1 - self.delta,
                "epsilon": self.epsilon, "target_epsilon": self.target_epsilon, "time_s": self.time_s,
                "distribution": "uniform over the property's input region (boxes weighted by volume; "
                                "equal-weight mixture over the properties of a group)",
                "counterexample": list(self.counterexample) if self.counterexample is not None else None,
                "statement": self.text}


def pac_statement(network: Network, name: str, props: Sequence[Property], epsilon: float, delta: float,
                  rng: np.random.Generator, deadline: float) -> PacStatement:
    """Sample the region of ``props`` until ``ln(1/delta)/epsilon`` clean points, a violation, or ``deadline``.

    Parameters
    ----------
    network : Network -- the network the statement is about
    name : str -- the property group's name
    props : sequence of Property -- the group (at least one)
    epsilon, delta : float in (0, 1) -- the bound and one minus the confidence asked for
    rng : numpy Generator
    deadline : float -- ``time.perf_counter()`` value; sampling stops there (fewer samples: a wider bound)

    Returns
    -------
    PacStatement -- with ``epsilon`` from the samples actually drawn; no bound once a violation is seen

    Raises
    ------
    ValueError -- bad ``epsilon`` / ``delta``, or no property
    """
    if not props:
        raise ValueError("a PAC statement needs at least one property")
    needed = pac_samples_needed(epsilon, delta)
    start = time.perf_counter()
    drawn = violations = 0
    witness: tuple[float, ...] | None = None
    while drawn < needed and time.perf_counter() < deadline:
        batch = min(PAC_BATCH, needed - drawn)
        counts = rng.multinomial(batch, np.full(len(props), 1.0 / len(props)))
        x = np.vstack([p.sample_inputs(rng, int(k)) for p, k in zip(props, counts, strict=True)])
        bad = violating_mask(props, x, network.forward(x))
        drawn += x.shape[0]
        if bad.any():
            violations += int(np.count_nonzero(bad))
            witness = tuple(float(v) for v in x[np.flatnonzero(bad)[0]])
            break
    bound = pac_epsilon(drawn, delta) if drawn and not violations else None
    return PacStatement(name, drawn, violations, float(delta), bound, float(epsilon),
                        time.perf_counter() - start, witness)
