"""The registry of repair strategies the certify loop can run.

Pipeline position: in each round :class:`verirepair.certify_loop.CertifyLoop`
builds a :class:`StrategyContext` (the original network, the pool of points,
the preservation points, the per-property margins) and calls the strategy
named by :class:`~verirepair.repair.strategy_config.StrategyConfig`.  The
strategy returns a :class:`StrategyOutcome`; the loop applies its patch,
rounds it to float32 and verifies every property, whatever the strategy.
A strategy proves nothing itself.

* ``lp``: the layer-by-layer minimal-change LP of
  :func:`verirepair.repair.repair_layer` (the loop's own routine, passed in
  as ``StrategyContext.solve_lp``).
* ``imitation``: BIRDNN retraining (:mod:`verirepair.repair.imitation`).
* ``finetune``: BIRDNN fine-tuning (:mod:`verirepair.repair.finetune`).
* ``cover``: ``lp`` while the verifier decides every property; once it has
  left one undecided, an output-layer change that the LP proves itself on
  covers of those properties' regions (:mod:`verirepair.repair.cover`).
"""

from __future__ import annotations

from typing import Protocol

from verirepair.repair.strategy_config import STRATEGY_NAMES
from verirepair.repair.strategy_context import StrategyContext, StrategyOutcome


class RepairStrategy(Protocol):
    """A repair strategy: one attempt at the context's margins."""

    def __call__(self, context: StrategyContext) -> StrategyOutcome:
        """Propose a change; the certify loop verifies it."""
        ...


def _lp(context: StrategyContext) -> StrategyOutcome:
    result, layer_index = context.solve_lp()
    return StrategyOutcome(result, layer_index)


def _imitation(context: StrategyContext) -> StrategyOutcome:
    from verirepair.repair.imitation import imitation_repair

    return imitation_repair(context)


def _finetune(context: StrategyContext) -> StrategyOutcome:
    from verirepair.repair.finetune import finetune_repair

    return finetune_repair(context)


def _cover(context: StrategyContext) -> StrategyOutcome:
    from verirepair.repair.cover import cover_repair

    return cover_repair(context)


_STRATEGIES: dict[str, RepairStrategy] = {"lp": _lp, "imitation": _imitation, "finetune": _finetune,
                                          "cover": _cover}


#: Strategies that call ``StrategyContext.solve_lp`` and so need the loop's ranked layers.
_RANKED_LAYERS = frozenset({"lp", "cover"})


def uses_ranked_layers(name: str) -> bool:
    """Whether the strategy ``name`` needs the localization's ranking of layers."""
    return name in _RANKED_LAYERS


def list_strategies() -> list[str]:
    """Names of the registered strategies, in ``--help`` order."""
    return [name for name in STRATEGY_NAMES if name in _STRATEGIES]


def get_strategy(name: str) -> RepairStrategy:
    """The strategy registered as ``name``.

    Raises
    ------
    ValueError -- unknown name (the message lists the strategies)
    """
    try:
        return _STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown repair strategy {name!r}; choose one of {', '.join(list_strategies())}") from None
