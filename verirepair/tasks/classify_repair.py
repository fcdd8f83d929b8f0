"""Minimal one-layer repair of a classifier: given points get given classes, others keep theirs.

Pipeline position: at the edge, shared by the classifier tasks (backdoor
removal, fairness).  A task decides *which* inputs must change class (triggered
images must get their true digit; both members of a fairness pair must get one
decision) and which must keep it (clean training data); this module states
that as the repair core's own objects and calls
:func:`verirepair.repair.repair_layer`, so the LP/MILP encodings, the lazy row
generation, the solvers and the float64 forward check are the core's.

API
---
``repair_to_targets(network, fix_x, fix_target, keep_x, keep_target, *,
layer_index, margin, config, neurons=None, fix_batch=None, max_rounds=8)
-> (Network, ClassifyRepairStats)``

* **fix points** ``fix_x[i]`` must be classified ``fix_target[i]`` (argmax of the
  logits) with a logit margin: ``y_t - y_j >= margin`` for every other class
  ``j``.  This is expressed as one :class:`~verirepair.properties.property.Property`
  per target class ``t``: its input region is the union of degenerate boxes
  ``[x_i, x_i]`` of the points with that target, and its unsafe set is the
  union over ``j != t`` of the half-spaces ``y_t - y_j <= 0`` ("some other
  class is at least as high").  The core makes each point leave every unsafe
  half-space by a Euclidean margin ``m`` in output space, i.e.
  ``(y_t - y_j) / sqrt(2) >= m``; we pass ``m = margin / sqrt(2)``.  Each
  polytope is a single row, so the core's "cheapest disjunct" choice is exact.
* **keep points** keep their class under the core's ``argmax`` decision rule
  (rows ``y_k - y_j >= min(preserve_margin, gap / 2)``).  The core keeps the
  *original network's* decisions, so a keep point whose current class differs
  from ``keep_target`` cannot be "kept": it is left out and counted
  (``n_keep_dropped``); pass it as a fix point if it must be corrected.
* **iteration** (``fix_batch``): the LP starts with the ``fix_batch`` fix
  points furthest from their target and, after each successful repair of the
  active set (always computed from the *original* network, so the change stays
  minimal for the active set), checks every fix point on the patched network;
  those not classified as their target join the active set, up to
  ``max_rounds`` rounds.  With ``fix_batch=None`` every fix point is active in
  the first round.

``config.encoding == "lp"`` (the default) holds the activation pattern of every
sample fixed in the repaired layer and after it (a restriction, sound for the
samples); ``"milp"`` uses big-M binaries for the downstream ReLUs, practical only
for a few dozen of them.  Repairing the output layer needs no pattern at all.

Result: the patched network (the input network itself when no repair was found,
see ``stats.status``) and :class:`ClassifyRepairStats`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.repair import Patch, RepairConfig, RepairStats, RepairStatus, apply_patch, repair_layer

__all__ = ["ClassifyRepairStats", "class_properties", "repair_to_targets"]


@dataclass(frozen=True, slots=True)
class ClassifyRepairStats:
    """What :func:`repair_to_targets` did.

    Attributes
    ----------
    status : RepairStatus
        ``REPAIRED`` when every fix point gets its target and every kept keep
        point its class on the returned network (float64 forward pass);
        ``NOT_NEEDED`` when every fix point already had its target with the margin.
    message : str
    rounds : int
        Repairs solved (one per growth of the active fix set).
    n_fix, n_fix_active, n_fix_met : int
        Fix points given, used in the last LP, and classified as their target
        on the returned network.
    n_keep, n_keep_kept, n_keep_dropped : int
        Keep points given, keeping their class on the returned network, and
        left out because the original network already disagreed with ``keep_target``.
    min_fix_margin : float
        Smallest ``y_t - max_{j != t} y_j`` over the fix points after the repair.
    patch : Patch or None
    l1, linf : float
        Size of the change (0 without a patch).
    n_changed : int
        Parameters changed.
    time_s : float
        Wall time of the whole call.
    repair : RepairStats or None
        The core's numbers for the last LP solved.
    """

    status: RepairStatus
    message: str
    rounds: int
    n_fix: int
    n_fix_active: int
    n_fix_met: int
    n_keep: int
    n_keep_kept: int
    n_keep_dropped: int
    min_fix_margin: float
    patch: Patch | None
    l1: float
    linf: float
    n_changed: int
    time_s: float
    repair: RepairStats | None

    def to_json_dict(self) -> dict[str, object]:
        """JSON-ready summary (the patch itself is left out; its size is kept)."""
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                                  if f.name not in ("patch", "repair", "status")}
        out["status"] = self.status.value
        out["changed_units"] = list(self.patch.changed_units) if self.patch is not None else []
        out["layer_index"] = self.patch.layer_index if self.patch is not None else None
        out["solver_status"] = self.repair.solver_status if self.repair is not None else None
        return out


def class_properties(x: np.ndarray, target: np.ndarray, n_outputs: int,
                     name: str = "class") -> list[Property]:
    """Properties whose violation means "``x[i]`` is not classified ``target[i]``".

    Parameters
    ----------
    x : array, shape (n, d)
    target : int array, shape (n,)
    n_outputs : int
        Number of classes (logits).
    name : str
        Prefix of the property names (``"<name>_<t>"`` per target class).

    Returns
    -------
    list of Property
        One per target class present: region = degenerate boxes at its points,
        unsafe = ``OR_{j != t} (y_t - y_j <= 0)``.
    """
    props = []
    for t in np.unique(target):
        t = int(t)
        rows = []
        for j in range(n_outputs):
            if j != t:
                a = np.zeros((1, n_outputs))
                a[0, t], a[0, j] = 1.0, -1.0
                rows.append(HalfSpaces(a, np.zeros(1)))
        boxes = tuple(Box(p, p) for p in x[target == t])
        props.append(Property(boxes, tuple(rows), f"{name}_{t}"))
    return props


def _margins(y: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``y_t - max_{j != t} y_j`` per row."""
    rows = np.arange(y.shape[0])
    others = y.copy()
    others[rows, target] = -np.inf
    return y[rows, target] - others.max(axis=1)


def _check_points(network: Network, x: np.ndarray, target: np.ndarray, what: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1 and x.size == 0:
        x = x.reshape(0, network.n_inputs)
    target = np.asarray(target)
    if x.ndim != 2 or x.shape[1] != network.n_inputs:
        raise ValueError(f"{what}_x must have shape (n, {network.n_inputs}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}_x contains NaN or infinite values")
    if target.shape != (x.shape[0],) or (target.size and not np.issubdtype(target.dtype, np.integer)):
        raise ValueError(f"{what}_target must be {x.shape[0]} integer classes, got shape {target.shape} "
                         f"of {target.dtype}")
    if target.size and (target.min() < 0 or target.max() >= network.n_outputs):
        raise ValueError(f"{what}_target must lie in 0..{network.n_outputs - 1}")
    return x, target.astype(np.int64)


def repair_to_targets(network: Network, fix_x: np.ndarray, fix_target: np.ndarray,
                      keep_x: np.ndarray, keep_target: np.ndarray, *, layer_index: int,
                      margin: float, config: RepairConfig = RepairConfig(),
                      neurons: tuple[int, ...] | None = None, fix_batch: int | None = None,
                      max_rounds: int = 8) -> tuple[Network, ClassifyRepairStats]:
    """Smallest change of one layer so that fix points get their targets and keep points their classes.

    Parameters
    ----------
    network : Network
        A classifier (argmax of the outputs is the class).
    fix_x : array, shape (n, n_inputs)
    fix_target : int array, shape (n,)
    keep_x : array, shape (m, n_inputs)
    keep_target : int array, shape (m,)
    layer_index : int
        The affine layer to change.
    margin : float
        Required logit gap ``y_t - y_j`` of every fix point, ``> 0``.
    config : RepairConfig
        The core's settings (solver, norm, encoding, ``preserve_margin``,
        ``max_delta``, ``inputs``, time limit); its ``margin`` and ``decision``
        are set here (from ``margin``, and ``"argmax"``).
    neurons : tuple of int, optional
        Units of the layer allowed to change (replaces ``config.neurons``).
    fix_batch : int, optional
        Size of the first active set and of each growth step (see the module
        docstring); None: all fix points at once.
    max_rounds : int
        At most this many repairs.

    Returns
    -------
    (Network, ClassifyRepairStats)
        The patched network, or ``network`` itself when ``stats.status`` is not
        ``REPAIRED``.

    Raises
    ------
    ValueError
        Shapes, non-finite values, classes out of range, a point both to fix
        and to keep, ``margin <= 0`` or a bad layer / neuron index.
    SolverUnavailableError
        If ``config.solver`` is not usable.
    """
    start = time.perf_counter()
    fix_x, fix_target = _check_points(network, fix_x, fix_target, "fix")
    keep_x, keep_target = _check_points(network, keep_x, keep_target, "keep")
    if not margin > 0 or not math.isfinite(margin):
        raise ValueError(f"margin must be a positive number, got {margin}")
    if max_rounds < 1 or (fix_batch is not None and fix_batch < 1):
        raise ValueError("max_rounds and fix_batch must be at least 1")
    config = dataclasses.replace(config, margin=margin / math.sqrt(2.0), property_margins=None,
                                 decision="argmax",
                                 neurons=config.neurons if neurons is None else tuple(neurons))
    if not 0 <= layer_index < network.n_layers:
        raise ValueError(f"layer_index {layer_index} outside 0..{network.n_layers - 1}")
    if fix_x.shape[0] and keep_x.shape[0]:
        shared = np.isin(fix_x.view([("", fix_x.dtype)] * fix_x.shape[1]).ravel(),
                         keep_x.view([("", keep_x.dtype)] * keep_x.shape[1]).ravel())
        if shared.any():
            raise ValueError(f"fix_x row {int(np.flatnonzero(shared)[0])} is also a keep point")

    keep_ok = np.argmax(network.forward(keep_x), axis=1) == keep_target if keep_x.shape[0] else \
        np.zeros(0, bool)
    preserve = keep_x[keep_ok]
    fix_margin0 = _margins(network.forward(fix_x), fix_target) if fix_x.shape[0] else np.zeros(0)

    def stats(status: RepairStatus, message: str, rounds: int, n_active: int, net: Network,
              patch: Patch | None, repair: RepairStats | None) -> ClassifyRepairStats:
        fix_m = _margins(net.forward(fix_x), fix_target) if fix_x.shape[0] else np.zeros(0)
        kept = (int(np.count_nonzero(np.argmax(net.forward(preserve), axis=1) == keep_target[keep_ok]))
                if preserve.shape[0] else 0)
        return ClassifyRepairStats(status, message, rounds, fix_x.shape[0], n_active,
                                   int(np.count_nonzero(fix_m > 0)), keep_x.shape[0], kept,
                                   int(np.count_nonzero(~keep_ok)), float(fix_m.min(initial=np.inf)),
                                   patch, patch.l1 if patch else 0.0, patch.linf if patch else 0.0,
                                   patch.n_changed if patch else 0, time.perf_counter() - start, repair)

    if not fix_x.shape[0] or fix_margin0.min() >= margin:
        return network, stats(RepairStatus.NOT_NEEDED, "every fix point already has its target with "
                              "the margin", 0, 0, network, None, None)
    order = np.argsort(fix_margin0, kind="stable")  # furthest from the target first
    active = np.zeros(fix_x.shape[0], dtype=bool)
    active[order[: fix_x.shape[0] if fix_batch is None else fix_batch]] = True
    deadline = start + config.time_limit_s
    repair: RepairStats | None = None
    for rounds in range(1, max_rounds + 1):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return network, stats(RepairStatus.TIMEOUT, "time limit reached before the repair converged",
                                  rounds - 1, int(active.sum()), network, None, repair)
        props = class_properties(fix_x[active], fix_target[active], network.n_outputs, "target")
        result = repair_layer(network, props, fix_x[active], preserve, layer_index,
                              dataclasses.replace(config, time_limit_s=remaining))
        repair = result.stats
        if result.status is RepairStatus.NOT_NEEDED:
            # Every active point already leaves its unsafe set; raise the rest of the pool.
            patched, patch = network, None
        elif result.status is not RepairStatus.REPAIRED or result.patch is None:
            return network, stats(result.status, result.message, rounds, int(active.sum()), network,
                                  None, repair)
        else:
            if not isinstance(result.patch, Patch):      # repair_layer changes one layer
                raise TypeError(f"repair_layer returned a {type(result.patch).__name__}, not a one-layer Patch")
            patch = result.patch
            patched = apply_patch(network, patch)
        failing = ~active & (np.argmax(patched.forward(fix_x), axis=1) != fix_target)
        if not failing.any():
            if patch is None:
                return network, stats(RepairStatus.NOT_NEEDED, "every fix point already has its target",
                                      rounds, int(active.sum()), network, None, repair)
            return patched, stats(RepairStatus.REPAIRED, result.message, rounds, int(active.sum()),
                                  patched, patch, repair)
        grow = np.flatnonzero(failing)
        if fix_batch is not None:
            grow = grow[np.argsort(_margins(patched.forward(fix_x[grow]), fix_target[grow]),
                                   kind="stable")[:fix_batch]]
        active[grow] = True
    return network, stats(RepairStatus.SOLVER_FAILED, f"fix points still failing after {max_rounds} rounds",
                          max_rounds, int(active.sum()), network, None, repair)
