"""Cheap counterexample search: random sampling plus gradient attacks.

Pipeline position: :func:`verirepair.verify.engine.verify` runs :func:`falsify`
before branch and bound (most violated ACAS Xu properties fall here in
milliseconds), and the search calls :func:`pgd_attack` to push every
counterexample it finds deeper into the unsafe set.  :func:`adam_attack` is
the slower, more thorough ascent used by the localizer's sampler
(:func:`verirepair.localize.samples.pgd_counterexamples`) for rare
violations; ``falsify`` does not use it.

The attack ascends the property's own violation score (values always from
:meth:`Property.violation_score`; the gradient is the analytic subgradient of
its active half-space slack, see :func:`_score_gradient`) with signed-gradient
steps scaled by the box width, projected back into the input box of each start
point.  Every returned point went through
:func:`verirepair.verify.confirm.confirm` (float64 forward pass).

Why push deeper: a point whose score is barely ``>= 0`` in float64 may leave
the unsafe set when another engine (onnxruntime, float32) evaluates it, so
:func:`deepen` spends a few extra steps to maximise the score margin.
"""

from __future__ import annotations

import time

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Property
from verirepair.verify.confirm import confirm
from verirepair.verify.result import Counterexample, VerifyConfig

#: Number of best random samples that seed the PGD attack.
PGD_STARTS = 64
#: First and last PGD step, as a fraction of each box edge (geometric decay).
PGD_STEP_FIRST = 0.1
PGD_STEP_LAST = 1e-3
#: PGD steps spent by :func:`deepen` on an already confirmed counterexample.
DEEPEN_STEPS = 20
#: Adam's moment decay rates and denominator guard (the usual defaults, as in torch.optim.Adam).
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8


def _score_gradient(network: Network, prop: Property, x: np.ndarray) -> np.ndarray:
    """Gradient of the violation score at ``x`` (n, d), analytically (a subgradient).

    The score is ``max_p min_i slack_{p,i}(y)`` with the slacks of
    :meth:`HalfSpaces.slack`; its gradient in ``y`` is the gradient of the one
    active slack, ``-a_i / ||a_i||``, which is pulled back through the network
    with the ReLU activation pattern of ``x`` (for other activations, their
    analytic derivative, read off the layer outputs:
    :meth:`~verirepair.network.activation.Activation.derivative_from_output`).  (Numpy instead of torch: the
    attack runs on every call of ``verify`` and torch's import alone costs
    seconds, which a short ``timeout_s`` could not absorb.)
    """
    acts = network.forward_all(x)
    y = acts[-1]
    n = x.shape[0]
    best = np.full(n, -np.inf)
    direction = np.zeros_like(y)
    for poly in prop.unsafe:
        slack = poly.slack(y)                                   # (n, m_p)
        row = np.argmin(slack, axis=1)
        value = slack[np.arange(n), row]
        norms = np.linalg.norm(poly.A, axis=1)
        norms[norms == 0] = 1.0
        better = value > best
        best[better] = value[better]
        direction[better] = -(poly.A / norms[:, None])[row[better]]
    last = network.layers[-1]
    if last.relu:
        g = direction * (y > 0.0)
    else:
        g = direction * last.activation.derivative_from_output(y) if last.nonlinear else direction
    for index in range(network.n_layers - 1, -1, -1):
        g = g @ network.layers[index].weight
        if index > 0 and network.layers[index - 1].relu:
            g = g * (acts[index] > 0.0)
        elif index > 0 and network.layers[index - 1].nonlinear:
            g = g * network.layers[index - 1].activation.derivative_from_output(acts[index])
    return g


def nearest_box_bounds(prop: Property, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the input box nearest to each point (the first containing box, if any).

    Parameters
    ----------
    prop : Property
    x : array, shape (n, d)

    Returns
    -------
    lower, upper : array, shape (n, d)
    """
    dists = np.stack([np.abs(np.clip(x, b.lower, b.upper) - x).max(axis=1)
                      for b in prop.input_boxes], axis=1)
    nearest = np.argmin(dists, axis=1)
    lowers = np.stack([b.lower for b in prop.input_boxes])
    uppers = np.stack([b.upper for b in prop.input_boxes])
    return lowers[nearest], uppers[nearest]


def pgd_attack(network: Network, prop: Property, x0: np.ndarray, lower: np.ndarray,
               upper: np.ndarray, steps: int, deadline: float | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Maximise the violation score from each start point by projected signed gradient.

    Parameters
    ----------
    network : Network
    prop : Property
    x0 : array, shape (n, d) -- start points, inside their boxes
    lower, upper : array, shape (n, d) -- the box each point is projected into
    steps : int
    deadline : float, optional -- ``time.perf_counter()`` value to stop at

    Returns
    -------
    x_best : array, shape (n, d) -- the best point seen per start
    score_best : array, shape (n,) -- its float64 violation score
    """
    width = upper - lower
    x = np.clip(x0, lower, upper)
    x_best = x.copy()
    score_best = prop.violation_score(network.forward(x_best))
    for step in range(steps):
        if deadline is not None and time.perf_counter() > deadline:
            break
        frac = PGD_STEP_FIRST * (PGD_STEP_LAST / PGD_STEP_FIRST) ** (step / max(steps - 1, 1))
        grad = _score_gradient(network, prop, x)
        x = np.clip(x + frac * width * np.sign(grad), lower, upper)
        new_score = prop.violation_score(network.forward(x))
        better = new_score > score_best
        x_best[better] = x[better]
        score_best[better] = new_score[better]
    return x_best, score_best


def adam_attack(network: Network, prop: Property, x0: np.ndarray, lower: np.ndarray,
                upper: np.ndarray, steps: int, lr: float = 1e-3, deadline: float | None = None,
                every: int = 10) -> list[np.ndarray]:
    """Maximise the violation score from each start point by projected Adam ascent.

    The ascent runs in box-normalised coordinates ``u = (x - lower) / width``,
    so ``lr`` is a fraction of each box edge, and clips ``u`` to ``[0, 1]``
    after every step.  Unlike :func:`pgd_attack`'s signed steps, Adam's small
    momentum steps follow narrow ridges of the score: ACAS Xu phi7 on N1,9 has
    counterexamples that signed-gradient PGD from random starts misses.  The
    gradient is :func:`_score_gradient`'s analytic subgradient.

    Parameters
    ----------
    network : Network
    prop : Property
    x0 : array, shape (n, d) -- start points, inside their boxes
    lower, upper : array, shape (n, d) -- the box each point is projected into
    steps : int -- Adam steps
    lr : float -- Adam learning rate, as a fraction of each box edge
    deadline : float, optional -- ``time.perf_counter()`` value to stop at
    every : int -- keep every ``every``-th iterate (and the last one)

    Returns
    -------
    list of array, shape (n, d)
        The kept iterates in order, each inside ``[lower, upper]``; their
        scores are not checked (confirm them with a forward pass).
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    width = upper - lower
    safe_width = np.where(width > 0, width, 1.0)    # a flat edge has no coordinate to move
    u = (np.asarray(x0, dtype=np.float64) - lower) / safe_width
    m, v = np.zeros_like(u), np.zeros_like(u)
    iterates: list[np.ndarray] = []
    for step in range(1, steps + 1):
        if deadline is not None and time.perf_counter() > deadline:
            break
        g = _score_gradient(network, prop, lower + u * width) * width   # d score / d u
        m = ADAM_BETA1 * m + (1.0 - ADAM_BETA1) * g
        v = ADAM_BETA2 * v + (1.0 - ADAM_BETA2) * g * g
        denom = np.sqrt(v) / np.sqrt(1.0 - ADAM_BETA2 ** step) + ADAM_EPS
        u = np.clip(u + (lr / (1.0 - ADAM_BETA1 ** step)) * m / denom, 0.0, 1.0)
        if step % every == 0 or step == steps:
            iterates.append(np.clip(lower + u * width, lower, upper))
    return iterates


def deepen(network: Network, prop: Property, found: list[Counterexample],
           deadline: float | None = None) -> list[Counterexample]:
    """Push confirmed counterexamples deeper into the unsafe set (larger score).

    Parameters
    ----------
    network, prop : the instance
    found : list of Counterexample -- confirmed points
    deadline : float, optional

    Returns
    -------
    list of Counterexample
        For each input point, the better of itself and its PGD descendant,
        sorted by decreasing score; every entry is confirmed.
    """
    if not found:
        return []
    x0 = np.stack([c.x for c in found])
    lower, upper = nearest_box_bounds(prop, x0)
    x_best, _ = pgd_attack(network, prop, x0, lower, upper, DEEPEN_STEPS, deadline)
    source = found[0].source
    pushed = confirm(network, prop, x_best, source)
    merged = {c.x.tobytes(): c for c in list(found) + pushed}
    return sorted(merged.values(), key=lambda c: -c.score)


def falsify(network: Network, prop: Property, config: VerifyConfig = VerifyConfig(),
            deadline: float | None = None) -> list[Counterexample]:
    """Look for counterexamples by sampling and PGD (incomplete, fast).

    Parameters
    ----------
    network : Network
    prop : Property
    config : VerifyConfig -- ``seed``, ``falsify_samples``, ``pgd_steps`` and
        ``max_counterexamples`` are used
    deadline : float, optional -- ``time.perf_counter()`` value to give up at

    Returns
    -------
    list of Counterexample
        At most ``config.max_counterexamples`` confirmed counterexamples, best
        score first; empty when none was found (which proves nothing).
    """
    rng = np.random.default_rng(config.seed)
    centres = np.stack([box.center for box in prop.input_boxes])
    x = np.vstack([centres, prop.sample_inputs(rng, config.falsify_samples)])
    scores = prop.violation_score(network.forward(x))
    found = confirm(network, prop, x[scores >= 0.0], "sampling")
    if not found and config.pgd_steps > 0:
        starts = x[np.argsort(-scores)[:PGD_STARTS]]
        lower, upper = nearest_box_bounds(prop, starts)
        x_best, score_best = pgd_attack(network, prop, starts, lower, upper,
                                        config.pgd_steps, deadline)
        found = confirm(network, prop, x_best[score_best >= 0.0], "pgd")
    if not found:
        return []
    found = deepen(network, prop, found[: max(config.max_counterexamples, 4)], deadline)
    return found[: config.max_counterexamples]
