"""Check a certificate of a HOLDS answer against the network and property files it names.

Pipeline position: the ``verirepair check`` command and anyone who does not
trust the verifier call :func:`check_certificate`.  This module, with
:mod:`~verirepair.checker.network_reader`, :mod:`~verirepair.checker.leaf_bounds`
and :mod:`~verirepair.checker.arith`, is the whole checker: it imports nothing
from ``verirepair.verify`` (tests/test_architecture.py enforces it) and reads
the network itself.  The property is read by ``verirepair.properties`` (the
project's one VNN-LIB parser, a tokenizer plus an s-expression reader that
imports only ``verirepair.errors``: no bounding code).

What is checked (docs/certificate-format.md gives the format):

1. the file is a complete certificate of a known version; the SHA-256 of the
   network and property files equal the ones it names;
2. per property of the file: the root boxes equal the property's input boxes,
   and the preorder split list is a well-formed binary tree whose split points
   lie inside their boxes, so the leaves partition each root box exactly
   (``[lo, p]`` and ``[p, hi]`` cover ``[lo, hi]``);
3. every evidence record is valid (weights >= 0 and not all 0, slopes in [0, 1])
   and proves its claim: on its node's box, the lower bound of
   ``w . (A_j y(x) - b_j)`` is > 0, so no output of the box lies in disjunct ``j``
   (``A_j y <= b_j`` would make that sum <= 0);
4. every leaf inherits, from itself or an ancestor, a proven exclusion of every disjunct.
"""

from __future__ import annotations

import itertools
import json
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verirepair.atomic import sha256_file
from verirepair.checker.arith import Exact, Outward
from verirepair.checker.leaf_bounds import Layer, layer_bounds, spec_lower
from verirepair.checker.network_reader import NetworkRejected, read_chain
from verirepair.properties import parse_vnnlib

FORMAT = "verirepair-certificate"
VERSION = 1
#: Evidence records bounded together (their boxes' arrays are held at once).
CHECK_BATCH = 512
#: The passes of :func:`tree_margins`: a record still unproven is bounded again with the
#: bounds of this many ancestors intersected in (None: all of them, up to the root), and
#: with the forward symbolic pass through all layers (True) or only up to the first
#: back-substituted one (False, cheaper).
CHECK_PASSES: tuple[tuple[int | None, bool], ...] = ((0, False), (None, True))
KEYS = ("roots_lower", "roots_upper", "split_dim", "split_point", "ev_node", "ev_disjunct",
        "ev_weights", "ev_slope", "slopes")


class Rejected(Exception):
    """The certificate does not prove the property for these files; the message says why."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of :func:`check_certificate`: the counts checked and the time taken (s)."""

    leaves: int
    nodes: int
    evidence: int
    exact_evidence: int
    time_s: float
    mode: str
    per_property: list[dict] = field(default_factory=list)


def read_certificate(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and the arrays of a certificate file.

    Raises
    ------
    Rejected
        When the file is not a readable, complete certificate of a known version.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise Rejected(f"{path} is not a readable certificate (truncated or not npz: {exc})") from None
    if "header" not in arrays:
        raise Rejected(f"{path} has no header")
    try:
        header = json.loads(arrays.pop("header").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(f"{path}: header is not JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        raise Rejected(f"{path}: not a {FORMAT} version {VERSION} (header says "
                       f"{header.get('format') if isinstance(header, dict) else header!r})")
    return header, arrays


def _tree_boxes(root_lo: np.ndarray, root_hi: np.ndarray, split_dim: np.ndarray, split_point: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes and parent of every node of the preorder split list (parent -1 at roots)."""
    n, d = split_dim.shape[0], root_lo.shape[1]
    lower, upper = np.empty((n, d)), np.empty((n, d))
    parent = np.full(n, -1, dtype=np.int64)
    node = 0
    for root in range(root_lo.shape[0]):
        stack = [(root_lo[root], root_hi[root], -1)]
        while stack:
            lo, hi, up = stack.pop()
            if node >= n:
                raise Rejected(f"split list ends inside the tree of root box {root}")
            lower[node], upper[node], parent[node] = lo, hi, up
            dim = int(split_dim[node])
            if dim >= 0:
                point = float(split_point[node])
                if dim >= d or not lo[dim] < point < hi[dim]:
                    raise Rejected(f"node {node}: split of dimension {dim} at {point!r} is not "
                                   f"inside the box [{float(lo[min(dim, d - 1)])!r}, {float(hi[min(dim, d - 1)])!r}]")
                left_hi, right_lo = hi.copy(), lo.copy()
                left_hi[dim] = right_lo[dim] = point
                stack.append((right_lo, hi, node))      # popped second: preorder is left first
                stack.append((lo, left_hi, node))
            elif dim != -1:
                raise Rejected(f"node {node}: split dimension {dim} is negative")
            node += 1
    if node != n:
        raise Rejected(f"split list has {n - node} nodes after the last tree")
    return lower, upper, parent


def _layers(ops: Outward | Exact, raw: list[tuple[np.ndarray, np.ndarray, bool]]) -> list[Layer]:
    return [Layer(ops.convert(W), ops.convert(bias), relu) for W, bias, relu in raw]


def _record_margins(ops: Outward | Exact, layers: list[Layer], raw: list, bounds: list, box_lo: np.ndarray,
                    box_hi: np.ndarray, box_of_row: np.ndarray, A: np.ndarray, b: np.ndarray,
                    weights: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """Lower bounds of ``w . (A y - b)`` given the boxes' layer bounds (see :func:`evidence_margins`)."""
    w, A_ex, b_ex = ops.convert(weights), ops.convert(A), ops.convert(b)
    G_lo = np.stack([ops.rowdot_lo(w, A_ex[:, :, j]) for j in range(A.shape[2])], axis=1)
    G_hi = np.stack([ops.rowdot_hi(w, A_ex[:, :, j]) for j in range(A.shape[2])], axis=1)
    per_layer: list[np.ndarray | None] = [None] * len(layers)
    offset = 0
    for k, (W, _, relu) in enumerate(raw):
        if relu:
            per_layer[k] = slopes[:, offset:offset + W.shape[0]]      # NaN: CROWN's adaptive slope
            offset += W.shape[0]
    rows_bounds = [tuple(x[box_of_row] for x in layer) for layer in bounds]
    bound = spec_lower(ops, layers, rows_bounds, box_lo[box_of_row], box_hi[box_of_row], G_lo, per_layer)
    ylo, yhi = rows_bounds[-1][0], rows_bounds[-1][1]
    spread = ops.sub_hi(G_hi, G_lo)
    return ops.sum_lo(bound, -ops.rowdot_hi(spread, np.maximum(abs(ylo), abs(yhi))), -ops.rowdot_hi(w, b_ex))


def evidence_margins(raw: list[tuple[np.ndarray, np.ndarray, bool]], lower: np.ndarray, upper: np.ndarray,
                     A: np.ndarray, b: np.ndarray, weights: np.ndarray, slopes: np.ndarray,
                     prior: list[tuple[np.ndarray, ...]] | None = None
                     ) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """Proven (outward float64) lower bounds of ``w . (A y(x) - b)`` over each record's box.

    Parameters
    ----------
    raw : the layers of :func:`~verirepair.checker.network_reader.read_chain`
    lower, upper : arrays, shape (r, d) -- each record's box
    A : array, shape (r, q, m); b : array, shape (r, q) -- each record's disjunct (rows padded with 0)
    weights : array, shape (r, q) -- the row combination ``w >= 0``
    slopes : array, shape (r, H) -- lower slopes of the ReLU units (layers in order), NaN for CROWN's adaptive choice
    prior : per layer ``(lo, hi)`` of shape (r, m_k), or None -- bounds known to hold on each box
        (its parent's, as :func:`tree_margins` uses them)

    Returns
    -------
    margins : array, shape (r,) -- a value > 0 proves that no output of the box lies in the disjunct
    bounds : the layer bounds of each box (first axis r), a prior for its sub-boxes
    """
    ops = Outward()
    layers = _layers(ops, raw)
    bounds = layer_bounds(ops, layers, lower, upper, prior)
    margins = _record_margins(ops, layers, raw, bounds, lower, upper, np.arange(lower.shape[0]),
                              A, b, weights, slopes)
    return margins, bounds


def node_bounds(raw: list[tuple[np.ndarray, np.ndarray, bool]], lower: np.ndarray, upper: np.ndarray,
                parent: np.ndarray, node: int) -> list[tuple[np.ndarray, ...]]:
    """The layer bounds :func:`tree_margins` gives ``node`` (its root-to-node path bounded in turn), first axis 1."""
    ops = Outward()
    return _path_bounds(ops, _layers(ops, raw), lower, upper, parent, node, {})


def _path_bounds(ops: Outward | Exact, layers: list[Layer], lower: np.ndarray, upper: np.ndarray,
                 parent: np.ndarray, node: int, cache: dict[int, list]) -> list:
    path = []
    k = node
    while k >= 0 and k not in cache:
        path.append(k)
        k = int(parent[k])
    for step in reversed(path):
        up = int(parent[step])
        cache[step] = layer_bounds(ops, layers, ops.convert(lower[step:step + 1]), ops.convert(upper[step:step + 1]),
                                   cache[up] if up >= 0 else None)
    return cache[node]


def tree_margins(raw: list[tuple[np.ndarray, np.ndarray, bool]], lower: np.ndarray, upper: np.ndarray,
                 parent: np.ndarray, ev_node: np.ndarray, A: np.ndarray, b: np.ndarray, weights: np.ndarray,
                 slopes: np.ndarray, exact_ids: Sequence[int] = ()) -> tuple[np.ndarray, dict[int, bool]]:
    """Margins of every evidence record, in the passes of :data:`CHECK_PASSES`.

    Any sound bounds of a box may prove a record, so the first pass bounds only
    the nodes that carry evidence (about half the tree), each alone and with the
    cheaper forward pass.  A record it leaves unproven is bounded again along its
    root-to-node path, level by level (a parent box contains its children, so its
    bounds hold on them and make theirs tighter), with the full forward pass; its
    margin is the best of its passes.  Shapes: ``lower, upper`` (N, d) per node in
    preorder, ``parent`` (N,) (-1 at roots), ``ev_node`` (E,) and the records' ``A``
    (E, q, m), ``b, weights`` (E, q), ``slopes`` (E, H).

    Returns
    -------
    margins : array, shape (E,) -- outward-rounded float64; > 0 proves the record
    exact : dict record -> bool -- for ``exact_ids``, whether exact rational
        arithmetic (along the root-to-node path) also proves it
    """
    ops = Outward()
    layers = _layers(ops, raw)
    records = np.arange(len(ev_node))
    margins = np.full(len(ev_node), -np.inf)
    for generations, full_forward in CHECK_PASSES:
        again = records[~(margins > 0)]
        if again.size:
            margins[again] = np.fmax(margins[again], _level_margins(
                ops, layers, raw, lower, upper, parent, ev_node, again, (A, b, weights, slopes), generations,
                full_forward))
    return margins, _exact_margins(raw, lower, upper, parent, ev_node, A, b, weights, slopes, exact_ids)


def _level_margins(ops: Outward, layers: list[Layer], raw: list, lower: np.ndarray, upper: np.ndarray,
                   parent: np.ndarray, ev_node: np.ndarray, records: np.ndarray, data: tuple,
                   generations: int | None, full_forward: bool) -> np.ndarray:
    """Margins of ``records``, their nodes' bounds intersected with those of up to ``generations``
    ancestors (None: all, up to the root), bounded level by level from the oldest; only these
    nodes are bounded."""
    A, b, weights, slopes = data
    n = len(lower)
    depth = np.zeros(n, dtype=np.int64)
    for k in range(n):
        if parent[k] >= 0:
            depth[k] = depth[parent[k]] + 1
    needed = np.zeros(n, dtype=bool)
    needed[ev_node[records]] = True
    frontier = np.unique(ev_node[records])
    for _ in itertools.count() if generations is None else range(generations):
        frontier = np.unique(parent[frontier])
        frontier = frontier[frontier >= 0]
        if not frontier.size:
            break
        needed[frontier] = True
    records_at: dict[int, list[int]] = {}
    for record in records:
        records_at.setdefault(int(ev_node[record]), []).append(int(record))
    out: dict[int, float] = {}
    position = np.full(len(lower), -1, dtype=np.int64)
    previous: list[tuple[np.ndarray, ...]] | None = None
    for level in range(int(depth[needed].min(initial=0)), int(depth[needed].max(initial=-1)) + 1):
        ids = np.flatnonzero(needed & (depth == level))
        chunks = []
        for start in range(0, ids.size, CHECK_BATCH):
            chunk = ids[start:start + CHECK_BATCH]
            prior: list[tuple[np.ndarray, ...]] | None = None
            inherits = (parent[chunk] >= 0) & needed[np.maximum(parent[chunk], 0)]
            if previous is not None and inherits.any():
                up = np.where(inherits, position[np.maximum(parent[chunk], 0)], -1)
                prior = [(np.where(inherits[:, None], lo[up], -np.inf), np.where(inherits[:, None], hi[up], np.inf))
                         for lo, hi in previous]
            bounds = layer_bounds(ops, layers, lower[chunk], upper[chunk], prior, full_forward)
            chunks.append(bounds)
            recs = [r for k in chunk for r in records_at.get(int(k), [])]
            if recs:
                where = {int(k): i for i, k in enumerate(chunk)}
                rows = np.array([where[int(ev_node[r])] for r in recs])
                got = _record_margins(ops, layers, raw, bounds, lower[chunk], upper[chunk], rows,
                                      A[recs], b[recs], weights[recs], slopes[recs])
                out.update(zip(recs, got, strict=True))
        position[ids] = np.arange(ids.size)
        previous = [(np.vstack([c[k][0] for c in chunks]), np.vstack([c[k][1] for c in chunks]))
                    for k in range(len(layers))] if chunks else None
    return np.array([out[int(r)] for r in records], dtype=np.float64)


def _exact_margins(raw: list, lower: np.ndarray, upper: np.ndarray, parent: np.ndarray, ev_node: np.ndarray,
                   A: np.ndarray, b: np.ndarray, weights: np.ndarray, slopes: np.ndarray,
                   exact_ids: Sequence[int]) -> dict[int, bool]:
    """Exact-arithmetic verdicts of some records, bounding each node on the path from its root."""
    if not len(exact_ids):
        return {}
    ops = Exact()
    layers = _layers(ops, raw)
    cache: dict[int, list] = {}
    verdicts = {}
    for record in exact_ids:
        k = int(ev_node[record])
        bounds = _path_bounds(ops, layers, lower, upper, parent, k, cache)
        margin = _record_margins(ops, layers, raw, bounds, ops.convert(lower[k:k + 1]), ops.convert(upper[k:k + 1]),
                                 np.zeros(1, dtype=np.int64), A[record:record + 1], b[record:record + 1],
                                 weights[record:record + 1], slopes[record:record + 1])
        verdicts[int(record)] = bool(margin[0] > 0)
    return verdicts


def _check_property(index: int, prop: object, arrays: dict[str, np.ndarray], raw: list, exact_ids: set[int]
                    ) -> dict:
    """Checks 2-4 of the module docstring for property section ``index``; returns its counts."""
    try:
        a = {key: arrays[f"p{index}_{key}"] for key in KEYS}
    except KeyError as exc:
        raise Rejected(f"property {index}: array {exc.args[0]} is missing") from None
    boxes = prop.input_boxes  # type: ignore[attr-defined]
    roots_lo, roots_hi = a["roots_lower"].astype(np.float64), a["roots_upper"].astype(np.float64)
    if roots_lo.shape != (len(boxes), boxes[0].dim) or roots_hi.shape != roots_lo.shape or not all(
            np.array_equal(roots_lo[i], box.lower) and np.array_equal(roots_hi[i], box.upper)
            for i, box in enumerate(boxes)):
        raise Rejected(f"property {index}: the root boxes are not the property's input region")
    dim, point = a["split_dim"].astype(np.int64), a["split_point"].astype(np.float64)
    if dim.shape != point.shape or dim.ndim != 1:
        raise Rejected(f"property {index}: split arrays of shapes {dim.shape} and {point.shape}")
    lower, upper, parent = _tree_boxes(roots_lo, roots_hi, dim, point)
    polys = prop.unsafe  # type: ignore[attr-defined]
    q = max(p.A.shape[0] for p in polys)
    node, disj = a["ev_node"].astype(np.int64), a["ev_disjunct"].astype(np.int64)
    weights, slope_of = a["ev_weights"].astype(np.float64), a["ev_slope"].astype(np.int64)
    slopes = a["slopes"].astype(np.float64)
    widths = [W.shape[0] for W, _, relu in raw if relu]
    e = node.shape[0]
    if disj.shape != (e,) or slope_of.shape != (e,) or weights.shape != (e, q) or slopes.ndim != 2 \
            or slopes.shape[1] != sum(widths):
        raise Rejected(f"property {index}: evidence arrays have inconsistent shapes")
    if e and (node.min() < 0 or node.max() >= len(dim) or disj.min() < 0 or disj.max() >= len(polys)
              or slope_of.min() < -1 or slope_of.max() >= len(slopes)):
        raise Rejected(f"property {index}: an evidence record points outside the tree, disjuncts or slopes")
    rows = np.array([p.A.shape[0] for p in polys])
    padded = np.arange(q)[None, :] >= rows[disj][:, None]
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or np.any(weights[padded] != 0) \
            or np.any(weights.max(axis=1, initial=0.0) <= 0):
        raise Rejected(f"property {index}: evidence weights must be finite, >= 0, not all 0, "
                       "and 0 beyond a disjunct's rows")
    if not np.all((slopes >= 0) & (slopes <= 1)):
        raise Rejected(f"property {index}: a slope is outside [0, 1] (or not a number)")
    A = np.zeros((len(polys), q, polys[0].A.shape[1]))
    b = np.zeros((len(polys), q))
    for j, poly in enumerate(polys):
        A[j, :rows[j]], b[j, :rows[j]] = poly.A, poly.b
    padded_slopes = np.vstack([slopes, np.full((1, slopes.shape[1]), np.nan)])    # row -1: adaptive
    margins, exact = tree_margins(raw, lower, upper, parent, node, A[disj], b[disj], weights,
                                  padded_slopes[slope_of], sorted(exact_ids))
    failed = np.flatnonzero(~(margins > 0))
    if failed.size:
        bad = int(failed[0])
        raise Rejected(f"property {index}: evidence {bad} (node {node[bad]}, disjunct {disj[bad]}) "
                       f"is not proven: its lower bound is {float(margins[bad]):.3g}, not > 0")
    not_exact = [record for record, proven in exact.items() if not proven]
    if not_exact:
        bad = not_exact[0]
        raise Rejected(f"property {index}: evidence {bad} (node {node[bad]}, disjunct {disj[bad]}) "
                       f"is not proven in exact arithmetic")
    excluded = np.zeros((len(dim), len(polys)), dtype=bool)
    excluded[node, disj] = True
    for k in range(len(dim)):                   # preorder: a parent comes before its children
        if parent[k] >= 0:
            excluded[k] |= excluded[parent[k]]
    leaves = np.flatnonzero(dim < 0)
    open_leaf = leaves[~excluded[leaves].all(axis=1)]
    if open_leaf.size:
        k = int(open_leaf[0])
        missing = int(np.flatnonzero(~excluded[k])[0])
        raise Rejected(f"property {index}: leaf {k} (box {lower[k].tolist()} .. {upper[k].tolist()}) has no "
                       f"proof that disjunct {missing} is excluded ({open_leaf.size} such leaves)")
    return {"property": index, "nodes": int(len(dim)), "leaves": int(leaves.size), "evidence": int(e)}


def check_certificate(cert_path: Path, network_path: Path, property_path: Path, exact: str = "none",
                      sample: int = 0, seed: int = 0) -> CheckResult:
    """Check that the certificate at ``cert_path`` proves the property file for the network file.

    Parameters
    ----------
    cert_path, network_path, property_path : Path
    exact : {"none", "sample", "all"} -- which evidence records are also checked in
        exact rational arithmetic (every record is always checked in outward-rounded float64)
    sample : int -- with ``exact="sample"``, how many records per property (seeded choice)
    seed : int

    Returns
    -------
    CheckResult

    Raises
    ------
    Rejected
        With a one-line reason, when the certificate does not prove the property for these files.
    """
    started = time.perf_counter()
    cert_path, network_path, property_path = Path(cert_path), Path(network_path), Path(property_path)
    header, arrays = read_certificate(cert_path)
    for what, path in (("network", network_path), ("property", property_path)):
        named = header.get(what, {}).get("sha256") if isinstance(header.get(what), dict) else None
        if named != sha256_file(path):
            raise Rejected(f"the certificate is for another {what} file (SHA-256 {named} differs from "
                           f"{path.name}'s)")
    try:
        raw = read_chain(network_path)
    except NetworkRejected as exc:
        raise Rejected(f"network {network_path.name}: {exc}") from None
    props = parse_vnnlib(property_path)
    sections = header.get("properties")
    if not isinstance(sections, list) or len(sections) != len(props):
        raise Rejected(f"the certificate has {len(sections) if isinstance(sections, list) else 'no'} "
                       f"property sections; {property_path.name} has {len(props)} properties")
    for section in sections:
        if isinstance(section, dict) and section.get("unsupported"):
            raise Rejected(f"the certificate marks a property as not certifiable: {section['unsupported']}")
    per_property, exact_count = [], 0
    rng = np.random.default_rng(seed)
    for index, prop in enumerate(props):
        if prop.n_inputs != raw[0][0].shape[1] or prop.n_outputs != raw[-1][0].shape[0]:
            raise Rejected(f"property {index} has {prop.n_inputs} inputs / {prop.n_outputs} outputs; "
                           f"the network {raw[0][0].shape[1]} / {raw[-1][0].shape[0]}")
        e = int(arrays.get(f"p{index}_ev_node", np.zeros(0)).shape[0])
        chosen = set(range(e)) if exact == "all" else (
            set(rng.choice(e, size=min(sample, e), replace=False).tolist()) if exact == "sample" else set())
        exact_count += len(chosen)
        per_property.append(_check_property(index, prop, arrays, raw, chosen))
    return CheckResult(sum(p["leaves"] for p in per_property), sum(p["nodes"] for p in per_property),
                       sum(p["evidence"] for p in per_property), exact_count,
                       time.perf_counter() - started, exact, per_property)
