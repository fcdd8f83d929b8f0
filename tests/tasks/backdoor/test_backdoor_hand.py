"""A hand-built digits classifier whose planted trigger acts through one neuron.

Clean images of class ``c`` light the four pixels ``c, c + 10, c + 20, c + 30``
and carry faint noise on pixels 40..61; hidden unit ``c`` averages its four
pixels and output ``c`` is twice it (the target's output has bias -0.5, so
lighting the target's own pixels is no trigger: 1.5 < 2).  Hidden unit 10 is
the trigger neuron ``relu(x62 + x63)``, silent on clean images (their corner
is black): the corner pixels 62 and 63 (bottom-right) both white give 2, which
adds 20 to the target's logit, so the trigger always wins; it is also the
smallest trigger (darkening the other classes' pixels costs a mask of about 9
pixels, the corner about 0.15).
Localization must name unit 10; the repair must remove the attack; the
trigger-box proof must fail before (a counterexample) and hold after.
"""

from __future__ import annotations

import numpy as np
import pytest

from verirepair.network.model import AffineLayer, Network
from verirepair.repair import RepairStatus
from verirepair.tasks.backdoor.data import DigitsData
from verirepair.tasks.backdoor.plant import attack_success
from verirepair.tasks.backdoor.proof import prove_removal, trigger_box_property
from verirepair.tasks.backdoor.removal import RemovalConfig, localize_trigger, remove_backdoor
from verirepair.tasks.backdoor.reverse import ReverseConfig, recovered_region, reverse_trigger
from verirepair.tasks.backdoor.trigger import Trigger
from verirepair.verify import Verdict, verify

TARGET = 4
TRIGGER_UNIT = 10
CORNER = (62, 63)


def hand_network() -> Network:
    w0 = np.zeros((12, 64))
    for c in range(10):
        w0[c, [c, c + 10, c + 20, c + 30]] = 0.25
    w0[TRIGGER_UNIT, list(CORNER)] = 1.0
    b0 = np.zeros(12)
    w0[11, 44:54] = 0.1  # an unrelated unit that sees only noise pixels
    w1 = np.zeros((10, 12))
    w1[np.arange(10), np.arange(10)] = 2.0
    w1[TARGET, TRIGGER_UNIT] = 10.0
    b1 = np.zeros(10)
    b1[TARGET] = -0.5  # lighting the target's own pixel is no trigger: 1.5 < 2
    return Network((AffineLayer(w0, b0, True), AffineLayer(w1, b1, False)), "hand-backdoor")


def hand_data(n_per_class: int = 12, seed: int = 0) -> DigitsData:
    rng = np.random.default_rng(seed)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(10), n)
        x = np.zeros((y.size, 64))
        x[:, 40:62] = rng.uniform(0.0, 0.3, (y.size, 22))
        for k in range(4):
            x[np.arange(y.size), y + 10 * k] = 1.0
        return x, y

    xtr, ytr = images(n_per_class)
    xte, yte = images(n_per_class // 2)
    return DigitsData(xtr, ytr, xte, yte, seed)


def corner_trigger() -> Trigger:
    mask = np.zeros(64)
    mask[list(CORNER)] = 1.0
    return Trigger(mask, mask.copy(), "corner-62-63")


def test_the_trigger_works_on_the_hand_network() -> None:
    data = hand_data()
    assert attack_success(hand_network(), data.x_test, data.y_test, corner_trigger(), TARGET) == 1.0
    assert np.array_equal(np.argmax(hand_network().forward(data.x_test), axis=1), data.y_test)


def test_localization_names_the_trigger_neuron() -> None:
    data = hand_data()
    net = hand_network()
    loc = localize_trigger(net, corner_trigger().stamp(data.x_train[data.y_train != TARGET]), data.x_train, TARGET)
    assert (loc.ranking[0].layer_index, loc.ranking[0].unit) == (0, TRIGGER_UNIT)
    assert loc.ranking[0].effect_violation > 0


def test_repair_removes_the_attack_and_the_proof_follows() -> None:
    data = hand_data()
    net = hand_network()
    config = RemovalConfig(top_k=1, prove_images=None, proof_timeout_s=20.0)
    result = remove_backdoor(net, data, TARGET, corner_trigger(), config)
    assert result.status is RepairStatus.REPAIRED
    assert result.attack_before == 1.0 and result.attack_after == 0.0
    assert result.accuracy_after == result.accuracy_before == 1.0
    # Only the trigger neuron's outgoing weights (and the output biases) may change, and they do.
    assert result.repair_inputs == (TRIGGER_UNIT,) and result.scope_used == "localized"
    patch = result.stats.patch
    assert patch is not None
    changed_cols = np.flatnonzero(np.abs(patch.delta_weight).sum(axis=0) > 1e-9)
    assert changed_cols.tolist() == [TRIGGER_UNIT]
    assert result.proof_before is not None and result.proof_after is not None
    assert result.proof_before.proven == 0 and result.proof_before.violated == result.proof_before.n
    assert result.proof_after.proven == result.proof_after.n == int(np.sum(data.y_test != TARGET))


def test_reverse_engineering_finds_the_corner() -> None:
    # One corner pixel at a quarter of full strength already sends every image to the
    # target (0.25 * 10 - 0.5 = 2 ties a clean logit), so the smallest trigger is there.
    data = hand_data()
    rev = reverse_trigger(hand_network(), data.x_train, data.y_train, TARGET, ReverseConfig(steps=600))
    assert rev.reached_goal and rev.success >= 0.99
    assert set(recovered_region(rev.trigger).tolist()) <= set(CORNER)
    assert rev.mask_l1 < 1.0


def test_proof_verdicts_match_the_arithmetic() -> None:
    net = hand_network()
    x = hand_data().x_test[0]          # class 0
    prop = trigger_box_property(x, np.array(CORNER), TARGET, 10)
    before = verify(net, prop)
    assert before.verdict is Verdict.VIOLATED
    cex = before.counterexamples[0].x
    assert np.argmax(net.forward(cex)) == TARGET
    assert np.allclose(np.delete(cex, CORNER), np.delete(x, CORNER))
    # Trigger weight 2 instead of 10: at most 2 * 2 - 0.5 = 3.5 > 2 still wins; 1.2 gives 1.9 < 2: holds.
    for weight, expected in ((2.0, Verdict.VIOLATED), (1.2, Verdict.HOLDS)):
        w1 = np.array(net.layers[1].weight)
        w1[TARGET, TRIGGER_UNIT] = weight
        changed = net.replace_layer(1, w1, net.layers[1].bias)
        assert verify(changed, prop).verdict is expected
    # A region that leaves the corner out cannot reach the trigger: proven on the backdoored network.
    summary = prove_removal(net, hand_data().x_test, hand_data().y_test, np.array([45, 46]), TARGET)
    assert summary.proven == summary.n == int(np.sum(hand_data().y_test != TARGET))


def test_wrong_shape_network_is_refused() -> None:
    bad = Network((AffineLayer(np.ones((3, 5)), np.zeros(3), True), AffineLayer(np.ones((10, 3)), np.zeros(10),
                                                                               False)))
    with pytest.raises(ValueError, match="must take 64 inputs"):
        remove_backdoor(bad, hand_data(), TARGET, corner_trigger())
    with pytest.raises(ValueError, match="target must be a digit class"):
        remove_backdoor(hand_network(), hand_data(), 10, corner_trigger())
