"""What a repair strategy reads and returns (the types of :mod:`verirepair.repair.strategy`).

Pipeline position: the certify loop builds a :class:`StrategyContext` for each
repair attempt; the strategies (:mod:`verirepair.repair.strategy`,
:mod:`verirepair.repair.imitation`, :mod:`verirepair.repair.finetune`) return
a :class:`StrategyOutcome`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Property
from verirepair.repair.config import RepairConfig, RepairResult
from verirepair.repair.strategy_config import StrategyConfig

#: ``(result, layer_index)`` of the loop's LP over its ranked layers; layer None when none admitted a repair.
LPSolve = Callable[[], tuple[RepairResult | None, int | None]]


@dataclass(frozen=True, slots=True)
class StrategyContext:
    """What a strategy may read in one repair attempt.

    Parameters
    ----------
    network : Network -- the original (every attempt starts from it)
    properties : tuple of Property -- every property of the task, flattened
    margins : tuple of float -- per property (aligned with ``properties``): how far outside its unsafe set
        every pool point in its region must end (the distance of :meth:`Property.violation_score`)
    pool : array, shape (n, n_inputs) -- counterexamples, region anchors and open-box samples so far
    preserve_x : array, shape (m, n_inputs) -- the task's preservation points (its domain or data)
    decision : str -- the task's decision rule
    config : StrategyConfig
    seed : int -- the run's seed
    deadline : float -- ``time.perf_counter()`` value by which the attempt must return
    emit : callable(stage, info) -- progress
    solve_lp : callable -- the loop's LP over its ranked layers (used by ``lp``)
    repair : RepairConfig or None -- the run's LP settings (backend, norm, bounds); None: the defaults
    hard : tuple of bool -- per property (aligned with ``properties``): the verifier left it undecided
        in an earlier round (the ``cover`` strategy proves these itself); () means none
    shrink : bool -- the attempt narrows the margins of an already proven repair (the loop keeps the
        smallest proven change, so a strategy may offer its smallest candidate)
    """

    network: Network
    properties: tuple[Property, ...]
    margins: tuple[float, ...]
    pool: np.ndarray
    preserve_x: np.ndarray
    decision: str
    config: StrategyConfig
    seed: int
    deadline: float
    emit: Callable[[str, dict], None]
    solve_lp: LPSolve
    repair: RepairConfig | None = None
    hard: tuple[bool, ...] = ()
    shrink: bool = False


@dataclass(frozen=True, slots=True)
class StrategyOutcome:
    """A strategy's answer: the repair result (its ``patch`` a Patch or a NetworkPatch) and the first changed layer.

    ``layer_index`` is None when no repair was found.
    """

    result: RepairResult | None
    layer_index: int | None
