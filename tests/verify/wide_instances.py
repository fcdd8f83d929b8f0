"""Wide-input test instances of tests/verify: a VNN-COMP MNIST-sized network and L-inf balls.

The network has the shape of the VNN-COMP ``mnist_fc`` benchmarks (784 inputs,
two hidden layers of 256 ReLUs, 10 outputs) with seeded random weights; the
property is written as VNN-COMP writes it (bounds on every pixel, then a
disjunction of 9 polytopes "class j scores at least the true class") and read
by our own parser.  Measured on this instance: eps 0.003 and below is proven
by the bounds of the whole ball, 0.004-0.005 is undecided after minutes, 0.006
and above is violated.
"""

from __future__ import annotations

import numpy as np

from verirepair.network.model import Network, random_network
from verirepair.properties import parse_vnnlib_string
from verirepair.properties.property import Property

N_PIXELS = 784
N_CLASSES = 10


def mnist_like_network() -> Network:
    """784-256-256-10 ReLU network with seeded random weights."""
    return random_network([N_PIXELS, 256, 256, N_CLASSES], seed=0, name="mnist-like")


def image() -> np.ndarray:
    """The centre of the balls: a seeded random point of [0, 1]^784."""
    return np.random.default_rng(1).uniform(0.0, 1.0, N_PIXELS)


def linf_vnnlib(x0: np.ndarray, eps: float, true_class: int) -> str:
    """VNN-LIB text of "some other class beats ``true_class`` within eps of ``x0``" (in [0, 1])."""
    lower, upper = np.clip(x0 - eps, 0.0, 1.0), np.clip(x0 + eps, 0.0, 1.0)
    lines = [f"(declare-const X_{i} Real)" for i in range(x0.shape[0])]
    lines += [f"(declare-const Y_{j} Real)" for j in range(N_CLASSES)]
    for i, (lo, hi) in enumerate(zip(lower, upper, strict=True)):
        lines.append(f"(assert (<= X_{i} {float(hi)!r}))")
        lines.append(f"(assert (>= X_{i} {float(lo)!r}))")
    others = " ".join(f"(and (>= Y_{j} Y_{true_class}))" for j in range(N_CLASSES)
                      if j != true_class)
    lines.append(f"(assert (or {others}))")
    return "\n".join(lines) + "\n"


def linf_property(network: Network, eps: float) -> tuple[Property, int]:
    """The parsed L-inf ball property of :func:`image` and its true class."""
    x0 = image()
    true_class = int(np.argmax(network.forward(x0[None])[0]))
    props = parse_vnnlib_string(linf_vnnlib(x0, eps, true_class), f"mnist_eps{eps}.vnnlib")
    assert len(props) == 1 and len(props[0].unsafe) == N_CLASSES - 1
    return props[0], true_class
