"""Shared test instances of tests/verify: a property too hard to decide in a second, and |x|."""

from __future__ import annotations

import time

import numpy as np

from verirepair.network.model import AffineLayer, Network, random_network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.verify.falsify import pgd_attack


def hard_property(name: str = "hard") -> tuple[Network, Property]:
    """A 5-50x4-5 random network and an unsafe set just beyond a strong attack's reach.

    Unsafe iff ``y1 - y0 >= best + 0.05``, where ``best`` is the largest value
    200 PGD steps from 256 starts reach: far too hard to prove or refute in a
    second, so it exercises timeouts.
    """
    net = random_network([5, 50, 50, 50, 50, 5], seed=0)
    box = Box(-np.ones(5), np.ones(5))
    row = np.array([[-1.0, 1.0, 0, 0, 0]])
    probe = Property((box,), (HalfSpaces(-row, np.array([1e6])),))
    starts = box.sample(np.random.default_rng(0), 256)
    lo, hi = np.tile(box.lower, (256, 1)), np.tile(box.upper, (256, 1))
    x_best, _ = pgd_attack(net, probe, starts, lo, hi, steps=200)
    top = float((net.forward(x_best) @ row.T).max())
    return net, Property((box,), (HalfSpaces(-row, np.array([-top - 0.05])),), name)


def abs_net() -> Network:
    """y = relu(x) + relu(-x) = |x| for a scalar x."""
    return Network((AffineLayer([[1.0], [-1.0]], [0.0, 0.0], True),
                    AffineLayer([[1.0, 1.0]], [0.0], False)), "abs")


def lp_property(name: str = "lp") -> tuple[Network, Property]:
    """A 3-16x2-2 random network whose proof with ``use_lp`` takes ~80 sub-boxes and ~270 LPs.

    Unsafe iff ``y1 - y0 >= best + 0.1`` (``best`` as in :func:`hard_property`):
    CROWN alone leaves boxes open that the triangle LP closes, in about 0.5 s.
    """
    net = random_network([3, 16, 16, 2], seed=3)
    box = Box(-np.ones(3), np.ones(3))
    row = np.array([[-1.0, 1.0]])
    probe = Property((box,), (HalfSpaces(-row, np.array([1e6])),))
    starts = box.sample(np.random.default_rng(0), 256)
    lo, hi = np.tile(box.lower, (256, 1)), np.tile(box.upper, (256, 1))
    x_best, _ = pgd_attack(net, probe, starts, lo, hi, steps=200)
    top = float((net.forward(x_best) @ row.T).max())
    return net, Property((box,), (HalfSpaces(-row, np.array([-top - 0.1])),), name)


def stuck_worker(*args: object) -> None:
    """A branch-and-bound worker that ignores its deadline (for the kill backstop test)."""
    time.sleep(60.0)


def import_verifier(_: int) -> bool:
    """A worker task that only imports the verifier (what a search worker does first)."""
    import verirepair.verify.bab  # noqa: F401
    return True
