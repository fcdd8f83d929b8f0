"""Smooth and leaky activations in the network model, ONNX reader/writer and torch export."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from verirepair.errors import NetworkFormatError, UnsupportedOperatorError
from verirepair.network import (
    IDENTITY,
    RELU,
    SIGMOID,
    SOFTPLUS,
    TANH,
    Activation,
    ActivationKind,
    AffineLayer,
    Network,
    load_onnx,
    parse_activation,
    random_network,
    save_onnx,
    to_torch,
)
from verirepair.tolerances import FLOAT32_FORWARD_TOL, FORWARD_AGREE_TOL

ELU_HALF = Activation(ActivationKind.ELU, 0.5)
LEAKY = Activation(ActivationKind.LEAKY_RELU, 0.1)
ALL = [RELU, TANH, SIGMOID, SOFTPLUS, ELU_HALF, Activation(ActivationKind.ELU), LEAKY,
       Activation(ActivationKind.LEAKY_RELU)]


def test_hand_values_of_every_function() -> None:
    z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(TANH.apply(z), np.tanh(z))
    np.testing.assert_allclose(SIGMOID.apply(z), [1 / (1 + np.e ** 2), 0.5, 1 / (1 + np.e ** -3)])
    np.testing.assert_allclose(SOFTPLUS.apply(z), [np.log1p(np.e ** -2), np.log(2.0), np.log1p(np.e ** 3)])
    np.testing.assert_allclose(ELU_HALF.apply(z), [0.5 * (np.e ** -2 - 1), 0.0, 3.0])
    np.testing.assert_allclose(LEAKY.apply(z), [-0.2, 0.0, 3.0])
    assert Activation(ActivationKind.LEAKY_RELU).alpha == 0.01       # ONNX defaults
    assert Activation(ActivationKind.ELU).alpha == 1.0
    # no overflow at the extremes
    big = np.array([-800.0, 800.0])
    np.testing.assert_array_equal(SIGMOID.apply(big), [0.0, 1.0])
    np.testing.assert_array_equal(SOFTPLUS.apply(big), [0.0, 800.0])


@pytest.mark.parametrize("activation", ALL, ids=lambda a: a.label)
def test_derivatives_match_finite_differences_and_outputs(activation: Activation) -> None:
    z = np.random.default_rng(0).uniform(-4, 4, 2000)
    z = z[np.abs(z) > 1e-3]                                       # away from kinks
    step = 1e-6
    numeric = (activation.apply(z + step) - activation.apply(z - step)) / (2 * step)
    np.testing.assert_allclose(activation.derivative(z), numeric, atol=1e-7)
    np.testing.assert_allclose(activation.derivative_from_output(activation.apply(z)),
                               activation.derivative(z), atol=1e-12)


def test_parse_and_validation() -> None:
    assert parse_activation("tanh") == TANH
    assert parse_activation("ELU:0.25") == Activation(ActivationKind.ELU, 0.25)
    assert parse_activation("leaky_relu") == Activation(ActivationKind.LEAKY_RELU, 0.01)
    with pytest.raises(ValueError, match="unknown activation 'swish'.*tanh"):
        parse_activation("swish")
    with pytest.raises(ValueError, match="not a number"):
        parse_activation("elu:x")
    with pytest.raises(ValueError, match="takes no alpha"):
        Activation(ActivationKind.TANH, 0.5)
    with pytest.raises(ValueError, match="finite"):
        Activation(ActivationKind.ELU, float("nan"))


def test_layer_relu_flag_and_activation_agree() -> None:
    w, b = np.eye(2), np.zeros(2)
    assert AffineLayer(w, b, True).activation == RELU
    assert AffineLayer(w, b, relu=True, activation=RELU).relu
    assert AffineLayer(w, b).activation == IDENTITY and not AffineLayer(w, b).nonlinear
    layer = AffineLayer(w, b, activation=TANH)
    assert not layer.relu and layer.nonlinear
    with pytest.raises(ValueError, match="contradicts activation Tanh"):
        AffineLayer(w, b, relu=True, activation=TANH)
    net = random_network([3, 4, 2], seed=0, activation=TANH)
    assert net.replace_layer(0, net.layers[0].weight, net.layers[0].bias).layers[0].activation == TANH
    assert net.hidden_sizes == (4,)


def test_forward_of_a_hand_network() -> None:
    # y = 2 * tanh(x0 - x1) + sigmoid-free output; at x = (1, 1): tanh(0) = 0, so y = 0.5
    net = Network((AffineLayer([[1.0, -1.0]], [0.0], activation=TANH),
                   AffineLayer([[2.0]], [0.5])))
    assert net.forward(np.array([1.0, 1.0]))[0] == 0.5
    assert net.forward(np.array([2.0, 1.0]))[0] == pytest.approx(2 * np.tanh(1.0) + 0.5)
    acts = net.forward_all(np.array([[2.0, 1.0]]))
    assert acts[1][0, 0] == pytest.approx(np.tanh(1.0))


@pytest.mark.parametrize("activation", ALL, ids=lambda a: a.label)
def test_onnx_round_trip_and_onnxruntime_agreement(tmp_path, activation: Activation) -> None:
    net = random_network([5, 8, 8, 3], seed=3, scale=2.0, activation=activation)
    path = save_onnx(net, tmp_path / "n.onnx")
    model = onnx.load(str(path))
    ops = [node.op_type for node in model.graph.node]
    assert ops.count(activation.onnx_op) == 2 and ops.count("Gemm") == 3
    back = load_onnx(path)
    assert [layer.activation.kind for layer in back.layers] == [activation.kind] * 2 + [ActivationKind.IDENTITY]
    if activation.kind in (ActivationKind.ELU, ActivationKind.LEAKY_RELU):
        assert back.layers[0].activation.alpha == pytest.approx(activation.alpha, rel=1e-7)  # float32 attribute
    x = np.random.default_rng(1).normal(0, 2, size=(500, 5))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"input": x.astype(np.float32)})[0]
    assert np.abs(theirs - back.forward(x)).max() <= FLOAT32_FORWARD_TOL
    # writing back into the same graph keeps the activation nodes
    again = save_onnx(back.replace_layer(2, back.layers[2].weight * 2, back.layers[2].bias),
                      tmp_path / "m.onnx")
    assert [node.op_type for node in onnx.load(str(again)).graph.node] == ops


def _single_node_model(op: str, **attributes: object) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.array([[1.0, -2.0], [0.5, 1.0]], np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
             helper.make_node(op, ["h"], ["y"], name="act", **attributes)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize(("op", "attributes", "expected"), [
    ("Tanh", {}, TANH), ("Sigmoid", {}, SIGMOID), ("Softplus", {}, SOFTPLUS),
    ("Elu", {}, Activation(ActivationKind.ELU, 1.0)), ("Elu", {"alpha": 0.25}, Activation(ActivationKind.ELU, 0.25)),
    ("LeakyRelu", {}, Activation(ActivationKind.LEAKY_RELU, 0.01)),
    ("LeakyRelu", {"alpha": 0.5}, Activation(ActivationKind.LEAKY_RELU, 0.5)),
])
def test_reader_reads_each_op_with_its_default_alpha(tmp_path, op: str, attributes: dict,
                                                     expected: Activation) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_single_node_model(op, **attributes), str(path))
    net = load_onnx(path)
    assert net.n_layers == 1
    assert net.layers[0].activation.kind is expected.kind
    assert net.layers[0].activation.alpha == pytest.approx(expected.alpha, rel=1e-7)
    x = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = np.vstack([session.run(None, {"x": row[None]})[0] for row in x])
    assert np.abs(theirs - net.forward(x)).max() <= FLOAT32_FORWARD_TOL


def test_unsupported_operator_lists_the_new_activations(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_single_node_model("Selu"), str(path))
    with pytest.raises(UnsupportedOperatorError) as info:
        load_onnx(path)
    for op in ("Elu", "LeakyRelu", "Relu", "Sigmoid", "Softplus", "Tanh"):
        assert op in info.value.supported and op in str(info.value)


def test_bad_alpha_attribute_is_one_clear_error(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_single_node_model("Elu", alpha=float("inf")), str(path))
    with pytest.raises(NetworkFormatError, match="node 'act'.*alpha must be a finite float"):
        load_onnx(path)


@pytest.mark.parametrize("activation", ALL, ids=lambda a: a.label)
def test_torch_export_agrees(activation: Activation) -> None:
    net = random_network([4, 6, 6, 2], seed=7, scale=3.0, activation=activation)
    module = to_torch(net)
    x = np.random.default_rng(2).normal(0, 5, size=(300, 4))
    with torch.no_grad():
        ours = module(torch.from_numpy(x)).numpy()
    assert np.abs(ours - net.forward(x)).max() <= FORWARD_AGREE_TOL
    # softplus stays exact far out (torch's default threshold of 20 would not)
    if activation.kind is ActivationKind.SOFTPLUS:
        z = torch.tensor([25.0, 39.0, 45.0], dtype=torch.float64)
        np.testing.assert_allclose(module[1](z).numpy(), SOFTPLUS.apply(z.numpy()), rtol=0, atol=1e-15)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                            "ignore::FutureWarning")
@pytest.mark.parametrize("activation", [TANH, ELU_HALF, LEAKY, SOFTPLUS], ids=lambda a: a.label)
def test_torch_onnx_export_of_smooth_network_loads_back(tmp_path, activation: Activation) -> None:
    net = random_network([4, 6, 3], seed=5, activation=activation)
    module = to_torch(net, dtype=torch.float32)
    torch.onnx.export(module, (torch.zeros(1, 4),), str(tmp_path / "t.onnx"), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    loaded = load_onnx(tmp_path / "t.onnx")
    assert loaded.layers[0].activation.kind is activation.kind
    x = np.random.default_rng(4).normal(size=(50, 4))
    assert np.abs(loaded.forward(x) - net.forward(x)).max() <= FLOAT32_FORWARD_TOL
