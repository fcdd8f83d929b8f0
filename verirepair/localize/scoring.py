"""Violation scores of inputs under a *list* of properties.

Pipeline position: shared by the samplers, the localizers and the planted-fault
generator.  The score of one property is the shared
:meth:`verirepair.properties.property.Property.violation_score` (signed distance to
the unsafe boundary, positive inside); for a list of properties the score of an
input is the maximum over the properties whose input region contains it, and
``-inf`` when no region does (such an input cannot violate anything).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from verirepair.properties.property import Property, violation_score_torch

if TYPE_CHECKING:  # torch is imported lazily, by the functions that need it
    import torch


def region_mask(props: Sequence[Property], x: np.ndarray) -> np.ndarray:
    """Which property regions contain each input.

    Parameters
    ----------
    props : sequence of Property, length P
    x : array, shape (n, d)

    Returns
    -------
    array of bool, shape (n, P)
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if not props:
        return np.zeros((x.shape[0], 0), dtype=bool)
    return np.stack([prop.in_region(x) for prop in props], axis=1)


def masked_scores(props: Sequence[Property], y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Combined violation score of outputs whose region membership is known.

    Parameters
    ----------
    props : sequence of Property, length P
    y : array, shape (..., n, m)
        Outputs; the second-to-last axis indexes the inputs of ``mask``
        (leading axes are batches of interventions).
    mask : array of bool, shape (n, P)

    Returns
    -------
    array, shape (..., n)
        Max over the properties whose region contains the input; ``-inf`` for
        inputs in no region.
    """
    y = np.asarray(y, dtype=np.float64)
    lead, m = y.shape[:-1], y.shape[-1]
    flat = y.reshape(-1, m)
    out = np.full(lead, -np.inf)
    for p, prop in enumerate(props):
        score = prop.violation_score(flat).reshape(lead)
        out = np.where(mask[:, p], np.maximum(out, score), out)
    return out


def combined_scores(props: Sequence[Property], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Combined violation score of inputs ``x`` (n, d) with outputs ``y`` (n, m); (n,)."""
    return masked_scores(props, y, region_mask(props, x))


def violating(props: Sequence[Property], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether each input violates some property whose region contains it; (n,) bool."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    mask = region_mask(props, x)
    hit = np.zeros(y.shape[0], dtype=bool)
    for p, prop in enumerate(props):
        hit |= mask[:, p] & prop.is_violated_by(y)
    return hit


def masked_scores_torch(props: Sequence[Property], y: torch.Tensor,
                        mask: np.ndarray) -> torch.Tensor:
    """Differentiable twin of :func:`masked_scores` for ``y`` of shape (n, m); (n,)."""
    import torch

    columns = []
    for p, prop in enumerate(props):
        score = violation_score_torch(prop, y)
        inside = torch.as_tensor(mask[:, p])
        columns.append(torch.where(inside, score, torch.full_like(score, -torch.inf)))
    return torch.stack(columns, dim=1).max(dim=1).values
