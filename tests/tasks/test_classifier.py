"""The shared classifier helpers: seeded training, argmax, accuracy, margins, Clopper-Pearson."""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.network.model import AffineLayer, Network
from verirepair.tasks.classifier import TrainConfig, accuracy, margins, predict, proportion_ci, train_mlp


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(-1.0, 0.3, (60, 2)), rng.normal(1.0, 0.3, (60, 2))])
    y = np.repeat([0, 1], 60)
    return x, y


def test_training_is_seeded_and_learns_separable_blobs() -> None:
    x, y = _blobs()
    first = train_mlp(x, y, TrainConfig(hidden=(8,), epochs=40, lr=1e-2, batch_size=16, seed=3))
    again = train_mlp(x, y, hidden=(8,), epochs=40, lr=1e-2, batch_size=16, seed=3)
    other = train_mlp(x, y, hidden=(8,), epochs=40, lr=1e-2, batch_size=16, seed=4)
    assert first.hidden_sizes == (8,) and first.n_outputs == 2 and not first.layers[-1].relu
    for a, b in zip(first.layers, again.layers, strict=True):
        np.testing.assert_array_equal(a.weight, b.weight)
    assert not np.array_equal(first.layers[0].weight, other.layers[0].weight)
    assert accuracy(first, x, y) == 1.0


def test_training_rejects_bad_labels_and_shapes() -> None:
    x, y = _blobs()
    with pytest.raises(ValueError, match="labels"):
        train_mlp(x, np.where(y == 1, 5, -1), n_classes=2)
    with pytest.raises(ValueError, match="shape"):
        train_mlp(x, y[:-1])
    with pytest.raises(ValueError, match="hidden"):
        TrainConfig(hidden=(0,))


def test_predict_accuracy_and_margins_by_hand() -> None:
    # logits = (x0, x1): class = argmax, margin of class 0 = x0 - x1
    net = Network((AffineLayer(np.eye(2), np.zeros(2), relu=False),))
    x = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 1.0]])
    np.testing.assert_array_equal(predict(net, x), [0, 1, 0])  # a tie goes to the lower index
    assert accuracy(net, x, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    np.testing.assert_allclose(margins(net, x, np.array([0, 0, 1])), [1.0, -3.0, 0.0])


def test_clopper_pearson_known_values() -> None:
    # k = 0: the upper end solves (1 - p)^n = alpha / 2
    low, high = proportion_ci(0, 10, 0.95)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** 0.1)
    low, high = proportion_ci(10, 10, 0.95)
    assert high == 1.0 and low == pytest.approx(0.025 ** 0.1)
    low, high = proportion_ci(50, 100)
    assert low < 0.5 < high and high - low == pytest.approx(0.2033, abs=2e-3)
    with pytest.raises(ValueError):
        proportion_ci(3, 2)
    with pytest.raises(ValueError):
        proportion_ci(1, 2, confidence=1.0)
