"""Figures of a localization result (matplotlib, no pyplot, no printing).

Pipeline position: the report/CLI calls :func:`plot_localization` after
``localize`` to show the top neurons and where in the network the blame lies.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from verirepair.atomic import write_bytes_atomic
from verirepair.errors import VerirepairError
from verirepair.localize.result import Localization

if TYPE_CHECKING:  # matplotlib is imported lazily, when a figure is drawn
    from matplotlib.figure import Figure

#: Image formats :func:`plot_localization` writes, chosen by the file's suffix.
PLOT_SUFFIXES = (".png", ".pdf", ".svg")

#: At most this many tick labels on the heat map's unit axis and layer axis.
_MAX_UNIT_TICKS = 11
_MAX_LAYER_TICKS = 12


def effect_matrix(loc: Localization) -> tuple[list[int], np.ndarray]:
    """Effects laid out as hidden layer x unit.

    Parameters
    ----------
    loc : Localization

    Returns
    -------
    layers : list of int
        The hidden layer indices present in the ranking, ascending.
    matrix : array, shape (len(layers), max units)
        ``effect_violation`` of each neuron, NaN where a layer has fewer units.
    """
    layers = sorted({e.layer_index for e in loc.ranking})
    width = 1 + max((e.unit for e in loc.ranking), default=-1)
    matrix = np.full((len(layers), width), np.nan)
    row = {layer: i for i, layer in enumerate(layers)}
    for e in loc.ranking:
        matrix[row[e.layer_index], e.unit] = e.effect_violation
    return layers, matrix


def _thinned(count: int, most: int) -> list[int]:
    """Positions ``0, s, 2s, ...`` below ``count``, at most about ``most`` of them."""
    step = max(1, math.ceil(count / most))
    return list(range(0, count, step))


def figure_title(loc: Localization, network_name: str | None, property_name: str | None) -> str:
    """The figure's title: what was localized, on which network, by which method."""
    what = f"property {property_name}" if property_name else "the property"
    where = f" on {network_name}" if network_name else ""
    return (f"Fault localization of {what}{where} ({loc.method}; {_count(loc.n_counterexamples, 'counterexample')}, "
            f"{_count(loc.n_correct, 'correct input')})")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def figure_localization(loc: Localization, top_k: int = 10, *, network_name: str | None = None,
                        property_name: str | None = None) -> Figure:
    """Bar chart of the ``top_k`` effects and a layer-by-neuron heat map.

    Tick labels are thinned so that none overlap, also on ACAS Xu N1,9
    (6 hidden layers of 50 units).

    Parameters
    ----------
    loc : Localization
    top_k : int
    network_name, property_name : str or None
        Named in the figure's title (e.g. the network file's stem and the
        property file's stem).

    Returns
    -------
    matplotlib Figure (not attached to pyplot; the caller saves or discards it)
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    fig = Figure(figsize=(11, 4.6), layout="constrained")
    fig.suptitle(figure_title(loc, network_name, property_name), fontsize=11)
    bars, heat = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
    top = loc.top(top_k)
    labels = [f"layer {e.layer_index} unit {e.unit}" for e in top]
    bars.barh(range(len(top))[::-1], [e.effect_violation for e in top], color="tab:red")
    bars.set_yticks(range(len(top))[::-1], labels, fontsize=8 if len(top) > 15 else 9)
    if len(top) > 25:
        # More rows than fit a label each: label every few, the rest stay as bars.
        keep = set(_thinned(len(top), 25))
        for position, tick in enumerate(bars.get_yticklabels()[::-1]):
            tick.set_visible(position in keep)
    bars.xaxis.set_major_locator(MaxNLocator(nbins=4))
    bars.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    bars.set_xlabel("effect on violation score")
    bars.set_title(f"top {len(top)} neurons", fontsize=10)
    layers, matrix = effect_matrix(loc)
    if matrix.size:
        image = heat.imshow(np.ma.masked_invalid(matrix), aspect="auto", cmap="viridis",
                            interpolation="nearest")
        rows = _thinned(len(layers), _MAX_LAYER_TICKS)
        heat.set_yticks(rows, [f"layer {layers[i]}" for i in rows])
        heat.xaxis.set_major_locator(MaxNLocator(nbins=_MAX_UNIT_TICKS - 1, integer=True))
        heat.set_xlim(-0.5, matrix.shape[1] - 0.5)
        bar = fig.colorbar(image, ax=heat, label="effect on violation score")
        if isinstance(bar.formatter, ScalarFormatter):  # a linear colour scale's default formatter
            bar.formatter.set_powerlimits((-2, 3))
    else:
        heat.text(0.5, 0.5, "no counterexamples: nothing to localize", ha="center",
                  va="center", transform=heat.transAxes)
    heat.set_xlabel("unit")
    title = "effects by hidden layer and unit"
    if loc.suggested_layer is not None:
        title += f" (suggested repair layer {loc.suggested_layer})"
    heat.set_title(title, fontsize=10)
    return fig


def plot_localization(loc: Localization, path: str | os.PathLike[str], top_k: int = 10, *,
                      network_name: str | None = None, property_name: str | None = None) -> Path:
    """Draw :func:`figure_localization` and write it atomically (umask-based file mode).

    Parameters
    ----------
    loc : Localization
    path : path-like
        Target image file; the format follows the suffix (see ``PLOT_SUFFIXES``).
    top_k : int
    network_name, property_name : str or None
        Named in the figure's title.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    VerirepairError
        If the suffix is not one of ``PLOT_SUFFIXES`` (checked before drawing).
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise VerirepairError(f"plot file {target}: unsupported image format {target.suffix or '(none)'!r}; "
                              f"use one of {', '.join(PLOT_SUFFIXES)}")
    fig = figure_localization(loc, top_k, network_name=network_name, property_name=property_name)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=suffix[1:], dpi=120)
    return write_bytes_atomic(target, buffer.getvalue())
