"""The public entry point of the verification stage and its verifier registry.

Pipeline position: ``(Network, Property | [Property], VerifyConfig) --verify-->
VerificationResult``.  Localization, repair and the CLI call :func:`verify`;
they pick an engine by name (``"own"`` or ``"marabou"``) through
:func:`get_verifier`, never by importing an engine module.

The ``"own"`` engine: the falsifier (:mod:`verirepair.verify.falsify`) runs on
every property first, then branch and bound decides each property in turn:
over the input box (:mod:`verirepair.verify.bab`) or, for piecewise-linear
networks with many inputs, over ReLU activations (:mod:`verirepair.verify.relu_bab`;
``"own-input"`` / ``"own-relu"`` force one or the other).  A list of properties is violated iff one of
them is, and holds iff all of them hold; all share one wall-clock budget.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from verirepair.errors import SolverUnavailableError
from verirepair.network.model import Network
from verirepair.properties.property import Property
from verirepair.verify import bab, relu_bab
from verirepair.verify.falsify import falsify
from verirepair.verify.parallel import parallel_search
from verirepair.verify.result import Counterexample, Verdict, VerificationResult, VerifyConfig, VerifyStats
from verirepair.verify.search_state import SearchOutcome

if TYPE_CHECKING:
    from verirepair.verify.certificate_recorder import TreeRecorder

Verifier = Callable[[Network, Sequence[Property], VerifyConfig], VerificationResult]


def _check_inputs(network: Network, props: Sequence[Property]) -> None:
    if not props:
        raise ValueError("verify needs at least one property")
    for prop in props:
        if prop.n_inputs != network.n_inputs or prop.n_outputs != network.n_outputs:
            raise ValueError(
                f"property {prop.name!r} has {prop.n_inputs} inputs / {prop.n_outputs} outputs "
                f"but the network has {network.n_inputs} / {network.n_outputs}"
            )


def verify_own(network: Network, props: Sequence[Property], config: VerifyConfig,
               split: str = "auto",
               recorder_factory: Callable[[Property], TreeRecorder] | None = None
               ) -> VerificationResult:
    """Our own sound and complete engine: falsifier, then input- or ReLU-splitting BaB.

    ``split`` picks the branch and bound per property: ``"auto"`` (the rule of
    :func:`verirepair.verify.relu_bab.use_activation_splitting`: ReLU splits for
    piecewise-linear networks with many inputs), ``"input"`` or ``"relu"``.
    ``recorder_factory`` (certificates, :mod:`verirepair.verify.certificate_writer`) records
    the input-splitting search, the one a certificate describes: with it every property is
    searched by input splitting in this process, whatever ``split`` says.

    Parameters
    ----------
    network : Network
    props : sequence of Property -- violated iff any is violated
    config : VerifyConfig
    recorder_factory : callable or None -- a recorder per property, given the search
        tree (a certificate, :mod:`verirepair.verify.certificate_writer`); the search
        is then sequential whatever ``config.workers`` says

    Returns
    -------
    VerificationResult
        ``engine="own"``; ``stats.extra`` holds ``falsify_s`` (time spent in the
        falsifier), ``decided_by`` (``"falsifier"`` or ``"bab"``) and ``cpu_s``
        (process CPU time, a steadier measure than wall time on a shared machine).
    """
    start = time.perf_counter()
    cpu_start = time.process_time()
    deadline = start + config.timeout_s
    names = ",".join(p.name for p in props)

    def result(verdict: Verdict, outcomes: list[SearchOutcome], cexs: Sequence[Counterexample] = (),
               message: str = "", decided_by: str = "bab", falsify_s: float = 0.0,
               open_boxes: tuple[tuple[np.ndarray, np.ndarray], ...] = ()) -> VerificationResult:
        stats = VerifyStats(
            time_s=time.perf_counter() - start,
            subproblems=sum(o.subproblems for o in outcomes),
            splits=sum(o.splits for o in outcomes),
            lp_calls=sum(o.lp_calls for o in outcomes),
            max_depth=max((o.max_depth for o in outcomes), default=0),
            extra={"falsify_s": falsify_s, "decided_by": decided_by,
                   "cpu_s": time.process_time() - cpu_start},
        )
        return VerificationResult(verdict, tuple(cexs)[: max(config.max_counterexamples, 1)],
                                  stats, "own", names, message, tuple(open_boxes))

    for prop in props:
        found = falsify(network, prop, config, deadline)
        if found:
            return result(Verdict.VIOLATED, [], found, decided_by="falsifier",
                          falsify_s=time.perf_counter() - start)
    falsify_s = time.perf_counter() - start
    outcomes: list[SearchOutcome] = []
    unknown_messages = []
    for prop in props:
        # Several workers: the parallel search (it starts like bab.search and hands
        # a search still open after a warm-up to worker processes).
        if recorder_factory is not None:
            outcome = bab.search(network, prop, config, deadline, recorder_factory(prop))
        elif relu_bab.use_activation_splitting(network, prop, split):
            outcome = relu_bab.search(network, prop, config, deadline)
        elif config.workers > 1:
            outcome = parallel_search(network, prop, config, deadline)
        else:
            outcome = bab.search(network, prop, config, deadline)
        outcomes.append(outcome)
        if outcome.verdict is Verdict.VIOLATED:
            return result(Verdict.VIOLATED, outcomes, outcome.counterexamples,
                          falsify_s=falsify_s)
        if outcome.verdict is Verdict.TIMEOUT:
            return result(Verdict.TIMEOUT, outcomes, message=f"{prop.name}: {outcome.message}",
                          falsify_s=falsify_s, open_boxes=outcome.open_boxes())
        if outcome.verdict is Verdict.UNKNOWN:
            unknown_messages.append(f"{prop.name}: {outcome.message}")
    if unknown_messages:
        return result(Verdict.UNKNOWN, outcomes, message="; ".join(unknown_messages),
                      falsify_s=falsify_s)
    return result(Verdict.HOLDS, outcomes, falsify_s=falsify_s)


def _require_marabou(name: str) -> None:
    """Raise SolverUnavailableError (naming the alternatives) if maraboupy is missing."""
    try:
        import maraboupy  # noqa: F401
    except ImportError as exc:
        raise SolverUnavailableError(
            f"the {name!r} verifier needs maraboupy==2.0.0 (Python 3.8-3.11, Linux/macOS x86_64); "
            "available alternatives: "
            f"{', '.join(n for n in list_verifiers() if not n.startswith('marabou'))}"
        ) from exc


def _verify_marabou(network: Network, props: Sequence[Property], config: VerifyConfig
                    ) -> VerificationResult:
    """Adapter that imports the Marabou backend only when it is asked for."""
    _require_marabou("marabou")
    from verirepair.verify.marabou_backend import verify_marabou

    return verify_marabou(network, props, config)


def _verify_marabou_split(network: Network, props: Sequence[Property], config: VerifyConfig
                          ) -> VerificationResult:
    """Adapter for Marabou on a recursive input partition (default ``SplitConfig``)."""
    _require_marabou("marabou-split")
    from verirepair.verify.marabou_split import verify_marabou_split

    return verify_marabou_split(network, props, config)


_REGISTRY: dict[str, Verifier] = {"own": verify_own, "marabou": _verify_marabou,
                                  "marabou-split": _verify_marabou_split,
                                  # our engine with the split forced (benchmarks compare them)
                                  "own-input": functools.partial(verify_own, split="input"),
                                  "own-relu": functools.partial(verify_own, split="relu")}


def register_verifier(name: str, verifier: Verifier) -> None:
    """Make ``verify(..., engine=name)`` use ``verifier`` (a callable ``(network, props, config)``).

    The verifier must keep the contract of :class:`VerificationResult`: HOLDS
    only with a proof, VIOLATED only with a confirmed counterexample.
    """
    _REGISTRY[name] = verifier


def list_verifiers() -> list[str]:
    """Names accepted by :func:`get_verifier` (and ``verify(..., engine=...)``)."""
    return sorted(_REGISTRY)


def get_verifier(name: str) -> Verifier:
    """Look up a verifier by name.

    Parameters
    ----------
    name : str -- one of :func:`list_verifiers`

    Returns
    -------
    callable ``(network, props, config) -> VerificationResult``

    Raises
    ------
    KeyError
        For an unknown name (the message lists the known ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown verifier {name!r}; known: {', '.join(list_verifiers())}") from None


def verify(network: Network, props: Property | Sequence[Property],
           config: VerifyConfig = VerifyConfig(), engine: str = "own") -> VerificationResult:
    """Decide whether ``network`` satisfies ``props``.

    Parameters
    ----------
    network : Network
    props : Property or sequence of Property
        A sequence (one VNN-LIB file can yield several properties) is violated
        iff any member is violated and holds iff all hold; the time budget
        ``config.timeout_s`` is shared.
    config : VerifyConfig
    engine : str -- ``"own"`` (default), ``"marabou"`` or ``"marabou-split"``

    Returns
    -------
    VerificationResult
        ``HOLDS`` only with a complete proof (bounds plus ``BOUND_TOL``),
        ``VIOLATED`` only with a counterexample confirmed by a float64 forward pass.

    Raises
    ------
    KeyError
        Unknown engine name.
    SolverUnavailableError
        The engine's solver is not installed.
    ValueError
        Properties whose dimensions do not match the network.
    """
    prop_list = [props] if isinstance(props, Property) else list(props)
    _check_inputs(network, prop_list)
    return get_verifier(engine)(network, prop_list, config)
