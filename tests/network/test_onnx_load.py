"""load_onnx: the op-converter registry, checked by hand formulas and onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from network_helpers import assert_matches_ort, f32, float32_points, make_model
from verirepair.errors import NetworkFormatError, UnsupportedOperatorError
from verirepair.network import SUPPORTED_OPS, load_onnx
from verirepair.network.onnx_ops import supported_ops


def _value(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _save(model: onnx.ModelProto, tmp_path: Path, name: str = "net.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _gemm_model(data_as: str, trans_a: int, trans_b: int, rng: np.random.Generator):
    """Gemm(alpha=0.5, beta=2) -> Relu -> MatMul, with the data as operand A or B.

    Returns the model and the expected first layer (W (4, 3), b (4,)).
    """
    a_or_b = rng.normal(size=(4, 3))  # (out, in) view of the stored matrix
    bias, second = rng.normal(size=4), rng.normal(size=(4, 2))
    if data_as == "A":
        stored = a_or_b if trans_b else a_or_b.T  # B' = stored.T if transB: (in, out)
        x_shape = [3, "N"] if trans_a else ["N", 3]
        gemm_inputs, bias_shape = ["x", "W", "C"], (4,)
        tail = helper.make_node("MatMul", ["h", "W2"], ["y"], name="out_mm")
        second_stored = second
    else:
        stored = a_or_b.T if trans_a else a_or_b  # A' = stored.T if transA: (out, in)
        x_shape = ["N", 3] if trans_b else [3, "N"]
        gemm_inputs, bias_shape = ["W", "x", "C"], (4, 1)
        tail = helper.make_node("MatMul", ["W2", "h"], ["y"], name="out_mm")
        second_stored = second.T
    stored, bias, second_stored = f32(stored, bias, second_stored)
    nodes = [helper.make_node("Gemm", gemm_inputs, ["g"], name="gemm", alpha=0.5, beta=2.0,
                              transA=trans_a, transB=trans_b),
             helper.make_node("Relu", ["g"], ["h"], name="relu"), tail]
    y_shape = ["N", 2] if data_as == "A" else [2, "N"]
    model = make_model(nodes, [_value("x", x_shape)], [_value("y", y_shape)],
                       {"W": stored, "C": bias.reshape(bias_shape), "W2": second_stored})
    w_out_in = stored.astype(np.float64)
    if (data_as == "A" and not trans_b) or (data_as == "B" and trans_a):
        w_out_in = w_out_in.T
    return model, 0.5 * w_out_in, 2.0 * bias.astype(np.float64)


GEMM_CASES = [("A", 0, 0), ("A", 0, 1), ("A", 1, 0), ("A", 1, 1), ("B", 0, 0), ("B", 1, 1)]


@pytest.mark.parametrize("data_as,trans_a,trans_b", GEMM_CASES)
def test_gemm_variants_give_the_expected_layer_and_match_onnxruntime(
        data_as, trans_a, trans_b, rng, tmp_path) -> None:
    model, weight, bias = _gemm_model(data_as, trans_a, trans_b, rng)
    network = load_onnx(_save(model, tmp_path))
    assert network.n_layers == 2 and [layer.relu for layer in network.layers] == [True, False]
    np.testing.assert_array_equal(network.layers[0].weight, weight)
    np.testing.assert_array_equal(network.layers[0].bias, bias)
    assert_matches_ort(network, model, float32_points(rng, 40, 3))


def _shape_ops_model(rng: np.random.Generator, opset: int):
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
    model = make_model(nodes, [_value("x", [1, 2, 3])], [_value("y", [1, 3])], inits, opset=opset)
    w1, b1, c2, w2, c3 = (a.astype(np.float64) for a in (w1, b1, c2, w2, c3))
    expected = [(w1.T, w1.T @ np.full(6, -0.25) + b1), (-w2, w2 @ c2 + c3)]
    return model, expected


@pytest.mark.parametrize("opset", [11, 13])
def test_shape_ops_constants_and_negation(opset, rng, tmp_path) -> None:
    model, expected = _shape_ops_model(rng, opset)
    network = load_onnx(_save(model, tmp_path))
    assert network.n_inputs == 6 and network.n_outputs == 3
    assert [layer.relu for layer in network.layers] == [True, True]  # no trailing identity layer
    for layer, (weight, bias) in zip(network.layers, expected):
        np.testing.assert_allclose(layer.weight, weight, rtol=0, atol=1e-12)
        np.testing.assert_allclose(layer.bias, bias, rtol=0, atol=1e-12)
    assert_matches_ort(network, model, float32_points(rng, 40, 6))


def test_network_is_named_after_the_file_and_records_its_source(rng, tmp_path) -> None:
    model, _, _ = _gemm_model("A", 0, 1, rng)
    network = load_onnx(_save(model, tmp_path, "my_net.onnx"))
    assert network.name == "my_net"
    assert network.source.format == "onnx"
    assert network.source.path == str(tmp_path / "my_net.onnx")


@pytest.mark.parametrize("op,inputs,attrs", [
    ("Sigmoid", ["h"], {}),
    ("Conv", ["h", "K"], {}),
])
def test_unsupported_operator_names_op_node_and_supported_list(op, inputs, attrs, tmp_path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["h"], name="relu0"),
             helper.make_node(op, inputs, ["y"], name="the_bad_node", **attrs)]
    inits = {"K": np.ones((1, 1, 1), np.float32)} if op == "Conv" else {}
    model = make_model(nodes, [_value("x", [1, 1, 4])], [_value("y", [1, 1, 4])], inits)
    with pytest.raises(UnsupportedOperatorError) as info:
        load_onnx(_save(model, tmp_path))
    message = str(info.value)
    assert op in message and "the_bad_node" in message
    for name in ("Gemm", "MatMul", "Relu", "Add", "Sub", "Reshape", "Flatten"):
        assert name in message
    assert info.value.supported == supported_ops() == tuple(sorted(SUPPORTED_OPS))


def _expect_format_error(nodes, inputs, outputs, inits, tmp_path, match: str) -> None:
    model = make_model(nodes, inputs, outputs, inits)
    with pytest.raises(NetworkFormatError, match=match):
        load_onnx(_save(model, tmp_path))


def test_two_data_inputs_are_rejected(tmp_path) -> None:
    _expect_format_error([helper.make_node("Add", ["x", "z"], ["y"], name="add")],
                         [_value("x", [1, 3]), _value("z", [1, 3])], [_value("y", [1, 3])], {},
                         tmp_path, "exactly one data input")


def test_branching_is_rejected(tmp_path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "x"], ["y"], name="skip")]
    _expect_format_error(nodes, [_value("x", [1, 3])], [_value("y", [1, 3])], {}, tmp_path,
                         "branching")


def test_data_used_twice_is_rejected(tmp_path) -> None:
    _expect_format_error([helper.make_node("Add", ["x", "x"], ["y"], name="double")],
                         [_value("x", [1, 3])], [_value("y", [1, 3])], {}, tmp_path, "twice")


def test_computation_on_constants_is_rejected(tmp_path) -> None:
    nodes = [helper.make_node("Reshape", ["W", "shape"], ["Wr"], name="fold"),
             helper.make_node("MatMul", ["x", "Wr"], ["y"], name="mm")]
    inits = {"W": np.ones(6, np.float32), "shape": np.array([3, 2], np.int64)}
    _expect_format_error(nodes, [_value("x", [1, 3])], [_value("y", [1, 2])], inits, tmp_path,
                         "'fold'.*constant folding")


def test_output_in_the_middle_of_the_chain_is_rejected(tmp_path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu"),
             helper.make_node("Relu", ["y"], ["z"], name="dangling")]
    _expect_format_error(nodes, [_value("x", [1, 3])], [_value("y", [1, 3])], {}, tmp_path,
                         "graph output")


def test_broadcast_that_changes_the_shape_is_rejected(tmp_path) -> None:
    nodes = [helper.make_node("Add", ["x", "c"], ["y"], name="widen")]
    _expect_format_error(nodes, [_value("x", [1, 1])], [_value("y", [1, 3])],
                         {"c": np.ones((1, 3), np.float32)}, tmp_path, "'widen'.*broadcast")


def test_gemm_on_a_batch_of_rows_inside_one_sample_is_rejected(tmp_path) -> None:
    nodes = [helper.make_node("Gemm", ["x", "W"], ["y"], name="gemm")]
    _expect_format_error(nodes, [_value("x", [2, 3])], [_value("y", [2, 4])],
                         {"W": np.ones((3, 4), np.float32)}, tmp_path, "'gemm'.*single row")


def test_missing_file_raises_file_not_found_with_the_path(tmp_path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        load_onnx(missing)


@pytest.mark.parametrize("content", [b"", b"\x00\xff garbage \x13\x37" * 10, b"not onnx at all\n"])
def test_garbage_file_raises_network_format_error(content, tmp_path) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(NetworkFormatError, match="bad.onnx"):
        load_onnx(path)
