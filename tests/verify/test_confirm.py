"""Specification of verirepair.verify.confirm: only float64-confirmed points in the region pass."""

from __future__ import annotations

import numpy as np

from hard_instances import abs_net
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.verify.confirm import INPUT_CLIP_TOL, confirm


def _prop() -> Property:
    """|x| >= 0.5 on [-1, -0.25] u [0.25, 1] (two boxes)."""
    return Property((Box([-1.0], [-0.25]), Box([0.25], [1.0])),
                    (HalfSpaces([[-1.0]], [-0.5]),), "two boxes")


def test_points_are_clipped_into_the_nearest_box_and_sorted_by_score() -> None:
    x = np.array([[0.6], [1.0 + INPUT_CLIP_TOL / 2], [-0.9], [-1.0 - INPUT_CLIP_TOL / 2]])
    found = confirm(abs_net(), _prop(), x, "test")
    assert [c.x[0] for c in found] == [1.0, -1.0, -0.9, 0.6]      # clipped, best score first
    assert all(c.confirmed and c.source == "test" for c in found)
    scores = [c.score for c in found]
    assert scores == sorted(scores, reverse=True)


def test_points_outside_the_region_or_not_violating_are_dropped() -> None:
    x = np.array([[0.0], [1.0 + 10 * INPUT_CLIP_TOL], [0.3], [np.nan], [-0.2]])
    assert confirm(abs_net(), _prop(), x, "test") == []
    assert confirm(abs_net(), _prop(), np.zeros((0, 1)), "test") == []


def test_a_point_between_boxes_goes_to_the_nearer_one() -> None:
    prop = Property((Box([0.0], [0.5]), Box([0.5 + INPUT_CLIP_TOL / 4], [1.0])),
                    (HalfSpaces([[-1.0]], [-0.5]),))
    found = confirm(abs_net(), prop, np.array([[0.5 + INPUT_CLIP_TOL / 16]]), "test")
    assert len(found) == 1 and found[0].x[0] == 0.5
