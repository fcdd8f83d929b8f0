"""Decision rules: decisions, the rows that keep them, and what counts as kept (hand-computed)."""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.decision import ArgMax, ArgMin, Threshold, get_decision_rule, list_decision_rules

Y = np.array([[1.0, 3.0, 2.0],      # argmin 0 (gap 1), argmax 1 (gap 1)
              [5.0, 4.0, 4.5]])     # argmin 1 (gap 0.5), argmax 0 (gap 0.5)


def test_registry_names_and_unknown_rule():
    assert {"argmin", "argmax", "threshold"} <= set(list_decision_rules())
    with pytest.raises(ValueError, match="argmax"):
        get_decision_rule("softmax")


def test_argmin_rows_keep_the_advisory_with_a_capped_margin():
    rows = ArgMin().keep_rows(Y, margin=10.0)
    # two rows per sample (every other output), c @ y >= level with level = gap / 2
    assert rows.sample.tolist() == [0, 0, 1, 1]
    assert rows.lower.tolist() == [0.5, 0.5, 0.25, 0.25]
    values = np.einsum("km,km->k", rows.c, Y[rows.sample])
    assert np.all(values >= rows.lower)           # the original satisfies every row
    # sample 0: y1 - y0 and y2 - y0
    assert rows.c[0].tolist() == [-1.0, 1.0, 0.0] and rows.c[1].tolist() == [-1.0, 0.0, 1.0]


def test_argmax_rows_are_the_mirror_image():
    rows = ArgMax().keep_rows(Y, margin=0.1)
    assert rows.lower.tolist() == [0.1, 0.1, 0.1, 0.1]
    assert rows.c[0].tolist() == [-1.0, 1.0, 0.0]     # y1 - y0 >= 0.1 keeps class 1
    assert rows.c[1].tolist() == [0.0, 1.0, -1.0]
    assert np.all(np.einsum("km,km->k", rows.c, Y[rows.sample]) >= rows.lower)


def test_threshold_rule_and_its_rows():
    rule = Threshold(threshold=2.0, output=0)
    assert rule.decide(Y).tolist() == [0, 1]
    rows = rule.keep_rows(Y, margin=1.0)
    # y0 = 1 < 2: upper bound 2 - min(1, 1/2); y0 = 5 >= 2: lower bound 2 + min(1, 3/2)
    assert rows.upper[0] == pytest.approx(1.5) and rows.lower[0] == -np.inf
    assert rows.lower[1] == pytest.approx(3.0) and rows.upper[1] == np.inf


@pytest.mark.parametrize("rule", [ArgMin(), ArgMax(), Threshold(2.0)])
def test_kept_detects_a_changed_decision(rule):
    assert rule.kept(Y, Y, 0.0).all()
    flipped = Y[:, ::-1].copy()
    flipped[:, 0] += 10.0 if rule.name == "threshold" else 0.0
    changed = rule.decide(flipped) != rule.decide(Y)
    assert changed.any()
    assert (~rule.kept(Y, flipped, 0.0) == changed).all()
