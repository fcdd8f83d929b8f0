"""Read ONNX files into a :class:`Network` and write networks back to ONNX.

Pipeline position: ``file.onnx --load_onnx--> Network`` at the start, and
``Network' --save_onnx--> repaired.onnx`` at the end.  The graph is traced by
the op converters of :mod:`verirepair.network.onnx_ops`.

Writing keeps the original graph (same nodes, names, opset, inputs and
outputs) and replaces only the constants that carry each layer's weight and
bias, in their original layout and dtype, so a report can diff exactly what a
repair changed.  Networks without an ONNX source are written as a clean
``Gemm(transB=1)`` + activation graph.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from math import prod
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from verirepair.atomic import write_bytes_atomic
from verirepair.errors import NetworkFormatError, VerirepairError
from verirepair.network.model import Network, SourceGraph
from verirepair.network.onnx_check import (
    collect_constants,
    one_line,
    plain,
    read_model,
    show_path,
    validate_model,
)
from verirepair.network.onnx_ops import (
    ConstRef,
    LinearStep,
    OffsetStep,
    Step,
    TraceState,
    get_converter,
    node_label,
)

__all__ = ["OnnxPayload", "OverwriteSourceError", "load_onnx", "save_onnx", "CLEAN_OPSET"]

#: Opset of the clean graphs written for networks without an ONNX source.
CLEAN_OPSET = 13
#: IR version of clean graphs (opset 13 needs IR >= 7; 8 loads in every supported onnxruntime).
CLEAN_IR_VERSION = 8

logger = logging.getLogger(__name__)


class OverwriteSourceError(VerirepairError, ValueError):
    """``save_onnx`` was asked to overwrite the file the network was read from."""


@dataclass(frozen=True, slots=True)
class OnnxPayload:
    """What ``save_onnx`` needs to write a network back into its original graph.

    Parameters
    ----------
    model_bytes : bytes
        The serialized original model.
    bindings : tuple of tuple of Step
        Per layer, the parameter-carrying steps in graph order.
    const_uses : dict
        How many traced steps read each constant (shared constants are not written).
    original : tuple of (weight, bias)
        Every layer's parameters as loaded; layers equal to these are not rewritten.
    input_shape, output_shape : tuple of int
        Concrete data shapes (symbolic dimensions taken as 1).
    """

    model_bytes: bytes = field(repr=False)
    bindings: tuple[tuple[Step, ...], ...]
    const_uses: dict[ConstRef, int] = field(repr=False)
    original: tuple[tuple[np.ndarray, np.ndarray], ...] = field(repr=False)
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


# ======================================================================== load
def load_onnx(path: str | os.PathLike) -> Network:
    """Read a fully connected ReLU network from an ONNX file.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    Network
        Layers work on the flattened single-sample input ``(n, prod(input shape))``;
        ``source`` is an ONNX :class:`SourceGraph` whose payload is an :class:`OnnxPayload`.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    UnsupportedOperatorError
        For an op type without a registered converter (the message lists the supported ones).
    NetworkFormatError
        For a directory, an empty or undecodable file, a model that breaks a rule of
        :func:`~verirepair.network.onnx_check.validate_model` (onnx.checker, node
        arity, tensor dims, dtypes, finite weights), or a graph that is not a single
        chain of affine ops and ReLUs.  Messages are one line and name the file.
    """
    path = Path(path)
    where = show_path(path)
    if path.is_dir():
        raise NetworkFormatError(f"{where}: is a directory, not an ONNX network file")
    if not path.is_file():
        raise FileNotFoundError(2, "ONNX network file not found", str(path))
    try:
        model = read_model(path)
        validate_model(model, path)
        state, input_shape = _trace(model.graph, where)
    except (VerirepairError, OSError):
        raise
    except Exception as exc:  # safety net: validate_model's explicit checks come first
        logger.debug("unexpected error while reading %s", where, exc_info=True)
        raise NetworkFormatError(f"{where}: malformed ONNX model ({type(exc).__name__}: "
                                 f"{one_line(exc, 200)})") from exc
    payload = OnnxPayload(model.SerializeToString(), tuple(state.bindings), dict(state.const_uses),
                          tuple((layer.weight, layer.bias) for layer in state.layers),
                          input_shape, state.shape)
    return Network(tuple(state.layers), path.stem, None, SourceGraph("onnx", str(path), payload))


def _concrete_shape(value: onnx.ValueInfoProto, path: str) -> tuple[int, ...]:
    """The data input's shape; symbolic or unknown dimensions are taken as 1."""
    tensor_type = value.type.tensor_type
    if not value.type.HasField("tensor_type") or tensor_type.elem_type not in (
            onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
        raise NetworkFormatError(f"{path}: input {value.name!r} must be a float32 or float64 "
                                 "tensor")
    if not tensor_type.HasField("shape"):
        raise NetworkFormatError(f"{path}: input {value.name!r} has no declared shape")
    dims = tensor_type.shape.dim
    if any(d.HasField("dim_value") and d.dim_value <= 0 for d in dims):
        shape = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in dims]
        raise NetworkFormatError(f"{path}: input {value.name!r} has shape {plain(shape)}; "
                                 "every fixed dimension must be positive")
    return tuple(d.dim_value if d.HasField("dim_value") else 1 for d in dims)


def _trace(graph: onnx.GraphProto, path: str) -> tuple[TraceState, tuple[int, ...]]:
    """Run every node's converter along the single data path of ``graph``."""
    initializers = {tensor.name for tensor in graph.initializer}
    data_inputs = [value for value in graph.input if value.name not in initializers]
    if len(data_inputs) != 1:
        names = [value.name for value in data_inputs]
        raise NetworkFormatError(f"{path}: expected exactly one data input, found {names}")
    if len(graph.output) != 1:
        raise NetworkFormatError(f"{path}: expected exactly one output, found {len(graph.output)}")
    input_shape = _concrete_shape(data_inputs[0], path)
    constants = collect_constants(graph)
    consumers: dict[str, list[str]] = {}
    for index, node in enumerate(graph.node):
        for name in set(node.input):
            consumers.setdefault(name, []).append(node_label(node, index))
    output_name = graph.output[0].name
    state = TraceState(data_inputs[0].name, input_shape, constants, path)
    for index, node in enumerate(graph.node):
        label = node_label(node, index)
        converter = get_converter(node.op_type, label)
        state.node_name = label
        if node.op_type == "Constant":
            continue
        if all(name in constants for name in node.input if name):
            if node.op_type == "Identity":
                continue  # an alias of a constant, collected already
            raise NetworkFormatError(f"{path}: node {label!r} ({node.op_type}) computes on "
                                     "constants only; constant folding is not supported")
        _check_chain(node, label, state.live, consumers, output_name, path)
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # close_layer names overflows
                converter(node, state)
        except VerirepairError:
            raise
        except Exception as exc:  # safety net, naming the node; validate_model runs first
            logger.debug("unexpected error in the %s converter", node.op_type, exc_info=True)
            raise NetworkFormatError(f"{path}: node {label!r} ({node.op_type}): cannot be "
                                     f"converted ({type(exc).__name__}: {one_line(exc, 200)})"
                                     ) from exc
    if state.live != output_name:
        raise NetworkFormatError(f"{path}: the graph output {output_name!r} is not at the end of "
                                 f"the data path (which ends at {state.live!r})")
    if state.steps or not state.layers:
        state.close_layer()
    return state, input_shape


def _check_chain(node: onnx.NodeProto, label: str, live: str, consumers: dict[str, list[str]],
                 output_name: str, path: str) -> None:
    """Reject nodes that leave the single chain from the input to the output."""
    reads = list(node.input).count(live)
    if reads == 0:
        raise NetworkFormatError(
            f"{path}: node {label!r} ({node.op_type}) does not read the data path {live!r} "
            f"(inputs {list(node.input)}); graphs with branches or several data inputs "
            "are not supported")
    if reads > 1:
        raise NetworkFormatError(f"{path}: node {label!r} reads the data tensor {live!r} twice; "
                                 "the second operand must be a constant")
    if len(consumers.get(live, [])) > 1 or live == output_name:
        users = consumers.get(live, []) + (["<graph output>"] if live == output_name else [])
        raise NetworkFormatError(f"{path}: tensor {live!r} feeds {users}; branching graphs "
                                 "are not supported")


# ======================================================================== save
def save_onnx(network: Network, path: str | os.PathLike, keep_graph: bool = True) -> Path:
    """Write ``network`` to an ONNX file, atomically.

    Parameters
    ----------
    network : Network
    path : str or PathLike
        Destination; must not be the network's own source file.
    keep_graph : bool
        When the network was read from ONNX, keep that graph and replace only
        the constants of changed layers (float32 stays float32).  Otherwise, or
        when ``False``, write a clean graph: input ``"input"`` of shape
        ``["batch", n_inputs]``, ``Gemm(transB=1)`` (+ its activation node) per layer,
        output ``"output"``, opset 13.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    OverwriteSourceError
        When ``path`` is the network's source file.
    NetworkFormatError
        When a changed layer cannot be expressed through the original graph's
        constants (e.g. a new bias where the graph has no bias constant).
    """
    path = Path(path)
    if network.source is not None and _same_file(path, Path(network.source.path)):
        raise OverwriteSourceError(
            f"refusing to overwrite {path}: it is the file network {network.name!r} was read from")
    source = network.source
    if keep_graph and source is not None and source.format == "onnx":
        model = _write_back(network, source.payload)
    else:
        model = _clean_model(network)
    write_bytes_atomic(path, model.SerializeToString())
    return path


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _clean_model(network: Network) -> onnx.ModelProto:
    """A fresh ``Gemm(transB=1)`` (+ activation node) graph of ``network`` in float32."""
    nodes, initializers = [], []
    current = "input"
    for index, layer in enumerate(network.layers):
        weight_name, bias_name = f"layer{index}.weight", f"layer{index}.bias"
        initializers.append(numpy_helper.from_array(layer.weight.astype(np.float32), weight_name))
        initializers.append(numpy_helper.from_array(layer.bias.astype(np.float32), bias_name))
        last = index == network.n_layers - 1
        op = layer.activation.onnx_op
        gemm_out = "output" if last and op is None else f"layer{index}.gemm"
        nodes.append(helper.make_node("Gemm", [current, weight_name, bias_name], [gemm_out],
                                      name=f"layer{index}.gemm", transB=1))
        current = gemm_out
        if op is not None:
            act_out = "output" if last else f"layer{index}.{op.lower()}"
            node = helper.make_node(op, [current], [act_out], name=f"layer{index}.{op.lower()}")
            if op in ("LeakyRelu", "Elu"):
                node.attribute.append(helper.make_attribute("alpha", float(layer.activation.alpha or 0.0)))
            nodes.append(node)
            current = act_out
    graph = helper.make_graph(
        nodes, network.name,
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", network.n_inputs])],
        [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ["batch", network.n_outputs])],
        initializer=initializers)
    model = helper.make_model(graph, producer_name="verirepair",
                              opset_imports=[helper.make_opsetid("", CLEAN_OPSET)])
    model.ir_version = CLEAN_IR_VERSION
    return model


# ------------------------------------------------------------------ write-back
def _write_back(network: Network, payload: OnnxPayload) -> onnx.ModelProto:
    """The original model with the constants of every changed layer replaced."""
    if len(network.layers) != len(payload.bindings):
        raise NetworkFormatError(
            f"network has {network.n_layers} layers but its source graph has "
            f"{len(payload.bindings)}; save with keep_graph=False")
    model = onnx.ModelProto.FromString(payload.model_bytes)
    written: set[ConstRef] = set()
    for layer_index, layer in enumerate(network.layers):
        old_weight, old_bias = payload.original[layer_index]
        if layer.weight.shape != old_weight.shape:
            raise NetworkFormatError(f"layer {layer_index} changed shape {old_weight.shape} -> "
                                     f"{layer.weight.shape}; save with keep_graph=False")
        if np.array_equal(layer.weight, old_weight) and np.array_equal(layer.bias, old_bias):
            continue
        updates = _solve_layer(layer_index, payload.bindings[layer_index],
                               (layer.weight, layer.bias), (old_weight, old_bias))
        for ref, value in updates.items():
            if payload.const_uses.get(ref, 0) > 1 or ref in written:
                raise NetworkFormatError(
                    f"layer {layer_index}: constant {ref.name!r} is shared by several steps, "
                    "so it cannot be rewritten for one layer; save with keep_graph=False")
            _store(model.graph, ref, value)
            written.add(ref)
    return model


def _offsets(steps: tuple[Step, ...]) -> tuple[OffsetStep, ...]:
    return tuple(step for step in steps if isinstance(step, OffsetStep))


def _split(steps: tuple[Step, ...], layer_index: int, changed_weight: bool
           ) -> tuple[tuple[OffsetStep, ...], LinearStep | None, tuple[OffsetStep, ...]]:
    """The offsets before the single linear step, that step (None when there is none; then
    every step counts as after it), and the offsets after it."""
    linear = [(i, step) for i, step in enumerate(steps) if isinstance(step, LinearStep)]
    if len(linear) > 1:
        raise NetworkFormatError(f"layer {layer_index} composes {len(linear)} MatMul/Gemm nodes; "
                                 "its parameters cannot be written back")
    if not linear and changed_weight:
        raise NetworkFormatError(f"layer {layer_index} has no weight constant in the original "
                                 "graph, so its new weight cannot be written back")
    if not linear:
        return (), None, _offsets(steps)
    j, step = linear[0]
    return _offsets(steps[:j]), step, _offsets(steps[j + 1:])


def _solve_layer(layer_index: int, steps: tuple[Step, ...],
                 new: tuple[np.ndarray, np.ndarray],
                 old: tuple[np.ndarray, np.ndarray]) -> dict[ConstRef, np.ndarray]:
    """New values of the constants that reproduce layer ``(W, b)`` = ``new``.

    With the layer written as ``pre -> alpha * M -> post``, where ``pre`` is
    ``x -> s_pre * x + u`` and ``post`` is ``h -> s_post * h + v`` (signs from
    ``c - x`` nodes), ``W = s_post * s_pre * alpha * M`` and
    ``b = s_pre * W @ u + v``.  ``M`` is solved from ``W``, then ``v`` from
    ``b``; ``v`` is stored in the last offset constant after ``M`` that holds
    one value per feature, keeping every other offset (e.g. ACAS Xu's input
    shift, which stays folded) fixed.
    """
    new_weight, new_bias = new
    changed_weight = not np.array_equal(new_weight, old[0])
    pre, linear, post = _split(steps, layer_index, changed_weight)
    s_pre, u = 1.0, np.zeros(new_weight.shape[1])
    for step in pre:
        s_pre, u = step.sign_in * s_pre, step.sign_in * u + step.coef * step.vector
    signs_after = [float(np.prod([s.sign_in for s in post[k + 1:]])) for k in range(len(post))]
    s_post = float(np.prod([s.sign_in for s in post])) if post else 1.0
    updates: dict[ConstRef, np.ndarray] = {}
    if changed_weight:
        assert linear is not None, "_split raises when a changed weight has no linear step"
        matrix = new_weight / (s_post * s_pre * linear.alpha)
        updates[linear.ref] = matrix.T if linear.transposed else matrix
    v_new = new_bias - s_pre * (new_weight @ u)
    v_old = old[1] - s_pre * (old[0] @ u)
    if np.array_equal(v_new, v_old):
        return updates
    carriers = [k for k, step in enumerate(post) if step.writable]
    if not carriers:
        raise NetworkFormatError(f"layer {layer_index} has no per-unit bias constant in the "
                                 "original graph, so its new bias cannot be written back; "
                                 "save with keep_graph=False")
    k = carriers[-1]
    others = sum((signs_after[i] * s.coef * s.vector for i, s in enumerate(post) if i != k),
                 np.zeros_like(v_new))
    updates[post[k].ref] = (v_new - others) / (signs_after[k] * post[k].coef)
    return updates


def _store(graph: onnx.GraphProto, ref: ConstRef, value: np.ndarray) -> None:
    """Replace constant ``ref`` in ``graph`` by ``value`` in its original layout and dtype."""
    dtype = helper.tensor_dtype_to_np_dtype(ref.data_type)
    if np.dtype(dtype).kind != "f":
        raise NetworkFormatError(f"constant {ref.name!r} has dtype {np.dtype(dtype)}; only "
                                 "floating-point constants can carry new parameters")
    array = np.asarray(value, dtype=np.float64).reshape(ref.dims).astype(dtype)
    if ref.kind == "initializer":
        for tensor in graph.initializer:
            if tensor.name == ref.name:
                tensor.CopyFrom(numpy_helper.from_array(array, ref.name))
                return
    else:
        for node in graph.node:
            if node.op_type == "Constant" and list(node.output) == [ref.name]:
                _store_constant_node(node, array)
                return
    raise NetworkFormatError(f"constant {ref.name!r} not found in the source graph")


def _store_constant_node(node: onnx.NodeProto, array: np.ndarray) -> None:
    attribute = node.attribute[0]
    if attribute.name == "value":
        attribute.t.CopyFrom(numpy_helper.from_array(array, attribute.t.name))
    elif attribute.name == "value_floats":
        del attribute.floats[:]
        attribute.floats.extend(float(v) for v in array.reshape(-1))
    elif attribute.name == "value_float" and prod(array.shape) == 1:
        attribute.f = float(array.reshape(-1)[0])
    else:
        raise NetworkFormatError(f"Constant node {node.name!r}: cannot store a float tensor "
                                 f"in attribute {attribute.name!r}")
