"""Figures of a localization result (matplotlib, Agg backend, no printing).

Pipeline position: the report/CLI calls :func:`plot_localization` after
``localize`` to show the top neurons and where in the network the blame lies.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from verirepair.localize.result import Localization


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


def figure_localization(loc: Localization,
                        top_k: int = 10) -> "matplotlib.figure.Figure":  # noqa: F821
    """Bar chart of the ``top_k`` effects and a layer-by-neuron heat map.

    Parameters
    ----------
    loc : Localization
    top_k : int

    Returns
    -------
    matplotlib Figure (not attached to pyplot; the caller saves or discards it)
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    bars, heat = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
    top = loc.top(top_k)
    labels = [f"L{e.layer_index}:{e.unit}" for e in top]
    bars.barh(range(len(top))[::-1], [e.effect_violation for e in top], color="tab:red")
    bars.set_yticks(range(len(top))[::-1], labels)
    bars.set_xlabel("effect on violation score")
    bars.set_title(f"top {len(top)} neurons ({loc.method})")
    layers, matrix = effect_matrix(loc)
    if matrix.size:
        image = heat.imshow(np.ma.masked_invalid(matrix), aspect="auto", cmap="viridis",
                            interpolation="nearest")
        heat.set_yticks(range(len(layers)), [f"layer {i}" for i in layers])
        fig.colorbar(image, ax=heat, label="effect")
    else:
        heat.text(0.5, 0.5, "no counterexamples: nothing to localize", ha="center",
                  va="center", transform=heat.transAxes)
    heat.set_xlabel("unit")
    title = "effects by layer and unit"
    if loc.suggested_layer is not None:
        title += f" (suggested repair layer {loc.suggested_layer})"
    heat.set_title(title)
    return fig


def plot_localization(loc: Localization, path: str | os.PathLike[str], top_k: int = 10) -> Path:
    """Draw :func:`figure_localization` and save it atomically.

    Parameters
    ----------
    loc : Localization
    path : path-like
        Target image file; the format follows the suffix (``.png``, ``.pdf``, ``.svg``).
    top_k : int

    Returns
    -------
    Path
        The written file.
    """
    target = Path(path)
    fig = figure_localization(loc, top_k)
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.",
                                   suffix=target.suffix)
    os.close(handle)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
