"""Helpers for the network file-format tests: ONNX builders, an onnxruntime
oracle, and the ACAS Xu data folder (or a clean skip)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from verirepair.tasks.acasxu import networks as acasxu_nets


def acasxu_folder() -> Path:
    """The ACAS Xu data folder (``acasxu_nets.data_or_skip``): skips the test when absent."""
    return acasxu_nets.data_or_skip()


def make_model(nodes: list, inputs: list, outputs: list, initializers: dict[str, np.ndarray],
               opset: int = 13, name: str = "g", check: bool = True) -> onnx.ModelProto:
    """Build a model (checked unless ``check`` is false); ``initializers`` maps names to
    arrays (kept in their dtype)."""
    tensors = [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()]
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if check:
        onnx.checker.check_model(model)
    return model


def f32(*arrays: np.ndarray) -> list[np.ndarray]:
    """float32 copies (initializer values)."""
    return [np.asarray(a, dtype=np.float32) for a in arrays]


def float64_copy(model: onnx.ModelProto) -> bytes:
    """The same graph with float32 initializers, inputs and outputs turned into float64,
    so that onnxruntime evaluates it in double precision."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for tensor in model.graph.initializer:
        if tensor.data_type == onnx.TensorProto.FLOAT:
            tensor.CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(tensor).astype(np.float64), tensor.name))
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name == "value" and attribute.t.data_type == onnx.TensorProto.FLOAT:
                attribute.t.CopyFrom(numpy_helper.from_array(
                    numpy_helper.to_array(attribute.t).astype(np.float64), attribute.t.name))
    for value in list(model.graph.input) + list(model.graph.output):
        if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            value.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    return model.SerializeToString()


def ort_forward(model: onnx.ModelProto | bytes | str | Path, x: np.ndarray) -> np.ndarray:
    """Evaluate ``model`` one sample at a time with onnxruntime.

    Each row of ``x`` (n, d) is reshaped to the input's declared shape (symbolic
    dimensions taken as 1) and the outputs are flattened to (n, m).
    """
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = str(model) if isinstance(model, Path) else model
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    (data_input,) = session.get_inputs()
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in data_input.shape]
    dtype = np.float64 if data_input.type == "tensor(double)" else np.float32
    rows = [session.run(None, {data_input.name: row.astype(dtype).reshape(shape)})[0].reshape(-1)
            for row in np.asarray(x)]
    return np.array(rows, dtype=np.float64)


def float32_points(rng: np.random.Generator, n: int, d: int, low: float = -1.0,
                   high: float = 1.0) -> np.ndarray:
    """(n, d) float64 points that are exactly representable in float32."""
    return rng.uniform(low, high, (n, d)).astype(np.float32).astype(np.float64)



def ort_differences(network, model: onnx.ModelProto | bytes, x: np.ndarray) -> tuple[float, float]:
    """Max |ours - onnxruntime| on ``x`` for the float64 copy and for the model as stored."""
    if isinstance(model, bytes):
        model = onnx.ModelProto.FromString(model)
    ours = network.forward(x)
    exact = float(np.abs(ours - ort_forward(float64_copy(model), x)).max())
    stored = float(np.abs(ours - ort_forward(model, x)).max())
    return exact, stored


def assert_matches_ort(network, model: onnx.ModelProto | bytes, x: np.ndarray) -> None:
    """The graph's semantics (float64 onnxruntime) agree to FORWARD_AGREE_TOL, and the
    float32 model to FLOAT32_FORWARD_TOL (float32 arithmetic error only)."""
    from verirepair.tolerances import FLOAT32_FORWARD_TOL, FORWARD_AGREE_TOL

    exact, stored = ort_differences(network, model, x)
    assert exact <= FORWARD_AGREE_TOL, f"float64 onnxruntime differs by {exact}"
    assert stored <= FLOAT32_FORWARD_TOL, f"float32 onnxruntime differs by {stored}"


def value_info(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def save_model(model: onnx.ModelProto, tmp_path: Path, name: str = "net.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def gemm_model(data_as: str, trans_a: int, trans_b: int, rng: np.random.Generator):
    """Gemm(alpha=0.5, beta=2) -> Relu -> MatMul -> Add, with the data as operand A or B.

    Returns the model and the expected first layer (W (4, 3), b (4,)).
    """
    a_or_b = rng.normal(size=(4, 3))  # (out, in) view of the stored matrix
    bias, second = rng.normal(size=4), rng.normal(size=(4, 2))
    if data_as == "A":
        stored = a_or_b if trans_b else a_or_b.T  # B' = stored.T if transB: (in, out)
        x_shape = [3, "N"] if trans_a else ["N", 3]
        gemm_inputs, bias_shape = ["x", "W", "C"], (4,)
        tail = helper.make_node("MatMul", ["h", "W2"], ["m"], name="out_mm")
        second_stored = second
    else:
        stored = a_or_b.T if trans_a else a_or_b  # A' = stored.T if transA: (out, in)
        x_shape = ["N", 3] if trans_b else [3, "N"]
        gemm_inputs, bias_shape = ["W", "x", "C"], (4, 1)
        tail = helper.make_node("MatMul", ["W2", "h"], ["m"], name="out_mm")
        second_stored = second.T
    stored, bias, second_stored = f32(stored, bias, second_stored)
    nodes = [helper.make_node("Gemm", gemm_inputs, ["g"], name="gemm", alpha=0.5, beta=2.0,
                              transA=trans_a, transB=trans_b),
             helper.make_node("Relu", ["g"], ["h"], name="relu"), tail,
             helper.make_node("Add", ["m", "C2"], ["y"], name="out_add")]
    y_shape = ["N", 2] if data_as == "A" else [2, "N"]
    model = make_model(nodes, [value_info("x", x_shape)], [value_info("y", y_shape)],
                       {"W": stored, "C": bias.reshape(bias_shape), "W2": second_stored,
                        "C2": f32(rng.normal(size=2))[0].reshape((2,) + bias_shape[1:])})
    w_out_in = stored.astype(np.float64)
    if (data_as == "A" and not trans_b) or (data_as == "B" and trans_a):
        w_out_in = w_out_in.T
    return model, 0.5 * w_out_in, 2.0 * bias.astype(np.float64)


def shape_ops_model(rng: np.random.Generator, opset: int):
    """Sub(scalar) -> Flatten -> Unsqueeze -> Squeeze -> MatMul -> Add(Constant) -> Relu ->
    Identity -> Reshape -> Sub(c - h) -> Gemm(transB=1) -> Relu (the graph ends in a ReLU)."""
    w1, b1, c2, w2, c3 = f32(rng.normal(size=(6, 4)), rng.normal(size=4), rng.normal(size=4),
                             rng.normal(size=(3, 4)), rng.normal(size=3))
    axes_13 = opset >= 13
    inits = {"shift": np.array(0.25, np.float32), "W1": w1, "c2": c2, "W2": w2, "C3": c3,
             "target": np.array([0, -1], np.int64)}
    if axes_13:
        inits["axes"] = np.array([1], np.int64)
    axes_kw = {} if axes_13 else {"axes": [1]}
    axes_in = ["axes"] if axes_13 else []
    nodes = [
        helper.make_node("Sub", ["x", "shift"], ["s"], name="shift"),
        helper.make_node("Flatten", ["s"], ["f"], name="flat", axis=1),
        helper.make_node("Unsqueeze", ["f"] + axes_in, ["u"], name="unsq", **axes_kw),
        helper.make_node("Squeeze", ["u"] + axes_in, ["q"], name="sq", **axes_kw),
        helper.make_node("MatMul", ["q", "W1"], ["m"], name="mm"),
        helper.make_node("Constant", [], ["b1"], name="b1_const",
                         value=onnx.numpy_helper.from_array(b1)),
        helper.make_node("Add", ["m", "b1"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["r"], name="relu1"),
        helper.make_node("Identity", ["r"], ["i"], name="ident"),
        helper.make_node("Reshape", ["i", "target"], ["rs"], name="reshape"),
        helper.make_node("Sub", ["c2", "rs"], ["neg"], name="negate"),
        helper.make_node("Gemm", ["neg", "W2", "C3"], ["g"], name="gemm", transB=1),
        helper.make_node("Relu", ["g"], ["y"], name="relu2"),
    ]
    model = make_model(nodes, [value_info("x", [1, 2, 3])], [value_info("y", [1, 3])], inits, opset=opset)
    w1, b1, c2, w2, c3 = (a.astype(np.float64) for a in (w1, b1, c2, w2, c3))
    expected = [(w1.T, w1.T @ np.full(6, -0.25) + b1), (-w2, w2 @ c2 + c3)]
    return model, expected


def assert_same_graph_new_values(original: onnx.ModelProto, saved: onnx.ModelProto) -> None:
    """Same nodes, opset, inputs and outputs; initializers differ in values only."""
    assert saved.opset_import == original.opset_import
    assert saved.ir_version == original.ir_version
    assert saved.graph.input == original.graph.input
    assert saved.graph.output == original.graph.output
    assert len(saved.graph.node) == len(original.graph.node)
    for new, old in zip(saved.graph.node, original.graph.node, strict=True):
        assert (new.op_type, new.name, new.input, new.output) == (old.op_type, old.name, old.input,
                                                                 old.output)
        if new.op_type != "Constant":  # a Constant node's value may carry a parameter
            assert new == old
    assert [(t.name, tuple(t.dims), t.data_type) for t in saved.graph.initializer] == \
        [(t.name, tuple(t.dims), t.data_type) for t in original.graph.initializer]
    changed = [a.name for a, b in zip(saved.graph.initializer, original.graph.initializer, strict=True)
               if not np.array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))]
    assert changed, "no initializer changed"
