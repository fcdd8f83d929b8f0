"""The figures of a repair report: violation scores, weight change, fidelity.

Pipeline position: drawn by :func:`verirepair.report.write_report` beside
``report.md``.  Each ``figure_*`` function builds a matplotlib
:class:`~matplotlib.figure.Figure` without pyplot (no global state, nothing
shown), so tests can read its titles and axes; :func:`save_figure` renders it
to bytes and writes the file atomically with the usual umask-based mode.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from verirepair.atomic import write_bytes_atomic
from verirepair.tolerances import PATCH_ZERO_TOL

if TYPE_CHECKING:
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

#: Resolution of the report's PNG files.
_DPI = 110

#: Parameters changed in a heat map beyond which cells are no longer outlined
#: one by one (the outlines would cover the colours).
_MAX_OUTLINED = 400


def save_figure(fig: Figure, path: Path) -> Path:
    """Render ``fig`` as PNG into memory and write it to ``path`` atomically.

    Returns
    -------
    Path -- the path written
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return write_bytes_atomic(Path(path), buffer.getvalue())


def figure_violation_scores(network_name: str, panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
                            after_label: str = "after") -> Figure:
    """Histograms of the violation score before and after, one panel per property.

    The count axis is logarithmic: a repair typically leaves a few dozen
    violating samples out of thousands (33 of 4000 on ACAS Xu N2,1 phi2), which
    a linear axis draws as bars one pixel high.  The unsafe side (score >= 0,
    see :meth:`verirepair.properties.property.Property.violation_score`) is shaded
    and the legend counts the samples that fall into it.

    Parameters
    ----------
    network_name : str -- named in the title
    panels : sequence of (property name, before scores (n,), after scores (n,))
        Violation scores of the same ``n`` inputs sampled in the property's region.
    after_label : str -- legend name of the changed network ("after", or
        "uncertified candidate" when nothing was certified)

    Returns
    -------
    matplotlib Figure
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.5, 0.6 + 2.9 * len(panels)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(panels), 1, squeeze=False)[:, 0])
    for ax, (name, before, after) in zip(axes, panels, strict=True):
        both = np.concatenate([before, after])
        low, high = float(both.min()), float(both.max())
        # Bins that straddle 0 exactly, so no bar mixes safe and unsafe samples.
        high = max(high, 0.0) + 1e-12
        low = min(low, 0.0)
        span = high - low
        n_bins = 60
        width = span / n_bins
        edges = np.arange(np.floor(low / width), np.ceil(high / width) + 1) * width
        ax.axvspan(0.0, edges[-1], color="tab:red", alpha=0.08, lw=0, label="unsafe set (score >= 0)")
        ax.axvline(0.0, color="tab:red", lw=1)
        for scores, when, colour in ((before, "before", "tab:blue"), (after, after_label, "tab:orange")):
            unsafe = int(np.count_nonzero(scores >= 0.0))
            ax.hist(scores, bins=edges, alpha=0.55, histtype="stepfilled", color=colour, edgecolor="0.2",
                    linewidth=0.6, label=f"{when}: {unsafe} of {scores.size} samples unsafe")
        ax.set_yscale("log")
        ax.set_ylim(0.5, None)
        ax.set_xlim(edges[0], edges[-1])
        if not np.any(before >= 0.0):
            ax.text(0.02, 0.04, f"no sampled input is unsafe before the repair: the violation the verifier "
                    f"found is rarer than 1 in {before.size}", transform=ax.transAxes, fontsize=7,
                    color="0.25", va="bottom")
        ax.set_ylabel("sampled inputs (log)")
        ax.set_title(f"{name} on {network_name}", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    axes[-1].set_xlabel("violation score (>= 0: output in the unsafe set)")
    fig.suptitle("Violation score over each repaired property's input region")
    return fig


def _changed_colormap() -> Colormap:
    """RdBu_r without its pale middle: the smallest change still gets a clear colour."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    base = colormaps["RdBu_r"]
    colours = np.vstack([base(np.linspace(0.0, 0.36, 128)), base(np.linspace(0.64, 1.0, 128))])
    # Unchanged parameters are masked and drawn light grey.
    return ListedColormap(colours, name="changed_RdBu_r").with_extremes(bad="0.93")


def _decade_ticks(smallest: float, largest: float, per_side: int = 4) -> list[float]:
    """Colour-bar ticks ``-10^k .. -10^j, 10^j .. 10^k`` covering [smallest, largest].

    No tick at 0: the linear part of the scale is too narrow to label.
    """
    high = int(np.floor(np.log10(largest)))
    low = max(int(np.ceil(np.log10(smallest))), high - per_side + 1)
    decades = [10.0 ** k for k in range(low, high + 1)] or [largest]
    return [-d for d in reversed(decades)] + decades


def figure_weight_change(network_name: str, layer_index: int, delta_weight: np.ndarray,
                         delta_bias: np.ndarray, title_prefix: str = "Weight change") -> Figure:
    """Heat map of a patch, on which every changed parameter is visible.

    A linear colour scale symmetric about 0 draws a change 700 times smaller
    than the largest as white (on N2,1, 2 of the 5 changed parameters).  Here
    unchanged cells are grey, changed ones are coloured on a symmetric-log
    scale whose linear part lies below the smallest change, the colour map has
    no white middle, and each changed cell is outlined (when there are at most
    ``_MAX_OUTLINED`` of them).

    Parameters
    ----------
    network_name : str -- named in the title
    layer_index : int
    delta_weight : array, shape (out, in)
    delta_bias : array, shape (out,)
    title_prefix : str

    Returns
    -------
    matplotlib Figure
    """
    from matplotlib.colors import SymLogNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    delta = np.hstack([np.asarray(delta_weight, dtype=np.float64),
                       np.asarray(delta_bias, dtype=np.float64)[:, None]])
    changed = np.abs(delta) > PATCH_ZERO_TOL
    n_out, n_cols = delta.shape
    fig = Figure(figsize=(7.5, 1.6 + min(4.0, 0.25 * n_out)), layout="constrained")
    ax = fig.subplots()
    if changed.any():
        magnitudes = np.abs(delta[changed])
        smallest, largest = float(magnitudes.min()), float(magnitudes.max())
        norm = SymLogNorm(linthresh=smallest / 2, linscale=0.1, vmin=-largest, vmax=largest, base=10)
        image = ax.imshow(np.ma.masked_where(~changed, delta), cmap=_changed_colormap(), norm=norm,
                          aspect="auto", interpolation="nearest")
        bar = fig.colorbar(image, ax=ax)
        bar.set_ticks(_decade_ticks(smallest, largest))
        bar.minorticks_off()
        bar.set_label("change (symmetric log scale)")
        if changed.sum() <= _MAX_OUTLINED:
            for row, col in zip(*np.nonzero(changed), strict=True):
                ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="k", lw=0.8))
        summary = f"{int(changed.sum())} of {delta.size} parameters changed, |change| {smallest:.2g} to {largest:.2g}"
    else:
        ax.imshow(np.zeros_like(delta), cmap="Greys", vmin=0, vmax=1, aspect="auto")
        summary = "no parameter changed"
    ax.axvline(n_cols - 1.5, color="0.4", lw=0.8, ls="--")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
    ax.set_xlabel("input unit (last column, right of the dashed line: bias); grey = unchanged")
    ax.set_ylabel("output unit")
    ax.set_title(f"{title_prefix} of layer {layer_index} on {network_name}\n{summary}", fontsize=10)
    return fig


def figure_fidelity(network_name: str, bars: Sequence[tuple[str, float]],
                    subject: str = "repaired network") -> Figure:
    """Horizontal bars of the fidelity measures in percent.

    Labels sit inside long bars and just right of short ones, so none runs
    past the axes (``100.00%`` used to).

    Parameters
    ----------
    network_name : str
    bars : sequence of (label, percentage in [0, 100])
    subject : str -- what was measured ("repaired network", "uncertified candidate")

    Returns
    -------
    matplotlib Figure
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 1.1 + 0.45 * len(bars)), layout="constrained")
    ax = fig.subplots()
    labels = [label for label, _ in bars]
    values = [value for _, value in bars]
    ax.barh(labels, values, color="tab:blue")
    ax.set_xlim(0, 100)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("%")
    ax.invert_yaxis()           # the first measure on top
    ax.set_title(f"Fidelity of the {subject} to {network_name}", fontsize=10)
    for y, value in enumerate(values):
        if value >= 20:
            ax.text(value - 1, y, f"{value:.2f}%", va="center", ha="right", color="white", fontsize=9)
        else:
            ax.text(value + 1, y, f"{value:.2f}%", va="center", ha="left", color="black", fontsize=9)
    return fig
