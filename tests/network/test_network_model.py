"""Specification of the immutable Network model on a hand-computed toy network."""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.network import AffineLayer, Network, Normalization, random_network


@pytest.fixture
def toy() -> Network:
    """h = relu([[1, -1], [2, 0]] x + [0, -1]);  y = [1, 1] h + 0.5."""
    return Network((AffineLayer([[1.0, -1.0], [2.0, 0.0]], [0.0, -1.0], relu=True),
                    AffineLayer([[1.0, 1.0]], [0.5], relu=False)), name="toy")


def test_forward_matches_hand_computation(toy: Network) -> None:
    # x = (1, 2): pre-activations (-1, 1) -> h = (0, 1) -> y = 1.5
    # x = (3, 1): pre-activations (2, 5)  -> h = (2, 5) -> y = 7.5
    # x = (0, 0): pre-activations (0, -1) -> h = (0, 0) -> y = 0.5
    x = np.array([[1.0, 2.0], [3.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(toy.forward(x), [[1.5], [7.5], [0.5]])
    np.testing.assert_array_equal(toy.forward(np.array([1.0, 2.0])), [1.5])


def test_forward_all_returns_every_activation(toy: Network) -> None:
    acts = toy.forward_all(np.array([[1.0, 2.0], [3.0, 1.0]]))
    assert len(acts) == 3
    np.testing.assert_array_equal(acts[0], [[1.0, 2.0], [3.0, 1.0]])
    np.testing.assert_array_equal(acts[1], [[0.0, 1.0], [2.0, 5.0]])
    np.testing.assert_array_equal(acts[2], [[1.5], [7.5]])


def test_forward_from_continues_from_a_hidden_layer(toy: Network) -> None:
    np.testing.assert_array_equal(toy.forward_from(0, np.array([[2.0, 5.0]])), [[7.5]])
    np.testing.assert_array_equal(toy.forward_from(-1, np.array([[3.0, 1.0]])), [[7.5]])


def test_shape_properties(toy: Network) -> None:
    assert (toy.n_inputs, toy.n_outputs, toy.n_layers) == (2, 1, 2)
    assert toy.hidden_sizes == (2,)
    assert toy.n_parameters == 4 + 2 + 2 + 1


def test_replace_layer_returns_a_new_network_and_keeps_the_old(toy: Network) -> None:
    new = toy.replace_layer(1, [[2.0, 0.0]], [1.0])
    # x = (3, 1): h = (2, 5) -> new y = 2 * 2 + 1 = 5; the old network still gives 7.5
    np.testing.assert_array_equal(new.forward(np.array([[3.0, 1.0]])), [[5.0]])
    np.testing.assert_array_equal(toy.forward(np.array([[3.0, 1.0]])), [[7.5]])
    assert new.name == toy.name and new.source is toy.source
    assert new.layers[0] is toy.layers[0]
    with pytest.raises(ValueError, match="keep shape"):
        toy.replace_layer(1, [[1.0, 1.0, 1.0]], [0.0])


def test_parameters_are_read_only_copies() -> None:
    weight = np.array([[1.0, 2.0]])
    layer = AffineLayer(weight, [0.0], relu=False)
    weight[0, 0] = 99.0
    assert layer.weight[0, 0] == 1.0
    with pytest.raises(ValueError):
        layer.weight[0, 0] = 5.0


def test_random_network_is_deterministic_and_chains() -> None:
    a, b = random_network([3, 4, 2], seed=7), random_network([3, 4, 2], seed=7)
    assert [layer.relu for layer in a.layers] == [True, False]
    for la, lb in zip(a.layers, b.layers, strict=True):
        np.testing.assert_array_equal(la.weight, lb.weight)
    with pytest.raises(ValueError, match="expects 5 inputs"):
        Network((AffineLayer(np.ones((4, 3)), np.zeros(4), True),
                 AffineLayer(np.ones((2, 5)), np.zeros(2), False)))


def _norm(**names) -> Normalization:
    return Normalization((0.0, -1.0), (10.0, 1.0), (5.0, 0.0), (10.0, 2.0), 1.0, 3.0, **names)


def test_normalization_clips_only_when_asked() -> None:
    norm = _norm()
    x = np.array([[12.0, -3.0], [7.5, 0.5]])
    # clipped: (10 - 5) / 10, (-1 - 0) / 2; unclipped: (12 - 5) / 10, -3 / 2
    np.testing.assert_array_equal(norm.normalize_inputs(x), [[0.5, -0.5], [0.25, 0.25]])
    np.testing.assert_array_equal(norm.normalize_inputs(x, clip=False), [[0.7, -1.5], [0.25, 0.25]])
    np.testing.assert_array_equal(norm.denormalize_outputs(np.array([[2.0, -1.0]])), [[7.0, -2.0]])


def test_normalization_stores_hashable_floats_and_checks_lengths() -> None:
    norm = Normalization(np.array([0.0, -1.0]), [10.0, 1.0], (5.0, 0.0), (10.0, 2.0),
                         np.float64(1.0), 3)
    assert norm == _norm() and hash(norm) == hash(_norm())
    assert norm.input_min == (0.0, -1.0) and type(norm.output_range) is float
    assert _norm(input_names=("a", "b")) != norm
    with pytest.raises(ValueError, match="differ in length"):
        Normalization((0.0,), (1.0, 2.0), (0.0, 0.0), (1.0, 1.0), 0.0, 1.0)
    with pytest.raises(ValueError, match="input_units needs 0 or 2 entries"):
        _norm(input_units=("ft",))
