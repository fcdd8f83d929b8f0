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

from dataclasses import dataclass

import numpy as np

from verirepair.tolerances import CEX_TOL


def _readonly(array: object, ndim: int, what: str) -> np.ndarray:
    out = np.array(array, dtype=np.float64, copy=True)
    if out.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimension(s), got shape {out.shape}")
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
        if np.any(lower > upper):
            raise ValueError("box is empty: some lower bound exceeds its upper bound")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Box) and np.array_equal(self.lower, other.lower)
                and np.array_equal(self.upper, other.upper))

    def __hash__(self) -> int:
        return hash((self.lower.tobytes(), self.upper.tobytes()))

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

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` uniform points, shape (n, d)."""
        return rng.uniform(self.lower, self.upper, size=(n, self.dim))


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
        return hash((self.A.tobytes(), self.b.tobytes()))

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

    def sample_inputs(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Sample ``n`` inputs from the region, boxes weighted by volume; (n, d)."""
        volumes = np.array([np.prod(np.maximum(box.width, 1e-12)) for box in self.input_boxes])
        counts = rng.multinomial(n, volumes / volumes.sum())
        parts = [box.sample(rng, int(k)) for box, k in zip(self.input_boxes, counts) if k]
        return np.vstack(parts) if parts else np.zeros((0, self.n_inputs))

    def canonical(self) -> tuple:
        """A hashable canonical form, for semantic equality checks."""
        boxes = tuple(sorted((tuple(b.lower), tuple(b.upper)) for b in self.input_boxes))
        polys = tuple(sorted(
            (tuple(map(tuple, p.normalized().A)), tuple(p.normalized().b)) for p in self.unsafe
        ))
        return boxes, polys


def violation_score_torch(prop: Property, y: "torch.Tensor") -> "torch.Tensor":  # noqa: F821
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
