"""The localization figure is written atomically."""

from __future__ import annotations

import numpy as np

from localize_helpers import CULPRIT_CEX, CULPRIT_CORRECT
from verirepair.localize import localize
from verirepair.localize.plot import effect_matrix, plot_localization


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
