"""ONNX fuzz campaign: mutants of an ACAS Xu-shaped model, judged by onnxruntime and by us.

Each mutant is a copy of a base model changed either *structurally* (op types,
node inputs added, removed, swapped or renamed, nodes dropped, duplicated or
reordered, initializer dims / data_type / values / storage, attributes, graph
inputs and outputs, opset and IR version, plus rewrites that keep the function,
such as MatMul+Add -> Gemm) or at the *byte* level (bit flips, overwritten,
inserted and deleted bytes, truncation, duplicated slices; half of them aimed
at the bytes outside the weight data).  For every mutant:

* onnxruntime *refuses* it when building an ``InferenceSession`` or running it
  on a valid input (the declared shape, symbolic dimensions taken as 1) fails;
* we *refuse* it when ``load_onnx`` raises a :class:`VerirepairError`; any other
  exception is an *untyped exception* (a bug);
* when both accept, our forward pass must agree with onnxruntime's output on
  the same random inputs, to ``RTOL`` relative to the output's magnitude.  A
  mutant that disagrees only with the float32 evaluation but agrees with
  onnxruntime on a float64 copy of the graph (float32 overflow or rounding of
  huge mutated weights) is counted apart, as ``float32-only differences``.

The defects it looks for (:data:`BUGS`, all must be 0) are ``untyped
exceptions``, ``refused by ort, accepted by us``, ``agreement failures``, and
error messages that span lines or show a numpy repr.  ``tests/network/
test_onnx_fuzz.py`` runs a fixed-seed campaign of this module in CI.

Usage (from the repository root)::

    .venv/bin/python benchmarks/fuzz_onnx.py --count 2000 --seed 1
    .venv/bin/python benchmarks/fuzz_onnx.py --count 500 --base generated --show 5

The base is the ACAS Xu network N1,1 when the data is present (``--base
acasxu``, the default), else a generated network of the same shape.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from math import prod
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from verirepair.errors import VerirepairError
from verirepair.network import load_onnx

#: Agreement required between our forward pass and onnxruntime's, relative to
#: max(1, |output|): float32 evaluation of an ACAS Xu network differs from
#: float64 by about 1e-6 relative (tolerances.FLOAT32_FORWARD_TOL).
RTOL = 1e-5
#: The same against onnxruntime on a float64 copy of the mutant.
RTOL_FLOAT64 = 1e-9
#: Random inputs per accepted mutant.
N_INPUTS = 3
#: Width of the random input rows; a mutant whose input is larger is not fed.
MAX_FED_INPUTS = 4096


# ===================================================================== bases
def acasxu_like_model(seed: int = 0, widths: tuple[int, ...] = (5, 8, 8, 8, 5)) -> bytes:
    """A small network serialized like the ACAS Xu files: input (1, 1, 1, 5),
    ``Sub(mean) -> Flatten -> (MatMul, Add, Relu)* -> MatMul, Add``, IR 3 with
    every initializer also a graph input, opset 8."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    inits = {"input_AvgImg": rng.normal(0, 0.1, (1, 1, 1, widths[0])).astype(f32)}
    nodes = [helper.make_node("Sub", ["input", "input_AvgImg"], ["input_Sub"], name="input_Sub"),
             helper.make_node("Flatten", ["input_Sub"], ["flat"], name="flatten", axis=1)]
    current = "flat"
    for k, (fan_in, fan_out) in enumerate(itertools.pairwise(widths), start=1):
        weight, bias = f"W{k}", f"B{k}"
        inits[weight] = rng.normal(0, 1 / np.sqrt(fan_in), (fan_in, fan_out)).astype(f32)
        inits[bias] = rng.normal(0, 0.1, fan_out).astype(f32)
        nodes += [helper.make_node("MatMul", [current, weight], [f"mm{k}"], name=f"mm{k}"),
                  helper.make_node("Add", [f"mm{k}", bias], [f"add{k}"], name=f"add{k}")]
        current = f"add{k}"
        if k < len(widths) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"relu{k}"], name=f"relu{k}"))
            current = f"relu{k}"
    tensors = [numpy_helper.from_array(v, k) for k, v in inits.items()]
    inputs = [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims))
              for t in tensors]
    inputs.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 1, widths[0]]))
    output = helper.make_tensor_value_info(current, TensorProto.FLOAT, [1, widths[-1]])
    graph = helper.make_graph(nodes, "acasxu_like", inputs, [output], initializer=tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 3
    return model.SerializeToString()


def base_model(kind: str) -> tuple[str, bytes]:
    """``(label, serialized model)``: the ACAS Xu N1,1 file when ``kind`` is
    ``"acasxu"`` and the data is present, else the generated ACAS Xu-shaped network."""
    if kind == "acasxu":
        from verirepair.errors import DataMissingError
        from verirepair.tasks.acasxu import networks as acasxu_nets

        try:
            return "acasxu N1,1", acasxu_nets.onnx_path((1, 1)).read_bytes()
        except DataMissingError:
            pass
    return "generated 5-8-8-8-5", acasxu_like_model()


# ====================================================== structural mutators
Mutator = Callable[[onnx.ModelProto, np.random.Generator], str]
_OPS = ["Relu", "Add", "Sub", "MatMul", "Gemm", "Flatten", "Reshape", "Identity", "Squeeze",
        "Unsqueeze", "Constant", "Sigmoid", "Mul", "Conv", "Tanh", "NoSuchOp"]
_DTYPES = [0, 99, -1, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.INT32, TensorProto.INT64,
           TensorProto.STRING, TensorProto.BFLOAT16, TensorProto.COMPLEX64, TensorProto.UINT8,
           TensorProto.BOOL, TensorProto.FLOAT8E4M3FN]


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _names(model: onnx.ModelProto) -> list[str]:
    graph = model.graph
    return ([v.name for v in graph.input] + [t.name for t in graph.initializer]
            + [o for n in graph.node for o in n.output] + ["ghost", ""])


def _node(model: onnx.ModelProto, rng: np.random.Generator) -> onnx.NodeProto:
    if not model.graph.node:
        raise LookupError("no node")
    return _pick(rng, model.graph.node)


def _init(model: onnx.ModelProto, rng: np.random.Generator) -> onnx.TensorProto:
    if not model.graph.initializer:
        raise LookupError("no initializer")
    return _pick(rng, model.graph.initializer)


def m_op_type(model, rng) -> str:
    node = _node(model, rng)
    old, node.op_type = node.op_type, _pick(rng, _OPS)
    return f"op {node.name}: {old} -> {node.op_type}"


def m_add_input(model, rng) -> str:
    node = _node(model, rng)
    name = _pick(rng, _names(model))
    node.input.insert(int(rng.integers(len(node.input) + 1)), name)
    return f"add input {name!r} to {node.name} ({node.op_type})"


def m_remove_input(model, rng) -> str:
    node = _node(model, rng)
    if not node.input:
        raise LookupError("no input")
    index = int(rng.integers(len(node.input)))
    del node.input[index]
    return f"remove input {index} of {node.name} ({node.op_type})"


def m_swap_inputs(model, rng) -> str:
    node = _node(model, rng)
    if len(node.input) < 2:
        raise LookupError("one input")
    node.input[0], node.input[1] = node.input[1], node.input[0]
    return f"swap inputs of {node.name} ({node.op_type})"


def m_replace_input(model, rng) -> str:
    node = _node(model, rng)
    if not node.input:
        raise LookupError("no input")
    index, name = int(rng.integers(len(node.input))), _pick(rng, _names(model))
    node.input[index] = name
    return f"input {index} of {node.name} ({node.op_type}) -> {name!r}"


def m_drop_node(model, rng) -> str:
    node = _node(model, rng)
    label = f"{node.name} ({node.op_type})"
    model.graph.node.remove(node)
    return f"drop node {label}"


def m_duplicate_or_swap_nodes(model, rng) -> str:
    nodes = model.graph.node
    if len(nodes) < 2:
        raise LookupError("one node")
    i, j = sorted(int(v) for v in rng.choice(len(nodes), 2, replace=False))
    if rng.random() < 0.5:
        nodes.insert(j, onnx.NodeProto.FromString(nodes[i].SerializeToString()))
        return f"duplicate node {nodes[i].name} at {j}"
    a, b = onnx.NodeProto(), onnx.NodeProto()
    a.CopyFrom(nodes[i])
    b.CopyFrom(nodes[j])
    nodes[i].CopyFrom(b)
    nodes[j].CopyFrom(a)
    return f"swap nodes {i} and {j}"


def m_rename_output(model, rng) -> str:
    node = _node(model, rng)
    if not node.output:
        raise LookupError("no output")
    name = _pick(rng, _names(model)[:-1] + ["renamed"])
    node.output[0] = name
    return f"output of {node.name} -> {name!r}"


def m_init_dims(model, rng) -> str:
    tensor = _init(model, rng)
    dims = list(tensor.dims)
    choice = int(rng.integers(5))
    if choice == 0 and dims:
        k = int(rng.integers(len(dims)))
        dims[k] = int(_pick(rng, [dims[k] - 1, dims[k] + 1, dims[k] * 2, 0, 1, 2 ** 31, -1]))
    elif choice == 1:
        dims.insert(int(rng.integers(len(dims) + 1)), int(_pick(rng, [1, 2])))
    elif choice == 2 and dims:
        del dims[int(rng.integers(len(dims)))]
    elif choice == 3:
        dims = dims[::-1]  # same count, transposed layout
    else:
        dims = [prod(dims)]  # same count, flattened
    del tensor.dims[:]
    tensor.dims.extend(dims)
    return f"dims of {tensor.name} -> {dims}"


def m_init_dtype(model, rng) -> str:
    tensor = _init(model, rng)
    tensor.data_type = int(_pick(rng, _DTYPES))
    return f"data_type of {tensor.name} -> {tensor.data_type}"


def _set_values(tensor: onnx.TensorProto, value: np.ndarray) -> None:
    tensor.CopyFrom(numpy_helper.from_array(value.astype(value.dtype), tensor.name))


def m_init_values(model, rng) -> str:
    tensor = _init(model, rng)
    if tensor.data_type != TensorProto.FLOAT:
        raise LookupError("not float")
    value = numpy_helper.to_array(tensor).copy()
    if value.size == 0:
        raise LookupError("empty")
    flat = value.reshape(-1)
    kind = _pick(rng, ["nan", "inf", "-inf", "huge", "random", "zero", "scale", "negate"])
    k = int(rng.integers(flat.size))
    if kind in ("nan", "inf", "-inf"):
        flat[k] = float(kind)
    elif kind == "huge":
        flat[k] = _pick(rng, [1e30, -3e38, 1e-40])
    elif kind == "random":
        flat[k] = rng.normal(0, 10)
    elif kind == "zero":
        flat[:] = 0
    elif kind == "scale":
        flat *= np.float32(10.0 ** int(rng.integers(-3, 4)))
    else:
        flat *= -1
    _set_values(tensor, value)
    return f"values of {tensor.name}: {kind}"


def m_init_storage(model, rng) -> str:
    tensor = _init(model, rng)
    choice = int(rng.integers(4))
    if choice == 0:
        tensor.raw_data = tensor.raw_data[:max(0, len(tensor.raw_data) - int(rng.integers(1, 9)))]
        return f"truncate raw_data of {tensor.name}"
    if choice == 1:
        tensor.raw_data = tensor.raw_data + bytes(rng.integers(0, 256, int(rng.integers(1, 9)),
                                                               dtype=np.uint8))
        return f"extend raw_data of {tensor.name}"
    if tensor.data_type != TensorProto.FLOAT or not tensor.raw_data:
        raise LookupError("not float raw data")
    values = numpy_helper.to_array(tensor).reshape(-1)
    tensor.ClearField("raw_data")
    field_name = "float_data" if choice == 2 else "double_data"  # right field, wrong field
    getattr(tensor, field_name).extend(float(v) for v in values)
    return f"raw_data of {tensor.name} -> {field_name}"


def m_init_table(model, rng) -> str:
    graph = model.graph
    tensor = _init(model, rng)
    choice = int(rng.integers(3))
    if choice == 0:
        graph.initializer.remove(tensor)
        return f"remove initializer {tensor.name}"
    if choice == 1:
        copy = graph.initializer.add()
        copy.CopyFrom(tensor)
        if copy.data_type == TensorProto.FLOAT:
            _set_values(copy, numpy_helper.to_array(copy) * np.float32(2))
        return f"duplicate initializer {tensor.name}"
    old, tensor.name = tensor.name, _pick(rng, _names(model)[:-1])
    return f"rename initializer {old} -> {tensor.name!r}"


def m_attributes(model, rng) -> str:
    node = _node(model, rng)
    choice = int(rng.integers(4))
    if choice == 0 and node.attribute:
        name = node.attribute[0].name
        del node.attribute[0]
        return f"remove attribute {name} of {node.name}"
    if choice == 1 and node.attribute:
        attribute = node.attribute[0]
        if attribute.type == onnx.AttributeProto.INT:
            attribute.i = int(_pick(rng, [-5, -2, -1, 0, 1, 2, 3, 4, 7]))
            return f"attribute {attribute.name} of {node.name} -> {attribute.i}"
    name, value = _pick(rng, [("axis", int(rng.integers(-4, 5))), ("alpha", float(rng.normal())),
                              ("beta", float("nan")), ("transA", 1), ("transB", 1),
                              ("allowzero", 1), ("foo", 1), ("axis", 1.5)])
    node.attribute.append(helper.make_attribute(name, value))
    return f"add attribute {name}={value} to {node.name} ({node.op_type})"


def m_graph_io(model, rng) -> str:
    graph = model.graph
    choice = int(rng.integers(7))
    data = graph.input[len(graph.input) - 1] if graph.input else None
    if data is None:
        raise LookupError("no input")
    dims = data.type.tensor_type.shape.dim
    if choice == 0 and dims:
        dim = dims[int(rng.integers(len(dims)))]
        if rng.random() < 0.3:
            dim.dim_param = "N"
        else:
            dim.dim_value = int(_pick(rng, [0, 2, 3, 4, 5, 6, 10, 50, 10 ** 9]))
        return f"input dim -> {dim}"
    if choice == 1:
        data.type.tensor_type.elem_type = int(_pick(rng, [0, TensorProto.DOUBLE, TensorProto.INT64,
                                                          TensorProto.FLOAT16]))
        return f"input elem_type -> {data.type.tensor_type.elem_type}"
    if choice == 2 and dims:
        del dims[int(rng.integers(len(dims)))]
        return "drop an input dim"
    if choice == 3:
        graph.output[0].name = _pick(rng, _names(model)[:-1] + ["nowhere"])
        return f"output -> {graph.output[0].name!r}"
    if choice == 4:
        if rng.random() < 0.5:
            graph.output.add().CopyFrom(graph.output[0])
            return "duplicate output"
        graph.output[0].type.tensor_type.elem_type = int(_pick(rng, [0, 99, TensorProto.DOUBLE,
                                                                     TensorProto.INT64]))
        return f"output elem_type -> {graph.output[0].type.tensor_type.elem_type}"
    if choice == 5:
        name = _pick(rng, [o for n in graph.node for o in n.output] or ["y"])
        elem_type = int(_pick(rng, [0, TensorProto.FLOAT, TensorProto.INT64]))
        graph.value_info.append(helper.make_tensor_value_info(name, elem_type, [1, 5]))
        return f"value_info {name!r}: elem_type {elem_type}, shape [1, 5]"
    graph.input.add().CopyFrom(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1, 5]))
    return "extra graph input"


def m_versions(model, rng) -> str:
    if rng.random() < 0.6:
        model.opset_import[0].version = int(_pick(rng, [1, 6, 7, 9, 11, 13, 17, 21,
                                                         onnx.defs.onnx_opset_version(),
                                                         onnx.defs.onnx_opset_version() + 1, 100]))
        return f"opset -> {model.opset_import[0].version}"
    if rng.random() < 0.5:
        model.ir_version = int(_pick(rng, [0, 1, 2, 3, 4, 7, 8, 10, onnx.IR_VERSION,
                                           onnx.IR_VERSION + 1]))
        return f"ir_version -> {model.ir_version}"
    node = _node(model, rng)
    node.domain = _pick(rng, ["com.microsoft", "ai.onnx.ml", "ai.onnx", "custom"])
    return f"domain of {node.name} -> {node.domain}"


def m_rewrite(model, rng) -> str:
    """Rewrites that keep the function (the agreement check exercises the converters)."""
    graph = model.graph
    nodes = list(graph.node)
    choice = int(rng.integers(4))
    if choice == 0:  # MatMul(h, W) + Add(., b) -> Gemm(h, W, b)
        pairs = [i for i in range(len(nodes) - 1) if nodes[i].op_type == "MatMul"
                 and nodes[i + 1].op_type == "Add" and nodes[i + 1].input[0] == nodes[i].output[0]]
        if not pairs:
            raise LookupError("no MatMul+Add")
        i = _pick(rng, pairs)
        operands = [nodes[i].input[0], nodes[i].input[1], nodes[i + 1].input[1]]
        gemm = helper.make_node("Gemm", operands,
                                list(nodes[i + 1].output), name=f"gemm_{nodes[i].name}")
        graph.node[i].CopyFrom(gemm)
        del graph.node[i + 1]
        return f"MatMul+Add {nodes[i].name} -> Gemm"
    if choice == 1:  # insert an Identity on the data path
        i = int(rng.integers(len(nodes)))
        old = nodes[i].output[0]
        graph.node[i].output[0] = old + "_pre"
        graph.node.insert(i + 1, helper.make_node("Identity", [old + "_pre"], [old],
                                                  name=f"ident_{old}"))
        return f"Identity after {nodes[i].name}"
    if choice == 2:  # Flatten -> Reshape(h, [1, -1])
        flat = [i for i, n in enumerate(nodes) if n.op_type == "Flatten"]
        if not flat:
            raise LookupError("no Flatten")
        i = flat[0]
        graph.initializer.add().CopyFrom(numpy_helper.from_array(np.array([1, -1], np.int64),
                                                                 "target"))
        if model.ir_version < 4:  # IR 3 lists every initializer among the graph inputs
            graph.input.insert(0, helper.make_tensor_value_info("target", TensorProto.INT64, [2]))
        graph.node[i].CopyFrom(helper.make_node("Reshape", [nodes[i].input[0], "target"],
                                                list(nodes[i].output), name="reshape"))
        return "Flatten -> Reshape"
    tensor = _init(model, rng)  # an initializer becomes a Constant node
    names = {v.name for v in graph.input}
    if tensor.name in names:
        del graph.input[[v.name for v in graph.input].index(tensor.name)]
    graph.node.insert(0, helper.make_node("Constant", [], [tensor.name], name="const",
                                          value=tensor))
    graph.initializer.remove(tensor)
    return f"initializer {tensor.name} -> Constant"


STRUCTURAL: tuple[Mutator, ...] = (
    m_op_type, m_add_input, m_remove_input, m_swap_inputs, m_replace_input, m_drop_node,
    m_duplicate_or_swap_nodes, m_rename_output, m_init_dims, m_init_dtype, m_init_values,
    m_init_storage, m_init_table, m_attributes, m_graph_io, m_versions, m_rewrite,
)


def structural_mutant(base: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """1 to 3 structural mutations of ``base``; returns ``(description, bytes)``."""
    model = onnx.ModelProto.FromString(base)
    done: list[str] = []
    for _ in range(int(_pick(rng, [1, 1, 1, 2, 3]))):
        for _attempt in range(20):
            mutator = _pick(rng, STRUCTURAL)
            try:
                done.append(mutator(model, rng))
                break
            except (LookupError, ValueError):  # not applicable here; draw another
                continue
    return "; ".join(done) or "unchanged", model.SerializeToString()


# ============================================================= byte mutators
def _weight_spans(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the initializers' raw data inside the serialized model."""
    spans = []
    for tensor in onnx.ModelProto.FromString(data).graph.initializer:
        if len(tensor.raw_data) >= 16:
            start = data.find(tensor.raw_data)
            if start >= 0:
                spans.append((start, start + len(tensor.raw_data)))
    return spans


def byte_mutant(base: bytes, rng: np.random.Generator,
                spans: list[tuple[int, int]]) -> tuple[str, bytes]:
    """1 to 3 byte-level edits; half of the positions avoid the weight data."""
    data = bytearray(base)
    in_weights = np.zeros(len(data), bool)
    for start, end in spans:
        in_weights[start:end] = True
    structure = np.flatnonzero(~in_weights)
    done = []
    for _ in range(int(_pick(rng, [1, 1, 2, 3]))):
        if not data:
            break
        aimed = rng.random() < 0.5 and structure.size and len(data) == len(base)
        pos = int(_pick(rng, structure)) if aimed else int(rng.integers(len(data)))
        kind = _pick(rng, ["flip", "flip", "overwrite", "insert", "delete", "truncate", "dup"])
        if kind == "flip":
            data[pos] ^= 1 << int(rng.integers(8))
        elif kind == "overwrite":
            chunk = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
            data[pos:pos + len(chunk)] = chunk
        elif kind == "insert":
            data[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8).tobytes()
        elif kind == "delete":
            del data[pos:pos + int(rng.integers(1, 65))]
        elif kind == "truncate":
            del data[pos:]
        else:
            length = int(rng.integers(1, 65))
            data[pos:pos] = data[pos:pos + length]
        done.append(f"{kind}@{pos}{'(struct)' if aimed else ''}")
    return " ".join(done), bytes(data)


# =================================================================== oracles
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
               "tensor(float16)": np.float16, "tensor(int64)": np.int64,
               "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def _session(data: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 4  # fatal only: refusals are counted, not logged
    with contextlib.redirect_stdout(io.StringIO()):  # its Python layer prints "EP Error"
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def ort_outputs(data: bytes, x: np.ndarray) -> tuple[list[np.ndarray] | None, str]:
    """onnxruntime's first output (flattened) for each row of ``x`` (n, d), or
    ``(None, reason)`` when onnxruntime refuses the model or a run."""
    try:
        session = _session(data)
        feeds_per_row: list[dict[str, np.ndarray]] = [{} for _ in range(len(x))]
        for value in session.get_inputs():
            dtype = _ORT_DTYPES.get(value.type)
            if dtype is None:
                return None, f"no valid input of type {value.type}"
            shape = [d if isinstance(d, int) and d >= 0 else 1 for d in value.shape]
            size = prod(shape)
            if size > x.shape[1]:
                return None, f"input of {size} values is too large to feed"
            for feeds, row in zip(feeds_per_row, x, strict=True):
                feeds[value.name] = row[:size].astype(dtype).reshape(shape)
        return [np.asarray(session.run(None, feeds)[0], np.float64).reshape(-1)
                for feeds in feeds_per_row], ""
    except Exception as exc:  # onnxruntime raises its own Fail, InvalidGraph, ... types
        return None, " ".join(str(exc).split())[:160]


def float64_copy(data: bytes) -> bytes:
    """The graph with float32 constants, inputs and outputs turned into float64."""
    model = onnx.ModelProto.FromString(data)
    tensors = list(model.graph.initializer) + [a.t for n in model.graph.node
                                               for a in n.attribute if a.name == "value"]
    for tensor in tensors:
        if tensor.data_type == TensorProto.FLOAT:
            tensor.CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(tensor).astype(np.float64), tensor.name))
    for value in list(model.graph.input) + list(model.graph.output):
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.DOUBLE
    return model.SerializeToString()


def _agrees(ours: np.ndarray, theirs: list[np.ndarray] | None, rtol: float) -> bool:
    if theirs is None or any(t.shape != o.shape for t, o in zip(theirs, ours, strict=True)):
        return False
    return all(np.all(np.abs(o - t) <= rtol * max(1.0, float(np.abs(t).max(initial=0.0))))
               for o, t in zip(ours, theirs, strict=True))


# ================================================================== campaign
#: The counts that show a defect; every one must be 0.
BUGS = ("agreement failures", "refused by ort, accepted by us", "untyped exceptions",
        "multi-line messages", "numpy reprs in messages")


@dataclass
class Campaign:
    """Counts of one campaign, and a few examples of each finding."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    refusal_rules: Counter = field(default_factory=Counter)

    def note(self, key: str, example: str, keep: int = 5) -> None:
        self.counts[key] += 1
        self.examples.setdefault(key, [])
        if len(self.examples[key]) < keep:
            self.examples[key].append(example)

    @property
    def bugs(self) -> int:
        """Mutants that show a defect: the three counts that must be 0."""
        return sum(self.counts[k] for k in BUGS)


def _rule(message: str, path: str) -> str:
    """The rule a refusal names: the message without file, names and numbers."""
    text = message.replace(path, "").lstrip(": ")
    text = re.sub(r"'[^']*'|\[[^\]]*\]|\([^)]*\)", "*", text)
    return re.sub(r"\d+", "N", text)[:90]


def judge(kind: str, description: str, data: bytes, path: Path, rng: np.random.Generator,
          campaign: Campaign) -> None:
    """Run one mutant through onnxruntime and ``load_onnx`` and count the outcome."""
    campaign.counts["mutants"] += 1
    campaign.counts[f"{kind} mutants"] += 1
    x = rng.uniform(-1, 1, (N_INPUTS, MAX_FED_INPUTS)).astype(np.float32).astype(np.float64)
    theirs, ort_reason = ort_outputs(data, x)
    if theirs is None:
        campaign.counts["refused by ort"] += 1
    path.write_bytes(data)
    label = f"[{kind}] {description}"
    try:
        network = load_onnx(path)
        our_error = None
    except VerirepairError as exc:
        network, our_error = None, str(exc)
        campaign.counts["refused by us"] += 1
        campaign.refusal_rules[_rule(our_error, str(path))] += 1
        if "\n" in our_error or "\r" in our_error:
            campaign.note("multi-line messages", f"{label}: {our_error!r}")
        if re.search(r"\bnp\.[a-z]+\d*\(", our_error):
            campaign.note("numpy reprs in messages", f"{label}: {our_error}")
    except Exception as exc:  # the bug this campaign hunts
        campaign.note("untyped exceptions", f"{label}: {type(exc).__name__}: {exc}")
        return
    if theirs is None:
        if network is not None:
            campaign.note("refused by ort, accepted by us", f"{label}: ort: {ort_reason}")
        return
    if network is None:
        campaign.note("accepted by ort, refused by us", f"{label}: {our_error}", keep=10)
        return
    campaign.counts["accepted by both"] += 1
    if network.n_inputs > x.shape[1]:
        campaign.note("agreement failures", f"{label}: {network.n_inputs} inputs")
        return
    ours = [np.asarray(network.forward(row[:network.n_inputs]), np.float64).reshape(-1)
            for row in x]
    if _agrees(ours, theirs, RTOL):
        return
    exact, _ = ort_outputs(float64_copy(data), x)
    if _agrees(ours, exact, RTOL_FLOAT64):
        campaign.note("float32-only differences", label)
    else:
        worst = max(float(np.abs(o - t).max()) if o.shape == t.shape else float("inf")
                    for o, t in zip(ours, theirs, strict=True))
        campaign.note("agreement failures", f"{label}: max |ours - ort| = {worst:.3g}")


def run_campaign(base: bytes, count: int, seed: int, workdir: Path,
                 structural_fraction: float = 0.5) -> Campaign:
    """Judge ``count`` mutants of ``base`` (structural with probability
    ``structural_fraction``, byte-level otherwise), seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    spans = _weight_spans(base)
    campaign = Campaign()
    path = Path(workdir) / "mutant.onnx"
    for _ in range(count):
        if rng.random() < structural_fraction:
            kind, (description, data) = "structural", structural_mutant(base, rng)
        else:
            kind, (description, data) = "byte", byte_mutant(base, rng, spans)
        judge(kind, description, data, path, rng, campaign)
    return campaign


ORDER = ("mutants", "structural mutants", "byte mutants", "refused by ort", "refused by us",
         "accepted by both", "accepted by ort, refused by us", "float32-only differences",
         *BUGS)


def report(campaign: Campaign, show: int) -> str:
    """The counts, one per line, then up to ``show`` examples of each finding."""
    lines = [f"{key:34s} {campaign.counts[key]}" for key in ORDER]
    for key, examples in campaign.examples.items():
        if examples and show:
            lines.append(f"-- {key}:")
            lines += [f"   {e[:300]}" for e in examples[:show]]
    if show:
        lines.append("-- our refusals by rule (first words):")
        lines += [f"   {n:5d}  {rule}" for rule, n in campaign.refusal_rules.most_common(show * 3)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="number of mutants")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--base", choices=("acasxu", "generated"), default="acasxu")
    parser.add_argument("--structural", type=float, default=0.5,
                        help="fraction of structural mutants (the rest are byte-level)")
    parser.add_argument("--show", type=int, default=3, help="examples shown per finding")
    args = parser.parse_args(argv)
    label, base = base_model(args.base)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        campaign = run_campaign(base, args.count, args.seed, Path(workdir), args.structural)
    print(f"base: {label}; seed {args.seed}; {time.monotonic() - started:.1f} s")
    print(report(campaign, args.show))
    return 1 if campaign.bugs else 0


if __name__ == "__main__":
    sys.exit(main())
