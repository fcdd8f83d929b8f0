"""load_onnx: the op-converter registry, checked by hand formulas and onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from network_helpers import (
    assert_matches_ort,
    float32_points,
    gemm_model,
    make_model,
    save_model,
    shape_ops_model,
    value_info,
)
from verirepair.errors import NetworkFormatError, UnsupportedOperatorError
from verirepair.network import SUPPORTED_OPS, load_onnx
from verirepair.network.onnx_ops import supported_ops

GEMM_CASES = [("A", 0, 0), ("A", 0, 1), ("A", 1, 0), ("A", 1, 1), ("B", 0, 0), ("B", 1, 1)]


@pytest.mark.parametrize("data_as,trans_a,trans_b", GEMM_CASES)
def test_gemm_variants_give_the_expected_layer_and_match_onnxruntime(
        data_as, trans_a, trans_b, rng, tmp_path) -> None:
    model, weight, bias = gemm_model(data_as, trans_a, trans_b, rng)
    network = load_onnx(save_model(model, tmp_path))
    assert network.n_layers == 2 and [layer.relu for layer in network.layers] == [True, False]
    np.testing.assert_array_equal(network.layers[0].weight, weight)
    np.testing.assert_array_equal(network.layers[0].bias, bias)
    assert_matches_ort(network, model, float32_points(rng, 40, 3))


@pytest.mark.parametrize("opset", [11, 13])
def test_shape_ops_constants_and_negation(opset, rng, tmp_path) -> None:
    model, expected = shape_ops_model(rng, opset)
    network = load_onnx(save_model(model, tmp_path))
    assert network.n_inputs == 6 and network.n_outputs == 3
    assert [layer.relu for layer in network.layers] == [True, True]  # no trailing identity layer
    for layer, (weight, bias) in zip(network.layers, expected, strict=True):
        np.testing.assert_allclose(layer.weight, weight, rtol=0, atol=1e-12)
        np.testing.assert_allclose(layer.bias, bias, rtol=0, atol=1e-12)
    assert_matches_ort(network, model, float32_points(rng, 40, 6))


def test_network_is_named_after_the_file_and_records_its_source(rng, tmp_path) -> None:
    model, _, _ = gemm_model("A", 0, 1, rng)
    network = load_onnx(save_model(model, tmp_path, "my_net.onnx"))
    assert network.name == "my_net"
    assert network.source.format == "onnx"
    assert network.source.path == str(tmp_path / "my_net.onnx")


@pytest.mark.parametrize("op,inputs,attrs", [
    ("Selu", ["h"], {}),
    ("Conv", ["h", "K"], {}),
])
def test_unsupported_operator_names_op_node_and_supported_list(op, inputs, attrs, tmp_path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["h"], name="relu0"),
             helper.make_node(op, inputs, ["y"], name="the_bad_node", **attrs)]
    inits = {"K": np.ones((1, 1, 1), np.float32)} if op == "Conv" else {}
    model = make_model(nodes, [value_info("x", [1, 1, 4])], [value_info("y", [1, 1, 4])], inits)
    with pytest.raises(UnsupportedOperatorError) as info:
        load_onnx(save_model(model, tmp_path))
    message = str(info.value)
    assert op in message and "the_bad_node" in message
    for name in ("Gemm", "MatMul", "Relu", "Add", "Sub", "Reshape", "Flatten", "Tanh", "Sigmoid",
                 "Elu", "LeakyRelu", "Softplus"):
        assert name in message
    assert info.value.supported == supported_ops() == tuple(sorted(SUPPORTED_OPS))


def _expect_format_error(nodes, inputs, outputs, inits, tmp_path, match: str) -> None:
    model = make_model(nodes, inputs, outputs, inits)
    with pytest.raises(NetworkFormatError, match=match):
        load_onnx(save_model(model, tmp_path))


def test_two_data_inputs_are_rejected(tmp_path) -> None:
    _expect_format_error([helper.make_node("Add", ["x", "z"], ["y"], name="add")],
                         [value_info("x", [1, 3]), value_info("z", [1, 3])], [value_info("y", [1, 3])], {},
                         tmp_path, "exactly one data input")


def test_branching_is_rejected(tmp_path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "x"], ["y"], name="skip")]
    _expect_format_error(nodes, [value_info("x", [1, 3])], [value_info("y", [1, 3])], {}, tmp_path,
                         "branching")


def test_data_used_twice_is_rejected(tmp_path) -> None:
    _expect_format_error([helper.make_node("Add", ["x", "x"], ["y"], name="double")],
                         [value_info("x", [1, 3])], [value_info("y", [1, 3])], {}, tmp_path, "twice")


def test_non_constant_second_operand_is_rejected(tmp_path) -> None:
    # "ghost" is neither an initializer nor produced by a node (the checker would refuse it)
    model = make_model([helper.make_node("MatMul", ["x", "ghost"], ["y"], name="mm")],
                       [value_info("x", [1, 3])], [value_info("y", [1, 2])], {}, check=False)
    with pytest.raises(NetworkFormatError, match="'mm'.*'ghost' must be a constant"):
        load_onnx(save_model(model, tmp_path))


def test_computation_on_constants_is_rejected(tmp_path) -> None:
    nodes = [helper.make_node("Reshape", ["W", "shape"], ["Wr"], name="fold"),
             helper.make_node("MatMul", ["x", "Wr"], ["y"], name="mm")]
    inits = {"W": np.ones(6, np.float32), "shape": np.array([3, 2], np.int64)}
    _expect_format_error(nodes, [value_info("x", [1, 3])], [value_info("y", [1, 2])], inits, tmp_path,
                         "'fold'.*constant folding")


def test_output_in_the_middle_of_the_chain_is_rejected(tmp_path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu"),
             helper.make_node("Relu", ["y"], ["z"], name="dangling")]
    _expect_format_error(nodes, [value_info("x", [1, 3])], [value_info("y", [1, 3])], {}, tmp_path,
                         "graph output")


def test_broadcast_that_changes_the_shape_is_rejected(tmp_path) -> None:
    nodes = [helper.make_node("Add", ["x", "c"], ["y"], name="widen")]
    _expect_format_error(nodes, [value_info("x", [1, 1])], [value_info("y", [1, 3])],
                         {"c": np.ones((1, 3), np.float32)}, tmp_path, "'widen'.*broadcast")


def test_gemm_on_a_batch_of_rows_inside_one_sample_is_rejected(tmp_path) -> None:
    nodes = [helper.make_node("Gemm", ["x", "W"], ["y"], name="gemm")]
    _expect_format_error(nodes, [value_info("x", [2, 3])], [value_info("y", [2, 4])],
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
