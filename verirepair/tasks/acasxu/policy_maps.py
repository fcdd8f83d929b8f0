"""ACAS Xu policy maps: the advisory over the intruder's position, original beside repaired.

Pipeline position: at the edge, in the ACAS Xu task.  :class:`~verirepair.tasks.acasxu.AcasXuTask`
offers these figures to the report through the generic
:meth:`verirepair.task.RepairTask.report_figures` hook; the core never learns their name.

A map is a top-down view: the ownship sits at the origin heading up (+y); the intruder is at
``(x, y)`` feet, that is ``rho = hypot(x, y)`` and ``theta = atan2(-x, y)`` (counter-clockwise
from the ownship's heading, so positive theta is to the left, as in Julian et al.).  The other
three inputs (the intruder's relative heading ``psi`` and the two speeds) are fixed for the
slice.  Each grid point is coloured by the advisory (the output with the lowest score).

A slice is chosen to show the repair: candidate slices go through sampled points of the
property's region where the original network violates the property (the worst first), then
through points whose advisory the repair changed; the candidate whose map has the most
violating or changed points inside the region wins (the box's centre when there is none).
On both panels the property's region is outlined and the grid points that violate the property
are crossed; on the repaired panel the points whose advisory changed are marked.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from verirepair.network.model import Network, Normalization
from verirepair.properties.property import Property, violating_mask

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

#: The advisories in output order (the lowest score is given) and their map colours.
ADVISORIES = ("COC", "WL", "WR", "SL", "SR")
COLOURS = ("#e9e9e9", "#9ecae1", "#fdae6b", "#2171b5", "#d94801")

#: Grid points per side of a drawn map, and of the coarse maps that rank candidate slices.
MAP_POINTS = 240
RANK_POINTS = 60

#: Points sampled in the property's region to find candidate slices, candidates kept, and the
#: steps of the random local search that pushes the most violating samples further (violations
#: such as N1,9's of phi7 are rarer than 1 in 50,000 samples).
N_SAMPLES = 50000
N_CANDIDATES = 16
N_SEARCH_STEPS = 60
SEARCH_BATCH = 32

#: Seconds our verifier may spend per mapped property looking for the original's
#: counterexamples (N1,9 phi7: 2.2 s; no sampling finds that one), within the report's time.
VERIFY_BUDGET_S = 4.0
#: A policy map is not started with less time than this left of the run's budget (drawing one
#: takes 1-3 s on a quiet machine).
MIN_MAP_TIME_S = 3.0


@dataclass(frozen=True, slots=True)
class PolicySlice:
    """One map: the fixed inputs (physical units), the window, and what the grid shows.

    Parameters
    ----------
    psi_rad, v_own_fps, v_int_fps : float -- the fixed inputs
    center_ft : (float, float) -- the window's centre (x, y), feet
    half_width_ft : float -- the window spans ``center +- half_width`` in x and y
    advisory_before, advisory_after : int arrays (n, n) -- advisory index, -1 outside the
        networks' domain (rho above its maximum); row 0 is the window's bottom
    in_region : bool array (n, n) -- grid points inside the property's input region
    violates_before, violates_after : bool arrays (n, n)
    """

    psi_rad: float
    v_own_fps: float
    v_int_fps: float
    center_ft: tuple[float, float]
    half_width_ft: float
    advisory_before: np.ndarray
    advisory_after: np.ndarray
    in_region: np.ndarray
    violates_before: np.ndarray
    violates_after: np.ndarray

    @property
    def changed(self) -> np.ndarray:
        """Grid points (inside the domain) whose advisory the repair changed, (n, n) bool."""
        return (self.advisory_before != self.advisory_after) & (self.advisory_before >= 0)

    def axes_kft(self) -> tuple[np.ndarray, np.ndarray]:
        """The grid's x and y coordinates in thousands of feet, each (n,)."""
        n = self.advisory_before.shape[0]
        cx, cy = self.center_ft
        return (np.linspace(cx - self.half_width_ft, cx + self.half_width_ft, n) / 1000.0,
                np.linspace(cy - self.half_width_ft, cy + self.half_width_ft, n) / 1000.0)


def position_ft(rho: float, theta: float) -> tuple[float, float]:
    """The intruder's map position (x, y) in feet for ``rho`` ft at ``theta`` rad."""
    return -rho * np.sin(theta), rho * np.cos(theta)


def compute_slice(original: Network, repaired: Network, prop: Property, norm: Normalization,
                  fixed_phys: np.ndarray, n: int = MAP_POINTS, center_ft: tuple[float, float] = (0.0, 0.0),
                  half_width_ft: float | None = None) -> PolicySlice:
    """The map of one slice (``fixed_phys`` = psi rad, v_own ft/s, v_int ft/s) over a window.

    The default window is the whole domain, ``rho <= max rho`` of the normalisation.
    """
    rho_max = float(norm.input_max[0])
    half = rho_max if half_width_ft is None else float(half_width_ft)
    cx, cy = center_ft
    x_ft, y_ft = np.meshgrid(np.linspace(cx - half, cx + half, n), np.linspace(cy - half, cy + half, n))
    rho, theta = np.hypot(x_ft, y_ft), np.arctan2(-x_ft, y_ft)
    inside = rho <= rho_max
    fixed = np.asarray(fixed_phys, dtype=np.float64)
    phys = np.column_stack([rho.ravel(), theta.ravel(), np.broadcast_to(fixed, (rho.size, 3))])
    x = norm.normalize_inputs(phys, clip=False)
    y0, y1 = original.forward(x), repaired.forward(x)
    shape = rho.shape
    before = np.where(inside, np.argmin(y0, axis=1).reshape(shape), -1)
    after = np.where(inside, np.argmin(y1, axis=1).reshape(shape), -1)
    region = prop.in_region(x).reshape(shape) & inside
    bad0 = violating_mask([prop], x, y0).reshape(shape) & inside
    bad1 = violating_mask([prop], x, y1).reshape(shape) & inside
    return PolicySlice(float(fixed[0]), float(fixed[1]), float(fixed[2]), (float(cx), float(cy)), half,
                       before, after, region, bad0, bad1)


def _most_violating(network: Network, prop: Property, rng: np.random.Generator, k: int) -> np.ndarray:
    """Up to ``k`` region points (normalised, (k, 5)) with the highest violation scores on ``network``.

    The best of :data:`N_SAMPLES` uniform samples, each improved by a random local search in its
    box (Gaussian steps shrinking from a tenth of the box's width; a step is kept when it raises
    the score).  Points whose score stays negative are still the closest to a violation found.
    """
    # The boxes' vertices join the samples: violations at the edge of the domain (N1,9's phi7
    # counterexample lies at theta = psi = -pi, rho near 0) are where uniform samples rarely go.
    corners = [np.where(np.array(bits, dtype=bool), box.upper, box.lower) for box in prop.input_boxes
               for bits in itertools.product((0, 1), repeat=box.lower.size)]
    x = np.vstack([prop.sample_inputs(rng, N_SAMPLES), *corners])
    score = prop.violation_score(network.forward(x))
    top = np.argsort(-score)[:k]
    points, scores = x[top].copy(), score[top].copy()
    # Each point searches within the first box holding it; all points step together (one batch).
    boxes = [next(b for b in prop.input_boxes if b.contains(p[None, :])[0]) for p in points]
    lower, upper = np.stack([b.lower for b in boxes]), np.stack([b.upper for b in boxes])
    width = upper - lower
    for step in range(N_SEARCH_STEPS):
        sigma = 0.1 * width * (1.0 - step / N_SEARCH_STEPS) + 1e-9            # (k, d)
        noise = rng.normal(size=(SEARCH_BATCH, *points.shape)) * sigma          # (batch, k, d)
        trial = np.clip(points + noise, lower, upper)
        trial_scores = prop.violation_score(network.forward(trial.reshape(-1, points.shape[1])))
        trial_scores = trial_scores.reshape(SEARCH_BATCH, len(points))
        best = np.argmax(trial_scores, axis=0)
        gain = trial_scores[best, np.arange(len(points))] > scores
        points[gain] = trial[best[gain], np.flatnonzero(gain)]
        scores[gain] = trial_scores[best[gain], np.flatnonzero(gain)]
    return points[np.argsort(-scores)]


@dataclass(frozen=True, slots=True)
class SliceChoice:
    """The chosen slice: fixed (psi, v_own, v_int) in physical units, and the witness it goes through.

    ``witness_phys`` (5,) is a point the original violates the property at (a verifier
    counterexample, or a sampled one), None when none was found.
    """

    fixed_phys: np.ndarray
    witness_phys: np.ndarray | None


def choose_slice(original: Network, repaired: Network, prop: Property, norm: Normalization,
                 rng: np.random.Generator, verify_budget_s: float = VERIFY_BUDGET_S) -> SliceChoice:
    """The slice that best shows the repair of ``prop``.

    Candidates: the original's counterexamples found by our verifier within
    ``verify_budget_s`` (default :data:`VERIFY_BUDGET_S`; none when it is 0), region points
    where the original comes closest to violating the property (:func:`_most_violating`),
    points whose advisory the repair changed, and each box's centre.  When a candidate
    violates the property, only violating candidates compete (the map must go through a
    violation); each is scored on a coarse map: ten per grid point in the region that violates
    before the repair, one per grid point whose advisory changed.
    """
    from verirepair.verify import VerifyConfig, verify

    x = prop.sample_inputs(rng, N_SAMPLES)
    changed = x[np.argmin(original.forward(x), axis=1) != np.argmin(repaired.forward(x), axis=1)]
    centres = [(box.lower + box.upper) / 2 for box in prop.input_boxes]
    proven = []
    if verify_budget_s > 0:
        found = verify(original, [prop], VerifyConfig(timeout_s=verify_budget_s,
                                                      max_counterexamples=N_CANDIDATES // 4))
        proven = [c.x for c in found.counterexamples if c.confirmed]
    candidates = np.vstack([*proven, _most_violating(original, prop, rng, N_CANDIDATES // 2),
                            changed[: N_CANDIDATES // 2], *centres])
    violating = violating_mask([prop], candidates, original.forward(candidates))
    if violating.any():
        candidates = candidates[violating]
    phys = candidates * np.asarray(norm.input_range) + np.asarray(norm.input_mean)
    best, best_count = len(phys) - 1, -1
    for index, row in enumerate(phys):
        view = compute_slice(original, repaired, prop, norm, row[2:], n=RANK_POINTS)
        count = int(10 * np.count_nonzero(view.in_region & view.violates_before)
                    + np.count_nonzero(view.in_region & view.changed))
        if count > best_count:
            best, best_count = index, count
    return SliceChoice(np.asarray(phys[best, 2:], dtype=np.float64),
                       np.asarray(phys[best], dtype=np.float64) if violating.any() else None)


def _draw_panel(ax: Axes, view: PolicySlice, advisory: np.ndarray, violates: np.ndarray,
                changed: np.ndarray | None, title: str, witness_ft: tuple[float, float] | None) -> None:
    from matplotlib.colors import ListedColormap

    xs, ys = view.axes_kft()
    cmap = ListedColormap(COLOURS).with_extremes(bad="white")
    ax.imshow(np.ma.masked_less(advisory, 0), origin="lower", extent=(xs[0], xs[-1], ys[0], ys[-1]), cmap=cmap,
              vmin=-0.5, vmax=len(ADVISORIES) - 0.5, interpolation="nearest")
    if view.in_region.any() and not view.in_region.all():
        ax.contour(xs, ys, view.in_region.astype(float), levels=[0.5], colors="k", linewidths=1.2,
                   linestyles="--")
    # Hatched, outlined areas (not markers), so the advisory's colour stays visible beneath.
    for mask, colour, hatch in ((violates, "#c00000", "xxxx"), (changed, "k", "....")):
        if mask is not None and mask.any():
            with _hatch_colour(colour):
                ax.contourf(xs, ys, mask.astype(float), levels=[0.5, 1.5], colors="none", hatches=[hatch])
            ax.contour(xs, ys, mask.astype(float), levels=[0.5], colors=colour, linewidths=0.9)
    if witness_ft is not None:
        ax.plot([witness_ft[0] / 1000.0], [witness_ft[1] / 1000.0], marker="*", markersize=16,
                markerfacecolor="none", markeredgecolor="#c00000", markeredgewidth=1.5, linestyle="none",
                label="counterexample of the original")
    if xs[0] <= 0.0 <= xs[-1] and ys[0] <= 0.0 <= ys[-1]:
        ax.plot([0], [0], marker="^", color="k", markersize=9, linestyle="none")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("x (1000 ft)")
    ax.set_aspect("equal")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])


@contextlib.contextmanager
def _hatch_colour(colour: str) -> Iterator[None]:
    """Draw hatches in ``colour`` (matplotlib takes the hatch colour from an rc setting)."""
    import matplotlib

    with matplotlib.rc_context({"hatch.color": colour, "hatch.linewidth": 0.8}):
        yield


def _counts(view: PolicySlice, label: str) -> str:
    changed_in = int(np.count_nonzero(view.changed & view.in_region))
    return (f"{label}: advisory changed on {int(view.changed.sum())} of {int((view.advisory_before >= 0).sum())} "
            f"grid points ({changed_in} in the region); violating: {int(view.violates_before.sum())} before, "
            f"{int(view.violates_after.sum())} after")


def figure_policy_map(network_label: str, property_label: str, views: Sequence[PolicySlice],
                      witness_phys: np.ndarray | None = None, repaired_label: str = "repaired") -> Figure:
    """Original and repaired advisories side by side, one row per window, changes and region marked.

    Parameters
    ----------
    network_label, property_label : str -- for the titles
    views : sequence of PolicySlice -- the rows (the whole domain, then a zoom on the witness)
    witness_phys : array (5,) or None -- a counterexample of the original, starred on the maps
    repaired_label : str
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=(12.5, 0.9 + 5.6 * len(views)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(views), 2, squeeze=False))
    witness_ft = None if witness_phys is None else position_ft(float(witness_phys[0]), float(witness_phys[1]))
    for row, view in enumerate(views):
        zoom = "" if row == 0 else f" (zoom on the counterexample: {2 * view.half_width_ft:,.0f} ft wide)"
        _draw_panel(axes[row, 0], view, view.advisory_before, view.violates_before, None,
                    f"original {network_label}{zoom}", witness_ft)
        _draw_panel(axes[row, 1], view, view.advisory_after, view.violates_after, view.changed,
                    f"{repaired_label} {network_label}{zoom}", witness_ft)
        axes[row, 0].set_ylabel("y (1000 ft)")
        if row > 0:
            axes[0, 0].add_patch(_window_patch(view))
            axes[0, 1].add_patch(_window_patch(view))
    # The intruder's heading: an arrow in the top-left corner of the overview panels.
    first = views[0]
    xs, ys = first.axes_kft()
    span = xs[-1] - xs[0]
    base = (xs[0] + 0.12 * span, ys[-1] - 0.08 * span)
    tip = (base[0] - 0.08 * span * np.sin(first.psi_rad), base[1] + 0.08 * span * np.cos(first.psi_rad))
    for ax in axes[0]:
        ax.annotate("", xy=tip, xytext=base, arrowprops={"arrowstyle": "->", "lw": 1.5})
        ax.text(base[0] + 0.03 * span, base[1] - 0.11 * span, "intruder heading", fontsize=7, ha="left")
    handles: list = [Patch(facecolor=c, edgecolor="0.5", label=a) for a, c in zip(ADVISORIES, COLOURS, strict=True)]
    handles.append(Patch(facecolor="none", edgecolor="k", linestyle="--", label=f"{property_label} input region"))
    if any(v.violates_before.any() or v.violates_after.any() for v in views):
        handles.append(Patch(facecolor="none", edgecolor="#c00000", hatch="xxxx",
                             label=f"violates {property_label}"))
    if any(v.changed.any() for v in views):
        handles.append(Patch(facecolor="none", edgecolor="k", hatch="....", label="advisory changed by the repair"))
    seen = {h.get_label() for h in handles}
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in seen:
                handles.append(handle)
                seen.add(label)
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    lines = [f"{network_label}, {property_label}: advisory over the intruder's position (ownship at 0, heading up) "
             f"at psi = {first.psi_rad:.3f} rad ({np.degrees(first.psi_rad):.0f} deg), v_own = "
             f"{first.v_own_fps:.0f} ft/s, v_int = {first.v_int_fps:.0f} ft/s"]
    lines += [_counts(v, "whole map" if i == 0 else "zoom") for i, v in enumerate(views)]
    fig.suptitle("\n".join(lines), fontsize=9.5)
    return fig


def _window_patch(view: PolicySlice) -> Any:
    from matplotlib.patches import Rectangle

    cx, cy = view.center_ft
    h = view.half_width_ft
    return Rectangle(((cx - h) / 1000.0, (cy - h) / 1000.0), 2 * h / 1000.0, 2 * h / 1000.0, fill=False,
                     edgecolor="#c00000", lw=1.2)


#: Half-widths of the zoom window around a witness, as shares of the domain's radius, tried from
#: the widest: the first in which the violation covers ZOOM_MIN_POINTS grid points is drawn
#: (else the narrowest).  N2,1's phi2 violation spans kilometres, N1,9's phi7 one a few feet.
ZOOM_SHARES = (0.06, 0.02, 0.006, 0.002, 0.0006)
ZOOM_MIN_POINTS = 150


def policy_map_figures(network_label: str, original: Network, repaired: Network,
                       named: Sequence[tuple[str, list[Property]]], norm: Normalization,
                       rng: np.random.Generator, repaired_label: str = "repaired",
                       deadline: float | None = None) -> list[tuple[str, Figure]]:
    """One policy-map figure per named property: ``[(title, Figure)]``.

    Each figure shows the whole domain and, when the original's counterexample was found, a
    zoom on it (violations are often smaller than one grid cell of the overview).

    Parameters
    ----------
    network_label : str -- e.g. ``"N2,1"``
    original, repaired : Network -- 5 normalised inputs, 5 scores (lowest is the advisory)
    named : sequence of (name, properties) -- each a property group (its first property's
        region is mapped; ACAS Xu properties have one each)
    norm : Normalization -- the ACAS Xu constants
    rng : numpy Generator -- for the slice search
    repaired_label : str -- "repaired" or "uncertified candidate"
    deadline : float or None -- ``time.perf_counter()`` value (the run's budget): the verifier's
        search for a counterexample gets at most a share of the time left, and no map is started
        with less than :data:`MIN_MAP_TIME_S` left (the maps drawn so far are returned)
    """
    figures = []
    for index, (name, props) in enumerate(named):
        budget = VERIFY_BUDGET_S
        if deadline is not None:
            left = deadline - time.perf_counter()
            if left < MIN_MAP_TIME_S:
                logger.info("policy maps: %.1f s left, %d of %d maps not drawn", left, len(named) - index, len(named))
                break
            budget = min(VERIFY_BUDGET_S, (left - MIN_MAP_TIME_S) / (2 * (len(named) - index)))
        prop = props[0]
        choice = choose_slice(original, repaired, prop, norm, rng, max(budget, 0.0))
        views = [compute_slice(original, repaired, prop, norm, choice.fixed_phys)]
        if choice.witness_phys is not None:
            center = position_ft(float(choice.witness_phys[0]), float(choice.witness_phys[1]))
            for share in ZOOM_SHARES:
                zoom = compute_slice(original, repaired, prop, norm, choice.fixed_phys, center_ft=center,
                                     half_width_ft=share * float(norm.input_max[0]))
                if np.count_nonzero(zoom.violates_before) >= ZOOM_MIN_POINTS:
                    break
            views.append(zoom)
        figures.append((f"ACAS Xu policy map, {name} region",
                        figure_policy_map(network_label, name, views, choice.witness_phys, repaired_label)))
    return figures
