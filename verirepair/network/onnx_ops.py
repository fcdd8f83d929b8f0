"""ONNX op converters, registered by name, that trace a graph into affine layers.

Pipeline position: :func:`verirepair.network.onnx_io.load_onnx` walks the graph
nodes in order and hands each one to the converter registered for its op type
(as in auto_LiRPA's op map).  Converters compose into a *pending affine map*
``h -> W @ x + b`` (``W`` shape ``(width, n_in)``) since the last activation;
an activation node (``Relu``, ``LeakyRelu``, ``Elu``, ``Tanh``, ``Sigmoid``,
``Softplus``) closes a layer and the graph output closes the last one.

Semantics: the network is the function the graph computes on **one sample**.
Every symbolic dimension of the graph input (usually the batch dimension) is
taken as 1, every tensor is a concrete shape, and the "feature vector" of a
tensor is its row-major flattening.  Reshape-like ops are therefore identities
on the feature vector; MatMul/Gemm must see the data as one row ``(1, k)`` or
one column ``(k, 1)``.

Each parameter-carrying step is recorded (:class:`LinearStep`,
:class:`OffsetStep`) together with the constant it came from
(:class:`ConstRef`), so that ``save_onnx`` can write new weights back into the
same initializers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np
import onnx

from verirepair.errors import NetworkFormatError, UnsupportedOperatorError
from verirepair.network.activation import (
    IDENTITY,
    RELU,
    SIGMOID,
    SOFTPLUS,
    TANH,
    Activation,
    ActivationKind,
)
from verirepair.network.model import AffineLayer

__all__ = [
    "ConstRef",
    "LinearStep",
    "OffsetStep",
    "Step",
    "TraceState",
    "get_attr",
    "get_converter",
    "input_arity",
    "node_label",
    "output_arity",
    "register_op",
    "supported_ops",
    "SUPPORTED_OPS",
]


# --------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class ConstRef:
    """Where a constant tensor lives in the original model.

    Parameters
    ----------
    kind : str
        ``"initializer"`` or ``"constant_node"``.
    name : str
        The initializer name, or the output name of the ``Constant`` node.
    dims : tuple of int
        The stored tensor's shape.
    data_type : int
        ONNX ``TensorProto`` element type (1 = float32, 11 = float64).
    """

    kind: str
    name: str
    dims: tuple[int, ...]
    data_type: int


@dataclass(frozen=True, slots=True)
class LinearStep:
    """``h -> alpha * M @ h`` where ``M`` (out, in) is the stored constant,
    transposed when ``transposed`` is true (MatMul weights are stored (in, out))."""

    ref: ConstRef
    alpha: float
    transposed: bool


@dataclass(frozen=True, slots=True)
class OffsetStep:
    """``h -> sign_in * h + coef * vector`` where ``vector`` (width,) is the
    constant broadcast to the data shape and flattened.

    ``writable`` is true when the constant holds exactly one value per feature
    (and ``coef`` is non-zero), so that any new offset vector can be stored in it.
    """

    ref: ConstRef
    sign_in: float
    coef: float
    vector: np.ndarray = field(compare=False, repr=False)
    writable: bool = False


Step = LinearStep | OffsetStep

#: Appended to errors about data that is not one row or column per sample.
_BATCH_HINT = ("; graphs are read for a single sample, so a static batch size above 1 "
               "is not supported (export with a dynamic or unit batch dimension)")


#: Largest pending affine map (entries of ``W``) the tracer builds: 2**27 float64
#: entries are 1 GiB, far above any fully connected network we can verify, and
#: a mutated input shape must fail here instead of exhausting memory.
MAX_DENSE_ENTRIES = 2 ** 27


# --------------------------------------------------------------------- registry
Converter = Callable[[onnx.NodeProto, "TraceState"], None]
#: How many inputs a node takes, ``(low, high)``, from an opset on (``{since: (low, high)}``).
InputArity = int | tuple[int, int] | dict[int, tuple[int, int]]
_CONVERTERS: dict[str, Converter] = {}
_INPUT_ARITY: dict[str, dict[int, tuple[int, int]]] = {}
_OUTPUT_ARITY: dict[str, int] = {}


def register_op(op_type: str, inputs: InputArity, outputs: int = 1
                ) -> Callable[[Converter], Converter]:
    """Register a converter for ONNX op ``op_type`` (decorator).

    The converter receives the node and the :class:`TraceState`; it updates
    the pending affine map and calls :meth:`TraceState.advance` with the
    node's output.

    Parameters
    ----------
    op_type : str
    inputs : int, (low, high) or dict {first opset: (low, high)}
        The input counts the converter accepts (optional inputs make
        ``low < high``; ops whose signature changed between opsets give one
        entry per change).  A node outside the range is refused before
        conversion: an input the converter does not read must never be
        silently dropped.
    outputs : int
        The number of outputs (every supported op has one).
    """
    if isinstance(inputs, int):
        inputs = {1: (inputs, inputs)}
    elif isinstance(inputs, tuple):
        inputs = {1: inputs}

    def decorate(function: Converter) -> Converter:
        if op_type in _CONVERTERS:
            raise ValueError(f"a converter for ONNX op {op_type!r} is already registered")
        _CONVERTERS[op_type] = function
        _INPUT_ARITY[op_type] = dict(sorted(inputs.items()))
        _OUTPUT_ARITY[op_type] = outputs
        return function

    return decorate


def input_arity(op_type: str, opset: int) -> tuple[int, int]:
    """``(low, high)`` number of inputs of a registered ``op_type`` at ``opset``."""
    arity = _INPUT_ARITY[op_type]
    return arity[max((since for since in arity if since <= opset), default=min(arity))]


def output_arity(op_type: str) -> int:
    """Number of outputs of a registered ``op_type``."""
    return _OUTPUT_ARITY[op_type]


def supported_ops() -> tuple[str, ...]:
    """Return the op types that have a registered converter, sorted."""
    return tuple(sorted(_CONVERTERS))


def get_converter(op_type: str, node_name: str) -> Converter:
    """Return the converter for ``op_type`` or raise :class:`UnsupportedOperatorError`."""
    try:
        return _CONVERTERS[op_type]
    except KeyError:
        raise UnsupportedOperatorError(op_type, node_name, supported=supported_ops()) from None


# ------------------------------------------------------------------ attributes
def node_label(node: onnx.NodeProto, index: int) -> str:
    """A node's name, or ``"#<index>"`` when it is unnamed."""
    return node.name or f"#{index}"


def get_attr(node: onnx.NodeProto, name: str, default: object) -> Any:
    """Return the value of attribute ``name`` of ``node`` (or ``default``).

    The type depends on the attribute's ONNX type (float, int, string, tensor or a
    list of them), so callers convert it (``float(get_attr(node, "alpha", 1.0))``).
    """
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


# ------------------------------------------------------------------ the tracer
class TraceState:
    """Mutable state of one graph trace (internal to the ONNX reader).

    Attributes
    ----------
    live : str
        Name of the tensor that carries the data.
    shape : tuple of int
        Its concrete shape (symbolic dimensions taken as 1).
    weight, bias : arrays, shapes (width, n_in) and (width,)
        The pending affine map from the current layer's input to ``live``.
    """

    def __init__(self, input_name: str, input_shape: tuple[int, ...],
                 constants: dict[str, tuple[np.ndarray, ConstRef]], path: str = "") -> None:
        self.path = path
        self.live = input_name
        self.shape = tuple(input_shape)
        self.constants = constants
        self.layers: list[AffineLayer] = []
        self.bindings: list[tuple[Step, ...]] = []
        self.const_uses: dict[ConstRef, int] = {}
        self.node_name = ""
        self._open_layer()

    @property
    def width(self) -> int:
        """Number of features of the live tensor."""
        return prod(self.shape)

    def _open_layer(self) -> None:
        self._check_size(self.width, self.width)
        self.weight = np.eye(self.width)
        self.bias = np.zeros(self.width)
        self.steps: list[Step] = []

    def fail(self, message: str) -> NetworkFormatError:
        """Build a :class:`NetworkFormatError` that names the file and the current node."""
        where = f"{self.path}: " if self.path else ""
        return NetworkFormatError(f"{where}node {self.node_name!r}: {message}")

    def _check_size(self, rows: int, cols: int) -> None:
        if rows * cols > MAX_DENSE_ENTRIES:
            raise self.fail(f"the affine map would have {rows} x {cols} entries, more than "
                            f"the {MAX_DENSE_ENTRIES} this reader builds (data shape {self.shape})")

    # ---------------------------------------------------------------- operands
    def live_index(self, node: onnx.NodeProto) -> int:
        """Position of the live tensor among ``node``'s inputs."""
        return list(node.input).index(self.live)

    def const_input(self, node: onnx.NodeProto, index: int) -> tuple[np.ndarray, ConstRef]:
        """Return input ``index`` of ``node`` as a constant (float64) and its origin."""
        if index >= len(node.input) or not node.input[index]:
            raise self.fail(f"input {index} is missing")
        name = node.input[index]
        if name not in self.constants:
            raise self.fail(f"input {name!r} must be a constant (initializer or Constant node); "
                            "only one data path is supported")
        value, ref = self.constants[name]
        return value, ref

    def optional_ints(self, node: onnx.NodeProto, attribute: str, index: int) -> list[int] | None:
        """Integer list given as attribute (old opsets) or constant input (new opsets)."""
        value = get_attr(node, attribute, None)
        if value is not None:
            return [int(v) for v in value]
        if index < len(node.input) and node.input[index]:
            array, _ = self.const_input(node, index)
            return [int(v) for v in array.reshape(-1)]
        return None

    # ---------------------------------------------------------------- updates
    def _use(self, ref: ConstRef) -> None:
        self.const_uses[ref] = self.const_uses.get(ref, 0) + 1

    def apply_linear(self, matrix: np.ndarray, ref: ConstRef, alpha: float, transposed: bool) -> None:
        """Compose ``h -> alpha * matrix @ h`` (matrix shape (out, width))."""
        self._check_size(matrix.shape[0], self.weight.shape[1])
        self.weight = alpha * (matrix @ self.weight)
        self.bias = alpha * (matrix @ self.bias)
        self.steps.append(LinearStep(ref, float(alpha), transposed))
        self._use(ref)

    def apply_offset(self, constant: np.ndarray, ref: ConstRef, sign_in: float, coef: float) -> None:
        """Compose ``h -> sign_in * h + coef * constant`` (constant broadcast to the data)."""
        try:
            broadcast = np.broadcast_shapes(constant.shape, self.shape)
        except ValueError:
            broadcast = None
        if broadcast != self.shape:
            raise self.fail(f"constant of shape {constant.shape} does not broadcast to the data "
                            f"shape {self.shape} without changing it")
        vector = np.broadcast_to(constant, self.shape).reshape(-1).astype(np.float64)
        vector.setflags(write=False)
        self.weight = sign_in * self.weight
        self.bias = sign_in * self.bias + coef * vector
        self.steps.append(OffsetStep(ref, float(sign_in), float(coef), vector,
                                     writable=constant.size == self.width and coef != 0.0))
        self._use(ref)

    def reshape(self, new_shape: tuple[int, ...]) -> None:
        """Change the data shape without touching the feature vector."""
        new_shape = tuple(int(d) for d in new_shape)
        if prod(new_shape) != self.width or any(d < 0 for d in new_shape):
            raise self.fail(f"cannot reshape data of shape {self.shape} to {new_shape}")
        self.shape = new_shape

    def advance(self, node: onnx.NodeProto) -> None:
        """Make ``node``'s (single) output the live tensor."""
        if len(node.output) != 1:
            raise self.fail(f"expected one output, got {len(node.output)}")
        self.live = node.output[0]

    def close_layer(self, activation: Activation = IDENTITY) -> None:
        """Turn the pending affine map into a layer followed by ``activation``."""
        if not (np.all(np.isfinite(self.weight)) and np.all(np.isfinite(self.bias))):
            raise self.fail("composing the affine map up to this node overflows float64 "
                            "(the weights are too large)")
        self.layers.append(AffineLayer(self.weight, self.bias, activation=activation))
        self.bindings.append(tuple(self.steps))
        self._open_layer()


# ------------------------------------------------------------------ converters
@register_op("Constant", inputs=0)
def _constant(node: onnx.NodeProto, state: TraceState) -> None:
    """Constants are collected before tracing (see :func:`onnx_check.collect_constants`)."""


@register_op("Identity", inputs=1)
def _identity(node: onnx.NodeProto, state: TraceState) -> None:
    state.advance(node)


def _register_parameterless_activation(op_type: str, activation: Activation) -> None:
    """``op_type`` closes the current affine layer with ``activation`` (it has no attributes)."""
    @register_op(op_type, inputs=1)
    def _convert(node: onnx.NodeProto, state: TraceState) -> None:
        state.close_layer(activation)
        state.advance(node)


for _op_type, _activation in (("Relu", RELU), ("Tanh", TANH), ("Sigmoid", SIGMOID), ("Softplus", SOFTPLUS)):
    _register_parameterless_activation(_op_type, _activation)


def _alpha_activation(node: onnx.NodeProto, state: TraceState, kind: ActivationKind,
                      default: float) -> None:
    """Close a layer with a one-parameter activation read from the ``alpha`` attribute."""
    alpha = get_attr(node, "alpha", default)
    if not isinstance(alpha, float | int) or not np.isfinite(alpha):
        raise state.fail(f"{node.op_type} attribute alpha must be a finite float, got {alpha!r}")
    state.close_layer(Activation(kind, float(alpha)))
    state.advance(node)


@register_op("LeakyRelu", inputs=1)
def _leaky_relu(node: onnx.NodeProto, state: TraceState) -> None:
    _alpha_activation(node, state, ActivationKind.LEAKY_RELU, 0.01)


@register_op("Elu", inputs=1)
def _elu(node: onnx.NodeProto, state: TraceState) -> None:
    _alpha_activation(node, state, ActivationKind.ELU, 1.0)


def _add_or_sub(node: onnx.NodeProto, state: TraceState, subtract: bool) -> None:
    live_at = state.live_index(node)
    constant, ref = state.const_input(node, 1 - live_at)
    if not subtract:
        state.apply_offset(constant, ref, sign_in=1.0, coef=1.0)
    elif live_at == 0:  # x - c
        state.apply_offset(constant, ref, sign_in=1.0, coef=-1.0)
    else:  # c - x
        state.apply_offset(constant, ref, sign_in=-1.0, coef=1.0)
    state.advance(node)


@register_op("Add", inputs=2)
def _add(node: onnx.NodeProto, state: TraceState) -> None:
    _add_or_sub(node, state, subtract=False)


@register_op("Sub", inputs=2)
def _sub(node: onnx.NodeProto, state: TraceState) -> None:
    _add_or_sub(node, state, subtract=True)


def _single_vector(state: TraceState, as_row: bool) -> int:
    """Check the data is one row (..., 1, k) or one column (..., k, 1); return k."""
    shape = state.shape
    if len(shape) == 1 and as_row:
        return shape[0]
    if len(shape) < 2 or prod(shape[:-2]) != 1:
        raise state.fail(f"data of shape {shape} is not a single row or column")
    rows, cols = shape[-2], shape[-1]
    if as_row and rows == 1:
        return cols
    if not as_row and cols == 1:
        return rows
    kind = "row (1, k)" if as_row else "column (k, 1)"
    raise state.fail(f"data of shape {shape} must be a single {kind} here{_BATCH_HINT}")


@register_op("MatMul", inputs=2)
def _matmul(node: onnx.NodeProto, state: TraceState) -> None:
    live_at = state.live_index(node)
    matrix, ref = state.const_input(node, 1 - live_at)
    if matrix.ndim != 2:
        raise state.fail(f"the constant operand must be 2-D, got shape {matrix.shape}")
    if live_at == 0:  # x (1, k) @ M (k, m)
        k = _single_vector(state, as_row=True)
        if matrix.shape[0] != k:
            raise state.fail(f"cannot multiply data with {k} features by {matrix.shape}")
        state.apply_linear(matrix.T, ref, 1.0, transposed=True)
        new_shape = state.shape[:-1] + (matrix.shape[1],)
    else:  # M (m, k) @ x (k, 1)
        k = _single_vector(state, as_row=False)
        if matrix.shape[1] != k:
            raise state.fail(f"cannot multiply {matrix.shape} by data with {k} features")
        state.apply_linear(matrix, ref, 1.0, transposed=False)
        new_shape = state.shape[:-2] + (matrix.shape[0], 1)
    state.shape = new_shape
    state.advance(node)


@register_op("Gemm", inputs={1: (3, 3), 11: (2, 3)})  # C optional from opset 11
def _gemm(node: onnx.NodeProto, state: TraceState) -> None:
    """``Y = alpha * A' @ B' + beta * C`` with ``A' = A.T if transA`` etc."""
    if len(state.shape) != 2:
        raise state.fail(f"Gemm needs 2-D data (data shape {state.shape})")
    alpha = float(get_attr(node, "alpha", 1.0))
    beta = float(get_attr(node, "beta", 1.0))
    if not (np.isfinite(alpha) and np.isfinite(beta)):
        raise state.fail(f"alpha {alpha!r} and beta {beta!r} must be finite")
    trans_a = bool(get_attr(node, "transA", 0))
    trans_b = bool(get_attr(node, "transB", 0))
    live_at = state.live_index(node)
    if live_at == 0:
        rows, k = state.shape[::-1] if trans_a else state.shape
        if rows != 1:
            raise state.fail(f"A' has shape {(rows, k)}; it must be a single row per sample"
                             f"{_BATCH_HINT}")
        b_matrix, ref = state.const_input(node, 1)
        b_eff = b_matrix.T if trans_b else b_matrix  # (k, m)
        if b_matrix.ndim != 2 or b_eff.shape[0] != k:
            raise state.fail(f"B' of shape {b_eff.shape} does not take {k} inputs")
        state.apply_linear(b_eff.T, ref, alpha, transposed=not trans_b)
        out_shape = (1, b_eff.shape[1])
    elif live_at == 1:
        k, cols = state.shape[::-1] if trans_b else state.shape
        if cols != 1:
            raise state.fail(f"B' has shape {(k, cols)}; it must be a single column per sample"
                             f"{_BATCH_HINT}")
        a_matrix, ref = state.const_input(node, 0)
        a_eff = a_matrix.T if trans_a else a_matrix  # (m, k)
        if a_matrix.ndim != 2 or a_eff.shape[1] != k:
            raise state.fail(f"A' of shape {a_eff.shape} does not take {k} inputs")
        state.apply_linear(a_eff, ref, alpha, transposed=trans_a)
        out_shape = (a_eff.shape[0], 1)
    else:
        raise state.fail("the data must be input A or B, not the bias C")
    state.shape = out_shape
    if len(node.input) > 2 and node.input[2]:
        c_value, c_ref = state.const_input(node, 2)
        state.apply_offset(c_value, c_ref, sign_in=1.0, coef=beta)
    state.advance(node)


@register_op("Flatten", inputs=1)
def _flatten(node: onnx.NodeProto, state: TraceState) -> None:
    rank = len(state.shape)
    axis = int(get_attr(node, "axis", 1))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis <= rank:
        raise state.fail(f"axis {axis} out of range for rank {rank}")
    state.reshape((prod(state.shape[:axis]), prod(state.shape[axis:])))
    state.advance(node)


@register_op("Reshape", inputs={1: (1, 1), 5: (2, 2)})  # shape: attribute, then input
def _reshape(node: onnx.NodeProto, state: TraceState) -> None:
    if state.live_index(node) != 0:
        raise state.fail("the data must be the first input of Reshape")
    target = state.optional_ints(node, "shape", 1)
    if target is None:
        raise state.fail("Reshape has no target shape")
    allow_zero = bool(get_attr(node, "allowzero", 0))
    resolved = [state.shape[i] if (d == 0 and not allow_zero and i < len(state.shape)) else d
                for i, d in enumerate(target)]
    if resolved.count(-1) > 1:
        raise state.fail(f"target shape {target} has more than one -1")
    if -1 in resolved:
        known = prod(d for d in resolved if d != -1)
        if known == 0 or state.width % known:
            raise state.fail(f"cannot reshape data of shape {state.shape} to {target}")
        resolved[resolved.index(-1)] = state.width // known
    state.reshape(tuple(resolved))
    state.advance(node)


def _normalise_axes(state: TraceState, axes: list[int], rank: int) -> list[int]:
    out = sorted(a + rank if a < 0 else a for a in axes)
    if any(not 0 <= a < rank for a in out) or len(set(out)) != len(out):
        raise state.fail(f"invalid axes {axes} for rank {rank}")
    return out


@register_op("Squeeze", inputs={1: (1, 1), 13: (1, 2)})  # axes: attribute, then input
def _squeeze(node: onnx.NodeProto, state: TraceState) -> None:
    axes = state.optional_ints(node, "axes", 1)
    shape = state.shape
    if axes is None:
        keep = [d for d in shape if d != 1]
    else:
        drop = _normalise_axes(state, axes, len(shape))
        if any(shape[a] != 1 for a in drop):
            raise state.fail(f"cannot squeeze axes {axes} of shape {shape}")
        keep = [d for i, d in enumerate(shape) if i not in drop]
    state.reshape(tuple(keep))
    state.advance(node)


@register_op("Unsqueeze", inputs={1: (1, 1), 13: (2, 2)})
def _unsqueeze(node: onnx.NodeProto, state: TraceState) -> None:
    axes = state.optional_ints(node, "axes", 1)
    if axes is None:
        raise state.fail("Unsqueeze has no axes")
    rank = len(state.shape) + len(axes)
    positions = _normalise_axes(state, axes, rank)
    dims = iter(state.shape)
    state.reshape(tuple(1 if i in positions else next(dims) for i in range(rank)))
    state.advance(node)


SUPPORTED_OPS: frozenset[str] = frozenset(_CONVERTERS)
