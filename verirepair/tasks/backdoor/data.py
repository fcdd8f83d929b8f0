"""The digits data set: scikit-learn's bundled 8x8 images, no download.

Pipeline position: the first step of the backdoor task; everything after it
sees ``(n, 64)`` float64 arrays in ``[0, 1]`` (pixels row-major, divided by 16)
and integer labels ``0..9``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Pixels per image (8 x 8) and classes.
N_PIXELS = 64
SIDE = 8
N_CLASSES = 10


@dataclass(frozen=True, slots=True)
class DigitsData:
    """A seeded, class-stratified train/test split of the digits.

    Attributes
    ----------
    x_train, x_test : arrays, shapes (n, 64), values in [0, 1]
    y_train, y_test : int arrays, shapes (n,)
    seed : int
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    seed: int


def load_digits_split(seed: int = 0, test_share: float = 0.3) -> DigitsData:
    """Load the 1797 digits and split them, stratified by class.

    Parameters
    ----------
    seed : int
        Seeds the split.
    test_share : float
        Share of each class put in the test set, in ``(0, 1)``.

    Returns
    -------
    DigitsData

    Raises
    ------
    ValueError
        ``test_share`` outside ``(0, 1)``.
    """
    from sklearn.datasets import load_digits

    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must lie in (0, 1), got {test_share}")
    digits = load_digits()
    x = np.asarray(digits.data, dtype=np.float64) / 16.0
    y = np.asarray(digits.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(y.shape[0], dtype=bool)
    for c in range(N_CLASSES):
        members = rng.permutation(np.flatnonzero(y == c))
        test[members[: int(round(test_share * members.size))]] = True
    return DigitsData(x[~test], y[~test], x[test], y[test], seed)
