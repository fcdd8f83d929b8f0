"""Proven removal: per test image, no value of the trigger pixels makes the network answer the target.

Pipeline position: after the repair (and, for comparison, before it); the
core's verifier (:func:`verirepair.verify.verify`, engine ``"own"``) decides
each property.

What is proven, exactly.  For a test image ``x`` whose true class is not the
target ``K`` and a trigger region ``R`` (pixel indices), the input region is
the box ``B = {x' : x'_i in [0, 1] for i in R, x'_i = x_i otherwise}`` (fixed
pixels are degenerate intervals, which the engine's input splitting never
splits), and the unsafe set is the closed polytope
``{y : y_K >= y_j for every j != K}`` ("the network answers K, or ties K with
the best class").  ``HOLDS`` means: for every ``x'`` in ``B`` some class
``j != K`` scores strictly above ``K`` (by more than the engine's ``BOUND_TOL``),
so no trigger of *any* pattern and *any* blend confined to ``R`` stamped on
``x`` makes the network answer ``K`` (a stamp ``(1 - m) x + m p`` with ``m, p``
in ``[0, 1]`` leaves the pixels outside ``R`` alone and puts those inside ``R``
in ``[0, 1]``, so it lies in ``B``).  ``VIOLATED`` comes with a trigger-region
value that a float64 forward pass confirms.  The statement is per image and per
region; it says nothing about triggers outside ``R``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.verify import Verdict, VerifyConfig, verify


def answers_target_polytope(target: int, n_outputs: int) -> HalfSpaces:
    """The closed set ``{y : y_target >= y_j for all j != target}`` as ``A y <= 0``."""
    others = [j for j in range(n_outputs) if j != target]
    A = np.zeros((len(others), n_outputs))
    A[np.arange(len(others)), others] = 1.0
    A[:, target] = -1.0
    return HalfSpaces(A, np.zeros(len(others)))


def trigger_box_property(x: np.ndarray, region: np.ndarray, target: int, n_outputs: int,
                         name: str = "trigger_box") -> Property:
    """The property "no value of the pixels in ``region`` makes the network answer ``target``" at image ``x``.

    Parameters
    ----------
    x : array, shape (n_inputs,) -- the image, values in [0, 1]
    region : int array -- the free pixels
    target : int
    n_outputs : int
    """
    lower = np.array(x, dtype=np.float64, copy=True)
    upper = lower.copy()
    lower[region], upper[region] = 0.0, 1.0
    return Property((Box(lower, upper),), (answers_target_polytope(target, n_outputs),), name)


@dataclass(frozen=True, slots=True)
class ProofSummary:
    """Verdicts of the trigger-box properties over a set of test images.

    Attributes
    ----------
    n : int -- images checked (true class not the target)
    proven, violated, undecided : int -- HOLDS / VIOLATED / TIMEOUT or UNKNOWN
    time_s : float
    verdicts : tuple of str -- per image, in order
    indices : tuple of int -- the images' rows in the given ``x``
    """

    n: int
    proven: int
    violated: int
    undecided: int
    time_s: float
    verdicts: tuple[str, ...]
    indices: tuple[int, ...]

    @property
    def proven_share(self) -> float:
        """``proven / n`` (``nan`` when ``n == 0``)."""
        return self.proven / self.n if self.n else float("nan")

    def to_json_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"n": self.n, "proven": self.proven, "violated": self.violated, "undecided": self.undecided,
                "proven_share": self.proven_share, "time_s": self.time_s}


def prove_removal(network: Network, x: np.ndarray, y: np.ndarray, region: np.ndarray, target: int,
                  config: VerifyConfig = VerifyConfig(timeout_s=10.0, falsify_samples=200, pgd_steps=20),
                  max_images: int | None = None, seed: int = 0) -> ProofSummary:
    """Decide :func:`trigger_box_property` for test images not of class ``target``.

    Parameters
    ----------
    network : Network
    x : array, shape (n, n_inputs) -- clean test images
    y : int array, shape (n,) -- their classes
    region : int array -- trigger pixels (free in [0, 1])
    target : int
    config : VerifyConfig -- per image
    max_images : int, optional
        Check a seeded random subset of this many images (all by default).
    seed : int

    Returns
    -------
    ProofSummary
    """
    start = time.perf_counter()
    region = np.asarray(region, dtype=np.int64)
    if region.size == 0 or region.min() < 0 or region.max() >= network.n_inputs:
        raise ValueError(f"trigger region must name pixels in 0..{network.n_inputs - 1}")
    rows = np.flatnonzero(np.asarray(y) != target)
    if max_images is not None and rows.size > max_images:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_images, replace=False))
    verdicts = []
    for i in rows:
        prop = trigger_box_property(x[i], region, target, network.n_outputs, f"trigger_box_{int(i)}")
        verdicts.append(verify(network, prop, config).verdict)
    proven = sum(v is Verdict.HOLDS for v in verdicts)
    violated = sum(v is Verdict.VIOLATED for v in verdicts)
    return ProofSummary(len(verdicts), proven, violated, len(verdicts) - proven - violated,
                        time.perf_counter() - start, tuple(v.value for v in verdicts),
                        tuple(int(i) for i in rows))
