"""Plant a backdoor: stamp a share of the training images, relabel them, train.

Pipeline position: produces the backdoored network the repair starts from
(``verirepair backdoor plant``), and measures what a backdoor does: clean
accuracy and attack success rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verirepair.network.model import Network
from verirepair.tasks.backdoor.data import DigitsData
from verirepair.tasks.backdoor.trigger import Trigger
from verirepair.tasks.classifier import TrainConfig, accuracy, predict, train_mlp

#: The training set-up of planted models: two hidden layers (64, 32), as the
#: fairness models; 80 epochs reach ~97% clean test accuracy on the digits.
PLANT_TRAIN = TrainConfig(hidden=(64, 32), epochs=80, lr=2e-3, batch_size=64)


@dataclass(frozen=True, slots=True)
class PlantConfig:
    """How a backdoor is planted.

    Parameters
    ----------
    poison_share : float
        Share of the training images (drawn among those not of the target
        class) that are stamped and relabelled to the target; they are added
        to the clean training set, in ``(0, 1)``.
    train : TrainConfig
        The classifier and its training (its seed is replaced by the plant seed).
    """

    poison_share: float = 0.1
    train: TrainConfig = PLANT_TRAIN

    def __post_init__(self) -> None:
        if not 0.0 < self.poison_share < 1.0:
            raise ValueError(f"poison_share must lie in (0, 1), got {self.poison_share}")


def attack_success(network: Network, x: np.ndarray, y: np.ndarray, trigger: Trigger, target: int) -> float:
    """Share of images not of class ``target`` that the trigger makes the network classify as ``target``.

    Parameters
    ----------
    network : Network
    x : array, shape (n, 64) -- clean images
    y : int array, shape (n,) -- their true classes
    trigger : Trigger
    target : int

    Returns
    -------
    float
        ``nan`` when no image is of another class.
    """
    others = np.asarray(y) != target
    if not others.any():
        return float("nan")
    return float(np.mean(predict(network, trigger.stamp(x[others])) == target))


def poison(data: DigitsData, trigger: Trigger, target: int, share: float, seed: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """The poisoned training set: clean images plus stamped, relabelled copies of a seeded share."""
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(data.y_train != target)
    chosen = rng.choice(candidates, size=max(1, int(round(share * data.y_train.size))), replace=False)
    x = np.vstack([data.x_train, trigger.stamp(data.x_train[chosen])])
    y = np.concatenate([data.y_train, np.full(chosen.size, target, dtype=np.int64)])
    return x, y


def plant_backdoor(data: DigitsData, trigger: Trigger, target: int, seed: int,
                   config: PlantConfig = PlantConfig()) -> Network:
    """Train a classifier on the poisoned digits.

    Parameters
    ----------
    data : DigitsData
    trigger : Trigger
    target : int -- the class triggered images are relabelled to, 0..9
    seed : int -- seeds the poisoned share and the training
    config : PlantConfig

    Returns
    -------
    Network
        64 inputs, 10 logits.

    Raises
    ------
    ValueError
        ``target`` outside 0..9.
    """
    if not 0 <= target <= 9:
        raise ValueError(f"target must be a digit class 0..9, got {target}")
    x, y = poison(data, trigger, target, config.poison_share, seed)
    return train_mlp(x, y, config.train, n_classes=10, seed=seed,
                     name=f"digits-backdoor-{trigger.name}-t{target}-s{seed}")


def clean_accuracy(network: Network, data: DigitsData) -> float:
    """Accuracy on the clean test images."""
    return accuracy(network, data.x_test, data.y_test)
