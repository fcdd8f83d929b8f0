"""Helpers for the network file-format tests: ONNX builders, an onnxruntime
oracle, and the ACAS Xu data folder (or a clean skip)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[2]


def acasxu_folder() -> Path:
    """The ACAS Xu data folder, via ``acasxu_nets`` when it offers one, else the env var."""
    try:
        import acasxu_nets

        finder = getattr(acasxu_nets, "data_or_skip", None)
        if finder is not None:
            return Path(finder())
    except ImportError:
        pass
    folder = Path(os.environ.get("VERIREPAIR_ACASXU_DIR", REPO_ROOT.parent / "shared" / "acasxu"))
    if not (folder / "onnx").is_dir() or not (folder / "nnet").is_dir():
        pytest.skip(f"ACAS Xu data not found in {folder} (set VERIREPAIR_ACASXU_DIR)")
    return folder


def make_model(nodes: list, inputs: list, outputs: list, initializers: dict[str, np.ndarray],
               opset: int = 13, name: str = "g") -> onnx.ModelProto:
    """Build a checked model; ``initializers`` maps names to arrays (kept in their dtype)."""
    tensors = [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()]
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
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
