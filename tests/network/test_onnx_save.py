"""save_onnx: write-back into the original graph, clean graphs, refusal to overwrite."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from network_helpers import (
    assert_matches_ort,
    assert_same_graph_new_values,
    float32_points,
    float64_copy,
    gemm_model,
    make_model,
    ort_forward,
    save_model,
    shape_ops_model,
    value_info,
)
from verirepair.errors import NetworkFormatError, VerirepairError
from verirepair.network import Network, load_nnet, load_onnx, random_network, save_onnx
from verirepair.network.onnx_io import CLEAN_OPSET, OverwriteSourceError
from verirepair.tolerances import FLOAT32_FORWARD_TOL, FORWARD_AGREE_TOL

GEMM_CASES = [("A", 0, 0), ("A", 0, 1), ("A", 1, 0), ("A", 1, 1), ("B", 0, 0), ("B", 1, 1)]


def _perturb(network: Network, rng: np.random.Generator, float32_exact: bool = False) -> Network:
    """Change every weight and bias of every layer."""
    for index, layer in enumerate(network.layers):
        weight = layer.weight + rng.normal(0.0, 0.1, layer.weight.shape)
        bias = layer.bias + rng.normal(0.0, 0.1, layer.bias.shape)
        if float32_exact:
            weight, bias = (a.astype(np.float32).astype(np.float64) for a in (weight, bias))
        network = network.replace_layer(index, weight, bias)
    return network


def _models(rng: np.random.Generator) -> list[onnx.ModelProto]:
    return [gemm_model(*case, rng)[0] for case in GEMM_CASES] + \
        [shape_ops_model(rng, opset)[0] for opset in (11, 13)]


def test_unchanged_network_is_saved_byte_identical(rng, tmp_path) -> None:
    for index, model in enumerate(_models(rng)):
        network = load_onnx(save_model(model, tmp_path, f"in{index}.onnx"))
        out = save_onnx(network, tmp_path / f"out{index}.onnx")
        assert out.read_bytes() == model.SerializeToString()


@pytest.mark.parametrize("case", range(len(GEMM_CASES) + 2))
def test_changed_network_keeps_the_graph_and_swaps_only_parameters(case, rng, tmp_path) -> None:
    model = _models(rng)[case]
    network = load_onnx(save_model(model, tmp_path))
    changed = _perturb(network, rng)
    out = save_onnx(changed, tmp_path / "repaired.onnx")
    saved = onnx.load(str(out))
    onnx.checker.check_model(saved)
    assert_same_graph_new_values(model, saved)
    reloaded = load_onnx(out)
    x = float32_points(rng, 40, network.n_inputs)
    # the saved file holds float32 parameters: it reproduces `changed` up to that rounding
    assert np.abs(reloaded.forward(x) - changed.forward(x)).max() <= FLOAT32_FORWARD_TOL
    assert np.abs(ort_forward(saved, x) - changed.forward(x)).max() <= FLOAT32_FORWARD_TOL
    assert_matches_ort(reloaded, saved, x)


@pytest.mark.parametrize("case", GEMM_CASES)
def test_float32_representable_changes_round_trip_exactly(case, rng, tmp_path) -> None:
    # alpha = 0.5 and beta = 2 are powers of two, so solving for the stored values is exact
    model = gemm_model(*case, rng)[0]
    changed = _perturb(load_onnx(save_model(model, tmp_path)), rng, float32_exact=True)
    reloaded = load_onnx(save_onnx(changed, tmp_path / "repaired.onnx"))
    for new, old in zip(reloaded.layers, changed.layers, strict=True):
        np.testing.assert_array_equal(new.weight, old.weight)
        np.testing.assert_array_equal(new.bias, old.bias)
    x = float32_points(rng, 40, changed.n_inputs)
    assert np.abs(ort_forward(tmp_path / "repaired.onnx", x) - changed.forward(x)).max() \
        <= FORWARD_AGREE_TOL


def test_folded_input_offset_stays_and_the_bias_is_solved(rng, tmp_path) -> None:
    # layer 0 of the shape-ops graph is x -> W1.T (x - 0.25) + b1, with b1 in a Constant node
    model, _ = shape_ops_model(rng, 13)
    network = load_onnx(save_model(model, tmp_path))
    layer = network.layers[0]
    changed = network.replace_layer(0, layer.weight * 1.5, layer.bias + 1.0)
    saved = onnx.load(str(save_onnx(changed, tmp_path / "repaired.onnx")))
    inits = {t.name: numpy_helper.to_array(t) for t in saved.graph.initializer}
    assert float(inits["shift"]) == 0.25
    reloaded = load_onnx(tmp_path / "repaired.onnx")
    np.testing.assert_allclose(reloaded.layers[0].bias, changed.layers[0].bias, rtol=0,
                               atol=FORWARD_AGREE_TOL)
    np.testing.assert_array_equal(reloaded.layers[1].weight, network.layers[1].weight)


def _saved_without_bias(tmp_path: Path) -> Path:
    weight = np.arange(6, dtype=np.float32).reshape(3, 2)
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
                       [value_info("x", ["N", 3])], [value_info("y", ["N", 2])], {"W": weight})
    return save_model(model, tmp_path)


def test_new_bias_without_a_bias_constant_is_refused_and_nothing_is_written(tmp_path) -> None:
    network = load_onnx(_saved_without_bias(tmp_path))
    changed = network.replace_layer(0, network.layers[0].weight, [1.0, 2.0])
    with pytest.raises(NetworkFormatError, match="layer 0 has no per-unit bias"):
        save_onnx(changed, tmp_path / "repaired.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]
    clean = load_onnx(save_onnx(changed, tmp_path / "clean.onnx", keep_graph=False))
    np.testing.assert_array_equal(clean.layers[0].bias, [1.0, 2.0])


def test_refuses_to_overwrite_the_source_file(rng, tmp_path) -> None:
    source = save_model(gemm_model("A", 0, 1, rng)[0], tmp_path)
    before = source.read_bytes()
    network = load_onnx(source)
    (tmp_path / "link.onnx").symlink_to(source)
    for target in (source, tmp_path / "." / "net.onnx", tmp_path / "link.onnx"):
        with pytest.raises(OverwriteSourceError, match="refusing to overwrite"):
            save_onnx(network, target)
    assert issubclass(OverwriteSourceError, VerirepairError)
    assert issubclass(OverwriteSourceError, ValueError)
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.onnx", "net.onnx"]


def test_save_replaces_an_existing_other_file_and_leaves_no_temporary(rng, tmp_path) -> None:
    network = load_onnx(save_model(gemm_model("A", 0, 0, rng)[0], tmp_path))
    target = tmp_path / "out.onnx"
    target.write_bytes(b"old content")
    assert save_onnx(network, target) == target
    assert load_onnx(target).n_layers == 2
    assert sorted(os.listdir(tmp_path)) == ["net.onnx", "out.onnx"]


def test_clean_graph_for_a_network_without_source(rng, tmp_path) -> None:
    network = random_network([4, 8, 8, 3], seed=3)
    out = save_onnx(network, tmp_path / "clean.onnx")
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == CLEAN_OPSET
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    assert graph_input.name == "input" and graph_output.name == "output"
    assert [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim] == ["batch", 4]
    assert [n.op_type for n in model.graph.node] == ["Gemm", "Relu", "Gemm", "Relu", "Gemm"]
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in model.graph.initializer)
    reloaded = load_onnx(out)
    for new, old in zip(reloaded.layers, network.layers, strict=True):
        np.testing.assert_array_equal(new.weight, old.weight.astype(np.float32))
        assert new.relu == old.relu
    x = float32_points(rng, 50, 4)
    import onnxruntime as ort

    batched = ort.InferenceSession(str(out)).run(None, {"input": x.astype(np.float32)})[0]
    assert np.abs(batched - network.forward(x)).max() <= FORWARD_AGREE_TOL
    assert_matches_ort(reloaded, model, x)


def test_clean_graph_ending_in_relu_and_keep_graph_false(rng, tmp_path) -> None:
    model, _ = shape_ops_model(rng, 13)  # its last layer has a ReLU
    network = load_onnx(save_model(model, tmp_path))
    out = save_onnx(network, tmp_path / "clean.onnx", keep_graph=False)
    clean = onnx.load(str(out))
    assert [n.op_type for n in clean.graph.node] == ["Gemm", "Relu", "Gemm", "Relu"]
    assert clean.graph.node[-1].output[0] == "output"
    x = float32_points(rng, 30, network.n_inputs)
    assert np.abs(ort_forward(clean, x) - network.forward(x)).max() <= FORWARD_AGREE_TOL


def test_nnet_network_is_saved_as_a_clean_graph(tmp_path) -> None:
    (tmp_path / "tiny.nnet").write_text(
        "// tiny\n1,2,1,2,\n2,1,\n0,\n0,0,\n1,1,\n0,0,0,\n1,1,1,\n1.5,-2.0,\n0.25,\n")
    network = load_nnet(tmp_path / "tiny.nnet")
    out = save_onnx(network, tmp_path / "tiny.onnx")
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["Gemm"]
    x = np.array([[1.0, 1.0], [0.5, -0.5]])
    np.testing.assert_array_equal(ort_forward(out, x), [[-0.25], [2.0]])


def test_float64_model_keeps_float64_parameters_exactly(rng, tmp_path) -> None:
    model = onnx.ModelProto.FromString(float64_copy(gemm_model("A", 1, 0, rng)[0]))
    changed = _perturb(load_onnx(save_model(model, tmp_path)), rng)
    saved = onnx.load(str(save_onnx(changed, tmp_path / "repaired.onnx")))
    assert {t.data_type for t in saved.graph.initializer} == {onnx.TensorProto.DOUBLE}
    reloaded = load_onnx(tmp_path / "repaired.onnx")
    for new, old in zip(reloaded.layers, changed.layers, strict=True):
        # stored as W / alpha and b / beta (0.5 and 2): exact in binary floating point
        np.testing.assert_array_equal(new.weight, old.weight)
        np.testing.assert_array_equal(new.bias, old.bias)
    x = float32_points(rng, 30, changed.n_inputs)
    assert np.abs(ort_forward(saved, x) - changed.forward(x)).max() <= FORWARD_AGREE_TOL
