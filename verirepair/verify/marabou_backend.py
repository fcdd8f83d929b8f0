"""Marabou as a second, independent verification engine.

Pipeline position: ``get_verifier("marabou")`` (in :mod:`verirepair.verify.engine`)
lazily imports :func:`verify_marabou`; it speaks the same types as our own engine
(:class:`~verirepair.verify.result.VerificationResult`), so the two can be
compared instance by instance (``verirepair bench --compare own,marabou``).

The query is built directly with ``maraboupy.MarabouCore`` from our
:class:`~verirepair.network.model.Network` (never from the ONNX file), so both
engines verify exactly the same float64 network:

* variables ``0 .. n_inputs-1`` are the inputs, bounded by one input box;
* every affine layer gets one variable per pre-activation, tied to its inputs
  by an equation ``sum_i W_ji h_i - z_j = -b_j``;
* every ReLU layer gets one variable per post-activation and a ReLU constraint;
* the last layer's pre-activations are the outputs;
* the unsafe set ``OR_k (A_k y <= b_k)`` becomes plain ``<=`` equations when it
  has one polytope, and one disjunction constraint otherwise.

A union of input boxes is checked one box at a time, and a list of properties
one property at a time, all under one shared wall-clock budget.

Timeouts: Marabou's C++ ``solve`` cannot be interrupted from Python, so the
budget is enforced by Marabou's own ``timeoutInSeconds`` option (an integer:
the ceiling of the remaining budget).  A query may therefore overrun the budget
by up to a second plus preprocessing; the benchmark runner adds a hard
wall-clock guard that kills the worker process on top of this.

Soundness: ``unsat`` maps to ``HOLDS``.  ``sat`` maps to ``VIOLATED`` only once
Marabou's input assignment has been confirmed by our float64 forward pass
(:func:`~verirepair.verify.confirm.confirm`); an assignment that is only a
counterexample within Marabou's own tolerances gives ``UNKNOWN``.  A confirmed
assignment is then pushed deeper into the unsafe set by a few PGD steps
(:func:`~verirepair.verify.falsify.deepen`): Marabou's points lie on the
boundary (score about 0 or the retry margin), where a float32 evaluation such as
onnxruntime's may disagree (digits d28_6x64: score 1e-6 in float64, -2e-6 in float32).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from verirepair.errors import SolverUnavailableError, UnsupportedActivationError
from verirepair.network.model import Network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.solvers.quiet import stdout_silenced
from verirepair.verify.confirm import confirm
from verirepair.verify.falsify import deepen
from verirepair.verify.result import (
    Counterexample,
    Verdict,
    VerificationResult,
    VerifyConfig,
    VerifyStats,
)

logger = logging.getLogger(__name__)

ENGINE_NAME = "marabou"

#: Margins (in output units, per unit-norm row) by which the unsafe polytopes
#: are shrunk on successive queries of one box.  Marabou's satisfying
#: assignments typically lie exactly on the boundary of the unsafe set, and its
#: own feasibility tolerance puts our float64 forward pass a hair outside
#: (violation scores around -1e-16 .. -1e-9).  When that happens the query is
#: repeated with the polytopes pulled inwards, so the next assignment sits
#: strictly inside.  ``unsat`` is only ever trusted for margin 0.
SAT_RETRY_MARGINS = (0.0, 1e-6, 1e-4)

def marabou_available() -> bool:
    """Whether ``maraboupy`` can be imported.

    Returns
    -------
    bool
    """
    try:
        import_marabou()
    except SolverUnavailableError:
        return False
    return True


def import_marabou() -> tuple[Any, Any]:
    """Import maraboupy's two modules (shared with ``marabou-split``).

    Returns
    -------
    (MarabouCore, Marabou) : modules

    Raises
    ------
    SolverUnavailableError
        If maraboupy is not installed (the message names the alternative engine).
    """
    try:
        import warnings

        with warnings.catch_warnings():
            # maraboupy warns at import that its TensorFlow parser is missing; we never use it.
            warnings.filterwarnings("ignore", message="Tensorflow parser is unavailable")
            from maraboupy import Marabou, MarabouCore
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SolverUnavailableError(
            f"maraboupy is not installed ({exc}); install maraboupy==2.0.0 "
            "or use engine='own'"
        ) from exc
    return MarabouCore, Marabou


# --------------------------------------------------------------------- query
def _equation(core: Any, kind: str, terms: Sequence[tuple[float, int]], scalar: float) -> Any:
    """Build a MarabouCore equation ``sum c_i v_i (kind) scalar``."""
    types = {"eq": core.Equation.EQ, "le": core.Equation.LE}
    eq = core.Equation(types[kind])
    for coeff, var in terms:
        eq.addAddend(float(coeff), int(var))
    eq.setScalar(float(scalar))
    return eq


def _unsafe_rows(poly: HalfSpaces,
                 margin: float) -> list[tuple[list[tuple[float, int]], float]] | None:
    """The rows of ``A y <= b - margin * ||a_i||`` as Marabou terms over output indices.

    Returns ``None`` if the polytope is trivially empty (a zero row with a
    negative right-hand side); trivially true rows are dropped.
    """
    rows = []
    for a_row, b_i in zip(poly.A, poly.b - margin * np.linalg.norm(poly.A, axis=1), strict=True):
        # Zero coefficients carry no information, and Marabou rejects them in
        # single-variable disjuncts.
        terms = [(float(c), j) for j, c in enumerate(a_row) if c != 0.0]
        if not terms:
            if b_i < 0.0:
                return None
            continue
        rows.append((terms, float(b_i)))
    return rows


def build_query(network: Network, box: Box, unsafe: Sequence[HalfSpaces],
                margin: float = 0.0) -> tuple[Any, int]:
    """Encode "some input in ``box`` reaches the unsafe set" as a Marabou query.

    Parameters
    ----------
    network : Network
    box : Box, dimension n_inputs
    unsafe : sequence of HalfSpaces over the n_outputs outputs (their union)
    margin : float
        Shrink every polytope by this distance (each row ``a_i y <= b_i`` becomes
        ``a_i y <= b_i - margin * ||a_i||``); 0 encodes the property exactly.

    Returns
    -------
    (MarabouCore.InputQuery, int)
        The query and the number of non-empty unsafe polytopes (0 means the
        unsafe set is empty and the query need not be solved).

    Raises
    ------
    ValueError
        If the box or polytopes do not match the network's dimensions.
    """
    for index, layer in enumerate(network.layers):
        if layer.nonlinear and not layer.relu:
            raise UnsupportedActivationError(
                f"the Marabou backend encodes ReLU networks only; layer {index} has "
                f"{layer.activation.label} (use the own engine)")
    core, _ = import_marabou()
    if box.dim != network.n_inputs:
        raise ValueError(f"input box has dimension {box.dim}, network has {network.n_inputs} inputs")
    for poly in unsafe:
        if poly.A.shape[1] != network.n_outputs:
            raise ValueError(
                f"unsafe polytope is over {poly.A.shape[1]} outputs, network has {network.n_outputs}"
            )
    n_vars = network.n_inputs + sum(
        layer.out_features * (2 if layer.relu else 1) for layer in network.layers
    )
    query = core.InputQuery()
    query.setNumberOfVariables(n_vars)
    outputs = _encode_network(core, query, network, box)
    return query, _encode_unsafe(core, query, outputs, unsafe, margin)


def _encode_network(core: Any, query: Any, network: Network, box: Box) -> list[int]:
    """Add the input bounds, layer equations and ReLUs; return the output variables."""
    current = list(range(network.n_inputs))
    for i, var in enumerate(current):
        query.markInputVariable(var, i)
        query.setLowerBound(var, float(box.lower[i]))
        query.setUpperBound(var, float(box.upper[i]))
    next_var = network.n_inputs
    for layer in network.layers:
        pre = list(range(next_var, next_var + layer.out_features))
        next_var += layer.out_features
        for j, z in enumerate(pre):
            # Written as ``sum_i W_ji h_i - z_j = -b_j`` (the layout of Marabou's own
            # parsers): Marabou only recognises the layered network, and so only
            # runs its DeepPoly bound tightening, when the defined variable has
            # coefficient -1.
            terms = [(w, h) for w, h in zip(layer.weight[j], current, strict=True) if w != 0.0] + [(-1.0, z)]
            query.addEquation(_equation(core, "eq", terms, -layer.bias[j]))
        if layer.relu:
            post = list(range(next_var, next_var + layer.out_features))
            next_var += layer.out_features
            for z, h in zip(pre, post, strict=True):
                core.addReluConstraint(query, z, h)
                query.setLowerBound(h, 0.0)
            current = post
        else:
            current = pre
    for k, var in enumerate(current):
        query.markOutputVariable(var, k)
    return current


def _encode_unsafe(core: Any, query: Any, outputs: list[int], unsafe: Sequence[HalfSpaces],
                   margin: float) -> int:
    """Constrain the outputs to the (shrunk) unsafe set; return its non-empty polytope count."""
    polytopes = [rows for rows in (_unsafe_rows(p, margin) for p in unsafe) if rows is not None]
    if any(not rows for rows in polytopes):
        # One polytope is the whole output space: the unsafe set is everything.
        polytopes = [[]]

    def encode(rows: list[tuple[list[tuple[float, int]], float]]) -> list[Any]:
        return [_equation(core, "le", [(c, outputs[j]) for c, j in terms], b) for terms, b in rows]

    if len(polytopes) == 1:
        for eq in encode(polytopes[0]):
            query.addEquation(eq)
    elif len(polytopes) > 1:
        core.addDisjunctionConstraint(query, [encode(rows) for rows in polytopes])
    return len(polytopes)


# --------------------------------------------------------------------- solve
def _solve(query: Any, timeout_s: int) -> tuple[str, dict[int, float], Any]:
    """Run Marabou on ``query`` with an integer timeout, its output discarded."""
    core, marabou = import_marabou()
    options = marabou.createOptions(verbosity=0, timeoutInSeconds=int(timeout_s))
    with stdout_silenced():
        exit_code, values, stats = core.solve(query, options, "")
    return str(exit_code), dict(values), stats


def check_box(network: Network, prop: Property, box: Box, deadline: float,
              config: VerifyConfig) -> tuple[Verdict, list[Counterexample], str]:
    """Check one input box of ``prop`` with Marabou (shared with ``marabou-split``).

    The exact query decides ``HOLDS``; an unconfirmed ``sat`` is retried with
    the unsafe set shrunk by :data:`SAT_RETRY_MARGINS`.  Every query gets the
    ceiling of the budget left (Marabou's timeout is an integer), so the call
    ends at most about a second after ``deadline``.

    Parameters
    ----------
    network : Network
    prop : Property -- its unsafe set (all polytopes) is checked on ``box``
    box : Box, dimension n_inputs
    deadline : float -- ``time.monotonic()`` value at which to stop
    config : VerifyConfig -- ``max_counterexamples`` is used

    Returns
    -------
    verdict : Verdict -- HOLDS, VIOLATED, TIMEOUT or UNKNOWN
    counterexamples : list of Counterexample -- confirmed; non-empty iff VIOLATED
    message : str -- why the verdict is TIMEOUT or UNKNOWN (empty otherwise)
    """
    score = float("nan")
    for margin in SAT_RETRY_MARGINS:
        remaining = deadline - time.monotonic()
        if remaining <= 0.0:
            return Verdict.TIMEOUT, [], "time budget exhausted before Marabou started"
        query, n_polys = build_query(network, box, prop.unsafe, margin)
        if n_polys == 0:
            if margin == 0.0:
                return Verdict.HOLDS, [], ""
            break
        exit_code, values, _ = _solve(query, max(1, math.ceil(remaining)))
        if exit_code == "unsat" and margin == 0.0:
            return Verdict.HOLDS, [], ""
        if exit_code == "sat":
            x = np.array([values[i] for i in range(network.n_inputs)], dtype=np.float64)
            cexs = confirm(network, prop, x, ENGINE_NAME)
            if cexs:
                # Marabou's point sits on (or within its margin of) the unsafe set's
                # boundary, so float32 (onnxruntime) may put it outside; PGD pushes it
                # deeper inside, as the falsifier does with its own points.
                cexs = deepen(network, prop, cexs)[: max(1, config.max_counterexamples)]
                return Verdict.VIOLATED, cexs, ""
            score = float(prop.violation_score(network.forward(np.clip(x, box.lower, box.upper)))[0])
            continue
        if exit_code == "TIMEOUT":
            return Verdict.TIMEOUT, [], f"Marabou timed out (budget {math.ceil(remaining)} s)"
        if exit_code != "unsat":
            return Verdict.UNKNOWN, [], f"Marabou returned {exit_code!r} (margin {margin:g})"
        break  # unsat once shrunk: the violating region is thinner than the margin
    return (Verdict.UNKNOWN, [],
            f"Marabou reported sat, but its assignment is not a counterexample in float64 "
            f"(violation score {score:.3e}) and none was found strictly inside the unsafe set; "
            f"Marabou's tolerance, not a proof either way")


_RANK = {Verdict.HOLDS: 0, Verdict.UNKNOWN: 1, Verdict.TIMEOUT: 2}


def verify_marabou(network: Network, props: Sequence[Property] | Property,
                   config: VerifyConfig) -> VerificationResult:
    """Verify properties on a network with Marabou.

    Parameters
    ----------
    network : Network
        Affine layers with ReLUs; n_inputs / n_outputs must match the properties.
    props : Property or sequence of Property
        All must hold for ``HOLDS``; the first confirmed violation ends the search.
    config : VerifyConfig
        ``timeout_s`` is the budget shared by every query (enforced by Marabou's
        own integer ``timeoutInSeconds``, see the module docstring);
        ``max_counterexamples`` caps the returned counterexamples.

    Returns
    -------
    VerificationResult
        ``engine="marabou"``.  ``VIOLATED`` only with a counterexample confirmed
        by our float64 forward pass; ``HOLDS`` when every query was ``unsat``;
        otherwise the worst of ``TIMEOUT`` / ``UNKNOWN`` with a message.
        ``stats.extra["queries"]`` counts the Marabou calls.

    Raises
    ------
    SolverUnavailableError
        If maraboupy is not installed.
    ValueError
        If a property's dimensions do not match the network.
    """
    import_marabou()
    props = [props] if isinstance(props, Property) else list(props)
    start = time.monotonic()
    deadline = start + float(config.timeout_s)
    names = ",".join(p.name for p in props)
    overall, messages, queries = Verdict.HOLDS, [], 0
    for prop in props:
        for box_index, box in enumerate(prop.input_boxes):
            verdict, cexs, message = check_box(network, prop, box, deadline, config)
            queries += 1
            logger.debug("marabou %s box %d: %s", prop.name, box_index, verdict.value)
            if verdict is Verdict.VIOLATED:
                stats = VerifyStats(time_s=time.monotonic() - start, extra={"queries": queries})
                return VerificationResult(Verdict.VIOLATED, tuple(cexs), stats, ENGINE_NAME,
                                          prop.name, "")
            if message:
                messages.append(f"{prop.name} box {box_index}: {message}")
            if _RANK[verdict] > _RANK[overall]:
                overall = verdict
    stats = VerifyStats(time_s=time.monotonic() - start, extra={"queries": queries})
    return VerificationResult(overall, (), stats, ENGINE_NAME, names, "; ".join(messages))
