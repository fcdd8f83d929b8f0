"""Toy networks and properties with hand-computed repairs (shared by tests/repair)."""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.network.model import AffineLayer, Network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.tolerances import MARGIN

#: The unsafe row ``y1 - y0 <= 0`` has norm sqrt(2): leaving it by MARGIN in
#: Euclidean distance means ``y1 - y0 >= MARGIN * sqrt(2)``.
ESCAPE = MARGIN * np.sqrt(2.0)


@pytest.fixture
def y0_max_prop() -> Property:
    """Inputs in [0, 3]^2; unsafe iff ``y0 >= y1`` (the row ``-y0 + y1 <= 0``)."""
    return Property((Box(np.zeros(2), np.full(2, 3.0)),),
                    (HalfSpaces(np.array([[-1.0, 1.0]]), np.zeros(1)),), "y0_max")


@pytest.fixture
def identity_net() -> Network:
    """``h = relu(I x)``, ``y = I h``: at x = (2, 1), h = y = (2, 1)."""
    return Network((AffineLayer(np.eye(2), np.zeros(2), True),
                    AffineLayer(np.eye(2), np.zeros(2), False)), "identity")


@pytest.fixture
def gated_net() -> Network:
    """A third hidden unit that is off at x = (2, 1) but cheap to switch on.

    ``z = (x0, x1, -0.1 x0)``, ``h = relu(z)``, ``y0 = h0``, ``y1 = h1 + 10 h2``.
    At x = (2, 1): z = (2, 1, -0.2), h = (2, 1, 0), y = (2, 1).
    """
    w1 = np.array([[1.0, 0.0], [0.0, 1.0], [-0.1, 0.0]])
    w2 = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 10.0]])
    return Network((AffineLayer(w1, np.zeros(3), True),
                    AffineLayer(w2, np.zeros(2), False)), "gated")


@pytest.fixture
def cex() -> np.ndarray:
    """The counterexample x = (2, 1): y0 = 2 >= y1 = 1 on both toy networks."""
    return np.array([[2.0, 1.0]])
