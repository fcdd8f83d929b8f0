"""Helpers for the localization tests: hand-built networks with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from verirepair.network.model import AffineLayer, Network, random_network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.tasks.acasxu import networks as acasxu_nets


def culprit_network() -> Network:
    """Two inputs, one hidden ReLU layer (the identity on ``[0, 1]^2``), two outputs.

    ``y0 = 2 h0 + 10 h1`` and ``y1 = 3``: hidden unit 1 has the huge outgoing
    weight, so it alone drives ``y0`` into the unsafe set ``y0 >= 8``.
    """
    hidden = AffineLayer(np.eye(2), np.zeros(2), relu=True)
    out = AffineLayer([[2.0, 10.0], [0.0, 0.0]], [0.0, 3.0], relu=False)
    return Network((hidden, out), name="culprit")


def culprit_property() -> Property:
    """Input box ``[0, 1]^2``; unsafe ``y0 >= 8`` (score ``y0 - 8``)."""
    return Property((Box([0.0, 0.0], [1.0, 1.0]),), (HalfSpaces([[-1.0, 0.0]], [-8.0]),),
                    name="y0<8")


#: Counterexamples of the culprit network (y0 = 10.0 and 9.3).
CULPRIT_CEX = np.array([[0.5, 0.9], [0.9, 0.75]])
#: Correct inputs (y0 = 2.8 -> advisory 0; y0 = 5.2 -> advisory 1).
CULPRIT_CORRECT = np.array([[0.9, 0.1], [0.1, 0.5]])


def interval_upper(network: Network, box: Box) -> np.ndarray:
    """Sound upper bounds of the outputs over ``box`` by interval arithmetic; (m,)."""
    lower, upper = box.lower, box.upper
    for layer in network.layers:
        pos, neg = np.maximum(layer.weight, 0), np.minimum(layer.weight, 0)
        lower, upper = (pos @ lower + neg @ upper + layer.bias,
                        pos @ upper + neg @ lower + layer.bias)
        if layer.relu:
            lower, upper = np.maximum(lower, 0), np.maximum(upper, 0)
    return upper


def safe_random_case(seed: int) -> tuple[Network, list[Property]]:
    """A random 4-12-12-12-3 net and a property it provably satisfies.

    The threshold on ``y0`` is its interval-arithmetic upper bound over
    ``[-1, 1]^4``, so no input can violate the property.
    """
    net = random_network([4, 12, 12, 12, 3], seed=seed)
    box = Box(-np.ones(4), np.ones(4))
    threshold = interval_upper(net, box)[0]
    return net, [Property((box,), (HalfSpaces([[-1.0, 0.0, 0.0]], [-threshold]),))]


def acasxu_folder() -> Path:
    """The ACAS Xu data folder (``acasxu_nets.data_or_skip``): skips the test when absent."""
    return acasxu_nets.data_or_skip(("onnx",))
