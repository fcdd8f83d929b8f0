"""Small fully connected ReLU classifiers for the data-set tasks (fairness, backdoor).

Pipeline position: at the edge, before the core.  A task trains its model here
(seeded torch, one thread), gets a plain :class:`~verirepair.network.model.Network`
back, and from then on only the core's stages (verify, localize, repair,
``save_onnx``) see it.  The helpers every classifier task needs live here too:
``predict`` (argmax), ``accuracy``, ``margins`` (logit of the class minus the best
other logit) and ``proportion_ci`` (an exact Clopper-Pearson interval for a rate
estimated from a sample).

Classes are the argmax of the output logits; ties go to the lower index, as
``numpy.argmax`` and ``torch.argmax`` both do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from verirepair.network.model import AffineLayer, Network

__all__ = [
    "TrainConfig",
    "accuracy",
    "as_float32",
    "margins",
    "predict",
    "hidden_sizes_text",
    "proportion_ci",
    "train_mlp",
]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """How :func:`train_mlp` trains (minibatch Adam on cross-entropy).

    Parameters
    ----------
    hidden : tuple of int
        Widths of the hidden ReLU layers.
    epochs : int
        Passes over the training data.
    lr : float
        Adam learning rate.
    batch_size : int
    weight_decay : float
        Adam's L2 penalty.
    seed : int
        Seeds the initialisation and the batch order; the same seed on the same
        data gives the same network bit for bit (one torch thread).
    """

    hidden: tuple[int, ...] = (64, 32)
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden must list positive widths, got {self.hidden}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError("lr must be positive and weight_decay non-negative")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))


def train_mlp(x: np.ndarray, y: np.ndarray, config: TrainConfig = TrainConfig(), *,
              n_classes: int | None = None, name: str = "classifier", **overrides: Any) -> Network:
    """Train a ``Linear-ReLU-...-Linear`` classifier with cross-entropy.

    Parameters
    ----------
    x : array, shape (n, d)
        Encoded inputs (float).
    y : array of int, shape (n,)
        Class labels in ``0 .. n_classes - 1``.
    config : TrainConfig
    n_classes : int, optional
        Number of output logits; ``max(y) + 1`` by default.
    name : str
        The returned network's name.
    **overrides
        Fields of :class:`TrainConfig` replaced for this call, e.g.
        ``train_mlp(x, y, hidden=(32,), epochs=10, seed=3)``.

    Returns
    -------
    Network
        ``len(config.hidden) + 1`` affine layers, ReLU after all but the last,
        float64 copies of the trained float32 parameters.

    Raises
    ------
    ValueError
        Shapes that disagree, labels out of range, or an empty data set.
    """
    import torch

    config = replace(config, **overrides) if overrides else config
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ValueError(f"need x of shape (n, d) and y of shape (n,), n > 0; got {x.shape} and {y.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite values")
    classes = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if y.min() < 0 or y.max() >= classes or classes < 2:
        raise ValueError(f"labels must lie in 0..{classes - 1} with at least 2 classes")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: reproducible and polite on a shared machine
    try:
        generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        sizes = [x.shape[1], *config.hidden, classes]
        modules: list[torch.nn.Module] = []
        for index in range(len(sizes) - 1):
            modules.append(torch.nn.Linear(sizes[index], sizes[index + 1]))
            if index < len(sizes) - 2:
                modules.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*modules)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        inputs = torch.from_numpy(x)
        labels = torch.from_numpy(y.astype(np.int64))
        loss_fn = torch.nn.CrossEntropyLoss()
        for _ in range(config.epochs):
            order = torch.randperm(inputs.shape[0], generator=generator)
            for start in range(0, inputs.shape[0], config.batch_size):
                batch = order[start:start + config.batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(inputs[batch]), labels[batch])
                loss.backward()
                optimizer.step()
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        layers = tuple(
            AffineLayer(lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy(),
                        relu=index < len(linears) - 1)
            for index, lin in enumerate(linears))
    finally:
        torch.set_num_threads(threads)
    return Network(layers, name)


def predict(network: Network, x: np.ndarray) -> np.ndarray:
    """Classes (argmax of the logits) of inputs ``x``, shape ``(n, d)`` -> ``(n,)`` int."""
    return np.argmax(network.forward(np.atleast_2d(x)), axis=1)


def accuracy(network: Network, x: np.ndarray, y: np.ndarray) -> float:
    """Share of ``x`` (shape ``(n, d)``) classified as ``y`` (shape ``(n,)``); ``nan`` when ``n == 0``."""
    y = np.asarray(y)
    if y.size == 0:
        return float("nan")
    return float(np.mean(predict(network, x) == y))


def margins(network: Network, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Logit of ``classes[i]`` minus the largest other logit, for each row of ``x``.

    Parameters
    ----------
    network : Network
    x : array, shape (n, d)
    classes : array of int, shape (n,)

    Returns
    -------
    array, shape (n,)
        Positive where the network answers ``classes[i]`` strictly.
    """
    logits = network.forward(np.atleast_2d(x))
    classes = np.asarray(classes, dtype=int)
    rows = np.arange(logits.shape[0])
    own = logits[rows, classes]
    others = logits.copy()
    others[rows, classes] = -np.inf
    return own - others.max(axis=1)


def proportion_ci(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided confidence interval for a rate ``k / n``.

    It is conservative: the true rate lies in the interval with probability at
    least ``confidence`` when the ``n`` samples are independent draws.

    Parameters
    ----------
    k : int
        Successes (e.g. discriminated individuals), ``0 <= k <= n``.
    n : int
        Sample size, ``n >= 1``.
    confidence : float
        In ``(0, 1)``.

    Returns
    -------
    (low, high) : tuple of float
        ``low = 0`` when ``k = 0`` and ``high = 1`` when ``k = n``.

    Raises
    ------
    ValueError
        ``n < 1``, ``k`` outside ``0..n`` or ``confidence`` outside ``(0, 1)``.
    """
    from scipy.stats import beta

    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def hidden_sizes_text(hidden: Sequence[int]) -> str:
    """``(64, 32)`` -> ``"64-32"`` for names and reports."""
    return "-".join(str(int(h)) for h in hidden)


def as_float32(network: Network) -> Network:
    """The network with every parameter rounded to float32 (what ``save_onnx`` writes), activations kept.

    Repairs measure and prove the rounded network, so that the numbers are those of the delivered file.
    """
    layers = tuple(replace(layer, weight=layer.weight.astype(np.float32), bias=layer.bias.astype(np.float32))
                   for layer in network.layers)
    return Network(layers, network.name, network.normalization, network.source)
