"""Element-wise activation functions that may follow an affine layer.

Pipeline position: every :class:`~verirepair.network.model.AffineLayer` carries
one :class:`Activation`; the ONNX reader sets it from the node that closes the
layer (``Relu``, ``LeakyRelu``, ``Elu``, ``Tanh``, ``Sigmoid``, ``Softplus``),
the writer and :func:`~verirepair.network.torch_export.to_torch` turn it back
into a node or module, and the verifier relaxes it
(:mod:`verirepair.verify.activation_bounds`).

Formulas (``alpha`` is the ONNX attribute of the same name):

* identity ``z``; ReLU ``max(z, 0)``;
* LeakyReLU ``z`` for ``z >= 0``, ``alpha * z`` below (ONNX default alpha 0.01);
* ELU ``z`` for ``z > 0``, ``alpha * (exp(z) - 1)`` otherwise (ONNX default 1.0);
* tanh; sigmoid ``1 / (1 + exp(-z))``; softplus ``log(1 + exp(z))``.

All are nondecreasing when ``alpha >= 0``; the network model accepts any finite
``alpha`` (it is only a function), the verifier states which ones it can bound.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = ["Activation", "ActivationKind", "IDENTITY", "RELU", "TANH", "SIGMOID", "SOFTPLUS",
           "ACTIVATION_NAMES", "parse_activation"]


class ActivationKind(enum.Enum):
    """Which function an :class:`Activation` is."""

    IDENTITY = "identity"
    RELU = "relu"
    LEAKY_RELU = "leaky_relu"
    ELU = "elu"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    SOFTPLUS = "softplus"


#: Kinds that take the ``alpha`` parameter, with the ONNX default.
_ALPHA_DEFAULT = {ActivationKind.LEAKY_RELU: 0.01, ActivationKind.ELU: 1.0}
#: ONNX op type and human label of each kind.
_ONNX_OP = {ActivationKind.RELU: "Relu", ActivationKind.LEAKY_RELU: "LeakyRelu",
            ActivationKind.ELU: "Elu", ActivationKind.TANH: "Tanh",
            ActivationKind.SIGMOID: "Sigmoid", ActivationKind.SOFTPLUS: "Softplus"}
_LABEL = {ActivationKind.IDENTITY: "-", ActivationKind.RELU: "ReLU",
          ActivationKind.LEAKY_RELU: "LeakyReLU", ActivationKind.ELU: "ELU",
          ActivationKind.TANH: "Tanh", ActivationKind.SIGMOID: "Sigmoid",
          ActivationKind.SOFTPLUS: "Softplus"}
#: Names accepted by :func:`parse_activation`.
ACTIVATION_NAMES = tuple(kind.value for kind in ActivationKind)


@dataclass(frozen=True, slots=True)
class Activation:
    """One element-wise activation function.

    Parameters
    ----------
    kind : ActivationKind
    alpha : float or None
        LeakyReLU's negative slope or ELU's scale (None: the ONNX default);
        must be None or 0 for the other kinds, where it is stored as 0.0.

    Raises
    ------
    ValueError
        A non-finite alpha, or an alpha given to a kind that has none.
    """

    kind: ActivationKind
    alpha: float | None = None

    def __post_init__(self) -> None:
        kind = ActivationKind(self.kind)
        object.__setattr__(self, "kind", kind)
        if kind in _ALPHA_DEFAULT:
            alpha = _ALPHA_DEFAULT[kind] if self.alpha is None else float(self.alpha)
            if not np.isfinite(alpha):
                raise ValueError(f"{kind.value} alpha must be finite, got {alpha}")
        else:
            if self.alpha not in (None, 0.0):
                raise ValueError(f"{kind.value} takes no alpha (got {self.alpha})")
            alpha = 0.0
        object.__setattr__(self, "alpha", alpha)

    # ------------------------------------------------------------ descriptions
    @property
    def is_identity(self) -> bool:
        """True for the identity (a linear layer)."""
        return self.kind is ActivationKind.IDENTITY

    @property
    def is_relu(self) -> bool:
        """True for the ReLU."""
        return self.kind is ActivationKind.RELU

    @property
    def is_piecewise_linear(self) -> bool:
        """True for identity, ReLU and LeakyReLU."""
        return self.kind in (ActivationKind.IDENTITY, ActivationKind.RELU,
                             ActivationKind.LEAKY_RELU)

    @property
    def onnx_op(self) -> str | None:
        """The ONNX op type (None for the identity)."""
        return _ONNX_OP.get(self.kind)

    @property
    def label(self) -> str:
        """A short human label, e.g. ``"Tanh"`` or ``"ELU(alpha=0.5)"``; ``"-"`` for identity."""
        base = _LABEL[self.kind]
        return f"{base}(alpha={self.alpha:g})" if self.kind in _ALPHA_DEFAULT else base

    # ---------------------------------------------------------------- numerics
    def apply(self, z: np.ndarray) -> np.ndarray:
        """The function, element-wise, in float64 (any shape)."""
        z = np.asarray(z, dtype=np.float64)
        kind, alpha = self.kind, float(self.alpha or 0.0)
        if kind is ActivationKind.IDENTITY:
            return z
        if kind is ActivationKind.RELU:
            return np.maximum(z, 0.0)
        if kind is ActivationKind.LEAKY_RELU:
            return np.where(z >= 0.0, z, alpha * z)
        if kind is ActivationKind.ELU:
            return np.where(z > 0.0, z, alpha * np.expm1(np.minimum(z, 0.0)))
        if kind is ActivationKind.TANH:
            return np.tanh(z)
        if kind is ActivationKind.SIGMOID:
            return _sigmoid(z)
        return np.logaddexp(0.0, z)                       # softplus, overflow-free

    def derivative(self, z: np.ndarray) -> np.ndarray:
        """The derivative (the right derivative at a kink), element-wise."""
        z = np.asarray(z, dtype=np.float64)
        kind, alpha = self.kind, float(self.alpha or 0.0)
        if kind is ActivationKind.IDENTITY:
            return np.ones_like(z)
        if kind is ActivationKind.RELU:
            return (z > 0.0).astype(np.float64)
        if kind is ActivationKind.LEAKY_RELU:
            return np.where(z >= 0.0, 1.0, alpha)
        if kind is ActivationKind.ELU:
            return np.where(z > 0.0, 1.0, alpha * np.exp(np.minimum(z, 0.0)))
        if kind is ActivationKind.TANH:
            t = np.tanh(z)
            return 1.0 - t * t
        s = _sigmoid(z)
        return s * (1.0 - s) if kind is ActivationKind.SIGMOID else s

    def derivative_from_output(self, h: np.ndarray) -> np.ndarray:
        """The derivative at ``z`` given only ``h = f(z)`` (for gradients from ``forward_all``).

        Every supported function with ``alpha > 0`` is invertible on the
        pieces this needs: tanh' = 1 - h^2, sigmoid' = h (1 - h), ELU' = h + alpha
        below 0, softplus' = 1 - exp(-h); ReLU and LeakyReLU read the sign of
        ``h`` (0 at the kink, as the ReLU subgradient convention of the attack).
        """
        h = np.asarray(h, dtype=np.float64)
        kind, alpha = self.kind, float(self.alpha or 0.0)
        if kind is ActivationKind.IDENTITY:
            return np.ones_like(h)
        if kind is ActivationKind.RELU:
            return (h > 0.0).astype(np.float64)
        if kind is ActivationKind.LEAKY_RELU:
            return np.where(h > 0.0, 1.0, alpha)
        if kind is ActivationKind.ELU:
            return np.where(h > 0.0, 1.0, h + alpha)
        if kind is ActivationKind.TANH:
            return 1.0 - h * h
        if kind is ActivationKind.SIGMOID:
            return h * (1.0 - h)
        return -np.expm1(-h)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


IDENTITY = Activation(ActivationKind.IDENTITY)
RELU = Activation(ActivationKind.RELU)
TANH = Activation(ActivationKind.TANH)
SIGMOID = Activation(ActivationKind.SIGMOID)
SOFTPLUS = Activation(ActivationKind.SOFTPLUS)


def parse_activation(text: str) -> Activation:
    """Read ``"tanh"``, ``"elu"``, ``"elu:0.5"``, ``"leaky_relu:0.1"`` ... into an Activation.

    Raises
    ------
    ValueError
        An unknown name (the message lists :data:`ACTIVATION_NAMES`) or a bad alpha.
    """
    name, _, alpha_text = text.strip().lower().partition(":")
    if name not in ACTIVATION_NAMES:
        raise ValueError(f"unknown activation {text!r}; expected one of {', '.join(ACTIVATION_NAMES)}"
                         " (with ':alpha' for elu and leaky_relu)")
    try:
        alpha = float(alpha_text) if alpha_text else None
    except ValueError:
        raise ValueError(f"activation {text!r}: alpha {alpha_text!r} is not a number") from None
    return Activation(ActivationKind(name), alpha)
