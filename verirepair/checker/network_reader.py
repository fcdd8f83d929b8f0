"""The checker's own ONNX reader: a chain of affine layers and ReLUs, weights exactly as stored.

Pipeline position: :func:`verirepair.checker.check.check_certificate` reads the
network file with :func:`read_chain` (it does not use ``verirepair.network``).

Accepted graphs are chains from the single input to the single output: each
node takes the previous node's value (and constants).  Operators: ``MatMul``
(constant right operand, shape (in, out)), ``Gemm`` (``alpha = beta = 1``,
``transA = 0``), ``Add``/``Sub`` with a constant (either side for ``Add``;
``x - c`` for ``Sub``), ``Relu``, and the shape-only ``Flatten``, ``Reshape``,
``Squeeze``, ``Unsqueeze``, ``Identity``, ``Constant``.  Values are flat
vectors (a batch dimension of 1 is allowed).  Nothing is folded in floating
point: an addition that cannot be stored exactly as a bias (a second offset
on a layer, an offset after a ReLU) becomes its own identity layer, so the
layers describe exactly the real-valued function of the stored weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

SHAPE_OPS = ("Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity")
SUPPORTED = ("MatMul", "Gemm", "Add", "Sub", "Relu", "Constant") + SHAPE_OPS

#: One layer: (W of shape (out, in), b of shape (out,), relu), float64.
RawLayer = tuple[np.ndarray, np.ndarray, bool]


class NetworkRejected(ValueError):
    """The ONNX file is not a chain of the supported operators."""


def _attr(node: onnx.NodeProto, name: str, default: float) -> float:
    for attribute in node.attribute:
        if attribute.name == name:
            return float(onnx.helper.get_attribute_value(attribute))
    return default


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    consts = {init.name: numpy_helper.to_array(init).astype(np.float64) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(attribute.t).astype(np.float64)
    return consts


def read_chain(path: Path) -> list[RawLayer]:
    """The layers of the ONNX network at ``path``, in order; a final ReLU gets an identity layer after it.

    Raises
    ------
    NetworkRejected
        On anything outside the supported chain (the message names the node and the supported list).
    """
    model = onnx.load(str(path))
    graph = model.graph
    consts = _constants(graph)
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise NetworkRejected(f"expected one input and one output, got {len(inputs)} and {len(graph.output)}")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    width = int(np.prod([d for d in dims if d > 0])) if dims else 0
    if width <= 0:
        raise NetworkRejected(f"input {inputs[0].name!r} has no fixed size")
    current = inputs[0].name
    layers: list[list] = []      # [W, b, relu, bias_free]

    def new_layer(W: np.ndarray) -> None:
        layers.append([W, np.zeros(W.shape[0]), False, True])

    for node in graph.node:
        if node.op_type == "Constant":
            continue
        where = f"node {node.name or node.op_type!r} ({node.op_type})"
        if node.op_type not in SUPPORTED:
            raise NetworkRejected(f"{where}: unsupported operator; supported: {', '.join(SUPPORTED)}")
        live = [name for name in node.input if name and name not in consts]
        if live != [current]:
            raise NetworkRejected(f"{where}: not a chain (its inputs {list(node.input)} do not "
                                  f"continue from {current!r})")
        const = [consts[name] for name in node.input if name in consts]
        if node.op_type in ("MatMul", "Gemm"):
            if node.input[0] != current or len(const) < 1:
                raise NetworkRejected(f"{where}: the variable must be the left operand, the weight a constant")
            if node.op_type == "Gemm" and (_attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0
                                           or _attr(node, "transA", 0.0) != 0.0):
                raise NetworkRejected(f"{where}: only alpha = beta = 1, transA = 0 is supported")
            B = const[0]
            W = B if node.op_type == "Gemm" and _attr(node, "transB", 0.0) else B.T
            if W.ndim != 2 or W.shape[1] != width:
                raise NetworkRejected(f"{where}: weight of shape {B.shape} does not fit a vector of {width}")
            new_layer(np.ascontiguousarray(W))
            width = W.shape[0]
            if len(const) == 2:
                layers[-1][1] = np.broadcast_to(const[1].reshape(-1), (width,)).copy()
                layers[-1][3] = False
        elif node.op_type in ("Add", "Sub"):
            if len(const) != 1 or (node.op_type == "Sub" and node.input[0] != current):
                raise NetworkRejected(f"{where}: needs the variable first and one constant")
            offset = const[0].reshape(-1)
            if offset.size not in (1, width):
                raise NetworkRejected(f"{where}: constant of shape {const[0].shape} does not fit {width}")
            offset = np.broadcast_to(-offset if node.op_type == "Sub" else offset, (width,)).copy()
            if not layers or layers[-1][2] or not layers[-1][3]:
                new_layer(np.eye(width))
            layers[-1][1], layers[-1][3] = offset, False
        elif node.op_type == "Relu":
            if not layers:
                new_layer(np.eye(width))
            layers[-1][2] = True
        current = node.output[0]
    if current != graph.output[0].name:
        raise NetworkRejected(f"the chain ends at {current!r}, not at the graph output {graph.output[0].name!r}")
    if not layers:
        raise NetworkRejected("the graph has no affine layer")
    if layers[-1][2]:
        new_layer(np.eye(width))
    return [(W, b, relu) for W, b, relu, _ in layers]
