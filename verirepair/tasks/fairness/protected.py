"""Protected attributes: which inputs they occupy and which values they can take.

Pipeline position: read by measurement, localization, repair and the proofs.
A categorical attribute (Adult ``sex`` / ``race``, German ``sex``) takes each
of its one-hot values.  Age is numeric in the encoding; its "other values" are
**decades** (as Socrates, CARE's host framework, encodes census age as 1..9):
an individual's age is replaced by the midpoint of every other decade that the
training ages reach (e.g. 25 for the 20s), clipped to the training range, and
counted discriminated when one of those replacements changes the decision.
The proofs are stronger for age: the second copy's age ranges over the whole
training range ``[min, max]``, every real value in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verirepair.tasks.fairness.data import Encoding

__all__ = ["PROTECTED", "ProtectedAttribute", "protected_attribute"]

#: Protected attributes per data set (the issue's choice, CARE's and Socrates').
PROTECTED = {"adult": ("sex", "race", "age"), "german": ("age", "sex")}

#: Width of an age group, years.
AGE_GROUP_YEARS = 10


@dataclass(frozen=True, slots=True)
class ProtectedAttribute:
    """A protected attribute in encoded coordinates.

    Attributes
    ----------
    name : str
        The source column.
    kind : {"onehot", "numeric"}
    indices : int array, shape (w,)
        Input indices the attribute occupies (``w = 1`` for numeric).
    values : array, shape (k, w)
        Encoded replacement values: each one-hot vector, or each age-group
        midpoint.
    labels : tuple of str, length k
        Human names of ``values`` (category, or ``"20-29"``).
    group_edges : array, shape (k + 1,), numeric only
        Encoded group boundaries; group ``g`` is ``[edges[g], edges[g+1])``.
    domain : (float, float)
        Encoded range of the numeric attribute used by the proofs (``(0, 1)``:
        the training range); unused for one-hot attributes.
    """

    name: str
    kind: str
    indices: np.ndarray
    values: np.ndarray
    labels: tuple[str, ...]
    group_edges: np.ndarray
    domain: tuple[float, float] = (0.0, 1.0)

    @property
    def width(self) -> int:
        """Inputs the attribute occupies."""
        return int(self.indices.size)

    def groups(self, x: np.ndarray) -> np.ndarray:
        """Index into ``values`` of each row's own value/group, shape ``(n,)``."""
        block = np.atleast_2d(x)[:, self.indices]
        if self.kind == "onehot":
            return np.argmax(block, axis=1)
        inner = self.group_edges[1:-1]
        return np.searchsorted(inner, block[:, 0], side="right")

    def variants(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every row of ``x`` with the attribute replaced by each value.

        Returns
        -------
        (variants, other) : arrays of shapes (n, k, d) and (n, k) bool
            ``other[i, v]`` is False for row ``i``'s own value/group.
        """
        x = np.atleast_2d(x)
        out = np.repeat(x[:, None, :], len(self.labels), axis=1)
        out[:, :, self.indices] = self.values[None, :, :]
        own = self.groups(x)
        other = np.ones(out.shape[:2], dtype=bool)
        other[np.arange(x.shape[0]), own] = False
        return out, other


def protected_attribute(encoding: Encoding, name: str) -> ProtectedAttribute:
    """The :class:`ProtectedAttribute` of column ``name`` under ``encoding``.

    Raises
    ------
    KeyError
        No such column.
    ValueError
        A categorical attribute with fewer than two values.
    """
    spec = encoding.feature(name)
    if spec.kind == "onehot":
        if spec.width < 2:
            raise ValueError(f"protected attribute {name!r} has only {spec.width} value(s)")
        return ProtectedAttribute(name, "onehot", spec.indices, np.eye(spec.width), spec.values, np.zeros(0))
    low, high = spec.offset, spec.offset + spec.scale
    first = int(np.floor(low / AGE_GROUP_YEARS)) * AGE_GROUP_YEARS
    edges_years = np.arange(first, high + AGE_GROUP_YEARS, AGE_GROUP_YEARS, dtype=float)
    if edges_years[-1] <= high:
        edges_years = np.append(edges_years, edges_years[-1] + AGE_GROUP_YEARS)
    mids = np.clip((edges_years[:-1] + edges_years[1:]) / 2, low, high)
    labels = tuple(f"{int(a)}-{int(b) - 1}" for a, b in zip(edges_years[:-1], edges_years[1:], strict=True))
    return ProtectedAttribute(name, "numeric", spec.indices, ((mids - spec.offset) / spec.scale)[:, None], labels,
                              (edges_years - spec.offset) / spec.scale)
