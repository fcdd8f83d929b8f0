"""Complete search by splitting ReLU activations (for wide inputs).

Pipeline position: :func:`verirepair.verify.engine.verify_own` calls
:func:`search` instead of the input-splitting :func:`verirepair.verify.bab.search`
when :func:`use_activation_splitting` says so (many inputs, piecewise-linear
network); the result type is the same :class:`SearchOutcome`.

Algorithm, per input box of the property:

1. :func:`verirepair.verify.attack.restarts` spends up to
   :data:`ATTACK_FRACTION` of the time left on PGD restarts.
2. A *sub-domain* is the box plus split constraints ``s_j z_j >= 0`` on some
   hidden units.  Sub-domains live on a depth-first stack
   (:class:`~verirepair.verify.search_state.BoxStack`) with their parent's
   layer bounds, slopes ``alpha`` and multipliers ``beta`` (warm starts).
3. A batch (as many as :func:`verirepair.verify.bab.batch_limit` allows) is
   bounded at once: clamped and recomputed intermediate bounds
   (:func:`~verirepair.verify.beta_crown.split_intermediate`; an empty
   sub-domain is closed), then ``alpha``/``beta``-optimised CROWN bounds of the
   specification rows (:func:`~verirepair.verify.beta_crown.optimize_split_lower`).
   A polytope is excluded when a row's bound exceeds ``BOUND_TOL``; a
   sub-domain with every polytope excluded is closed.
4. Open sub-domains: the corners minimising their hardest rows' linear bounds
   are tried as counterexamples, then pushed by PGD
   (:func:`~verirepair.verify.attack.from_minimisers`).
5. A sub-domain whose hidden units are all stable is decided exactly by an LP
   (:func:`~verirepair.verify.lp_tighten.polytope_margin`; the network is
   linear there and the clamped bounds encode the split constraints); an LP
   point that fails confirmation leaves it undecided (answer UNKNOWN).
6. Otherwise the unit chosen by :func:`~verirepair.verify.branching.choose_units`
   (BaB-SR + FSB look-ahead) is split and both children are pushed.

Verdicts as in :mod:`verirepair.verify.bab`: HOLDS when every sub-domain of
every box was closed by a sound bound; VIOLATED with a confirmed
counterexample; TIMEOUT when the clock runs out; UNKNOWN when some
sub-domain could not be decided.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Box, Property
from verirepair.tolerances import BOUND_TOL
from verirepair.verify import attack, lp_tighten
from verirepair.verify.bab import BATCH_TIME_FRACTION, batch_limit
from verirepair.verify.beta_crown import (
    SPLIT_STEPS,
    initial_alphas,
    optimize_split_lower,
    split_intermediate,
)
from verirepair.verify.bounds import intermediate_bounds, with_linear_output
from verirepair.verify.branching import choose_units
from verirepair.verify.falsify import deepen
from verirepair.verify.result import Counterexample, Verdict, VerifyConfig
from verirepair.verify.search_state import BoxStack, SearchOutcome, SpecRows

#: Per-property choice of the split (see :func:`use_activation_splitting`).
#: Measured (benchmarks/results/wide_inputs.md): ACAS Xu (5 inputs) is solved
#: far faster by input splitting; on the 64- and 784-input digits networks
#: input splitting solves only the instances that plain CROWN already proves.
ACTIVATION_SPLIT_MIN_INPUTS = 16
#: Share of the time left spent on PGD restarts before the search.  Measured
#: (benchmarks/results/wide_inputs.md, falsifier ablation, 24 digits instances where
#: the first falsifier fails by construction): the restarts found no counterexample
#: at 2 %, 5 % or 15 % (the 2 rare ones fell to the root's bound-minimiser corners),
#: while the 15 proofs took 66.2 s (attacks off) / 75.8 / 81.8 / 103.6 s; 2 % keeps
#: one round of restarts at a small cost.
ATTACK_FRACTION = 0.02
#: Adam steps on alpha at the root (the children start from its slopes).
ROOT_STEPS = 40
#: Recompute the intermediate bounds of every sub-domain from its clamped
#: bounds (tighter, costs one backward pass per unstable unit) instead of
#: inheriting the parent's (clamped; the multipliers carry the split to the
#: earlier layers).  Measured at 30 s on three digits instances: inheriting
#: proved d8_4x256 eps 0.04 in 8.6 s (recompute 9.3 s) and d28_2x256 eps 0.04
#: in 3.3 s (5.4 s), and bounded 3.5x more sub-domains of d28_4x128 eps 0.04
#: (871 vs 251; both timed out); recomputing spent 2/3 of the time in the
#: forward symbolic pass over 784 inputs.
RECOMPUTE_INTERMEDIATE = False
#: Accepted ``split`` modes of :func:`use_activation_splitting`.
SPLIT_MODES = ("auto", "input", "relu")


def _piecewise_linear(network: Network) -> bool:
    """Whether every layer is affine followed by a ReLU or nothing (no other activation)."""
    return all(layer.activation.is_relu or layer.activation.is_identity for layer in network.layers)


def use_activation_splitting(network: Network, prop: Property, mode: str = "auto") -> bool:
    """The per-property choice: split ReLU activations (True) or the input box (False).

    ``mode`` forces ``"input"`` or ``"relu"``; ``"auto"`` splits activations
    when the network is piecewise linear and has at least
    :data:`ACTIVATION_SPLIT_MIN_INPUTS` inputs (halving one of hundreds of
    input edges barely changes a bound; fixing one ReLU removes a relaxation).
    A network with other activations always splits inputs.
    """
    if mode not in SPLIT_MODES:
        raise ValueError(f"split mode must be one of {SPLIT_MODES}, got {mode!r}")
    if not _piecewise_linear(network) or not any(layer.relu for layer in network.layers[:-1]):
        return False
    if mode != "auto":
        return mode == "relu"
    return prop.n_inputs >= ACTIVATION_SPLIT_MIN_INPUTS


class _BoxSearch:
    """Activation-splitting branch and bound on one input box."""

    def __init__(self, network: Network, prop: Property, box: Box, config: VerifyConfig,
                 deadline: float, outcome: SearchOutcome) -> None:
        self.original = network
        self.net = with_linear_output(network)
        self.prop, self.box, self.config, self.deadline = prop, box, config, deadline
        self.outcome = outcome
        self.spec = SpecRows.of(prop)
        self.widths = [layer.out_features for layer in self.net.layers]
        self.offsets = np.cumsum([0] + self.widths)
        self.hidden = self.net.n_layers - 1
        self.splittable = [np.full(layer.out_features, layer.relu)
                           for layer in self.net.layers[:-1]]
        self.h_off = np.cumsum([0] + self.widths[:-1])
        self.max_batch = batch_limit(self.net, self.spec.C.shape[0], config.batch_size)
        self.undecided = 0
        self.root_points: np.ndarray | None = None
        self.seconds_per_domain = 0.0

    def _layers(self, flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
        return [flat[:, a:b] for a, b in itertools.pairwise(offsets)]

    def _hidden3(self, flat: np.ndarray) -> list[np.ndarray]:
        return [flat[:, :, a:b] for a, b in itertools.pairwise(self.h_off)]

    def run(self) -> Verdict:
        lower, upper = self.box.lower[None, :], self.box.upper[None, :]
        pre_l, pre_u = intermediate_bounds(self.net, lower, upper, "backward")
        k = self.spec.C.shape[0]
        alphas = initial_alphas(self.net, pre_l, pre_u, k)
        stack = BoxStack()
        total = int(self.offsets[-1])
        stack.push((np.zeros((1, total), dtype=np.int8), np.hstack(pre_l), np.hstack(pre_u),
                    np.concatenate(alphas, axis=2), np.zeros((1, k, int(self.h_off[-1]))),
                    np.ones((1, self.spec.n_polys), dtype=bool), np.zeros(1, dtype=np.int64)))
        first = True
        while len(stack):
            if time.perf_counter() > self.deadline:
                self.outcome.message = f"timeout with {len(stack)} open sub-domains (ReLU splits)"
                # The open sub-domains are not boxes; the box holding them all is.
                self.outcome.open_lower = self.box.lower[None, :].copy()
                self.outcome.open_upper = self.box.upper[None, :].copy()
                return Verdict.TIMEOUT
            before, clock = self.outcome.subproblems, time.perf_counter()
            verdict = self.step(stack, ROOT_STEPS if first else SPLIT_STEPS)
            self.seconds_per_domain = ((time.perf_counter() - clock)
                                       / max(1, self.outcome.subproblems - before))
            if verdict is Verdict.VIOLATED:
                return verdict
            if first and len(stack):
                # The root bound did not prove it: PGD restarts, seeded by its minimisers.
                budget = ATTACK_FRACTION * max(0.0, self.deadline - time.perf_counter())
                found = attack.restarts(self.original, self.prop, self.box.lower, self.box.upper,
                                        np.random.default_rng(self.config.seed), budget,
                                        self.deadline, self.root_points)
                if found:
                    return self._violated(found)
            first = False
        return Verdict.UNKNOWN if self.undecided else Verdict.HOLDS

    def _violated(self, found: list[Counterexample]) -> Verdict:
        self.outcome.counterexamples = deepen(self.original, self.prop, found[:4], self.deadline)
        return Verdict.VIOLATED

    def _all_proven(self, bound: np.ndarray, open_polys: np.ndarray) -> bool:
        """Whether ``bound`` (n, k) excludes every still open polytope of every sub-domain."""
        poly_margin, _ = self.spec.best_rows(bound - self.spec.b - BOUND_TOL)
        return bool(((poly_margin > 0.0) | ~open_polys).all())

    def step(self, stack: BoxStack, steps: int) -> Verdict | None:
        """Bound, attack, decide or split one batch of sub-domains."""
        count = self.max_batch
        if self.seconds_per_domain > 0.0:
            # As in bab.BranchAndBound.batch_count: a batch may take at most
            # BATCH_TIME_FRACTION of the time left, so the deadline holds.
            left = self.deadline - time.perf_counter()
            count = max(1, min(count, int(BATCH_TIME_FRACTION * left / self.seconds_per_domain)))
        flat_s, flat_l, flat_u, flat_a, flat_b, open_polys, depth = stack.pop(count)
        n = flat_s.shape[0]
        self.outcome.subproblems += n
        self.outcome.max_depth = max(self.outcome.max_depth, int(depth.max()))
        lower = np.broadcast_to(self.box.lower, (n, self.box.lower.shape[0]))
        upper = np.broadcast_to(self.box.upper, (n, self.box.upper.shape[0]))
        signs = self._layers(flat_s, self.offsets)
        pre_l, pre_u, empty = split_intermediate(self.net, lower, upper,
                                                 self._layers(flat_l, self.offsets),
                                                 self._layers(flat_u, self.offsets), signs,
                                                 RECOMPUTE_INTERMEDIATE)
        keep = ~empty
        res = optimize_split_lower(self.net, pre_l, pre_u, signs[:self.hidden], self.spec.C,
                                   lower, upper, steps, self._hidden3(flat_a), self._hidden3(flat_b),
                                   done=lambda bound: self._all_proven(bound, open_polys))
        margin = res.bound - self.spec.b - BOUND_TOL
        poly_margin, best_row = self.spec.best_rows(margin)
        open_polys = open_polys & ~(poly_margin > 0.0)
        keep &= open_polys.any(axis=1)
        idx = np.flatnonzero(keep)
        if idx.size == 0:
            return None
        sub = lambda arrays: [a[idx] for a in arrays]  # noqa: E731
        pre_l, pre_u, signs = sub(pre_l), sub(pre_u), sub(signs)
        alphas, betas, lambdas = sub(res.alphas), sub(res.betas), sub(res.lambdas)
        open_polys, best_row, depth = open_polys[idx], best_row[idx], depth[idx]
        coef, lower, upper = res.coef[idx], lower[idx], upper[idx]
        points, owners = attack.bound_minimisers(coef, best_row, open_polys, lower, upper)
        self.root_points = points
        found = attack.from_minimisers(self.original, self.prop, points, lower[owners],
                                       upper[owners], self.deadline)
        if found:
            return self._violated(found)
        unstable = sum(((lo < 0.0) & (hi > 0.0) & ok[None, :]).sum(axis=1)
                       for lo, hi, ok in zip(pre_l[:self.hidden], pre_u[:self.hidden],
                                             self.splittable, strict=True))
        stable = np.flatnonzero(unstable == 0)
        if stable.size:
            verdict = self._decide_by_lp(stable, pre_l, pre_u, open_polys)
            if verdict is not None:
                return verdict
        go = np.flatnonzero(unstable > 0)
        if go.size == 0:
            return None
        sub = lambda arrays: [a[go] for a in arrays]  # noqa: E731
        pre_l, pre_u, signs = sub(pre_l), sub(pre_u), sub(signs)
        alphas, betas, lambdas = sub(alphas), sub(betas), sub(lambdas)
        open_polys, best_row, depth = open_polys[go], best_row[go], depth[go]
        lower, upper = lower[go], upper[go]
        unit = choose_units(self.net, pre_l, pre_u, signs, self.spec.C, self.spec.b,
                            self.spec.poly_of_row, open_polys, lower, upper, alphas, betas,
                            lambdas, best_row, self.splittable)
        self._push_children(stack, unit, pre_l, pre_u, signs, alphas, betas, open_polys, depth)
        return None

    def _decide_by_lp(self, stable: np.ndarray, pre_l: list[np.ndarray], pre_u: list[np.ndarray],
                      open_polys: np.ndarray) -> Verdict | None:
        """Exact LPs on sub-domains without unstable units; marks them closed or undecided."""
        for i in stable:
            lo = [a[i] for a in pre_l]
            hi = [a[i] for a in pre_u]
            for poly_index in np.flatnonzero(open_polys[i]):
                if time.perf_counter() > self.deadline:
                    self.undecided += 1
                    return None
                poly = self.prop.unsafe[poly_index]
                result, calls = lp_tighten.polytope_margin(self.net, self.box.lower, self.box.upper,
                                                           lo, hi, poly.A, poly.b, self.deadline)
                self.outcome.lp_calls += calls
                if result.margin > BOUND_TOL:
                    continue
                if result.x is not None:
                    found = attack.from_minimisers(
                        self.original, self.prop, result.x[None, :], self.box.lower[None, :],
                        self.box.upper[None, :], self.deadline)
                    if found:
                        return self._violated(found)
                self.undecided += 1
                break
        return None

    def _push_children(self, stack: BoxStack, unit: np.ndarray, pre_l: list[np.ndarray],
                       pre_u: list[np.ndarray], signs: list[np.ndarray], alphas: list[np.ndarray],
                       betas: list[np.ndarray], open_polys: np.ndarray, depth: np.ndarray) -> None:
        n = unit.shape[0]
        flat_s = np.hstack(signs).astype(np.int8)
        layer_of = np.searchsorted(self.h_off, unit, side="right") - 1
        column = self.offsets[layer_of] + (unit - self.h_off[layer_of])
        active, inactive = flat_s.copy(), flat_s.copy()
        active[np.arange(n), column] = 1
        inactive[np.arange(n), column] = -1
        flat_l, flat_u = np.hstack(pre_l), np.hstack(pre_u)
        flat_a, flat_b = np.concatenate(alphas, axis=2), np.concatenate(betas, axis=2)
        self.outcome.splits += n
        two = lambda a: np.concatenate([a, a])  # noqa: E731
        stack.push((np.concatenate([inactive, active]), two(flat_l), two(flat_u), two(flat_a),
                    two(flat_b), two(open_polys), two(depth + 1)))


def search(network: Network, prop: Property, config: VerifyConfig, deadline: float
           ) -> SearchOutcome:
    """Decide ``prop`` on ``network`` by ReLU-splitting branch and bound.

    Parameters
    ----------
    network : Network -- piecewise linear (ReLU or no activation per layer)
    prop : Property
    config : VerifyConfig -- ``batch_size`` and ``seed`` are used
    deadline : float -- ``time.perf_counter()`` value at which to stop

    Returns
    -------
    SearchOutcome -- as :func:`verirepair.verify.bab.search`; on TIMEOUT the one
        "open box" reported is the input box being searched (the open
        sub-domains are not boxes, and that box contains them all)
    """
    outcome = SearchOutcome(Verdict.HOLDS)
    unknown = 0
    for box in prop.input_boxes:
        search_box = _BoxSearch(network, prop, box, config, deadline, outcome)
        verdict = search_box.run()
        if verdict in (Verdict.VIOLATED, Verdict.TIMEOUT):
            outcome.verdict = verdict
            return outcome
        unknown += search_box.undecided
    if unknown:
        outcome.verdict = Verdict.UNKNOWN
        outcome.message = f"{unknown} fully split sub-domains stayed undecided (LP point not confirmed)"
    return outcome
