"""The immutable network model every stage works on.

Pipeline position: ``load_onnx`` / ``load_nnet`` produce a :class:`Network`;
verification, localization and repair read it; repair returns a *new*
:class:`Network` (via :meth:`Network.replace_layer`) and ``save_onnx`` writes it.

Conventions (CONVENTIONS.md, 4): weights are ``(out, in)`` and a layer computes
``y = W @ x + b``; arrays are batch-first ``(n, d)``; everything is float64.
``layer_index`` counts affine layers from 0, and a *unit* is one output neuron
of that layer after its activation (ReLU, or one of
:mod:`verirepair.network.activation`; the identity for a linear layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verirepair.network.activation import IDENTITY, RELU, Activation


def _frozen(array: Any, ndim: int, what: str) -> np.ndarray:
    """Return a read-only float64 copy of ``array`` with ``ndim`` dimensions."""
    out = np.array(array, dtype=np.float64, copy=True)
    if out.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimension(s), got shape {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{what} contains NaN or infinite values")
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True)
class AffineLayer:
    """One affine map ``y = W @ x + b``, optionally followed by an activation.

    Parameters
    ----------
    weight : array, shape (out, in)
    bias : array, shape (out,)
    relu : bool
        Whether a ReLU follows this layer (the short form of
        ``activation=RELU``; after construction it always equals
        ``activation.is_relu``).
    activation : Activation
        The element-wise function after the affine map (default the
        identity, or ReLU when ``relu`` is true).

    Raises
    ------
    ValueError
        ``relu=True`` together with another activation, or bad shapes.
    """

    weight: np.ndarray
    bias: np.ndarray
    relu: bool = False
    activation: Activation = IDENTITY

    def __post_init__(self) -> None:
        activation = self.activation
        if not isinstance(activation, Activation):
            raise TypeError(f"activation must be an Activation, got {type(activation).__name__}")
        if self.relu and activation.is_identity:
            activation = RELU
        elif self.relu and not activation.is_relu:
            raise ValueError(f"relu=True contradicts activation {activation.label}")
        object.__setattr__(self, "activation", activation)
        object.__setattr__(self, "relu", activation.is_relu)
        weight = _frozen(self.weight, 2, "weight")
        bias = _frozen(self.bias, 1, "bias")
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(
                f"bias has {bias.shape[0]} entries but weight has {weight.shape[0]} rows"
            )
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)

    @property
    def in_features(self) -> int:
        """Input width of the layer."""
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        """Output width of the layer."""
        return int(self.weight.shape[0])

    @property
    def nonlinear(self) -> bool:
        """True when an activation other than the identity follows the affine map."""
        return not self.activation.is_identity

    def activate(self, z: np.ndarray) -> np.ndarray:
        """Apply this layer's activation to pre-activations ``z`` (n, out)."""
        if self.relu:
            return np.maximum(z, 0.0)
        return z if self.activation.is_identity else self.activation.apply(z)


@dataclass(frozen=True, slots=True)
class Normalization:
    """Input/output scaling of a network trained in physical units (a ``.nnet`` header).

    One class for both sources of these constants: :func:`~verirepair.network.nnet.load_nnet`
    fills the numbers from the file header, and
    :func:`~verirepair.tasks.acasxu.physical.load_normalization` fills them, plus the
    names and units, from ``properties/normalization.toml`` (a copy of the
    ACAS Xu headers).  The network itself never applies it implicitly.

    Parameters
    ----------
    input_min, input_max : tuple of float, length d
        The training clip range of the inputs.
    input_mean, input_range : tuple of float, length d
        ``x_net = (x - input_mean) / input_range``, after clipping to
        ``[input_min, input_max]`` as the ``.nnet`` format does (VNN-COMP's
        property files do not clip: see ``normalize_inputs(clip=False)``).
    output_mean, output_range : float
        Shared by every output: ``y_phys = y_net * output_range + output_mean``.
    input_names, input_units : tuple of str, length d, or empty
        Physical names and units, when known (``.nnet`` headers carry none).
    output_names : tuple of str, length m, or empty

    Raises
    ------
    ValueError
        Input arrays of different lengths, or names/units whose length is
        neither 0 nor d.
    """

    input_min: tuple[float, ...]
    input_max: tuple[float, ...]
    input_mean: tuple[float, ...]
    input_range: tuple[float, ...]
    output_mean: float
    output_range: float
    input_names: tuple[str, ...] = ()
    input_units: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # tuples of Python floats keep the class hashable and comparable with ==
        numbers = {key: tuple(float(v) for v in getattr(self, key))
                   for key in ("input_min", "input_max", "input_mean", "input_range")}
        if len({len(v) for v in numbers.values()}) != 1:
            raise ValueError("input_min, input_max, input_mean and input_range differ in length: "
                             + ", ".join(f"{k} {len(v)}" for k, v in numbers.items()))
        d = len(numbers["input_min"])
        for key in ("input_names", "input_units"):
            if len(getattr(self, key)) not in (0, d):
                raise ValueError(f"{key} needs 0 or {d} entries, got {len(getattr(self, key))}")
        for key, value in numbers.items():
            object.__setattr__(self, key, value)
        for key in ("input_names", "input_units", "output_names"):
            object.__setattr__(self, key, tuple(str(v) for v in getattr(self, key)))
        object.__setattr__(self, "output_mean", float(self.output_mean))
        object.__setattr__(self, "output_range", float(self.output_range))

    def normalize_inputs(self, x: np.ndarray, clip: bool = True) -> np.ndarray:
        """Map physical inputs ``(..., d)`` to network coordinates.

        ``clip=True`` (the ``.nnet`` convention) clips to ``[input_min,
        input_max]`` first; ``clip=False`` is VNN-COMP's ``generate.py``
        convention for property bounds.
        """
        x = np.asarray(x, dtype=np.float64)
        if clip:
            x = np.clip(x, self.input_min, self.input_max)
        return (x - np.asarray(self.input_mean)) / np.asarray(self.input_range)

    def denormalize_outputs(self, y: np.ndarray) -> np.ndarray:
        """Map raw network outputs ``(n, m)`` to physical units."""
        return np.asarray(y, dtype=np.float64) * self.output_range + self.output_mean


@dataclass(frozen=True, slots=True)
class SourceGraph:
    """Where a network came from, so that it can be written back faithfully.

    Parameters
    ----------
    format : str
        ``"onnx"`` or ``"nnet"``.
    path : str
        The file that was read.
    payload : Any
        Format-specific data owned by the reader/writer of that format (for
        ONNX: the serialized model and the initializer binding of each layer).
        No other module looks inside it.
    """

    format: str
    path: str
    payload: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Network:
    """A fully connected feed-forward network of affine layers and activations.

    Parameters
    ----------
    layers : tuple of AffineLayer
        Applied in order; consecutive shapes must chain.
    name : str
        A human-readable name (file stem by default).
    normalization : Normalization or None
        Metadata from ``.nnet`` files; the network itself works on normalised
        inputs and never applies it implicitly.
    source : SourceGraph or None
        Provenance used by ``save_onnx`` to keep the original graph.
    """

    layers: tuple[AffineLayer, ...]
    name: str = "network"
    normalization: Normalization | None = None
    source: SourceGraph | None = None

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("a network needs at least one layer")
        for index in range(1, len(layers)):
            if layers[index].in_features != layers[index - 1].out_features:
                raise ValueError(
                    f"layer {index} expects {layers[index].in_features} inputs but layer "
                    f"{index - 1} produces {layers[index - 1].out_features}"
                )
        object.__setattr__(self, "layers", layers)

    # ------------------------------------------------------------------ shape
    @property
    def n_inputs(self) -> int:
        """Width of the input vector."""
        return self.layers[0].in_features

    @property
    def n_outputs(self) -> int:
        """Width of the output vector."""
        return self.layers[-1].out_features

    @property
    def n_layers(self) -> int:
        """Number of affine layers."""
        return len(self.layers)

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """Widths of the hidden (non-linear) layers, in order."""
        return tuple(layer.out_features for layer in self.layers if layer.nonlinear)

    @property
    def n_parameters(self) -> int:
        """Total number of weights and biases."""
        return sum(layer.weight.size + layer.bias.size for layer in self.layers)

    # ---------------------------------------------------------------- forward
    def _as_batch(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        x = np.asarray(x, dtype=np.float64)
        single = x.ndim == 1
        if single:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"expected inputs of shape (n, {self.n_inputs}), got {x.shape}")
        return x, single

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Evaluate the network in float64.

        Parameters
        ----------
        x : array, shape (n, n_inputs) or (n_inputs,)

        Returns
        -------
        array, shape (n, n_outputs) (or (n_outputs,) for a single input)
        """
        h, single = self._as_batch(x)
        for layer in self.layers:
            h = layer.activate(h @ layer.weight.T + layer.bias)
        return h[0] if single else h

    def forward_all(self, x: np.ndarray) -> list[np.ndarray]:
        """Evaluate the network and return every layer's activations.

        Parameters
        ----------
        x : array, shape (n, n_inputs)

        Returns
        -------
        list of arrays
            ``acts[0]`` is the input; ``acts[i + 1]`` is the output of affine
            layer ``i`` after its activation, shape ``(n, layers[i].out_features)``.
            ``acts[-1]`` is the network output.
        """
        h, _ = self._as_batch(x)
        acts = [h]
        for layer in self.layers:
            h = layer.activate(h @ layer.weight.T + layer.bias)
            acts.append(h)
        return acts

    def forward_from(self, layer_index: int, h: np.ndarray) -> np.ndarray:
        """Continue a forward pass from the output of layer ``layer_index``.

        Parameters
        ----------
        layer_index : int
            ``-1`` means ``h`` is the network input.
        h : array, shape (n, width of that layer's output)

        Returns
        -------
        array, shape (n, n_outputs)
        """
        h = np.asarray(h, dtype=np.float64)
        for layer in self.layers[layer_index + 1:]:
            h = layer.activate(h @ layer.weight.T + layer.bias)
        return h

    # ---------------------------------------------------------------- editing
    def replace_layer(self, layer_index: int, weight: np.ndarray, bias: np.ndarray) -> Network:
        """Return a new network with layer ``layer_index``'s parameters replaced.

        Parameters
        ----------
        layer_index : int
        weight : array, shape (out, in) -- must equal the old shape
        bias : array, shape (out,)

        Returns
        -------
        Network
            A new network sharing the name, normalisation and source.
        """
        old = self.layers[layer_index]
        new = AffineLayer(weight, bias, activation=old.activation)
        if new.weight.shape != old.weight.shape:
            raise ValueError(
                f"layer {layer_index} weight must keep shape {old.weight.shape}, got {new.weight.shape}"
            )
        layers = list(self.layers)
        layers[layer_index] = new
        return Network(tuple(layers), self.name, self.normalization, self.source)

    def with_name(self, name: str) -> Network:
        """Return the same network under another name."""
        return Network(self.layers, name, self.normalization, self.source)


def random_network(sizes: list[int], seed: int = 0, scale: float = 1.0,
                   name: str = "random", activation: Activation = RELU) -> Network:
    """Build a random fully connected network (for tests and demos).

    Parameters
    ----------
    sizes : list of int
        Widths ``[n_inputs, hidden..., n_outputs]``.
    seed : int
    scale : float
        Weights are ``N(0, scale**2 / fan_in)``.
    name : str
    activation : Activation
        The activation of every hidden layer (the output layer is linear).
    """
    rng = np.random.default_rng(seed)
    layers = []
    for index in range(len(sizes) - 1):
        fan_in, fan_out = sizes[index], sizes[index + 1]
        weight = rng.normal(0.0, scale / np.sqrt(fan_in), size=(fan_out, fan_in))
        bias = rng.normal(0.0, 0.1 * scale, size=fan_out)
        hidden = index < len(sizes) - 2
        layers.append(AffineLayer(weight, bias, activation=activation if hidden else IDENTITY))
    return Network(tuple(layers), name)
