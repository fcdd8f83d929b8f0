"""Certificates of HOLDS answers: run the search with a recorder, rebuild its tree, write the file.

Pipeline position: ``verirepair verify --certificate`` and the repair delivery
call :func:`certify`; the file it writes is read by :mod:`verirepair.checker`
(format: docs/certificate-format.md).

From the search's records (:mod:`verirepair.verify.certificate_recorder`) the
writer rebuilds each property's split tree (nodes are identified by their box,
which the halving makes unique), lists the tree in preorder, and attaches each
exclusion to the node where it happened.  Before writing it runs the checker's
own float bound on every record (the checker recomputes intermediate bounds
on each box from scratch, while the search inherited tighter ones from parent
boxes, or from LPs): a record the checker cannot confirm, and every LP
exclusion, is re-derived on the leaves below it by splitting them further
with the checker's bound, so the written certificate is one the checker
accepts.  If that fails within :data:`REFINE_MAX_BOXES` boxes per leaf,
:class:`CertificateUnavailable` says so and nothing is written.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verirepair.atomic import sha256_file, write_bytes_atomic
from verirepair.checker import NetworkRejected, evidence_margins, node_bounds, read_chain, tree_margins
from verirepair.checker.check import CHECK_BATCH, FORMAT, VERSION
from verirepair.network.model import Network
from verirepair.properties.property import Property
from verirepair.verify.bounds import with_linear_output
from verirepair.verify.certificate_recorder import TreeRecorder
from verirepair.verify.engine import verify_own
from verirepair.verify.result import Verdict, VerificationResult, VerifyConfig
from verirepair.verify.search_state import SpecRows

#: Boxes the writer may bound while re-deriving the evidence of one leaf and disjunct.
REFINE_MAX_BOXES = 4096
#: Validate / re-derive rounds before the writer gives up (see :meth:`_Builder.build`).
REFINE_ROUNDS = 4
#: A re-derived exclusion needs a margin above this: the checker bounds the box in
#: another batch, and BLAS may round a row differently in another matrix shape.
REFINE_SLACK = 1e-9


class CertificateUnavailable(Exception):
    """A HOLDS whose certificate could not be produced (the message says why); nothing was written."""


@dataclass(slots=True)
class _Tree:
    """One property's search tree keyed by box bytes, and its exclusion records."""

    roots: list[tuple[np.ndarray, np.ndarray]]
    splits: dict[bytes, tuple[int, float]] = field(default_factory=dict)
    #: records: box key -> list of (disjunct, weights (q,), slopes (H,) float32 or None)
    evidence: dict[bytes, list[tuple[int, np.ndarray, np.ndarray | None]]] = field(default_factory=dict)


def _key(lower: np.ndarray, upper: np.ndarray) -> bytes:
    return np.ascontiguousarray(lower, dtype=np.float64).tobytes() + np.ascontiguousarray(
        upper, dtype=np.float64).tobytes()


def _tree_of(prop: Property, recorder: TreeRecorder) -> _Tree:
    tree = _Tree([(box.lower.astype(np.float64), box.upper.astype(np.float64)) for box in prop.input_boxes])
    for lower, upper, dims, mids in recorder.splits:
        for lo, hi, dim, mid in zip(lower, upper, dims, mids, strict=True):
            key = _key(lo, hi)
            if tree.splits.setdefault(key, (int(dim), float(mid))) != (int(dim), float(mid)):
                raise CertificateUnavailable("two different splits of one box (overlapping input boxes)")
    for lower, upper, polys, weights, slope_rows, slopes in recorder.records:
        for i in range(polys.shape[0]):
            slope = slopes[slope_rows[i]] if slope_rows[i] >= 0 else None
            tree.evidence.setdefault(_key(lower[i], upper[i]), []).append((int(polys[i]), weights[i], slope))
    return tree


def _preorder(tree: _Tree) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(lower, upper, parent, dim, point)`` of every node in preorder (left child first)."""
    lower: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    parent: list[int] = []
    dims: list[int] = []
    points: list[float] = []
    for lo, hi in tree.roots:
        stack = [(lo, hi, -1)]
        while stack:
            lo, hi, up = stack.pop()
            node = len(dims)
            dim, point = tree.splits.get(_key(lo, hi), (-1, np.nan))
            lower.append(lo)
            upper.append(hi)
            parent.append(up)
            dims.append(dim)
            points.append(point)
            if dim >= 0:
                left_hi, right_lo = hi.copy(), lo.copy()
                left_hi[dim] = right_lo[dim] = point
                stack.append((right_lo, hi, node))
                stack.append((lo, left_hi, node))
    return (np.array(lower), np.array(upper), np.array(parent, dtype=np.int64),
            np.array(dims, dtype=np.int32), np.array(points, dtype=np.float64))


@dataclass(slots=True)
class _Section:
    """A property's certificate arrays and what it took to build them."""

    arrays: dict[str, np.ndarray]
    summary: dict


class _Builder:
    """Turns one property's recorded search into checked certificate arrays."""

    def __init__(self, raw: list, prop: Property, recorder: TreeRecorder, deadline: float | None = None,
                 validate: bool = True) -> None:
        self.raw, self.prop, self.recorder = raw, prop, recorder
        self.deadline, self.validate = deadline, validate
        self.spec = SpecRows.of(prop)
        self.q = max(poly.A.shape[0] for poly in prop.unsafe)
        self.A = np.zeros((len(prop.unsafe), self.q, prop.n_outputs))
        self.b = np.zeros((len(prop.unsafe), self.q))
        for j, poly in enumerate(prop.unsafe):
            self.A[j, :poly.A.shape[0]], self.b[j, :poly.A.shape[0]] = poly.A, poly.b
        self.n_slopes = sum(W.shape[0] for W, _, relu in raw if relu)
        self.rejected = self.rederived = self.refine_boxes = 0

    def _check_clock(self) -> None:
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise CertificateUnavailable(f"{self.prop.name}: the time budget ran out while the certificate "
                                         "was being validated for the checker")

    def _best_margins(self, boxes: Sequence[tuple[np.ndarray, np.ndarray, list | None]], poly: int, rows: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, list[list]]:
        """Per box ``(lower, upper, prior)``: the best checker margin over the candidate rows, that row,
        and the box's layer bounds (the prior of its halves)."""
        best = np.full(len(boxes), -np.inf)
        row = np.zeros(len(boxes), dtype=np.int64)
        bounds_of: list[list] = []
        for start in range(0, len(boxes), max(1, CHECK_BATCH // rows.size)):
            part = boxes[start:start + max(1, CHECK_BATCH // rows.size)]
            lo = np.repeat(np.array([b[0] for b in part]), rows.size, axis=0)
            hi = np.repeat(np.array([b[1] for b in part]), rows.size, axis=0)
            known = [b[2] for b in part if b[2] is not None]
            prior = None if len(known) < len(part) else [
                tuple(np.repeat(np.vstack([p[k][j] for p in known]), rows.size, axis=0) for j in range(2))
                for k in range(len(known[0]))]
            got, bounds = evidence_margins(self.raw, lo, hi, self.A[np.full(len(lo), poly)],
                                           self.b[np.full(len(lo), poly)],
                                           np.tile(self.spec.weights[rows], (len(part), 1)),
                                           np.full((len(lo), self.n_slopes), np.nan), prior)
            got = np.where(np.isnan(got), -np.inf, got).reshape(len(part), rows.size)
            best[start:start + len(part)] = got.max(axis=1)
            row[start:start + len(part)] = rows[got.argmax(axis=1)]
            bounds_of += [[(layer[0][i * rows.size:i * rows.size + 1], layer[1][i * rows.size:i * rows.size + 1])
                           for layer in bounds] for i in range(len(part))]
        return best, row, bounds_of

    @staticmethod
    def _halves(lo: np.ndarray, hi: np.ndarray, dim: int) -> list[tuple[np.ndarray, np.ndarray]]:
        mid = (lo[dim] + hi[dim]) / 2.0
        left_hi, right_lo = hi.copy(), lo.copy()
        left_hi[dim] = right_lo[dim] = mid
        return [(lo, left_hi), (right_lo, hi)]

    def refine(self, tree: _Tree, lower: np.ndarray, upper: np.ndarray, poly: int, prior: list | None) -> None:
        """Prove ``poly`` excluded on a leaf box by splitting it with the checker's bound (adds to ``tree``).

        Each open box is split along the dimension whose halves get the best
        worse-half margin (every dimension is tried: 2 d more bounds per box).
        ``prior``: the layer bounds of the leaf's parent, so that every box is
        bounded exactly as the checker will bound it (with its parent's bounds).
        """
        rows = np.flatnonzero(self.spec.poly_of_row == poly)
        todo: list[tuple[np.ndarray, np.ndarray, list | None]] = [(lower, upper, prior)]
        spent = 0
        d = lower.shape[0]
        while todo:
            self._check_clock()
            if spent > REFINE_MAX_BOXES:
                raise CertificateUnavailable(
                    f"{self.prop.name}: disjunct {poly} could not be re-proven with the checker's bounds on "
                    f"the box {lower.tolist()} .. {upper.tolist()} within {REFINE_MAX_BOXES} sub-boxes")
            best, row, own = self._best_margins(todo, poly, rows)
            spent += len(todo)
            still = []
            for (blo, bhi, _), margin, r, bounds in zip(todo, best, row, own, strict=True):
                if margin > REFINE_SLACK:
                    tree.evidence.setdefault(_key(blo, bhi), []).append((poly, self.spec.weights[r], None))
                else:
                    still.append((blo, bhi, bounds))
            if not still:
                break
            trials = [(*half, bounds) for blo, bhi, bounds in still for dim in range(d)
                      for half in self._halves(blo, bhi, dim)]
            trial_best, _, _ = self._best_margins(trials, poly, rows)
            spent += len(trials)
            worse = trial_best.reshape(len(still), d, 2).min(axis=2)
            todo = []
            for (blo, bhi, bounds), scores in zip(still, worse, strict=True):
                scores = np.where(bhi - blo > 0, scores, -np.inf)
                dim = int(np.argmax(scores))
                mid = (blo[dim] + bhi[dim]) / 2.0
                if not blo[dim] < mid < bhi[dim]:
                    raise CertificateUnavailable(f"{self.prop.name}: a box became too small to split "
                                                 "while re-proving a disjunct for the checker")
                tree.splits[_key(blo, bhi)] = (dim, float(mid))
                todo += [(*half, bounds) for half in self._halves(blo, bhi, dim)]
        self.refine_boxes += spent

    def _listed(self, tree: _Tree) -> tuple[tuple[np.ndarray, ...], list, np.ndarray]:
        """Preorder arrays, evidence records ``(node, disjunct, weights, slopes)``, coverage (nodes, P)."""
        lower, upper, parent, dims, points = _preorder(tree)
        node_of = {_key(lo, hi): k for k, (lo, hi) in enumerate(zip(lower, upper, strict=True))}
        ev = [(node_of[key], poly, w, s) for key, recs in tree.evidence.items() if key in node_of
              for poly, w, s in recs]
        excluded = np.zeros((len(dims), len(self.prop.unsafe)), dtype=bool)
        for k, poly, _, _ in ev:
            excluded[k, poly] = True
        for k in range(len(dims)):
            if parent[k] >= 0:
                excluded[k] |= excluded[parent[k]]
        return (lower, upper, parent, dims, points), ev, excluded

    def build(self) -> _Section:
        """Validate every record with the checker's own computation; re-derive what it cannot confirm.

        Rounds: validate all records on the whole tree (each node bounded with
        its parent's bounds, as the checker does), drop the failing ones,
        re-derive the leaves they leave open; repeat until a round drops
        nothing (a re-derived leaf is checked once more with its parent's bounds).
        Without ``validate`` the first round keeps the search's records unchecked
        (the leaves only an LP excluded are still re-derived, and checked).
        """
        tree = _tree_of(self.prop, self.recorder)
        for round_index in range(REFINE_ROUNDS):
            self._check_clock()
            (lower, upper, parent, _, _), ev, _ = self._listed(tree)
            node = np.array([r[0] for r in ev], dtype=np.int64)
            polys = np.array([r[1] for r in ev], dtype=np.int64)
            if self.validate or round_index > 0:
                weights = np.array([r[2] for r in ev]).reshape(len(ev), self.q)
                slopes = np.array([np.full(self.n_slopes, np.nan) if r[3] is None else r[3].astype(np.float64)
                                   for r in ev]).reshape(len(ev), self.n_slopes)
                margins, _ = tree_margins(self.raw, lower, upper, parent, node, self.A[polys], self.b[polys],
                                          weights, slopes)
                ok = margins > 0
            else:       # the search's records as they are; only LP exclusions are re-derived below
                ok = np.ones(len(ev), dtype=bool)
            self.rejected += int((~ok).sum())
            tree.evidence = {}
            for i in np.flatnonzero(ok):
                tree.evidence.setdefault(_key(lower[node[i]], upper[node[i]]), []).append(ev[i][1:])
            (lower, upper, parent, dims, points), ev, excluded = self._listed(tree)
            holes = [(k, int(p)) for k in np.flatnonzero(dims < 0) for p in np.flatnonzero(~excluded[k])]
            if not holes:
                break
            if round_index == 0 and not self.recorder.lp and self.rejected == 0:
                k, p = holes[0]
                raise CertificateUnavailable(f"{self.prop.name}: the search left leaf {k} without a proof for "
                                             f"disjunct {p} (it did not answer HOLDS)")
            for k, p in holes:
                self.rederived += 1
                prior = node_bounds(self.raw, lower, upper, parent, int(parent[k])) if parent[k] >= 0 else None
                self.refine(tree, lower[k], upper[k], p, prior)
        else:
            raise CertificateUnavailable(f"{self.prop.name}: after {REFINE_ROUNDS} rounds of re-deriving "
                                         "evidence, the checker's bounds still leave leaves open")
        with_slopes = [i for i, r in enumerate(ev) if r[3] is not None]
        slope_index = np.full(len(ev), -1, dtype=np.int64)
        slope_index[with_slopes] = np.arange(len(with_slopes))
        arrays = {
            "roots_lower": np.array([r[0] for r in tree.roots]), "roots_upper": np.array([r[1] for r in tree.roots]),
            "split_dim": dims, "split_point": points,
            "ev_node": np.array([r[0] for r in ev], dtype=np.int64),
            "ev_disjunct": np.array([r[1] for r in ev], dtype=np.int32),
            "ev_weights": np.array([r[2] for r in ev], dtype=np.float64).reshape(len(ev), self.q),
            "ev_slope": slope_index,
            "slopes": (np.array([ev[i][3] for i in with_slopes], dtype=np.float32)
                       if with_slopes else np.zeros((0, self.n_slopes), dtype=np.float32)),
        }
        summary = {"name": self.prop.name, "nodes": int(len(dims)), "leaves": int((dims < 0).sum()),
                   "evidence": len(ev), "with_slopes": len(with_slopes),
                   "rederived": self.rederived, "refine_boxes": self.refine_boxes,
                   "not_confirmed_by_checker": self.rejected, "lp_exclusions": len(self.recorder.lp)}
        return _Section(arrays, summary)


@dataclass(frozen=True, slots=True)
class Certified:
    """What :func:`certify` did: the verification, the file written (or why not), the times (s)."""

    result: VerificationResult
    path: Path | None
    reason: str
    search_s: float
    write_s: float
    size_bytes: int
    summary: list[dict]


def write_certificate(path: Path, network_path: Path, property_path: Path, props: Sequence[Property],
                      recorders: Sequence[TreeRecorder], result: VerificationResult,
                      deadline: float | None = None, validate: bool = True) -> tuple[int, list[dict]]:
    """Rebuild, validate and write the certificate of a HOLDS ``result``; returns (bytes, summaries).

    ``deadline`` (``time.perf_counter()``): the validation stops there with
    :class:`CertificateUnavailable` (nothing is written).  ``validate`` False
    skips running the checker's computation on the search's records (about
    half the cost of writing; ``check`` may then reject the file).

    Raises
    ------
    CertificateUnavailable
        When some evidence cannot be made checkable (nothing is written then).
    """
    try:
        raw = read_chain(network_path)
    except NetworkRejected as exc:      # e.g. a smooth activation: the checker reads ReLU chains only
        raise CertificateUnavailable(f"the checker cannot read the network: {exc}") from None
    sections = [_Builder(raw, prop, recorder, deadline, validate).build()
                for prop, recorder in zip(props, recorders, strict=True)]
    header = {
        "format": FORMAT, "version": VERSION,
        "network": {"file": Path(network_path).name, "sha256": sha256_file(Path(network_path))},
        "property": {"file": Path(property_path).name, "sha256": sha256_file(Path(property_path))},
        "relu_widths": [int(W.shape[0]) for W, _, relu in raw if relu],
        "properties": [s.summary for s in sections],
        "producer": {"tool": "verirepair", "engine": "own", "search": "input-splitting branch and bound",
                     "validated_by_writer": validate,
                     "verify_time_s": result.stats.time_s, "subproblems": result.stats.subproblems},
    }
    arrays = {"header": np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}
    for index, section in enumerate(sections):
        arrays.update({f"p{index}_{name}": value for name, value in section.arrays.items()})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    data = buffer.getvalue()
    write_bytes_atomic(Path(path), data)
    return len(data), [s.summary for s in sections]


def certify(network: Network, props: Sequence[Property], config: VerifyConfig, network_path: Path,
            property_path: Path, cert_path: Path, validate: bool = True) -> Certified:
    """Verify ``props`` with our engine and, when they hold, write their certificate to ``cert_path``.

    Parameters
    ----------
    network : Network -- read from ``network_path``
    props : sequence of Property -- all properties of ``property_path``, in file order
    config : VerifyConfig -- the search is sequential (``workers`` is ignored);
        ``config.timeout_s`` bounds the search and the writing together
    network_path, property_path : Path -- the files the certificate is tied to (SHA-256)
    cert_path : Path -- written atomically, only for a HOLDS with a producible certificate
    validate : bool -- run the checker's computation on every record before writing (default);
        False writes the search's records as they are (faster; ``check`` then decides)

    Returns
    -------
    Certified
        ``path`` None with ``reason`` when nothing was written (not HOLDS, or
        :class:`CertificateUnavailable`).
    """
    searched = with_linear_output(network)
    recorders: list[TreeRecorder] = []

    def factory(prop: Property) -> TreeRecorder:
        recorders.append(TreeRecorder(searched, SpecRows.of(prop)))
        return recorders[-1]

    start = time.perf_counter()
    result = verify_own(network, list(props), config, recorder_factory=factory)
    search_s = time.perf_counter() - start
    if result.verdict is not Verdict.HOLDS:
        return Certified(result, None, f"no certificate: the verdict is {result.verdict.value}",
                         search_s, 0.0, 0, [])
    try:
        size, summary = write_certificate(cert_path, network_path, property_path, props, recorders, result,
                                          start + config.timeout_s, validate)
    except CertificateUnavailable as exc:
        return Certified(result, None, f"HOLDS, but no certificate could be produced: {exc}",
                         search_s, time.perf_counter() - start - search_s, 0, [])
    return Certified(result, Path(cert_path), "", search_s, time.perf_counter() - start - search_s,
                     size, summary)
