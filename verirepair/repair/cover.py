"""Output-layer repair proven by construction on a cover of every region (strategy ``cover``).

Pipeline position: :mod:`verirepair.repair.strategy` runs :func:`cover_repair`
when ``StrategyConfig.name == "cover"``; the certify loop applies the patch,
rounds it to float32 and re-verifies every property, as for every strategy.

Why.  The loop's ``lp`` strategy makes sampled points safe by a margin and
then asks the verifier to prove the whole region; on networks whose outputs
almost tie over a large region (ACAS Xu N1,9 phi7, N2,9 phi8) the verifier
proves only wide margins, so the delivered change is large
(``benchmarks/results/thin_margins.md``).  Here the LP itself carries the
proof.  Only the output layer changes, so the *features* ``h(x)`` (the
outputs of the last hidden layer) and every bound on them are those of the
original network.  On each box ``B`` of a cover of a property's region CROWN
gives every feature affine bounds ``Lh_i(x) <= h_i(x) <= Uh_i(x)`` and an
interval ``[hl_i, hu_i]``.  A specification row ``r`` (its polytope is
excluded on ``B`` when ``a_r . y - b_r > 0`` there) of the repaired network
``y = (W + D) h + (b + e)`` has two lower bounds that are linear in the
change, both sound for *any* split of a coefficient into nonnegative parts:

* ``features``: ``c' = a_r (W + D) = p - q`` with ``p, q >= 0`` (LP columns,
  one pair per row), so ``c' . h >= p . Lh(x) - q . Uh(x)``, an affine
  function of ``x`` whose minimum over ``B`` is attained at a vertex: one
  linear row per vertex, added lazily (the vertex minimising at the current
  solution) until the closed-form minimum of every box meets its margin;
* ``shift``: ``c' . h = c . h + (a_r D) . h >= S_Br + u . hl - v . hu`` with
  ``S_Br`` the CROWN bound of the original row on ``B`` (one back-substitution
  for the whole row: tighter when the change is small) and ``u - v = a_r D``,
  ``u, v >= 0``.

Per box and polytope the row and form with the best bound at the current
solution are kept; the LP requires that bound plus ``a_r . e`` to exceed the
property's margin (times ``||a_r||``, as in :meth:`Property.violation_score`)
and minimises the change's norm.  Its solution therefore proves every
property on its cover.  Which row a polytope uses matters (N1,9 phi7: 1.17
with each box's best row at zero change, 0.84 with ``y3 - y1`` and ``y4 - y1``
everywhere), so first a row per polytope is searched on the initial covers
(:meth:`CoverProblem.search_rows_coarse`); that solution is a candidate of its
own beside those of the refined covers.  Then the boxes whose rows are tight are halved along
the dimension that loosens their bound most (a child keeps its parent's
bounds where they are better, so a round never makes the LP worse), and the
LP is solved again, until the time budget, :data:`MAX_ROUNDS` or
:data:`MAX_BOXES` is reached or the change stops shrinking.  Decisions of
the preservation points are kept by lazily added rows (dropped, with a note
in the message, when they make the LP infeasible).

Float rounding: the cover's bounds are computed in float64 with margins of
at least :data:`MIN_MARGIN`; the proof that counts is the loop's
re-verification of the float32 file.

State across calls (one certify loop per process): the covers of the last
network seen and their searched rows (:data:`_COVER_CACHE`), the hard-property
set whose first round has been (:data:`_FIRST_HARD_ROUND_SEEN`), and which
candidate the strategy returned for a set of hard properties (:data:`_LAST_RETURNED`); each holds entries of
one network only, compared by identity, so another network starts afresh.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from verirepair.network.model import Network
from verirepair.properties.property import Property
from verirepair.repair.config import RepairConfig, RepairResult, RepairStats, RepairStatus
from verirepair.repair.encoding import ProblemBuilder, add_norm_objective
from verirepair.repair.patch import Patch
from verirepair.repair.strategy_context import StrategyContext, StrategyOutcome
from verirepair.solvers.backend import Backend
from verirepair.solvers.model import LinearProblem, SolveStatus
from verirepair.tolerances import BOUND_TOL
from verirepair.verify.search_state import SpecRows

#: Bisections of every region box before the first LP (networks with at most
#: :data:`MAX_INPUTS_TO_SPLIT` inputs; wider inputs start from the region itself).
INITIAL_SPLITS = 6
MAX_INPUTS_TO_SPLIT = 16
#: Boxes halved per round, the tight ones with the widest relative extent first.
REFINE_PER_ROUND = 256
MAX_ROUNDS = 12
#: The cover stops growing here, or when its per-box arrays would exceed MAX_COVER_BYTES.
MAX_BOXES = 20000
MAX_COVER_BYTES = 1 << 30
#: The change must shrink by this fraction from one round to the next, or refinement stops.
MIN_IMPROVEMENT = 0.02
#: Every property is proven on the cover with at least this margin (violation-score units).
MIN_MARGIN = 1e-4
#: Refining stops after this many rounds none of which beat the initial covers' candidate
#: (N1,9 phi7: 1.38, 1.16, 1.06 ... on 9,000 boxes against 0.865 on the initial 64).
COARSE_WINS_AFTER = 2
#: Share of the strategy's time for splitting boxes the original network leaves unproven.
PREPROVE_FRACTION = 0.3
#: Rounds of lazy vertex and preservation rows per LP.
MAX_LAZY = 40
#: Preservation rows added per lazy round (the most violated).
PRESERVE_ROWS_PER_ROUND = 2000
#: The row search (CoverProblem.search_rows): assignments tried exhaustively up to this many
#: (else a coordinate search of at most MAX_ROW_SWEEPS sweeps), within this share of the time left.
MAX_ROW_COMBOS = 100
MAX_ROW_SWEEPS = 2
ROW_SEARCH_FRACTION = 0.3
#: A forced row must lower the change by this fraction to be kept.
ROW_SEARCH_GAIN = 1e-3
#: Covers of the last network seen, by property, with the rows the row search found for them
#: (see CoverProblem._cached_or_initial).
_COVER_CACHE: dict[tuple, tuple[Network, _Cover, np.ndarray]] = {}
#: The hard-property set (by canonical forms) whose first round has been, and on which network.
_FIRST_HARD_ROUND_SEEN: dict[tuple, Network] = {}
#: Per hard-property set: the network and which candidate ("lp" or "cover") the last round
#: outside the shrink phase returned (the one the shrink phase starts from).
_LAST_RETURNED: dict[tuple, tuple[Network, str]] = {}
#: Boxes per bound computation (memory: ``(chunk, m, d)`` arrays).
BOUND_CHUNK = 256


@dataclass
class _Cover:
    """One property's boxes and the original network's bounds on them (first axis: box)."""

    prop_index: int
    lower: np.ndarray           # (n, d)
    upper: np.ndarray
    region: np.ndarray          # (n,) which input box of the property the box lies in
    pre_l: list[np.ndarray]     # intermediate bounds (children intersect them)
    pre_u: list[np.ndarray]
    HLc: np.ndarray             # (n, m, d): Lh(x) = HLc @ x + HLk
    HLk: np.ndarray             # (n, m)
    HUc: np.ndarray
    HUk: np.ndarray
    hl: np.ndarray              # (n, m) feature intervals
    hu: np.ndarray
    S: np.ndarray               # (n, R) CROWN lower bound of C_r . y - b_r, original network
    Scoef: np.ndarray           # (n, R, d) its linear coefficients in x (for the split rule)

    def __len__(self) -> int:
        return int(self.lower.shape[0])

    def take(self, idx: np.ndarray) -> _Cover:
        return _Cover(self.prop_index, self.lower[idx], self.upper[idx], self.region[idx],
                      [a[idx] for a in self.pre_l], [a[idx] for a in self.pre_u],
                      self.HLc[idx], self.HLk[idx], self.HUc[idx], self.HUk[idx],
                      self.hl[idx], self.hu[idx], self.S[idx], self.Scoef[idx])

    @staticmethod
    def concat(parts: list[_Cover]) -> _Cover:
        first = parts[0]
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        layers = range(len(first.pre_l))
        return _Cover(first.prop_index, cat("lower"), cat("upper"), cat("region"),
                      [np.concatenate([p.pre_l[j] for p in parts]) for j in layers],
                      [np.concatenate([p.pre_u[j] for p in parts]) for j in layers],
                      cat("HLc"), cat("HLk"), cat("HUc"), cat("HUk"), cat("hl"), cat("hu"), cat("S"), cat("Scoef"))


def _affine_min(coef: np.ndarray, const: np.ndarray, lower: np.ndarray, upper: np.ndarray
                ) -> np.ndarray:
    """``min over the box of coef . x + const``; coef (n, ..., d), boxes (n, d)."""
    shape = (coef.shape[0],) + (1,) * (coef.ndim - 2) + (coef.shape[-1],)
    lo, hi = lower.reshape(shape), upper.reshape(shape)
    return np.minimum(coef * lo, coef * hi).sum(-1) + const


def _feature_bounds(net: Network, lower: np.ndarray, upper: np.ndarray,
                    prior: tuple[list[np.ndarray], list[np.ndarray]] | None, C: np.ndarray,
                    rhs: np.ndarray) -> tuple:
    """Intermediate bounds, affine feature bounds, feature intervals and row bounds on boxes."""
    from verirepair.verify.activation_bounds import activation_relaxation
    from verirepair.verify.bounds import Bounds, backward_lower, intermediate_bounds, relu_relaxation

    n, d = lower.shape
    last = net.n_layers - 1
    bounds_prior = Bounds(tuple(prior[0]), tuple(prior[1])) if prior is not None else None
    pre_l, pre_u = intermediate_bounds(net, lower, upper, "backward", bounds_prior)
    if last == 0:  # no hidden layer: the features are the inputs
        eye = np.broadcast_to(np.eye(d), (n, d, d)).copy()
        zero = np.zeros((n, d))
        HLc, HLk, HUc, HUk = eye, zero, eye.copy(), zero.copy()
    else:
        m = net.layers[last].in_features
        eye = np.broadcast_to(np.eye(m), (n, m, m))
        _, zl_c, zl_k = backward_lower(net, pre_l, pre_u, eye, last - 1, lower, upper)
        _, zu_c, zu_k = backward_lower(net, pre_l, pre_u, -eye, last - 1, lower, upper)
        zu_c, zu_k = -zu_c, -zu_k
        hidden = net.layers[last - 1]
        if hidden.relu:
            alpha, s, t = relu_relaxation(pre_l[last - 1], pre_u[last - 1])
            la, lc, ua, uc = alpha, np.zeros_like(alpha), s, t
        elif hidden.nonlinear:
            la, lc, ua, uc = activation_relaxation(hidden.activation, pre_l[last - 1], pre_u[last - 1])
        else:
            la, lc, ua, uc = (np.ones_like(pre_l[last - 1]), np.zeros_like(pre_l[last - 1]),
                              np.ones_like(pre_l[last - 1]), np.zeros_like(pre_l[last - 1]))
        # h >= la z + lc >= la Lz(x) + lc and h <= ua z + uc <= ua Uz(x) + uc (slopes >= 0)
        HLc, HLk = la[:, :, None] * zl_c, la * zl_k + lc
        HUc, HUk = ua[:, :, None] * zu_c, ua * zu_k + uc
    hl = _affine_min(HLc, HLk, lower, upper)
    hu = -_affine_min(-HUc, -HUk, lower, upper)
    rows = np.broadcast_to(C, (n,) + C.shape)
    S, S_coef, _ = backward_lower(net, pre_l, pre_u, rows, last, lower, upper)
    return pre_l, pre_u, HLc, HLk, HUc, HUk, hl, hu, S - rhs, S_coef


class CoverProblem:
    """The covers of the flagged properties and the LP that repairs the output layer on them.

    Parameters
    ----------
    network : Network -- the original; its last layer must be affine without activation
    properties : tuple of Property
    margins : tuple of float -- per property, in violation-score units (at least :data:`MIN_MARGIN`)
    covered : tuple of bool -- per property: prove it on a cover of its region (else only its pool points)
    pool : array (p, d) -- points that must end outside the unsafe set of every region they lie in
    preserve_x : array (n, d) -- points whose decision is kept (those violating no property)
    decision : str -- the task's decision rule
    config : RepairConfig -- solver, norm, max_delta, preserve_margin

    Raises
    ------
    ValueError -- an output layer with an activation; misaligned margins or flags
    """

    def __init__(self, network: Network, properties: tuple[Property, ...], margins: tuple[float, ...],
                 covered: tuple[bool, ...], pool: np.ndarray, preserve_x: np.ndarray, decision: str,
                 config: RepairConfig) -> None:
        from verirepair.verify.bounds import with_linear_output

        last = network.layers[-1]
        if last.nonlinear or last.relu:
            raise ValueError("the cover strategy repairs the output layer, which must be affine "
                             f"without activation (this one has {last.activation.label})")
        if with_linear_output(network) is not network:
            raise ValueError("the cover strategy needs a network whose last layer is linear")
        if not (len(margins) == len(covered) == len(properties)):
            raise ValueError("margins and covered must have one entry per property")
        self.net, self.config, self.decision = network, config, decision
        self.W, self.b = last.weight, last.bias
        self.k, self.m = self.W.shape
        all_specs = [SpecRows.of(p) for p in properties]
        all_margins = [max(float(mg), MIN_MARGIN) * np.maximum(np.linalg.norm(s.C, axis=1), 1e-12)
                       + BOUND_TOL for mg, s in zip(margins, all_specs, strict=True)]
        chosen = [i for i, flag in enumerate(covered) if flag]
        # Covers (aligned lists) for the flagged properties only.
        self.props = tuple(properties[i] for i in chosen)
        self.specs = [all_specs[i] for i in chosen]
        self.margin_rows = [all_margins[i] for i in chosen]
        self.from_cache: set[int] = set()
        # Per cover and polytope the row every box must use (-1: each box its best row; set only
        # while the row search runs), and the assignment it found (kept with the cover: the next
        # call's search starts there).
        self.forced = [np.full(s.n_polys, -1, dtype=np.int64) for s in self.specs]
        self.searched = [f.copy() for f in self.forced]
        # The solution on the initial covers (search_rows_coarse): (change, objective).
        self.coarse: tuple[np.ndarray, float] | None = None
        self.coarse_boxes = 0
        self.covers = [self._cached_or_initial(i) for i in range(len(chosen))]
        self.n_delta = self.k * self.m + self.k
        self.x_delta = np.zeros(self.n_delta)
        self.points = _point_rows(network, properties, all_specs, all_margins, pool)
        self.keep: tuple[np.ndarray, ...] | None = None
        self._setup_preservation(preserve_x, properties)
        self.preserve_dropped = False
        self.last_parts: list[dict] = [self.natural_parts(i) for i in range(len(chosen))]
        self.last_choices: list[tuple[np.ndarray, np.ndarray]] = []

    # -- covers ------------------------------------------------------------------------------
    def _bounds(self, index: int, lower: np.ndarray, upper: np.ndarray, region: np.ndarray,
                prior: tuple[list[np.ndarray], list[np.ndarray]] | None) -> _Cover:
        spec = self.specs[index]
        parts = []
        for start in range(0, lower.shape[0], BOUND_CHUNK):
            sl = slice(start, start + BOUND_CHUNK)
            sub_prior = None if prior is None else ([a[sl] for a in prior[0]], [a[sl] for a in prior[1]])
            out = _feature_bounds(self.net, lower[sl], upper[sl], sub_prior, spec.C, spec.b)
            parts.append(_Cover(index, lower[sl], upper[sl], region[sl], *out))
        return _Cover.concat(parts)

    def _cached_or_initial(self, index: int) -> _Cover:
        """The cover an earlier call left for this network and property, else a fresh one.

        The certify loop starts every attempt from the same original network, and a
        cover's bounds depend only on it (not on the margins), so later rounds go on
        refining instead of starting over.
        """
        cached = _COVER_CACHE.get(self.props[index].canonical())
        if cached is not None and cached[0] is self.net:
            self.from_cache.add(index)
            self.searched[index] = cached[2].copy()
            return dataclasses.replace(cached[1], prop_index=index)
        return self._initial_cover(index)

    def remember(self) -> None:
        """Keep this problem's covers (and searched rows) for the next call on the same network only."""
        stale = [key for key, (net, *_) in _COVER_CACHE.items() if net is not self.net]
        for key in stale:
            del _COVER_CACHE[key]
        for prop, cover, rows in zip(self.props, self.covers, self.searched, strict=True):
            _COVER_CACHE[prop.canonical()] = (self.net, cover, rows.copy())

    def _initial_cover(self, index: int) -> _Cover:
        boxes = self.props[index].input_boxes
        lower = np.stack([b.lower for b in boxes]).astype(np.float64)
        upper = np.stack([b.upper for b in boxes]).astype(np.float64)
        region = np.arange(len(boxes))
        splits = INITIAL_SPLITS if self.net.n_inputs <= MAX_INPUTS_TO_SPLIT else 0
        for _ in range(splits):
            dim = np.argmax(self._relative_width(index, lower, upper, region), axis=1)
            lower, upper, region = _halve(lower, upper, region, dim)
        return self._bounds(index, lower, upper, region, None)

    def _relative_width(self, index: int, lower: np.ndarray, upper: np.ndarray,
                        region: np.ndarray) -> np.ndarray:
        boxes = self.props[index].input_boxes
        full = np.stack([b.upper - b.lower for b in boxes])[region]
        return np.where(full > 0, (upper - lower) / np.where(full > 0, full, 1.0), 0.0)

    def n_boxes(self) -> int:
        return sum(len(c) for c in self.covers)

    def bytes_per_box(self) -> int:
        d, m = self.net.n_inputs, self.m
        R = max((s.C.shape[0] for s in self.specs), default=1)
        hidden = sum(layer.out_features for layer in self.net.layers)
        return 8 * (2 * m * d + 6 * m + R * (d + 1) + 2 * hidden)

    # -- the change and the bounds it gets ----------------------------------------------------
    def split_delta(self, x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        x = self.x_delta if x is None else x
        return x[:self.k * self.m].reshape(self.k, self.m), x[self.k * self.m:self.n_delta]

    def _row_bounds(self, cover: _Cover, parts: dict) -> tuple[np.ndarray, np.ndarray]:
        """Both forms' bounds of every row on every box at the current split parts, (n, R) each."""
        spec = self.specs[cover.prop_index]
        D, e = self.split_delta()
        const = spec.C @ (self.b + e) - spec.b
        p, q, u, v = parts["p"], parts["q"], parts["u"], parts["v"]
        K = np.einsum("rm,nmd->nrd", p, cover.HLc) - np.einsum("rm,nmd->nrd", q, cover.HUc)
        K0 = cover.HLk @ p.T - cover.HUk @ q.T
        feat = _affine_min(K, K0, cover.lower, cover.upper) + const[None, :]
        shift = cover.S + (spec.C @ e)[None, :] + cover.hl @ u.T - cover.hu @ v.T
        return feat, shift

    def natural_parts(self, index: int) -> dict:
        """The split of every row's coefficients into nonnegative parts at the current change."""
        D, _ = self.split_delta()
        C = self.specs[index].C
        cp, dc = C @ (self.W + D), C @ D
        return {"p": np.maximum(cp, 0), "q": np.maximum(-cp, 0), "u": np.maximum(dc, 0),
                "v": np.maximum(-dc, 0)}

    def choose(self, index: int, parts: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per box and polytope the best (row, form) and its bound minus the margin: arrays (n, P).

        The feature form is preferred wherever it meets its margin at the
        current change: its coefficients are LP columns, so it lets the LP
        trade a smaller coefficient (less relaxation error) for bias, while the
        shift form's interval term makes every weight change expensive.  The
        shift form (the original network's tighter row bound) is taken where
        only it meets the margin; where neither does, the feature form.  A
        polytope with a forced row (:meth:`search_rows`) uses that row on every
        box, with the same choice of form.
        """
        cover, spec = self.covers[index], self.specs[index]
        feat, shift = self._row_bounds(cover, parts)
        margin = self.margin_rows[index][None, :]
        feat, shift = feat - margin, shift - margin
        f_row, _, f_best = _best_of(spec, [feat])
        s_row, _, s_best = _best_of(spec, [shift])
        for poly in np.flatnonzero(self.forced[index] >= 0):
            r = int(self.forced[index][poly])
            f_row[:, poly], f_best[:, poly] = r, feat[:, r]
            s_row[:, poly], s_best[:, poly] = r, shift[:, r]
        use_shift = (f_best < 0.0) & (s_best >= 0.0)
        row = np.where(use_shift, s_row, f_row)
        form = use_shift.astype(np.int64)
        best = np.where(use_shift, s_best, f_best)
        return row, form, best

    def search_rows_coarse(self, backend: Backend, deadline: float, explore: bool = True
                           ) -> float | None:
        """The LP on fresh initial covers of every region, with the row search when ``explore``.

        The covers the strategy refines grow to thousands of boxes (after
        :func:`_preprove` or earlier rounds), where one LP takes seconds: trying
        every row assignment there does not fit, and the first LP's rows,
        chosen at zero change, are poor (N2,9 phi8 + phi2: 0.64 on 10,000 boxes
        against 0.083 on the 64 initial boxes).  So rows are searched on the
        initial covers (without ``explore``: the rows kept in :attr:`searched`
        are solved once), and the solution is kept in :attr:`coarse`: it
        proves the hard properties on those covers, so it is a candidate in its
        own right.  The problem's covers and a zero change are restored.
        Returns the coarse change, or None when the LP had no solution.
        """
        real = self.covers
        self.covers = [self._initial_cover(i) for i in range(len(real))]
        self.coarse_boxes = self.n_boxes()
        self.forced = [f.copy() for f in self.searched]
        try:
            if explore:
                status, objective, *_ = self.search_rows(backend, deadline)
            else:
                self.x_delta = np.zeros_like(self.x_delta)
                status, objective, *_ = self.solve(backend, deadline)
        finally:
            self.coarse = ((self.x_delta.copy(), float(objective))
                           if status.has_solution and objective is not None else None)
            self.covers = real
            self.x_delta = np.zeros_like(self.x_delta)
            self.last_parts = [self.natural_parts(i) for i in range(len(real))]
            self.last_choices = []
            self.release_rows()
        return None if self.coarse is None else self.coarse[1]

    def release_rows(self) -> None:
        """From now on each box takes its best row at the current change (see :meth:`search_rows`)."""
        self.forced = [np.full_like(f, -1) for f in self.forced]

    def search_rows(self, backend: Backend, deadline: float
                    ) -> tuple[SolveStatus, float | None, str, int, int]:
        """:meth:`solve`, then a search over the rows each polytope uses on all of its boxes.

        Each box's row is chosen by its bound at the current change (at first:
        none), so a polytope may settle on a row whose coefficients are costly
        to make provable, while one row for every box of it, or rows of two
        polytopes that share outputs, need a smaller change (ACAS Xu N1,9 phi7
        at 64 boxes: the boxes pick ``y3 - y1`` and ``y4 - y2``, change 1.17;
        ``y3 - y1`` and ``y4 - y1`` share the change of ``w1``: 0.84).  An
        assignment gives every polytope one of its rows or "each box its best
        row" (-1).  When there are at most :data:`MAX_ROW_COMBOS` assignments
        all are tried, else a coordinate search: per
        polytope in turn every choice with the others kept, for at most
        :data:`MAX_ROW_SWEEPS` sweeps (a coordinate search alone stops at 1.06
        on N1,9).  A try is kept when its change is smaller by
        :data:`ROW_SEARCH_GAIN`; the search uses at most
        :data:`ROW_SEARCH_FRACTION` of the time left.  Every try starts from a
        zero change, so its result does not depend on earlier tries; the first
        starts from :attr:`forced` (a cached cover's searched rows, else each box
        its own).  At the end the best try's change and state are restored, its
        rows kept in :attr:`searched`, and :attr:`forced` is cleared: later LPs
        choose each box's row at the current change.
        """
        stop = time.perf_counter() + ROW_SEARCH_FRACTION * max(0.0, deadline - time.perf_counter())
        zero = np.zeros_like(self.x_delta)
        self.x_delta = zero.copy()
        best = self.solve(backend, deadline)
        if not best[0].has_solution or best[1] is None:
            return best
        best_value = float(best[1])
        state = self._lp_state()
        slots = [(index, poly) for index, spec in enumerate(self.specs) for poly in range(spec.n_polys)]
        # explicit rows first: on a tie the explicit row is kept (it means the same on finer covers)
        choices = [[*np.flatnonzero(self.specs[i].poly_of_row == poly).tolist(), -1] for i, poly in slots]

        def attempt(assignment: tuple[int, ...]) -> None:
            nonlocal best, best_value, state
            for (index, poly), r in zip(slots, assignment, strict=True):
                self.forced[index][poly] = r
            self.x_delta = zero.copy()
            out = self.solve(backend, deadline)
            if out[0].has_solution and out[1] is not None and out[1] < (1.0 - ROW_SEARCH_GAIN) * best_value:
                best, best_value, state = out, float(out[1]), self._lp_state()
            self._restore_lp_state(state)

        def current() -> tuple[int, ...]:
            return tuple(int(self.forced[index][poly]) for index, poly in slots)

        start = current()
        if math.prod(len(c) for c in choices) <= MAX_ROW_COMBOS:
            for assignment in itertools.product(*choices):
                if time.perf_counter() >= stop:
                    break
                if assignment != start:
                    attempt(assignment)
        else:
            for _ in range(MAX_ROW_SWEEPS):
                before = best_value
                for slot, options in enumerate(choices):
                    for r in options:
                        now = current()
                        if r != now[slot] and time.perf_counter() < stop:
                            attempt(now[:slot] + (r,) + now[slot + 1:])
                if best_value >= before or time.perf_counter() >= stop:
                    break
        self.searched = [f.copy() for f in self.forced]
        self.release_rows()
        return best

    def _lp_state(self) -> tuple:
        return (self.x_delta.copy(), [f.copy() for f in self.forced], self.last_parts, self.last_choices,
                self.keep, self.preserve_dropped)

    def _restore_lp_state(self, state: tuple) -> None:
        """Back to a kept try's solution (preservation rows added since stay: they hold anyway)."""
        x, forced, parts, choices, keep, dropped = state
        self.x_delta, self.forced = x.copy(), [f.copy() for f in forced]
        self.last_parts, self.last_choices = parts, choices
        self.keep, self.preserve_dropped = keep, dropped

    # -- preservation -------------------------------------------------------------------------
    def _setup_preservation(self, preserve_x: np.ndarray, properties: tuple[Property, ...]) -> None:
        from verirepair.decision import get_decision_rule

        x = np.asarray(preserve_x, dtype=np.float64).reshape(-1, self.net.n_inputs)
        if x.shape[0]:
            y = self.net.forward(x)
            bad = np.zeros(x.shape[0], dtype=bool)
            for prop in properties:
                bad |= prop.in_region(x) & (prop.violation_score(y) >= -MIN_MARGIN)
            x, y = x[~bad], y[~bad]
        self.keep = None
        if x.shape[0] == 0:
            return
        feats = self.net.forward_all(x)[-2]
        rows = get_decision_rule(self.decision).keep_rows(y, self.config.preserve_margin)
        self.keep = (feats[rows.sample], rows.c, rows.lower, rows.upper, y[rows.sample])
        self.keep_added = np.zeros(rows.c.shape[0], dtype=bool)

    def preserve_violation(self) -> np.ndarray:
        assert self.keep is not None, "no preservation rows"
        feats, c, lower, upper, y0 = self.keep
        D, e = self.split_delta()
        value = np.einsum("ro,ro->r", c, y0 + feats @ D.T + e[None, :])
        return np.maximum(lower - value, value - upper)

    # -- the LP ---------------------------------------------------------------------------
    def solve(self, backend: Backend, deadline: float) -> tuple[SolveStatus, float | None, str, int, int]:
        """Choose rows, then solve with lazy vertex and preservation rows; updates the change.

        Returns (status, objective, message, n_vars, n_rows).
        """
        choices = []
        vertices: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
        for index in range(len(self.covers)):
            parts = self.natural_parts(index)
            row, form, _ = self.choose(index, parts)
            choices.append((row, form))
            # first vertices: the minimisers at the current change
            vertices.append([self._minimising_vertices(index, row, form, parts)])
        self.last_choices = choices
        used = [np.unique(row) for row, _ in choices]
        status, objective, message, n_vars, n_rows = SolveStatus.ERROR, None, "", 0, 0
        for _ in range(MAX_LAZY):
            left = deadline - time.perf_counter()
            if left <= 0:
                return SolveStatus.TIME_LIMIT, None, "time budget used up", n_vars, n_rows
            problem, layout = self._assemble(choices, used, vertices)
            n_vars, n_rows = problem.n_vars, problem.n_constraints
            solution = backend.solve(problem, left)
            status, message = solution.status, solution.message
            if not status.has_solution or solution.x is None:
                if status is SolveStatus.INFEASIBLE and self.keep is not None and self.keep_added.any():
                    self.keep, self.preserve_dropped = None, True
                    continue
                return status, None, message, n_vars, n_rows
            self.x_delta = solution.x[:self.n_delta].copy()
            objective = solution.objective
            added = 0
            for index, (row, form) in enumerate(choices):
                parts = layout.parts(solution.x, index)
                violated = self._violated_boxes(index, row, form, parts)
                if violated.any():
                    vertices[index].append(self._minimising_vertices(index, row, form, parts, violated))
                    added += int(violated.sum())
            if self.keep is not None:
                viol = self.preserve_violation()
                idx = np.flatnonzero((viol > 1e-7) & ~self.keep_added)
                idx = idx[np.argsort(-viol[idx])][:PRESERVE_ROWS_PER_ROUND]
                self.keep_added[idx] = True
                added += idx.size
            self.last_parts = [layout.parts(solution.x, i) for i in range(len(self.covers))]
            if added == 0:
                return status, objective, message, n_vars, n_rows
        return SolveStatus.FEASIBLE, objective, "lazy rows did not converge", n_vars, n_rows

    def _bound_with(self, index: int, row: np.ndarray, form: np.ndarray, parts: dict) -> np.ndarray:
        """The chosen (row, form)'s bound minus its margin, per box and polytope (n, P)."""
        feat, shift = self._row_bounds(self.covers[index], parts)
        n = row.shape[0]
        both = np.stack([feat, shift], axis=-1)                    # (n, R, 2)
        value = both[np.arange(n)[:, None], row, form]
        return value - self.margin_rows[index][row]

    def _violated_boxes(self, index: int, row: np.ndarray, form: np.ndarray, parts: dict) -> np.ndarray:
        return (self._bound_with(index, row, form, parts) < -1e-9) & (form == 0)

    def _minimising_vertices(self, index: int, row: np.ndarray, form: np.ndarray, parts: dict,
                             only: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(box, polytope, vertex) of the feature-form bounds' minimising vertices."""
        cover = self.covers[index]
        mask = (form == 0) if only is None else only
        box, poly = np.nonzero(mask)
        r = row[box, poly]
        K = (np.einsum("bm,bmd->bd", parts["p"][r], cover.HLc[box])
             - np.einsum("bm,bmd->bd", parts["q"][r], cover.HUc[box]))
        vertex = np.where(K >= 0, cover.lower[box], cover.upper[box])
        return box, poly, vertex

    def _assemble(self, choices: list[tuple[np.ndarray, np.ndarray]], used: list[np.ndarray],
                  vertices: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]]
                  ) -> tuple[LinearProblem, _Layout]:
        builder = ProblemBuilder()
        add_norm_objective(builder, self.n_delta, self.config.norm, self.config.mix_weight,
                           self.config.max_delta)
        layout = _Layout(self, used, builder)
        for index, (row, form) in enumerate(choices):
            layout.add_box_rows(index, row, form, vertices[index])
        if self.points is not None:
            block, lower_pts = self.points
            builder.add_rows(block, lower_pts, np.full(lower_pts.shape[0], np.inf))
        if self.keep is not None and self.keep_added.any():
            feats, c, lower, upper, y0 = self.keep
            idx = np.flatnonzero(self.keep_added)
            coef_w = (c[idx][:, :, None] * feats[idx][:, None, :]).reshape(idx.size, -1)
            block = sp.csr_matrix(np.hstack([coef_w, c[idx]]))
            base = np.einsum("ro,ro->r", c[idx], y0[idx])
            builder.add_rows(block, lower[idx] - base, upper[idx] - base)
        return builder.build("cover_repair"), layout


def _split_dims(problem: CoverProblem, index: int, boxes: np.ndarray, parts: dict,
                row: np.ndarray, form: np.ndarray, open_polys: np.ndarray) -> np.ndarray:
    """The verifier's split rule on cover boxes: gradient smear mixed with |coefficient| * width."""
    from verirepair.verify.bab import smear_scores

    cover = problem.covers[index]
    spec = problem.specs[index]
    sub = cover.take(boxes)
    r, f = row[boxes], form[boxes]                                      # (b, P)
    smear = smear_scores(problem.net, spec.C[r], open_polys, sub.pre_l, sub.pre_u, sub.lower, sub.upper)
    feat_K = (np.einsum("bpm,bmd->bpd", parts["p"][r], sub.HLc)
              - np.einsum("bpm,bmd->bpd", parts["q"][r], sub.HUc))
    shift_K = sub.Scoef[np.arange(boxes.size)[:, None], r]
    K = np.where((f == 0)[:, :, None], feat_K, shift_K)
    width = sub.upper - sub.lower
    gain = (np.abs(K) * width[:, None, :] * open_polys[:, :, None]).sum(axis=1)
    mix = smear / np.maximum(smear.sum(1, keepdims=True), 1e-300) \
        + gain / np.maximum(gain.sum(1, keepdims=True), 1e-300)
    return np.argmax(np.where(width > 0.0, mix, -1.0), axis=1)


def _split(problem: CoverProblem, index: int, boxes: np.ndarray, parts: dict, threshold: float) -> int:
    """Halve ``boxes`` of one cover; children keep their parent's bounds where those are better."""
    if boxes.size == 0:
        return 0
    cover = problem.covers[index]
    row, form, best = problem.choose(index, parts)
    dim = _split_dims(problem, index, boxes, parts, row, form, best[boxes] < threshold)
    parents = cover.take(boxes)
    lower, upper, region = _halve(parents.lower, parents.upper, parents.region, dim)
    prior = ([np.concatenate([a, a]) for a in parents.pre_l], [np.concatenate([a, a]) for a in parents.pre_u])
    children = problem._bounds(index, lower, upper, region, prior)
    inherited = parents.take(np.concatenate([np.arange(len(parents))] * 2))
    inherited.lower, inherited.upper = children.lower, children.upper
    # Every bound of the parent stays valid on its children: keep the better one.
    better_S = inherited.S > children.S
    children.S = np.where(better_S, inherited.S, children.S)
    children.Scoef = np.where(better_S[:, :, None], inherited.Scoef, children.Scoef)
    children.hl = np.maximum(children.hl, inherited.hl)
    children.hu = np.minimum(children.hu, inherited.hu)
    inherited.S, inherited.Scoef, inherited.hl, inherited.hu = (children.S, children.Scoef,
                                                                children.hl, children.hu)
    problem.covers[index] = children
    _, _, own = problem.choose(index, parts)
    problem.covers[index] = inherited
    _, _, old = problem.choose(index, parts)
    take_old = old.min(axis=1) > own.min(axis=1)
    for name in ("HLc", "HLk", "HUc", "HUk"):
        getattr(children, name)[take_old] = getattr(inherited, name)[take_old]
    keep = np.setdiff1d(np.arange(len(cover)), boxes)
    problem.covers[index] = _Cover.concat([cover.take(keep), children])
    return int(boxes.size)


def _widest_first(problem: CoverProblem, index: int, boxes: np.ndarray, budget: int) -> np.ndarray:
    cover = problem.covers[index]
    rel = problem._relative_width(index, cover.lower, cover.upper, cover.region).sum(axis=1)
    return boxes[np.argsort(-rel[boxes], kind="stable")][:max(0, budget)]


def _preprove(problem: CoverProblem, deadline: float, max_boxes: int) -> None:
    """Split boxes where no row proves the property at zero change, widest first, within budgets.

    This is a plain input-splitting proof of the original network (its
    properties that hold end with every box proven, so the LP only has to keep
    them); near a counterexample it stops at the box budget.  Covers kept from
    an earlier call were done already and are left to the LP's refinement.
    """
    per_property = max(1, max_boxes // max(1, len(problem.covers)))
    todo = [i for i in range(len(problem.covers)) if i not in problem.from_cache]
    while todo and time.perf_counter() < deadline:
        halved = 0
        for index in todo:
            parts = problem.natural_parts(index)
            _, _, best = problem.choose(index, parts)
            open_boxes = np.flatnonzero(best.min(axis=1) < 0.0)
            budget = min(REFINE_PER_ROUND, per_property - len(problem.covers[index]))
            halved += _split(problem, index, _widest_first(problem, index, open_boxes, budget), parts, 0.0)
        if halved == 0:
            return


def _refine(problem: CoverProblem, budget: int) -> int:
    """Halve the tight boxes at the last solution (widest first); returns how many."""
    halved = 0
    share = max(1, budget // max(1, len(problem.covers)))
    for index in range(len(problem.covers)):
        parts = problem.last_parts[index]
        row, form = problem.last_choices[index]
        # Tight for the rows the LP used (a re-chosen row may have slack the LP never saw).
        bound = problem._bound_with(index, row, form, parts)
        tol = 1e-6 + 0.01 * float(problem.margin_rows[index].min())
        tight = np.flatnonzero(bound.min(axis=1) < tol)
        halved += _split(problem, index, _widest_first(problem, index, tight, share), parts, tol)
    return halved


def _or_layer_lp(context: StrategyContext, failed: RepairResult) -> tuple[StrategyOutcome, str]:
    """The layer LP's answer when the cover LP has none (its failure said in the message), with
    ``"lp"``; else ``failed`` with ``"cover"``."""
    result, layer_index = context.solve_lp()
    if result is None or layer_index is None:
        return StrategyOutcome(failed, None), "cover"
    note = f"cover not usable ({failed.message}); layer LP: {result.message}"
    return StrategyOutcome(dataclasses.replace(result, message=note), layer_index), "lp"


def cover_repair(context: StrategyContext) -> StrategyOutcome:
    """The ``cover`` strategy.

    While no property is flagged hard (``context.hard``: the verifier left it
    undecided in an earlier round) this is the ``lp`` strategy (the loop's layer
    LP over its ranked layers).  Otherwise the output layer's change is found by
    :class:`CoverProblem`: the hard properties proven on covers of their
    regions, the others kept by the pool's points, decisions kept by
    preservation rows.  In the first round with a new set of hard properties
    the layer LP's candidate (at the loop's widened margins) is returned
    instead when its change is smaller: the verifier may prove it (ACAS Xu
    N4,1: L1 0.016 that way against 0.21-0.40 from the cover); if it cannot,
    the next round is the cover's.  (Session 6 dropped this rule because on
    N2,9 the cover then found no answer within its budget, L1 1.41; the
    initial covers' candidate of :meth:`CoverProblem.search_rows_coarse` is
    that answer now.)  While the loop shrinks the margins of a proven repair
    (``context.shrink``) the layer LP's smaller candidate is offered if the
    proven one was the layer LP's, not if it was the cover's (N1,9: each such
    try is a verification that times out).  Returns a REPAIRED result with
    the smallest change found before the context's deadline; INFEASIBLE /
    TIMEOUT / SOLVER_FAILED when no LP had a solution.
    """
    hard = context.hard or tuple(False for _ in context.properties)
    if not any(hard):
        # Nothing the verifier failed to decide: the layer LP over the ranked layers, as ``lp``.
        result, layer_index = context.solve_lp()
        return StrategyOutcome(result, layer_index)
    key = tuple(p.canonical() for p, flag in zip(context.properties, hard, strict=True) if flag)
    # The first round with a new set of hard properties offers the layer LP's candidate when it is
    # smaller than the initial covers' (cheap) candidate: the verifier may prove it at the widened
    # margin; if not, the next round is the cover's.
    if not context.shrink and _first_hard_round(context, key):
        offered = _offer_layer_lp(context, _cover_outcome(context, hard, coarse_only=True)[0].result,
                                  "first (once for these hard properties)")
        if offered is not None:
            _LAST_RETURNED.clear()
            _LAST_RETURNED[key] = (context.network, "lp")
            return offered
    outcome, chosen = _cover_outcome(context, hard)
    # While shrinking, the layer LP is offered again only if its candidate was the one proven;
    # otherwise its failures just cost time.
    if (context.shrink and _LAST_RETURNED.get(key, (None, ""))[1] == "lp"
            and _LAST_RETURNED[key][0] is context.network):
        offered = _offer_layer_lp(context, outcome.result, "while shrinking margins")
        if offered is not None:
            outcome, chosen = offered, "lp"
    if not context.shrink:
        _LAST_RETURNED.clear()
        _LAST_RETURNED[key] = (context.network, chosen)
    return outcome


def _offer_layer_lp(context: StrategyContext, found: RepairResult | None, when: str) -> StrategyOutcome | None:
    """The layer LP's candidate when it is smaller than the cover's proven ``found``, else None."""
    if found is None or found.status is not RepairStatus.REPAIRED or found.objective is None:
        return None
    result, layer_index = context.solve_lp()
    if (result is None or layer_index is None or result.status is not RepairStatus.REPAIRED
            or result.objective is None or result.objective >= found.objective):
        return None
    note = (f"the layer LP's change {result.objective:.4g} is smaller than the cover's "
            f"{found.objective:.4g}, so it is tried {when}; layer LP: {result.message}")
    return StrategyOutcome(dataclasses.replace(result, message=note), layer_index)


def _first_hard_round(context: StrategyContext, key: tuple) -> bool:
    """Whether this is the first call with this set of hard properties on this network (and note it)."""
    seen = _FIRST_HARD_ROUND_SEEN.get(key)
    if seen is not None and seen is context.network:
        return False
    _FIRST_HARD_ROUND_SEEN.clear()
    _FIRST_HARD_ROUND_SEEN[key] = context.network
    return True


def _cover_outcome(context: StrategyContext, hard: tuple[bool, ...], coarse_only: bool = False
                   ) -> tuple[StrategyOutcome, str]:
    """The cover LP's repair, or the layer LP's answer when the cover LP has none; and which it is.

    With ``coarse_only`` only the initial covers' candidate is computed (nothing is cached, and
    no layer-LP fallback is asked for: the caller compares it with the layer LP).
    """
    from verirepair.repair.repair import check_patch
    from verirepair.solvers.registry import get_backend

    config = context.repair if context.repair is not None else RepairConfig()
    last = context.network.n_layers - 1
    start = time.perf_counter()
    try:
        problem = CoverProblem(context.network, context.properties, context.margins, hard,
                               context.pool, context.preserve_x, context.decision, config)
    except ValueError as exc:
        stats = RepairStats(solver=config.solver, solver_status="not run")
        failed = RepairResult(RepairStatus.SOLVER_FAILED, None, None, stats, str(exc))
        return (StrategyOutcome(failed, None), "cover") if coarse_only else _or_layer_lp(context, failed)
    backend = get_backend(config.solver)
    history: list[float] = []
    best: tuple[np.ndarray, float] | None = None
    last_status, message, n_vars, n_rows, rounds = SolveStatus.ERROR, "", 0, 0, 0
    max_boxes = min(MAX_BOXES, MAX_COVER_BYTES // max(1, problem.bytes_per_box()))
    # Rows searched on the initial covers (once per new hard property): a first candidate.  The
    # refined covers then start from a zero change, as without it: starting them at the coarse
    # change was measured and dropped (N4,1: their LPs stopped improving at once, 0.47 against 0.26).
    explore = len(problem.from_cache) < len(problem.covers)
    coarse = problem.search_rows_coarse(backend, start + ROW_SEARCH_FRACTION * (context.deadline - start),
                                        explore)
    best_boxes = 0
    if problem.coarse is not None:
        best, best_boxes = problem.coarse, problem.coarse_boxes
        rows = "; ".join(" ".join(str(int(r)) for r in f) for f in problem.searched)
        context.emit("repair", {"text": f"cover: initial covers, rows per polytope {rows}, change {coarse:.4g}"})
    if not coarse_only:
        _preprove(problem, start + PREPROVE_FRACTION * (context.deadline - start), max_boxes // 2)
        context.emit("repair", {"text": f"cover: {problem.n_boxes()} boxes before the first LP"})
    for rounds in range(1, 0 if coarse_only else MAX_ROUNDS + 1):
        last_status, objective, message, n_vars, n_rows = problem.solve(backend, context.deadline)
        if not last_status.has_solution or objective is None:
            break
        if best is None or float(objective) < best[1]:
            best, best_boxes = (problem.x_delta.copy(), float(objective)), problem.n_boxes()
        history.append(float(objective))
        context.emit("repair", {"text": f"cover round {rounds}: {problem.n_boxes()} boxes, "
                                        f"change {objective:.4g}"})
        if len(history) >= 2 and history[-1] > (1.0 - MIN_IMPROVEMENT) * history[-2]:
            break
        if len(history) >= COARSE_WINS_AFTER and min(history) > best[1]:
            break  # the refined covers have not caught up with the initial covers' candidate
        elapsed = time.perf_counter() - start
        left = context.deadline - time.perf_counter()
        if left < elapsed / rounds or problem.n_boxes() >= max_boxes:
            break
        if _refine(problem, min(REFINE_PER_ROUND, max_boxes - problem.n_boxes())) == 0:
            break
    elapsed = time.perf_counter() - start
    if not coarse_only:
        problem.remember()
    if best is None:
        status = {SolveStatus.INFEASIBLE: RepairStatus.INFEASIBLE,
                  SolveStatus.TIME_LIMIT: RepairStatus.TIMEOUT}.get(last_status, RepairStatus.SOLVER_FAILED)
        stats = RepairStats(solver=config.solver, solver_status=last_status.value, n_vars=n_vars,
                            n_constraints=n_rows, solve_time_s=elapsed, rounds=rounds)
        failed = RepairResult(status, None, None, stats, f"cover LP: {last_status.value} ({message})")
        return (StrategyOutcome(failed, None), "cover") if coarse_only else _or_layer_lp(context, failed)
    problem.x_delta = best[0]
    D, e = problem.split_delta()
    patch = Patch(last, D, e)
    cex = context.pool if context.pool.size else np.zeros((0, context.network.n_inputs))
    fixed, agreement = check_patch(context.network, patch, context.properties, cex,
                                   context.preserve_x, context.decision)
    stats = RepairStats(solver=config.solver, solver_status=last_status.value, n_vars=n_vars,
                        n_constraints=n_rows, solve_time_s=elapsed, rounds=rounds,
                        n_counterexamples=int(cex.shape[0]), n_preserve=int(context.preserve_x.shape[0]),
                        cex_fixed=fixed, preserve_agreement=agreement)
    note = "; preservation rows dropped (infeasible with the cover)" if problem.preserve_dropped else ""
    text = (f"output layer proven by construction on a cover of {best_boxes} boxes "
            f"after {rounds} rounds{note}")
    return StrategyOutcome(RepairResult(RepairStatus.REPAIRED, patch, best[1], stats, text), last), "cover"


class _Layout:
    """Columns of the split parts (p, q, u, v per used row of every property) and the box rows."""

    def __init__(self, problem: CoverProblem, used: list[np.ndarray], builder: ProblemBuilder) -> None:
        self.problem, self.builder = problem, builder
        m, k = problem.m, problem.k
        self.offset: list[dict[int, int]] = []
        eye = sp.identity(m, format="csr")
        for index, rows in enumerate(used):
            spec = problem.specs[index]
            offsets = {}
            for r in rows:
                first = builder.add_columns(4 * m, 0.0, np.inf)
                offsets[int(r)] = first
                a = spec.C[r]
                # p - q - (a D) = a W   and   u - v - (a D) = 0, (a D)_i = sum_o a_o D[o, i]
                minus_aD = sp.kron(sp.csr_matrix(-a[None, :]), eye)       # (m, k*m)
                gap = sp.csr_matrix((m, first - k * m))
                zero = sp.csr_matrix((m, m))
                builder.add_rows(sp.hstack([minus_aD, gap, eye, -eye, zero, zero]).tocsr(),
                                 a @ problem.W, a @ problem.W)
                builder.add_rows(sp.hstack([minus_aD, gap, zero, zero, eye, -eye]).tocsr(),
                                 np.zeros(m), np.zeros(m))
            self.offset.append(offsets)

    def parts(self, x: np.ndarray, index: int) -> dict:
        m = self.problem.m
        R = self.problem.specs[index].C.shape[0]
        natural = self.problem.natural_parts(index)
        out = {key: value.copy() for key, value in natural.items()}
        for r, first in self.offset[index].items():
            for j, key in enumerate(("p", "q", "u", "v")):
                out[key][r] = x[first + j * m:first + (j + 1) * m]
        assert out["p"].shape[0] == R
        return out

    def add_box_rows(self, index: int, row: np.ndarray, form: np.ndarray, vertex_sets: list) -> None:
        """Rows ``bound >= margin`` of every (box, polytope): shift rows once, feature rows per vertex."""
        problem, m, k = self.problem, self.problem.m, self.problem.k
        cover, spec = problem.covers[index], problem.specs[index]
        margin = problem.margin_rows[index]
        e_col = k * m
        # shift form: S + a.e + hl.u - hu.v >= margin
        box, poly = np.nonzero(form == 1)
        if box.size:
            r = row[box, poly]
            trip_r, trip_c, trip_v = [], [], []
            for i, (bx, rr) in enumerate(zip(box, r, strict=True)):
                first = self.offset[index][int(rr)]
                trip_r += [i] * (2 * m + k)
                trip_c += list(range(first + 2 * m, first + 4 * m)) + list(range(e_col, e_col + k))
                trip_v += list(cover.hl[bx]) + list(-cover.hu[bx]) + list(spec.C[rr])
            n_rows = box.size
            rhs = margin[r] - cover.S[box, r]
            self.builder.add_triplets(n_rows, np.array(trip_r), np.array(trip_c), np.array(trip_v),
                                      rhs, np.full(n_rows, np.inf))
        # feature form, one row per recorded vertex: p.Lh(v) - q.Uh(v) + a.(b+e) - b_r >= margin
        for boxes, polys, verts in vertex_sets:
            keep = form[boxes, polys] == 0
            boxes, polys, verts = boxes[keep], polys[keep], verts[keep]
            if boxes.size == 0:
                continue
            r = row[boxes, polys]
            hl_v = np.einsum("bmd,bd->bm", cover.HLc[boxes], verts) + cover.HLk[boxes]
            hu_v = np.einsum("bmd,bd->bm", cover.HUc[boxes], verts) + cover.HUk[boxes]
            firsts = np.array([self.offset[index][int(rr)] for rr in r])
            n_rows = boxes.size
            cols = np.concatenate([firsts[:, None] + np.arange(m)[None, :],
                                   firsts[:, None] + m + np.arange(m)[None, :],
                                   np.broadcast_to(e_col + np.arange(k), (n_rows, k))], axis=1)
            vals = np.concatenate([hl_v, -hu_v, spec.C[r]], axis=1)
            rows_idx = np.repeat(np.arange(n_rows), cols.shape[1])
            rhs = margin[r] - (spec.C[r] @ problem.b - spec.b[r])
            self.builder.add_triplets(n_rows, rows_idx, cols.ravel(), vals.ravel(),
                                      rhs, np.full(n_rows, np.inf))


def _point_rows(network: Network, properties: tuple[Property, ...], specs: list, margins: list,
                pool: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray] | None:
    """Rows keeping every pool point of every region outside each unsafe polytope by its margin.

    Per point and polytope the row with the most original slack is used (the
    ``cheapest`` rule of the layer LP): ``C_r (y0 + D h + e) - b_r >= margin_r``,
    linear in the output layer's change ``(D, e)``.
    """
    pool = np.asarray(pool, dtype=np.float64).reshape(-1, network.n_inputs)
    if pool.shape[0] == 0:
        return None
    acts = network.forward_all(pool)
    feats, y0 = acts[-2], acts[-1]
    blocks, lowers = [], []
    for prop, spec, margin in zip(properties, specs, margins, strict=True):
        inside = np.flatnonzero(prop.in_region(pool))
        if inside.size == 0:
            continue
        value = y0[inside] @ spec.C.T - spec.b[None, :] - margin[None, :]          # (n, R)
        for poly in range(spec.n_polys):
            rows = np.flatnonzero(spec.poly_of_row == poly)
            r = rows[np.argmax(value[:, rows], axis=1)]
            coef_w = (spec.C[r][:, :, None] * feats[inside][:, None, :]).reshape(inside.size, -1)
            blocks.append(sp.csr_matrix(np.hstack([coef_w, spec.C[r]])))
            lowers.append(-value[np.arange(inside.size), r])
    if not blocks:
        return None
    return sp.vstack(blocks, format="csr"), np.concatenate(lowers)


def _best_of(spec: SpecRows, forms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per box and polytope the (row, form) with the largest value among ``forms`` (each (n, R))."""
    n = forms[0].shape[0]
    best = np.full((n, spec.n_polys), -np.inf)
    row = np.zeros((n, spec.n_polys), dtype=np.int64)
    form = np.zeros((n, spec.n_polys), dtype=np.int64)
    for r, poly in enumerate(spec.poly_of_row):
        for f, values in enumerate(forms):
            better = values[:, r] > best[:, poly]
            best[better, poly] = values[better, r]
            row[better, poly], form[better, poly] = r, f
    return row, form, best


def _halve(lower: np.ndarray, upper: np.ndarray, region: np.ndarray, dim: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = np.arange(lower.shape[0])
    mid = (lower[index, dim] + upper[index, dim]) / 2.0
    left_upper, right_lower = upper.copy(), lower.copy()
    left_upper[index, dim] = mid
    right_lower[index, dim] = mid
    return (np.vstack([lower, right_lower]), np.vstack([left_upper, upper]),
            np.concatenate([region, region]))
