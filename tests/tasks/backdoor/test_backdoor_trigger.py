"""Triggers, stamping, the digits split and the trigger files' checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verirepair.tasks.backdoor.data import load_digits_split
from verirepair.tasks.backdoor.reverse import anomaly_index, trigger_closeness
from verirepair.tasks.backdoor.trigger import Trigger, load_trigger, named_trigger


def test_named_triggers() -> None:
    c2 = named_trigger("corner2")
    assert c2.region.tolist() == [54, 55, 62, 63]
    assert named_trigger("tlcorner3").region.tolist() == [0, 1, 2, 8, 9, 10, 16, 17, 18]
    checker = named_trigger("checker2")
    assert checker.pattern[[54, 55, 62, 63]].tolist() == [1.0, 0.0, 0.0, 1.0]
    for bad in ("corner5", "checker1", "square", ""):
        with pytest.raises(ValueError, match="unknown trigger"):
            named_trigger(bad)


def test_stamp_overwrites_only_the_mask() -> None:
    x = np.full((2, 64), 0.3)
    out = named_trigger("corner2").stamp(x)
    assert np.all(out[:, [54, 55, 62, 63]] == 1.0)
    assert np.all(np.delete(out, [54, 55, 62, 63], axis=1) == 0.3)
    half = Trigger(np.full(64, 0.5), np.zeros(64)).stamp(x)
    assert np.allclose(half, 0.15)


def test_digits_split_is_seeded_and_scaled() -> None:
    a, b, c = load_digits_split(0), load_digits_split(0), load_digits_split(1)
    assert np.array_equal(a.x_test, b.x_test) and not np.array_equal(a.x_test, c.x_test)
    assert a.x_train.shape[1] == 64 and a.x_train.shape[0] + a.x_test.shape[0] == 1797
    assert a.x_train.min() == 0.0 and a.x_train.max() == 1.0
    assert set(np.unique(a.y_test)) == set(range(10))


@pytest.mark.parametrize(("mask", "match"), [
    (np.ones(63), "shape"),
    (np.full(64, np.nan), "NaN or infinite"),
    (np.full(64, 2.0), r"\[0, 1\]"),
    (np.zeros(64), "all zero"),
])
def test_bad_trigger_files(tmp_path: Path, mask: np.ndarray, match: str) -> None:
    np.save(tmp_path / "m.npy", mask)
    np.save(tmp_path / "p.npy", np.ones(64))
    with pytest.raises(ValueError, match=match) as info:
        load_trigger(tmp_path / "m.npy", tmp_path / "p.npy")
    assert "m.npy" in str(info.value) and "\n" not in str(info.value)


def test_trigger_file_not_npy(tmp_path: Path) -> None:
    (tmp_path / "m.npy").write_text("not an array")
    np.save(tmp_path / "p.npy", np.ones(64))
    with pytest.raises(ValueError, match="cannot read the trigger mask"):
        load_trigger(tmp_path / "m.npy", tmp_path / "p.npy")


def test_eight_by_eight_files_are_accepted(tmp_path: Path) -> None:
    trig = named_trigger("corner3")
    np.save(tmp_path / "m.npy", trig.mask.reshape(8, 8))
    np.save(tmp_path / "p.npy", trig.pattern.reshape(8, 8))
    loaded = load_trigger(tmp_path / "m.npy", tmp_path / "p.npy")
    assert np.array_equal(loaded.mask, trig.mask) and np.array_equal(loaded.pattern, trig.pattern)


def test_closeness_and_anomaly_index() -> None:
    true = named_trigger("corner2")
    same = trigger_closeness(true, true)
    assert same.region_iou == 1.0 and same.mask_overlap == 1.0 and same.effect_cosine == pytest.approx(1.0)
    other = trigger_closeness(true, named_trigger("tlcorner2"))
    assert other.region_iou == 0.0 and other.mask_overlap == 0.0 and other.effect_cosine == 0.0
    index = anomaly_index(np.array([10.0, 11.0, 9.0, 10.0, 2.0]))
    assert index.argmax() == 4 and index[4] > 2
