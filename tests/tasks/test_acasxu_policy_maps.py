"""ACAS Xu policy maps: the geometry, the marks, the slice choice, and the task hook.

Hand-made linear "controllers" with known advisories: COC everywhere, or WL exactly where
the intruder is on the left (theta > 0, that is x < 0 with the ownship heading up).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verirepair.network.model import AffineLayer, Network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.tasks.acasxu import AcasXuTask, build_acasxu_task
from verirepair.tasks.acasxu.physical import NORMALIZATION_FILE, default_properties_dir, load_normalization
from verirepair.tasks.acasxu.policy_maps import (
    ADVISORIES,
    choose_slice,
    compute_slice,
    figure_policy_map,
    policy_map_figures,
    position_ft,
)

NORM = load_normalization(default_properties_dir() / NORMALIZATION_FILE)


def _linear(weight: np.ndarray, bias: np.ndarray, name: str) -> Network:
    return Network((AffineLayer(np.asarray(weight, float), np.asarray(bias, float), relu=False),), name=name)


#: COC (score 0) everywhere; the other advisories score 1.
ALWAYS_COC = _linear(np.zeros((5, 5)), np.array([0.0, 1, 1, 1, 1]), "coc")
#: WL scores -10 * theta_norm: below COC's 0 exactly where theta > 0 (intruder on the left).
_W = np.zeros((5, 5))
_W[1, 1] = -10.0
LEFT_WL = _linear(_W, np.array([0.0, 0, 1, 1, 1]), "left_wl")


def _phys_box(rho, theta, psi, v_own, v_int) -> Box:
    lower = NORM.normalize_inputs(np.array([rho[0], theta[0], psi[0], v_own[0], v_int[0]]), clip=False)
    upper = NORM.normalize_inputs(np.array([rho[1], theta[1], psi[1], v_own[1], v_int[1]]), clip=False)
    return Box(lower, upper)


#: "WL must not be minimal" for an intruder 10-30 kft away on the left, slow ownship.
NO_WL = Property((_phys_box((10000, 30000), (0.1, 3.0), (-3.1, 3.1), (100, 400), (0, 1200)),),
                 (HalfSpaces(np.array([[-1.0, 1, 0, 0, 0], [0, 1, -1, 0, 0], [0, 1, 0, -1, 0], [0, 1, 0, 0, -1]]),
                             np.zeros(4)),), "no_wl")


def test_positions_put_the_ownship_heading_up_and_positive_theta_on_the_left():
    assert np.allclose(position_ft(1000.0, 0.0), (0.0, 1000.0))          # straight ahead: up
    assert np.allclose(position_ft(1000.0, np.pi / 2), (-1000.0, 0.0))   # theta > 0: left
    assert np.allclose(position_ft(1000.0, -np.pi / 2), (1000.0, 0.0))


def test_changed_advisories_are_exactly_the_left_half_of_the_domain():
    view = compute_slice(ALWAYS_COC, LEFT_WL, NO_WL, NORM, np.array([0.0, 200.0, 600.0]), n=60)
    xs, ys = view.axes_kft()
    gx, gy = np.meshgrid(xs, ys)
    inside = np.hypot(gx, gy) <= NORM.input_max[0] / 1000.0
    assert np.array_equal(view.advisory_before >= 0, inside)
    assert set(np.unique(view.advisory_before[inside])) == {ADVISORIES.index("COC")}
    assert np.array_equal(view.changed, inside & (gx < 0))
    assert set(np.unique(view.advisory_after[inside & (gx < 0)])) == {ADVISORIES.index("WL")}
    # The region: 10-30 kft, theta in [0.1, 3.0], and only the repaired (here: LEFT_WL) violates it.
    rho = np.hypot(gx, gy) * 1000
    theta = np.arctan2(-gx, gy)
    expected = (rho >= 10000) & (rho <= 30000) & (theta >= 0.1) & (theta <= 3.0)
    assert np.array_equal(view.in_region, expected)
    assert not view.violates_before.any() and np.array_equal(view.violates_after, expected)
    # Outside the slice's speeds the region is empty.
    assert not compute_slice(ALWAYS_COC, LEFT_WL, NO_WL, NORM, np.array([0.0, 900.0, 600.0]), n=30).in_region.any()


def test_the_slice_goes_through_a_violation_of_the_original_and_the_figure_marks_it():
    # Swap the roles: the "original" violates NO_WL on the left, the "repaired" never does.
    choice = choose_slice(LEFT_WL, ALWAYS_COC, NO_WL, NORM, np.random.default_rng(0))
    assert choice.witness_phys is not None
    assert NO_WL.in_region(NORM.normalize_inputs(choice.witness_phys, clip=False)[None, :])[0]
    assert 100 <= choice.fixed_phys[1] <= 400
    figures = policy_map_figures("Nx,y", LEFT_WL, ALWAYS_COC, [("no_wl", [NO_WL])], NORM,
                                 np.random.default_rng(0))
    assert [title for title, _ in figures] == ["ACAS Xu policy map, no_wl region"]
    fig = figures[0][1]
    assert len(fig.axes) == 4                      # whole map and zoom, original and repaired
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "original Nx,y" and titles[1] == "repaired Nx,y" and "zoom" in titles[2]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"COC", "WL", "no_wl input region", "violates no_wl", "advisory changed by the repair",
            "counterexample of the original"} <= set(labels)
    assert "violating:" in fig.get_suptitle()


def test_figure_without_changes_or_violations_has_no_such_legend_entries():
    view = compute_slice(ALWAYS_COC, ALWAYS_COC, NO_WL, NORM, np.array([0.0, 200.0, 600.0]), n=30)
    labels = [t.get_text() for t in figure_policy_map("N", "no_wl", [view]).legends[0].get_texts()]
    assert "advisory changed by the repair" not in labels and "violates no_wl" not in labels


def test_acasxu_task_offers_maps_through_the_generic_hook_only_for_repaired_properties():
    task = build_acasxu_task(Path("ACASXU_run2a_2_1_batch_2000.onnx"), ALWAYS_COC, [], None)
    assert isinstance(task, AcasXuTask) and task.metadata["network"] == "N2,1"
    assert task.report_figures(ALWAYS_COC, LEFT_WL, [], np.random.default_rng(0)) == []
    small = _linear(np.zeros((2, 3)), np.zeros(2), "small")
    assert task.report_figures(small, small, ["phi2"], np.random.default_rng(0)) == []


@pytest.mark.acasxu
def test_maps_of_a_real_network_show_its_phi2_violation():
    from verirepair.tasks.acasxu import networks as acasxu

    acasxu.data_or_skip(("onnx",))
    original = acasxu.load_acasxu("N2_1")
    task = build_acasxu_task(Path("ACASXU_run2a_2_1_batch_2000.onnx"), original, [], None)
    # Against an always-COC stand-in: the slice must go through one of N2,1's phi2 violations.
    (title, fig), = task.report_figures(original, ALWAYS_COC, ["phi2"], np.random.default_rng(1))
    assert title == "ACAS Xu policy map, phi2 region"
    text = fig.get_suptitle()
    violating_before = int(text.split("violating: ")[1].split(" before")[0])
    assert violating_before > 0


def test_maps_honour_the_runs_deadline(monkeypatch):
    """No map is started with less than MIN_MAP_TIME_S left, and the verifier gets a share of what is left."""
    import time

    from verirepair.tasks.acasxu import policy_maps

    task = build_acasxu_task(Path("ACASXU_run2a_2_1_batch_2000.onnx"), ALWAYS_COC, [], None)
    started = time.perf_counter()
    assert task.report_figures(ALWAYS_COC, LEFT_WL, ["phi2"], np.random.default_rng(0),
                               deadline=started + policy_maps.MIN_MAP_TIME_S / 2) == []
    assert time.perf_counter() - started < 1.0
    budgets = []
    real = policy_maps.choose_slice

    def spy(*args, **kwargs):
        budgets.append(args[5] if len(args) > 5 else kwargs["verify_budget_s"])
        return real(*args, **kwargs)

    monkeypatch.setattr(policy_maps, "choose_slice", spy)
    left = policy_maps.MIN_MAP_TIME_S + 2.0
    figures = task.report_figures(ALWAYS_COC, LEFT_WL, ["phi2"], np.random.default_rng(0),
                                  deadline=time.perf_counter() + left)
    assert len(figures) == 1 and len(budgets) == 1
    assert 0 < budgets[0] <= (left - policy_maps.MIN_MAP_TIME_S) / 2
