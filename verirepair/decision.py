"""Decision rules: how a network's outputs become a decision (a class, an advisory).

Pipeline position: a repair task names its rule (ACAS Xu: ``argmin``, the
advisory with the lowest score; a classifier: ``argmax``; a binary scorer:
``threshold``).  The rule is used wherever behaviour must be kept or
compared: the preservation rows of the repair LP, the collateral effect of
localization, and the fidelity measures.  The stages take the rule's registry
name in their configs and resolve it here, so a new task brings a new rule
without teaching any stage its name.

Shapes: outputs ``y`` are ``(n, m)`` (batch first); decisions are ``(n,)``
integer labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class KeepRows:
    """Linear rows that keep decisions: ``lower <= c @ y[sample] <= upper`` for every row.

    Parameters
    ----------
    sample : int array, shape (k,) -- which output row each constraint is about
    c : array, shape (k, m)
    lower, upper : arrays, shape (k,) -- ``-inf`` / ``inf`` where a side is free
    """

    sample: np.ndarray
    c: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


class DecisionRule(Protocol):
    """What a decision rule provides (see the module docstring)."""

    @property
    def name(self) -> str:
        """The rule's registry name."""

    def decide(self, y: np.ndarray) -> np.ndarray:
        """Labels of outputs ``y`` (n, m) -> (n,)."""

    def keep_rows(self, y: np.ndarray, margin: float) -> KeepRows:
        """Rows that the original outputs ``y`` (n, m) satisfy and that keep each decision.

        The margin of each row is ``min(margin, gap / 2)``, ``gap`` being how
        far the original output is from changing its decision, so the
        original network satisfies every row.
        """

    def kept(self, y_before: np.ndarray, y_after: np.ndarray, tol: float) -> np.ndarray:
        """Per row, whether ``y_after`` keeps the decision of ``y_before`` (ties within ``tol`` count)."""


def _pairwise_rows(y: np.ndarray, margin: float, best: np.ndarray, sign: float) -> KeepRows:
    """Rows ``sign * (y_j - y_best) >= level`` for every output ``j`` other than ``best``."""
    n, m = y.shape
    ordered = np.sort(sign * y, axis=1)
    gap = ordered[:, 1] - ordered[:, 0] if m > 1 else np.zeros(n)
    level = np.minimum(margin, gap / 2.0)
    s_rep = np.repeat(np.arange(n), m)
    j_rep = np.tile(np.arange(m), n)
    keep = j_rep != best[s_rep]
    s_rep, j_rep = s_rep[keep], j_rep[keep]
    c = np.zeros((s_rep.shape[0], m))
    c[np.arange(s_rep.shape[0]), j_rep] = sign
    c[np.arange(s_rep.shape[0]), best[s_rep]] -= sign
    return KeepRows(s_rep, c, level[s_rep], np.full(s_rep.shape[0], np.inf))


@dataclass(frozen=True, slots=True)
class ArgMin:
    """The decision is the output with the lowest score (ACAS Xu advisories)."""

    name: str = "argmin"

    def decide(self, y: np.ndarray) -> np.ndarray:
        return np.argmin(y, axis=-1)

    def keep_rows(self, y: np.ndarray, margin: float) -> KeepRows:
        return _pairwise_rows(y, margin, np.argmin(y, axis=1), 1.0)

    def kept(self, y_before: np.ndarray, y_after: np.ndarray, tol: float) -> np.ndarray:
        label = np.argmin(y_before, axis=1)
        return y_after[np.arange(len(label)), label] <= y_after.min(axis=1) + tol


@dataclass(frozen=True, slots=True)
class ArgMax:
    """The decision is the output with the highest score (classifiers)."""

    name: str = "argmax"

    def decide(self, y: np.ndarray) -> np.ndarray:
        return np.argmax(y, axis=-1)

    def keep_rows(self, y: np.ndarray, margin: float) -> KeepRows:
        return _pairwise_rows(y, margin, np.argmax(y, axis=1), -1.0)

    def kept(self, y_before: np.ndarray, y_after: np.ndarray, tol: float) -> np.ndarray:
        label = np.argmax(y_before, axis=1)
        return y_after[np.arange(len(label)), label] >= y_after.max(axis=1) - tol


@dataclass(frozen=True, slots=True)
class Threshold:
    """Binary decision of one output: label 1 when ``y[output] >= threshold``, else 0."""

    threshold: float = 0.0
    output: int = 0
    name: str = "threshold"

    def decide(self, y: np.ndarray) -> np.ndarray:
        return (y[..., self.output] >= self.threshold).astype(int)

    def keep_rows(self, y: np.ndarray, margin: float) -> KeepRows:
        n, m = y.shape
        value = y[:, self.output]
        label = value >= self.threshold
        level = np.minimum(margin, np.abs(value - self.threshold) / 2.0)
        c = np.zeros((n, m))
        c[:, self.output] = 1.0
        lower = np.where(label, self.threshold + level, -np.inf)
        upper = np.where(label, np.inf, self.threshold - level)
        return KeepRows(np.arange(n), c, lower, upper)

    def kept(self, y_before: np.ndarray, y_after: np.ndarray, tol: float) -> np.ndarray:
        label = y_before[:, self.output] >= self.threshold
        after = y_after[:, self.output]
        return np.where(label, after >= self.threshold - tol, after < self.threshold + tol)


_RULES: dict[str, Callable[[], DecisionRule]] = {"argmin": ArgMin, "argmax": ArgMax, "threshold": Threshold}


def register_decision_rule(name: str, factory: Callable[[], DecisionRule]) -> None:
    """Make ``get_decision_rule(name)`` return ``factory()`` (for a task's own rule)."""
    _RULES[name] = factory


def get_decision_rule(name: str) -> DecisionRule:
    """The rule registered as ``name``.

    Raises
    ------
    ValueError -- naming the registered rules
    """
    try:
        return _RULES[name]()
    except KeyError:
        raise ValueError(f"unknown decision rule {name!r}; registered: {', '.join(list_decision_rules())}") from None


def list_decision_rules() -> list[str]:
    """Names of the registered decision rules, sorted."""
    return sorted(_RULES)
