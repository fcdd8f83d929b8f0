"""Proven fairness: a product network and one property per individual, for the existing engine.

Pipeline position: after training and after repair.  :func:`product_network`
turns a binary classifier ``N`` into a network ``P`` with two copies of ``N``
that share every input except the protected attribute's::

    P(s, a, b) = ( m(N(x[s, a])), m(N(x[s, b])) ),    m(y) = y_1 - y_0

``s`` are the shared inputs, ``a`` and ``b`` the two copies' protected inputs;
``m > 0`` means class 1 and ``m <= 0`` class 0 (a tie goes to class 0, as
argmax does).  ``P`` is an ordinary :class:`Network` built from ``N``'s layers:
the first layer splits ``N``'s first weight matrix by columns, the hidden
layers are block-diagonal, and the last one takes each copy's margin row
``W[1] - W[0]``.  The two copies disagree exactly when the margins have
different signs, a union of two polytopes ``{m_a >= 0, m_b <= 0}`` and
``{m_a <= 0, m_b >= 0}`` (closed: ties count as disagreement, the sound side).

:func:`fairness_property` states, for one individual ``x``: for every ``s``
within ``tolerance`` of ``x``'s numeric features (clipped to the training range
``[0, 1]``; categorical features fixed), with copy ``a`` at ``x``'s own
protected value and copy ``b`` at any other value, the copies agree.  Because
copy ``a`` is fixed to the individual's value, holding for every ``b`` implies
that every pair of protected values agrees at every such ``s``.  A one-hot
attribute gives one box per other value (``b`` a fixed one-hot vector); a
numeric one (age) one box with ``b`` over the whole training range.
:func:`prove_individuals` runs :func:`verirepair.verify.verify` on it:
"proven" means the engine's ``HOLDS`` (a complete proof); a ``VIOLATED``
verdict carries a counterexample pair that is confirmed again on ``N`` itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from verirepair.network.model import AffineLayer, Network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.tasks.classifier import predict
from verirepair.tasks.fairness.data import Encoding
from verirepair.tasks.fairness.protected import ProtectedAttribute
from verirepair.verify import Verdict, VerifyConfig, verify

__all__ = ["ProofSummary", "fairness_property", "product_network", "prove_individuals", "split_product_input"]


def _shared_indices(n_inputs: int, attribute: ProtectedAttribute) -> np.ndarray:
    return np.setdiff1d(np.arange(n_inputs), attribute.indices)


def product_network(network: Network, attribute: ProtectedAttribute) -> Network:
    """The two-copy network ``P(s, a, b) = (m_a, m_b)`` of the module docstring.

    Parameters
    ----------
    network : Network
        A classifier with 2 outputs.
    attribute : ProtectedAttribute

    Returns
    -------
    Network
        Inputs ``(s, a, b)``: the ``d - w`` shared inputs in their original
        order, then copy a's ``w`` protected inputs, then copy b's; 2 outputs.

    Raises
    ------
    ValueError
        A network without exactly 2 outputs, or whose output layer has an activation (the
        margin row ``y_1 - y_0`` is formed from the last affine map).
    """
    if network.n_outputs != 2:
        raise ValueError(f"the product network needs a 2-class network, got {network.n_outputs} outputs")
    if not network.layers[-1].activation.is_identity:
        raise ValueError("the product network needs linear output logits, got an output layer with "
                         f"{network.layers[-1].activation.label}")
    shared = _shared_indices(network.n_inputs, attribute)
    w = attribute.width
    layers: list[AffineLayer] = []
    for index, layer in enumerate(network.layers):
        weight, bias = layer.weight, layer.bias
        if index == network.n_layers - 1:      # each copy's margin row
            weight, bias = (weight[1] - weight[0])[None, :], np.array([bias[1] - bias[0]])
        h, n_in = weight.shape
        if index == 0:
            first = np.zeros((2 * h, shared.size + 2 * w))
            first[:h, :shared.size] = weight[:, shared]
            first[h:, :shared.size] = weight[:, shared]
            first[:h, shared.size:shared.size + w] = weight[:, attribute.indices]
            first[h:, shared.size + w:] = weight[:, attribute.indices]
            new_weight = first
        else:
            new_weight = np.zeros((2 * h, 2 * n_in))
            new_weight[:h, :n_in] = weight
            new_weight[h:, n_in:] = weight
        layers.append(AffineLayer(new_weight, np.concatenate([bias, bias]), activation=layer.activation))
    return Network(tuple(layers), f"{network.name}.product.{attribute.name}")


def split_product_input(z: np.ndarray, n_inputs: int, attribute: ProtectedAttribute
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The two individuals ``(x_a, x_b)`` (each ``(n, d)``) a product input ``z`` (``(n, d + w)``) stands for."""
    z = np.atleast_2d(z)
    shared = _shared_indices(n_inputs, attribute)
    w = attribute.width
    x_a = np.zeros((z.shape[0], n_inputs))
    x_a[:, shared] = z[:, :shared.size]
    x_b = x_a.copy()
    x_a[:, attribute.indices] = z[:, shared.size:shared.size + w]
    x_b[:, attribute.indices] = z[:, shared.size + w:]
    return x_a, x_b


#: The two copies disagree: {m_a >= 0, m_b <= 0} or {m_a <= 0, m_b >= 0}, as A @ y <= 0.
DISAGREE = (HalfSpaces(np.array([[-1.0, 0.0], [0.0, 1.0]]), np.zeros(2)),
            HalfSpaces(np.array([[1.0, 0.0], [0.0, -1.0]]), np.zeros(2)))


def fairness_property(x: np.ndarray, attribute: ProtectedAttribute, encoding: Encoding,
                      tolerance: float) -> Property:
    """The property "no protected value and no ``tolerance`` change of the numeric features changes the decision".

    Parameters
    ----------
    x : array, shape (d,)
        One encoded individual.
    attribute : ProtectedAttribute
    encoding : Encoding
        Tells which shared inputs are numeric (they get ``+-tolerance``,
        clipped to ``[0, 1]``); the others stay fixed.
    tolerance : float
        In encoded units (a fraction of each feature's training range), ``>= 0``.

    Returns
    -------
    Property
        Over the product network's inputs; violated iff the copies can disagree.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    shared = _shared_indices(x.size, attribute)
    numeric = np.isin(shared, encoding.numeric_indices())
    s_low, s_high = x[shared].copy(), x[shared].copy()
    s_low[numeric] = np.maximum(np.minimum(x[shared][numeric], 0.0), x[shared][numeric] - tolerance)
    s_high[numeric] = np.minimum(np.maximum(x[shared][numeric], 1.0), x[shared][numeric] + tolerance)
    own = x[attribute.indices]
    boxes = []
    if attribute.kind == "onehot":
        for v in np.flatnonzero(attribute.groups(x[None, :])[0] != np.arange(len(attribute.labels))):
            value = attribute.values[v]
            boxes.append(Box(np.concatenate([s_low, own, value]), np.concatenate([s_high, own, value])))
    else:
        low, high = attribute.domain
        boxes.append(Box(np.concatenate([s_low, own, [min(low, own[0])]]),
                         np.concatenate([s_high, own, [max(high, own[0])]])))
    return Property(tuple(boxes), DISAGREE, f"fair_{attribute.name}")


@dataclass(frozen=True, slots=True)
class ProofSummary:
    """Verdicts of :func:`prove_individuals` for one attribute."""

    attribute: str
    tolerance: float
    n: int
    proven: int
    violated: int
    undecided: int
    time_s: float
    timeout_s: float
    verdicts: tuple[str, ...]

    @property
    def share(self) -> float:
        """Share of individuals with a proof."""
        return self.proven / self.n if self.n else float("nan")

    def to_json(self) -> dict:
        """JSON-ready form (the per-individual verdicts included)."""
        return {"attribute": self.attribute, "tolerance": self.tolerance, "n": self.n, "proven": self.proven,
                "share_proven": self.share, "violated": self.violated, "undecided": self.undecided,
                "time_s": self.time_s, "timeout_s_each": self.timeout_s, "verdicts": list(self.verdicts)}


def prove_individuals(network: Network, x: np.ndarray, attribute: ProtectedAttribute, encoding: Encoding,
                      tolerance: float, timeout_s: float = 5.0, seed: int = 0) -> ProofSummary:
    """Try to prove :func:`fairness_property` for each row of ``x`` with the ``"own"`` engine.

    Parameters
    ----------
    network : Network
        A 2-class classifier.
    x : array, shape (n, d)
    attribute : ProtectedAttribute
    encoding : Encoding
    tolerance : float
    timeout_s : float
        Budget per individual.
    seed : int

    Returns
    -------
    ProofSummary
        ``proven``: verdict HOLDS.  ``violated``: a counterexample pair whose
        two decisions differ on ``network`` (float64 forward pass).  The rest
        (UNKNOWN / TIMEOUT) is ``undecided``.

    Raises
    ------
    RuntimeError
        When a VIOLATED verdict's pair does not reproduce on ``network`` (an
        engine bug; never counted silently).
    """
    start = time.perf_counter()
    product = product_network(network, attribute)
    config = VerifyConfig(timeout_s=timeout_s, seed=seed, falsify_samples=200, pgd_steps=20)
    verdicts: list[str] = []
    for row in np.atleast_2d(x):
        result = verify(product, fairness_property(row, attribute, encoding, tolerance), config)
        if result.verdict is Verdict.VIOLATED:
            x_a, x_b = split_product_input(result.counterexamples[0].x, network.n_inputs, attribute)
            if predict(network, x_a)[0] == predict(network, x_b)[0] and not _tie(network, x_a, x_b):
                raise RuntimeError(f"counterexample for {attribute.name} does not reproduce on the network")
        verdicts.append(result.verdict.value)
    counts = {v: verdicts.count(v.value) for v in Verdict}
    n = len(verdicts)
    return ProofSummary(attribute.name, tolerance, n, counts[Verdict.HOLDS], counts[Verdict.VIOLATED],
                        n - counts[Verdict.HOLDS] - counts[Verdict.VIOLATED], time.perf_counter() - start,
                        timeout_s, tuple(verdicts))


def _tie(network: Network, x_a: np.ndarray, x_b: np.ndarray) -> bool:
    """Whether a margin of the pair is exactly 0 (the closed unsafe set counts ties as disagreement)."""
    y = network.forward(np.vstack([x_a, x_b]))
    return bool(np.any(y[:, 1] - y[:, 0] == 0.0))
