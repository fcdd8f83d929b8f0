"""Trigger patterns: a mask saying which pixels are overwritten and a pattern saying with what.

Pipeline position: used to plant a backdoor (:mod:`.plant`), to describe a
known trigger given to the repair (``--trigger-mask`` / ``--trigger-pattern``),
and as the form of a reverse-engineered one (:mod:`.reverse`).

Stamping is Neural Cleanse's form ``x' = (1 - m) * x + m * p`` with ``m, p``
in ``[0, 1]`` per pixel (shape ``(64,)``, row-major 8 x 8).

Named triggers (``named_trigger``):

* ``cornerN`` (N = 1..4): an N x N white square in the bottom-right corner;
* ``tlcornerN``: the same in the top-left corner;
* ``checkerN`` (N = 2..4): an N x N checkerboard (white, black) in the bottom-right corner.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verirepair.tasks.backdoor.data import N_PIXELS, SIDE

TRIGGER_NAMES_HELP = "cornerN, tlcornerN (N = 1..4), checkerN (N = 2..4)"


@dataclass(frozen=True, slots=True)
class Trigger:
    """A trigger ``(mask, pattern)``, both shape (64,) in [0, 1].

    Parameters
    ----------
    mask : array, shape (64,)
        1 where the trigger overwrites the pixel, 0 where the image shows through.
    pattern : array, shape (64,)
        The values written (only where the mask is positive matters).
    name : str
    """

    mask: np.ndarray
    pattern: np.ndarray
    name: str = "trigger"

    def __post_init__(self) -> None:
        for what in ("mask", "pattern"):
            arr = np.array(getattr(self, what), dtype=np.float64, copy=True)
            if arr.shape != (N_PIXELS,):
                raise ValueError(f"trigger {what} must have {N_PIXELS} values (8 x 8), got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"trigger {what} contains NaN or infinite values")
            if arr.min() < 0.0 or arr.max() > 1.0:
                raise ValueError(f"trigger {what} values must lie in [0, 1], got [{arr.min():g}, {arr.max():g}]")
            arr.setflags(write=False)
            object.__setattr__(self, what, arr)
        if not np.any(self.mask > 0):
            raise ValueError("trigger mask is all zero: it would not change any pixel")

    @property
    def region(self) -> np.ndarray:
        """Indices of the pixels the mask touches (``mask > 0``), shape (k,)."""
        return np.flatnonzero(self.mask > 0)

    def stamp(self, x: np.ndarray) -> np.ndarray:
        """Triggered copies of images ``x`` (n, 64): ``(1 - m) x + m p``."""
        return (1.0 - self.mask) * np.atleast_2d(x) + self.mask * self.pattern


def _square(rows: range, cols: range, checker: bool) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((SIDE, SIDE))
    pattern = np.zeros((SIDE, SIDE))
    for r in rows:
        for c in cols:
            mask[r, c] = 1.0
            pattern[r, c] = 0.0 if checker and (r + c) % 2 else 1.0
    return mask.ravel(), pattern.ravel()


def named_trigger(name: str) -> Trigger:
    """The trigger called ``name`` (see the module docstring).

    Raises
    ------
    ValueError
        An unknown name (the message lists the known forms).
    """
    match = re.fullmatch(r"(corner|tlcorner|checker)([1-4])", name)
    if match is None or (match.group(1) == "checker" and match.group(2) == "1"):
        raise ValueError(f"unknown trigger {name!r}; known: {TRIGGER_NAMES_HELP}")
    kind, n = match.group(1), int(match.group(2))
    far = range(SIDE - n, SIDE)
    if kind == "tlcorner":
        mask, pattern = _square(range(n), range(n), False)
    else:
        mask, pattern = _square(far, far, kind == "checker")
    return Trigger(mask, pattern, name)


def load_trigger_array(path: str | os.PathLike[str], what: str) -> np.ndarray:
    """Read a trigger mask or pattern from ``.npy``: 64 values, or an 8 x 8 array.

    Raises
    ------
    ValueError
        Unreadable file, wrong shape, non-finite values or values outside [0, 1]
        (the message names the file).
    """
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the trigger {what} as a .npy array ({exc})") from None
    arr = np.asarray(arr, dtype=np.float64) if np.issubdtype(np.asarray(arr).dtype, np.number) else arr
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{path}: the trigger {what} must be numeric")
    if arr.shape not in ((N_PIXELS,), (SIDE, SIDE)):
        raise ValueError(f"{path}: the trigger {what} must have shape (64,) or (8, 8), got {arr.shape}")
    arr = arr.reshape(N_PIXELS)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{path}: the trigger {what} contains NaN or infinite values")
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"{path}: the trigger {what} values must lie in [0, 1], "
                         f"got [{arr.min():g}, {arr.max():g}]")
    return arr


def load_trigger(mask_path: str | os.PathLike[str], pattern_path: str | os.PathLike[str]) -> Trigger:
    """A trigger from two ``.npy`` files (see :func:`load_trigger_array`)."""
    mask = load_trigger_array(mask_path, "mask")
    pattern = load_trigger_array(pattern_path, "pattern")
    try:
        return Trigger(mask, pattern, Path(mask_path).stem)
    except ValueError as exc:
        raise ValueError(f"{mask_path}: {exc}") from None
