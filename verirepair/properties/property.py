"""The property model: an input region and an unsafe output set.

Pipeline position: ``parse_vnnlib`` produces :class:`Property` objects; the
verifier, localizer and repair stages read them.

Semantics (VNN-LIB): a property is *violated* iff some input in one of its
boxes produces an output inside one of its unsafe polytopes.  Every polytope is
a conjunction of half-spaces ``A @ y <= b``.  Strict inequalities of the source
file are read as non-strict (the closure), which is the sound direction for a
proof and is documented in :mod:`verirepair.tolerances`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from verirepair.errors import PropertyDimensionError
from verirepair.tolerances import CEX_TOL

if TYPE_CHECKING:  # torch is imported lazily, by the functions that need it
    import torch


def format_number(value: float) -> str:
    """A number as plain text for messages: ``0.5``, ``-3.0``, ``inf`` (not ``np.float64(0.5)``)."""
    return repr(float(value))


def _readonly(array: object, ndim: int, what: str) -> np.ndarray:
    out = np.array(array, dtype=np.float64, copy=True)
    if out.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimension(s), got shape {out.shape}")
    if np.isnan(out).any():
        raise ValueError(f"{what} contains NaN at index {int(np.flatnonzero(np.isnan(out))[0])}"
                         if ndim == 1 else f"{what} contains NaN")
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box ``lower <= x <= upper``.

    Parameters
    ----------
    lower, upper : array, shape (d,)
    """

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        lower = _readonly(self.lower, 1, "lower")
        upper = _readonly(self.upper, 1, "upper")
        if lower.shape != upper.shape:
            raise ValueError(f"box bounds differ in shape: {lower.shape} vs {upper.shape}")
        empty = np.flatnonzero(lower > upper)
        if empty.size:
            i = int(empty[0])
            raise ValueError(f"box is empty: lower[{i}] = {format_number(lower[i])} exceeds "
                             f"upper[{i}] = {format_number(upper[i])}")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Box) and np.array_equal(self.lower, other.lower)
                and np.array_equal(self.upper, other.upper))

    def __hash__(self) -> int:
        # ``+ 0.0`` maps -0.0 to 0.0: the two compare equal, so they must hash equal.
        return hash(((self.lower + 0.0).tobytes(), (self.upper + 0.0).tobytes()))

    @property
    def dim(self) -> int:
        """Number of dimensions."""
        return int(self.lower.shape[0])

    @property
    def center(self) -> np.ndarray:
        """Midpoint, shape (d,)."""
        return (self.lower + self.upper) / 2.0

    @property
    def width(self) -> np.ndarray:
        """Edge lengths, shape (d,)."""
        return self.upper - self.lower

    def contains(self, x: np.ndarray, tol: float = 0.0) -> np.ndarray:
        """Whether each row of ``x`` (shape (n, d)) lies in the box; returns (n,) bool."""
        x = np.atleast_2d(x)
        return np.all((x >= self.lower - tol) & (x <= self.upper + tol), axis=1)

    def log_measure(self) -> tuple[int, float]:
        """``(k, log V)``: the number k of positive widths and the log of their product.

        V is the k-dimensional volume of the box (its Hausdorff measure in
        dimension k), computed as a sum of logs so that it neither underflows
        (784 widths of 0.02) nor overflows; zero widths are left out of the
        sum rather than clamped.  Widths beyond the float range (bounds of
        opposite sign near the largest float) are handled exactly enough for
        weights; an infinite width gives ``log V = inf``.
        """
        with np.errstate(over="ignore"):
            width = self.upper - self.lower
        positive = width > 0
        overflow = np.isinf(width) & np.isfinite(self.lower) & np.isfinite(self.upper)
        half = self.upper[overflow] / 2 - self.lower[overflow] / 2
        logs = np.log(width[positive & ~overflow])
        return int(positive.sum()), float(logs.sum() + np.sum(np.log(half) + np.log(2.0)))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` uniform points, shape (n, d); a zero width gives its one value.

        Raises
        ------
        ValueError
            The box is unbounded in some dimension.
        """
        if not (np.isfinite(self.lower).all() and np.isfinite(self.upper).all()):
            raise ValueError("cannot sample uniformly from an unbounded box")
        u = rng.random((n, self.dim))
        with np.errstate(over="ignore"):
            width = self.upper - self.lower
        if np.isfinite(width).all():
            return self.lower + width * u  # what rng.uniform(lower, upper) computes
        # Wider than the float range: interpolate without forming the width.
        return np.clip(self.lower * (1.0 - u) + self.upper * u, self.lower, self.upper)


@dataclass(frozen=True, slots=True)
class HalfSpaces:
    """A conjunction of half-spaces ``A @ y <= b`` over the outputs.

    Parameters
    ----------
    A : array, shape (m, n_outputs)
    b : array, shape (m,)
    """

    A: np.ndarray
    b: np.ndarray

    def __post_init__(self) -> None:
        A = _readonly(self.A, 2, "A")
        b = _readonly(self.b, 1, "b")
        if A.shape[0] != b.shape[0]:
            raise ValueError(f"A has {A.shape[0]} rows but b has {b.shape[0]} entries")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "b", b)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, HalfSpaces) and np.array_equal(self.A, other.A)
                and np.array_equal(self.b, other.b))

    def __hash__(self) -> int:
        # ``+ 0.0`` maps -0.0 to 0.0: the two compare equal, so they must hash equal.
        return hash(((self.A + 0.0).tobytes(), (self.b + 0.0).tobytes()))

    def normalized(self) -> HalfSpaces:
        """Rows scaled to unit norm, sorted and deduplicated (a canonical form)."""
        norms = np.linalg.norm(self.A, axis=1)
        norms[norms == 0] = 1.0
        rows = np.hstack([self.A / norms[:, None], (self.b / norms)[:, None]])
        rows = np.unique(np.round(rows, 12), axis=0)
        return HalfSpaces(rows[:, :-1], rows[:, -1])

    def slack(self, y: np.ndarray) -> np.ndarray:
        """Scaled slack ``(b - A y) / ||a_i||`` of every row, shape (n, m)."""
        norms = np.linalg.norm(self.A, axis=1)
        norms[norms == 0] = 1.0
        return (self.b[None, :] - np.atleast_2d(y) @ self.A.T) / norms[None, :]


@dataclass(frozen=True, slots=True)
class Property:
    """A safety property: an input region and the unsafe output set.

    Parameters
    ----------
    input_boxes : tuple of Box
        The input region is their union.
    unsafe : tuple of HalfSpaces
        The unsafe set is their union (a disjunction of conjunctions).
    name : str
        A label, e.g. ``"prop_2"``.
    """

    input_boxes: tuple[Box, ...]
    unsafe: tuple[HalfSpaces, ...]
    name: str = "property"

    def __post_init__(self) -> None:
        boxes = tuple(self.input_boxes)
        unsafe = tuple(self.unsafe)
        if not boxes:
            raise ValueError("a property needs at least one input box")
        if not unsafe:
            raise ValueError("a property needs at least one unsafe polytope")
        if len({box.dim for box in boxes}) != 1:
            raise ValueError("all input boxes must have the same dimension")
        if len({poly.A.shape[1] for poly in unsafe}) != 1:
            raise ValueError("all unsafe polytopes must have the same output dimension")
        object.__setattr__(self, "input_boxes", boxes)
        object.__setattr__(self, "unsafe", unsafe)

    @property
    def n_inputs(self) -> int:
        """Input dimension."""
        return self.input_boxes[0].dim

    @property
    def n_outputs(self) -> int:
        """Output dimension."""
        return int(self.unsafe[0].A.shape[1])

    def in_region(self, x: np.ndarray, tol: float = 0.0) -> np.ndarray:
        """Whether rows of ``x`` (n, d) lie in any input box; (n,) bool."""
        x = np.atleast_2d(x)
        inside = np.zeros(x.shape[0], dtype=bool)
        for box in self.input_boxes:
            inside |= box.contains(x, tol)
        return inside

    def violation_score(self, y: np.ndarray) -> np.ndarray:
        """Signed violation score of outputs ``y`` (n, m); returns (n,).

        For one polytope the score is ``min_i (b_i - a_i y) / ||a_i||``: the
        Euclidean distance to its boundary when ``y`` is inside (positive), and
        a negative measure of how far outside it is.  A disjunction takes the
        maximum over polytopes, so the score is ``>= 0`` exactly when ``y`` lies
        in the (closed) unsafe set.
        """
        y = np.atleast_2d(np.asarray(y, dtype=np.float64))
        scores = [poly.slack(y).min(axis=1) for poly in self.unsafe]
        return np.max(np.stack(scores, axis=1), axis=1)

    def is_violated_by(self, y: np.ndarray) -> np.ndarray:
        """Whether outputs ``y`` (n, m) lie in the closed unsafe set; (n,) bool."""
        return self.violation_score(y) >= -CEX_TOL

    def box_weights(self) -> np.ndarray:
        """Sampling weight of each input box, shape (n_boxes,), summing to 1.

        Boxes are weighted by volume, in log space (see :meth:`Box.log_measure`),
        so any number of inputs works.  The volume is taken in the largest
        dimension k that some box spans (its number of positive widths): boxes
        spanning fewer dimensions have measure zero in the union and weight 0,
        unless every box is like that.  Overlaps are not discounted.
        """
        measures = [box.log_measure() for box in self.input_boxes]
        k_max = max(k for k, _ in measures)
        logs = np.array([lv if k == k_max else -np.inf for k, lv in measures])
        if np.isposinf(logs).any():
            raise ValueError("cannot weight input boxes: some box is unbounded")
        weights = np.exp(logs - logs.max())
        return weights / weights.sum()

    def sample_inputs(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Sample ``n`` inputs from the region, boxes weighted by volume; (n, d).

        See :meth:`box_weights` for the weights; inside a box points are uniform.
        """
        weights = self.box_weights()
        counts = rng.multinomial(n, weights)
        parts = [box.sample(rng, int(k)) for box, k in zip(self.input_boxes, counts, strict=True) if k]
        return np.vstack(parts) if parts else np.zeros((0, self.n_inputs))

    def canonical(self) -> tuple:
        """A hashable canonical form, for semantic equality checks."""
        boxes = tuple(sorted((tuple(b.lower), tuple(b.upper)) for b in self.input_boxes))
        polys = tuple(sorted(
            (tuple(map(tuple, p.normalized().A)), tuple(p.normalized().b)) for p in self.unsafe
        ))
        return boxes, polys


def violating_mask(props: Sequence[Property], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (n, d) with outputs ``y`` (n, m) that violate a property whose region contains them.

    Returns
    -------
    bool array, shape (n,)
    """
    bad = np.zeros(x.shape[0], dtype=bool)
    for prop in props:
        inside = prop.in_region(x)
        if inside.any():
            bad[inside] |= prop.is_violated_by(y[inside])
    return bad


def check_dimensions(properties: Sequence[Property], n_inputs: int, n_outputs: int,
                     path: str | os.PathLike[str], network: str | os.PathLike[str] | None = None
                     ) -> None:
    """Check that every property has as many inputs and outputs as the network.

    Call it after loading both files: a VNN-LIB file does not know its network.

    Parameters
    ----------
    properties : sequence of Property
        As returned by :func:`~verirepair.properties.vnnlib.parse_vnnlib` for ``path``.
    n_inputs, n_outputs : int
        The network's input and output dimensions.
    path : path-like
        The property file, named in the message.
    network : path-like, optional
        The network file, named in the message when given.

    Raises
    ------
    PropertyDimensionError
        At the first property whose counts differ; the message names both
        counts (for inputs, outputs or both) on one line.
    """
    for prop in properties:
        if prop.n_inputs != n_inputs or prop.n_outputs != n_outputs:
            raise PropertyDimensionError(str(path), prop.name, prop.n_inputs, prop.n_outputs,
                                         n_inputs, n_outputs,
                                         None if network is None else str(network))


def violation_score_torch(prop: Property, y: torch.Tensor) -> torch.Tensor:
    """Differentiable twin of :meth:`Property.violation_score` for torch tensors.

    Parameters
    ----------
    prop : Property
    y : tensor, shape (n, m)

    Returns
    -------
    tensor, shape (n,)
    """
    import torch

    scores = []
    for poly in prop.unsafe:
        norms = np.linalg.norm(poly.A, axis=1)
        norms[norms == 0] = 1.0
        A = torch.as_tensor(poly.A / norms[:, None], dtype=y.dtype)
        b = torch.as_tensor(poly.b / norms, dtype=y.dtype)
        scores.append((b[None, :] - y @ A.T).min(dim=1).values)
    return torch.stack(scores, dim=1).max(dim=1).values
