"""The localization figure: written atomically with the umask's mode, titled, legible."""

from __future__ import annotations

import os

import numpy as np
import pytest

from localize_helpers import CULPRIT_CEX, CULPRIT_CORRECT
from verirepair.errors import VerirepairError
from verirepair.localize import localize
from verirepair.localize.plot import effect_matrix, figure_localization, plot_localization
from verirepair.localize.result import Localization, NeuronEffect


def test_plot_file_written(culprit, tmp_path):
    net, props = culprit
    loc = localize(net, props, CULPRIT_CEX, CULPRIT_CORRECT)
    target = plot_localization(loc, tmp_path / "loc.png", top_k=5)
    assert target == tmp_path / "loc.png"
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["loc.png"]      # no temporary left over
    layers, matrix = effect_matrix(loc)
    assert layers == [0]
    np.testing.assert_allclose(matrix, [[1.4, 8.25]])


def test_plot_of_an_empty_localization(culprit, tmp_path):
    net, props = culprit
    loc = localize(net, props, np.zeros((0, 2)), CULPRIT_CORRECT)
    target = plot_localization(loc, tmp_path / "empty.svg")
    assert target.stat().st_size > 0


def _acasxu_like_localization(top: int = 10) -> Localization:
    """A made-up localization shaped like ACAS Xu N1,9: 6 hidden layers of 50 units."""
    rng = np.random.default_rng(5)
    # Effects up to 2.834e-3 as on N1,9 prop_7: the old bar chart wrote 6 overlapping "0.0005" ticks.
    effects = [NeuronEffect(layer, unit, float(rng.uniform(0, 2.834e-3)), float(rng.uniform(0, 0.1)))
               for layer in range(6) for unit in range(50)]
    ranking = tuple(sorted(effects, key=lambda e: -e.effect_violation))
    return Localization(ranking, tuple(rng.uniform(0, 1e-2, 7)), 3, (11, 10, 7), "causal", 16, 1, 256, 0, 1.0)


def _overlapping(labels) -> list[tuple[str, str]]:
    visible = [t for t in labels if t.get_visible() and t.get_text()]
    boxes = [(t.get_text(), t.get_window_extent()) for t in visible]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]


@pytest.mark.parametrize("top", [10, 40])
def test_ticks_do_not_overlap_on_an_acasxu_sized_network(top):
    fig = figure_localization(_acasxu_like_localization(), top_k=top, network_name="ACASXU_run2a_1_9_batch_2000",
                              property_name="prop_7")
    fig.canvas.draw()
    bars, heat = fig.axes[:2]
    for ax in (bars, heat):
        assert _overlapping(ax.get_xticklabels()) == []
        assert _overlapping(ax.get_yticklabels()) == []
    assert len([t for t in heat.get_xticklabels() if t.get_text()]) <= 12


def test_title_names_network_and_property():
    fig = figure_localization(_acasxu_like_localization(), network_name="ACASXU_run2a_1_9_batch_2000",
                              property_name="prop_7")
    title = fig.get_suptitle()
    assert "ACASXU_run2a_1_9_batch_2000" in title and "prop_7" in title and "causal" in title


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_plot_file_mode_follows_the_umask(culprit, tmp_path, umask):
    net, props = culprit
    loc = localize(net, props, CULPRIT_CEX, CULPRIT_CORRECT)
    old = os.umask(umask)
    try:
        target = plot_localization(loc, tmp_path / "loc.png", network_name="culprit", property_name="y0<8")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_unsupported_suffix_is_refused_before_drawing(culprit, tmp_path):
    net, props = culprit
    loc = localize(net, props, CULPRIT_CEX, CULPRIT_CORRECT)
    with pytest.raises(VerirepairError, match=r"out\.txt.*\.png"):
        plot_localization(loc, tmp_path / "out.txt")
    assert list(tmp_path.iterdir()) == []
