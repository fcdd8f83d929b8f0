"""Validate an ONNX model before it is converted into a :class:`Network`.

Pipeline position: the gate in front of ``load_onnx``'s graph trace::

    file.onnx --read_model--> ModelProto --validate_model--> (trace, onnx_io)

A file that is not a well-formed model of the supported operators raises
:class:`NetworkFormatError` (or :class:`UnsupportedOperatorError`) naming the
file, the node or tensor, and the rule broken, in one line.  The explicit
checks run first because they give precise messages; ``onnx.checker`` (full
check, i.e. with strict shape and type inference) runs last and catches the
rest.  Every check is there because a malformed graph must never load as a
*different* network: a node with an extra input that the converter would not
read (``Relu(x, b)``), a weight whose dims do not match its data, a NaN weight.
:func:`collect_constants` then reads the validated constants for the trace.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from math import prod
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from verirepair.errors import NetworkFormatError, UnsupportedOperatorError
from verirepair.network.onnx_ops import (
    ConstRef,
    input_arity,
    node_label,
    output_arity,
    supported_ops,
)

__all__ = ["MIN_OPSET", "MAX_MESSAGE_CHARS", "check_tensor", "collect_constants", "max_opset",
           "one_line", "plain", "read_model", "show_path", "validate_model"]

#: Oldest ai.onnx opset accepted: before opset 7, Add, Sub and Gemm broadcast by
#: their ``broadcast``/``axis`` attributes (legacy semantics the converters do not
#: implement), and onnxruntime has no kernels for them either.
MIN_OPSET = 7
#: A message longer than this (onnx.checker quotes whole nodes) is cut with "...".
MAX_MESSAGE_CHARS = 400

#: Element types a constant may have (they are read as float64).
_SUPPORTED_DTYPES = frozenset({
    TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BOOL,
    TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
    TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64,
})
#: The typed field that holds a tensor's values when ``raw_data`` is not used.
_TYPED_FIELD: dict[int, str] = {
    TensorProto.FLOAT: "float_data", TensorProto.DOUBLE: "double_data",
    TensorProto.INT64: "int64_data", TensorProto.UINT32: "uint64_data",
    TensorProto.UINT64: "uint64_data",
    **{t: "int32_data" for t in (TensorProto.FLOAT16, TensorProto.BOOL, TensorProto.INT8,
                                 TensorProto.INT16, TensorProto.INT32, TensorProto.UINT8,
                                 TensorProto.UINT16)},
}
_ALL_TYPED_FIELDS = ("float_data", "double_data", "int32_data", "int64_data", "uint64_data",
                     "string_data")
_CONSTANT_ATTRIBUTES = ("value", "value_float", "value_floats", "value_int", "value_ints")


# ------------------------------------------------------------------ formatting
def one_line(text: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one
    space, other control characters escaped, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    flat = "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def show_path(path: str | os.PathLike) -> str:
    """The path as given, or its repr when it holds a newline or control character."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def plain(value: object) -> str:
    """Numbers and sequences of numbers as plain text (never ``np.float64(1.0)``)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        items = ", ".join(plain(v) for v in value)
        return f"({items})" if isinstance(value, tuple) else f"[{items}]"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def max_opset() -> int:
    """Newest ai.onnx opset accepted: the newest one the installed onnx defines
    (the converters' semantics are checked against those schemas)."""
    return int(onnx.defs.onnx_opset_version())


# ------------------------------------------------------------------- reading
def read_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read and decode ``path`` as an ONNX model, without validating it.

    Parameters
    ----------
    path : str or PathLike
        An existing regular file.

    Returns
    -------
    onnx.ModelProto

    Raises
    ------
    NetworkFormatError
        For an empty file, bytes that protobuf cannot decode, or a message
        that decodes but is not a model (no graph, no IR version).
    """
    where = show_path(path)
    data = Path(path).read_bytes()
    if not data:
        raise NetworkFormatError(f"{where}: the file is empty (0 bytes), not an ONNX model")
    try:
        model = onnx.ModelProto.FromString(data)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ... on garbage
        raise NetworkFormatError(f"{where}: not an ONNX model: protobuf cannot decode its "
                                 f"{len(data)} bytes ({one_line(exc, 120)})") from exc
    if not model.HasField("graph") or model.ir_version <= 0:
        missing = "graph" if not model.HasField("graph") else "IR version"
        raise NetworkFormatError(f"{where}: not an ONNX model: the {len(data)} bytes decode, "
                                 f"but the model has no {missing}")
    return model


# ---------------------------------------------------------------- validation
def validate_model(model: onnx.ModelProto, path: str | os.PathLike) -> int:
    """Check ``model`` before conversion; return its ai.onnx opset.

    Parameters
    ----------
    model : onnx.ModelProto
    path : str or PathLike
        Named in every message.

    Returns
    -------
    int
        The model's ai.onnx opset version.

    Raises
    ------
    UnsupportedOperatorError
        For an op type (or domain) without a converter; the message lists the supported ones.
    NetworkFormatError
        For a broken rule: names that are not UTF-8, opset range, declared
        element types, tensor dtype/dims/data/finiteness, node input and output
        arity, duplicate node names, undefined or redefined tensor names, or
        anything ``onnx.checker.check_model(full_check=True)`` refuses.
    """
    where = show_path(path)
    _check_strings(model, where)
    opset = _check_opset(model, where)
    graph = model.graph
    if graph.sparse_initializer:
        raise NetworkFormatError(f"{where}: sparse initializers are not supported "
                                 f"({graph.sparse_initializer[0].values.name!r})")
    defined = _check_declared_values(graph, where)
    initializers: set[str] = set()
    for tensor in graph.initializer:
        what = f"initializer {tensor.name!r}"
        if not tensor.name or tensor.name in initializers:
            problem = f"{what} is defined twice" if tensor.name else "an initializer has no name"
            raise NetworkFormatError(f"{where}: {problem}")
        check_tensor(tensor, what, where)
        initializers.add(tensor.name)
    defined |= initializers
    node_names: set[str] = set()
    for index, node in enumerate(graph.node):
        if node.name in node_names:
            raise NetworkFormatError(f"{where}: node name {node.name!r} is used twice (node "
                                     f"#{index}); node names must be unique in a graph")
        node_names.add(node.name or f"#{index}")
        _check_node(node, node_label(node, index), opset, defined, where)
    for value in graph.output:
        if value.name not in defined:
            raise NetworkFormatError(f"{where}: graph output {value.name!r} is not produced by "
                                     "any node, initializer or input")
    _run_checker(model, where)
    return opset


def _check_strings(model: onnx.ModelProto, where: str) -> None:
    """Names and op types must be UTF-8 (protobuf hands back bytes when they are not)."""
    graph = model.graph
    named = ([("graph input", v.name) for v in graph.input]
             + [("graph output", v.name) for v in graph.output]
             + [("initializer", t.name) for t in graph.initializer])
    for index, node in enumerate(graph.node):
        named += [(f"node #{index} name", node.name), (f"node #{index} op type", node.op_type),
                  (f"node #{index} domain", node.domain)]
        named += [(f"node #{index} input", name) for name in node.input]
        named += [(f"node #{index} output", name) for name in node.output]
        named += [(f"node #{index} attribute", a.name) for a in node.attribute]
    named += [("opset domain", entry.domain) for entry in model.opset_import]
    for what, value in named:
        if not isinstance(value, str):
            raise NetworkFormatError(f"{where}: {what} {value!r} is not valid UTF-8")


def _check_opset(model: onnx.ModelProto, where: str) -> int:
    versions = {entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")}
    if len(versions) != 1:
        found = "none" if not versions else plain(sorted(versions))
        raise NetworkFormatError(f"{where}: the model must import exactly one ai.onnx opset "
                                 f"version, found {found}")
    (opset,) = versions
    if not MIN_OPSET <= opset <= max_opset():
        raise NetworkFormatError(f"{where}: ai.onnx opset {opset} is not supported; supported: "
                                 f"{MIN_OPSET} to {max_opset()}")
    return int(opset)


def _check_declared_values(graph: onnx.GraphProto, where: str) -> set[str]:
    """A known element type on every declared tensor type (inputs, outputs,
    value_info), and unique input names; returns the input names."""
    declared = ([("graph input", v) for v in graph.input]
                + [("graph output", v) for v in graph.output]
                + [("value_info", v) for v in graph.value_info])
    for what, value in declared:
        if value.type.HasField("tensor_type"):
            elem_type = value.type.tensor_type.elem_type
            if elem_type not in TensorProto.DataType.values() or elem_type == TensorProto.UNDEFINED:
                raise NetworkFormatError(f"{where}: {what} {value.name!r} has elem_type "
                                         f"{elem_type}, which is not a tensor element type")
    names: set[str] = set()
    for value in graph.input:
        if not value.name or value.name in names:
            problem = "has no name" if not value.name else f"{value.name!r} is declared twice"
            raise NetworkFormatError(f"{where}: a graph input {problem}")
        names.add(value.name)
    return names


def check_tensor(tensor: onnx.TensorProto, what: str, where: str) -> None:
    """Check a constant's dtype, dims against its data, storage and finiteness.

    Raises
    ------
    NetworkFormatError
        Naming ``what`` (e.g. ``"initializer 'W'"``) and the rule broken.
    """

    def fail(rule: str) -> NetworkFormatError:
        return NetworkFormatError(f"{where}: {what}: {rule}")

    data_type = int(tensor.data_type)
    if data_type == TensorProto.UNDEFINED:
        raise fail("data_type 0 (UNDEFINED) is not a tensor type")
    if data_type not in TensorProto.DataType.values():
        raise fail(f"data_type {data_type} is not an ONNX tensor type")
    if data_type not in _SUPPORTED_DTYPES:
        names = ", ".join(sorted(TensorProto.DataType.Name(t) for t in _SUPPORTED_DTYPES))
        raise fail(f"data_type {data_type} ({TensorProto.DataType.Name(data_type)}) is not "
                   f"supported; supported: {names}")
    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        raise fail("external data is not supported (store the values in the model file)")
    if tensor.HasField("segment"):
        raise fail("segmented tensors are not supported")
    dims = [int(d) for d in tensor.dims]
    if any(d < 0 for d in dims):
        raise fail(f"dims {plain(dims)} has a negative dimension")
    count = prod(dims)
    typed = [name for name in _ALL_TYPED_FIELDS if len(getattr(tensor, name))]
    dtype_name = TensorProto.DataType.Name(data_type)
    if tensor.HasField("raw_data") and typed:
        raise fail(f"holds values in both raw_data and {typed[0]}")
    if tensor.HasField("raw_data"):
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(data_type)).itemsize
        found = len(tensor.raw_data)
        if found != count * itemsize:
            raise fail(f"dims {plain(dims)} need {count} {dtype_name} values "
                       f"({count * itemsize} bytes of raw_data), found {found} bytes")
    else:
        expected_field = _TYPED_FIELD[data_type]
        wrong = [name for name in typed if name != expected_field]
        if wrong:
            raise fail(f"a {dtype_name} tensor keeps its values in {expected_field} or raw_data, "
                       f"not in {wrong[0]}")
        found = len(getattr(tensor, expected_field))
        if found != count:
            raise fail(f"dims {plain(dims)} need {count} values, found {found} in {expected_field}")
    _check_finite(numpy_helper.to_array(tensor), fail)


def _check_finite(value: np.ndarray, fail: Callable[[str], NetworkFormatError]) -> None:
    """Raise ``fail(rule)`` naming the first NaN or infinite entry of a float ``value``."""
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        flat_index = int(np.flatnonzero(~np.isfinite(value))[0])
        position = plain(tuple(int(i) for i in np.unravel_index(flat_index, value.shape)))
        bad = plain(value.reshape(-1)[flat_index])
        raise fail(f"holds {bad} at index {position}; weights must be finite")


def _check_node(node: onnx.NodeProto, label: str, opset: int, defined: set[str],
                where: str) -> None:
    """Domain, op type, input/output arity, names, and a Constant's value."""
    prefix = f"{where}: node {label!r} ({node.op_type})"
    if node.domain not in ("", "ai.onnx") or node.op_type not in supported_ops():
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        error = UnsupportedOperatorError(op, label, supported=supported_ops())
        error.args = (f"{where}: {error}",)  # the shared error class has no slot for the file
        raise error
    low, high = input_arity(node.op_type, opset)
    inputs = list(node.input)
    if not low <= len(inputs) <= high:
        takes = f"exactly {low}" if low == high else f"{low} to {high}"
        consequence = ("an extra input is an error, never ignored" if len(inputs) > high
                       else "a required input is missing")
        raise NetworkFormatError(f"{prefix}: has {len(inputs)} inputs {inputs}, but "
                                 f"{node.op_type} at opset {opset} takes {takes}; {consequence}")
    for position, name in enumerate(inputs):
        if not name and position < low:
            raise NetworkFormatError(f"{prefix}: required input {position} is empty")
        if name and name not in defined:
            raise NetworkFormatError(
                f"{prefix}: input {name!r} must be a constant (initializer or Constant node), "
                "a graph input or an earlier node's output, but nothing of that name precedes "
                "the node")
    outputs = list(node.output)
    if len(outputs) != output_arity(node.op_type):
        raise NetworkFormatError(f"{prefix}: has {len(outputs)} outputs {outputs}, but "
                                 f"{node.op_type} has {output_arity(node.op_type)}")
    for name in outputs:
        if not name or name in defined:
            problem = "an empty output name" if not name else f"output {name!r} is already defined"
            raise NetworkFormatError(f"{prefix}: {problem} (each tensor is assigned once)")
        defined.add(name)
    if node.op_type == "Constant":
        _check_constant_node(node, prefix, where)


def _check_constant_node(node: onnx.NodeProto, prefix: str, where: str) -> None:
    names = [attribute.name for attribute in node.attribute]
    if len(names) != 1 or names[0] not in _CONSTANT_ATTRIBUTES:
        raise NetworkFormatError(f"{prefix}: a Constant needs exactly one of the attributes "
                                 f"{', '.join(_CONSTANT_ATTRIBUTES)}; found {names}")
    attribute = node.attribute[0]

    def fail(rule: str) -> NetworkFormatError:
        return NetworkFormatError(f"{prefix}: attribute {attribute.name!r}: {rule}")

    if attribute.name == "value":
        check_tensor(attribute.t, f"node {node.name!r} (Constant) attribute 'value'", where)
    elif attribute.name in ("value_float", "value_floats"):
        _check_finite(np.array(helper.get_attribute_value(attribute), dtype=np.float64), fail)


def _run_checker(model: onnx.ModelProto, where: str) -> None:
    """``onnx.checker.check_model(full_check=True)``; its errors become one line."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError, and C++ errors surfaced as others
        raise NetworkFormatError(f"{where}: rejected by onnx.checker (full check): "
                                 f"{one_line(exc)}") from exc


# ------------------------------------------------------------------ constants
def _constant_node_value(node: onnx.NodeProto) -> tuple[np.ndarray, str]:
    """Value of a ``Constant`` node and the attribute that holds it."""
    for attribute in node.attribute:
        name = attribute.name
        if name == "value":
            return numpy_helper.to_array(attribute.t), name
        if name in ("value_float", "value_int"):
            return np.array(onnx.helper.get_attribute_value(attribute)), name
        if name in ("value_floats", "value_ints"):
            return np.array(list(onnx.helper.get_attribute_value(attribute))), name
    raise NetworkFormatError(f"Constant node {node.name!r} has no supported value attribute")


def collect_constants(graph: onnx.GraphProto) -> dict[str, tuple[np.ndarray, ConstRef]]:
    """Map every constant tensor name (initializers, ``Constant`` outputs and
    ``Identity`` aliases of those) to its float64 value and origin."""
    constants: dict[str, tuple[np.ndarray, ConstRef]] = {}
    for tensor in graph.initializer:
        value = numpy_helper.to_array(tensor)
        ref = ConstRef("initializer", tensor.name, tuple(tensor.dims), int(tensor.data_type))
        constants[tensor.name] = (_as_float64(value, tensor.name), ref)
    for node in graph.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            value, attribute = _constant_node_value(node)
            data_type = (node.attribute[0].t.data_type if attribute == "value"
                         else onnx.TensorProto.FLOAT if "float" in attribute
                         else onnx.TensorProto.INT64)
            ref = ConstRef("constant_node", node.output[0], tuple(value.shape), int(data_type))
            constants[node.output[0]] = (_as_float64(value, node.output[0]), ref)
        elif node.op_type == "Identity" and len(node.input) == 1 and node.input[0] in constants:
            constants[node.output[0]] = constants[node.input[0]]
    return constants


def _as_float64(value: np.ndarray, name: str) -> np.ndarray:
    if value.dtype.kind not in "fiub":
        raise NetworkFormatError(f"constant {name!r} has unsupported dtype {value.dtype}")
    out = np.asarray(value, dtype=np.float64)
    out.setflags(write=False)
    return out
