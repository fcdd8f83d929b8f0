"""Malformed network files: every rule of the ONNX validation, the loader's file-level
cases (directory, empty, truncated) and the .nnet reader's, each a typed one-line error
that names the file, the node or tensor, and the rule broken.

The ONNX cases edit a tiny hand-made model; the issue's named cases are repeated on the
real ACAS Xu file when the data is present, where onnxruntime is asked to confirm that
the mutant is invalid.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from network_helpers import f32, make_model, save_model, value_info
from verirepair.errors import NetworkFormatError, UnsupportedOperatorError, VerirepairError
from verirepair.network import load_network, load_nnet, load_onnx, onnx_ops
from verirepair.network.onnx_check import MIN_OPSET, max_opset, one_line, plain
from verirepair.network.onnx_ops import input_arity, output_arity, supported_ops


# ------------------------------------------------------------------ the model
def tiny_model(opset: int = 13) -> onnx.ModelProto:
    """ACAS Xu's pattern in small: Sub(x, mean) -> Flatten -> MatMul -> Add -> Relu ->
    MatMul -> Add, input (1, 1, 1, 3), output (1, 2)."""
    rng = np.random.default_rng(7)
    mean, w1, b1, w2, b2 = f32(rng.normal(size=(1, 1, 1, 3)), rng.normal(size=(3, 4)),
                               rng.normal(size=4), rng.normal(size=(4, 2)), rng.normal(size=2))
    nodes = [helper.make_node("Sub", ["x", "mean"], ["s"], name="sub"),
             helper.make_node("Flatten", ["s"], ["flat"], name="flatten", axis=1),
             helper.make_node("MatMul", ["flat", "W1"], ["m1"], name="mm1"),
             helper.make_node("Add", ["m1", "b1"], ["a1"], name="add1"),
             helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
             helper.make_node("MatMul", ["r1", "W2"], ["m2"], name="mm2"),
             helper.make_node("Add", ["m2", "b2"], ["y"], name="add2")]
    return make_model(nodes, [value_info("x", [1, 1, 1, 3])], [value_info("y", [1, 2])],
                      {"mean": mean, "W1": w1, "b1": b1, "W2": w2, "b2": b2}, opset=opset)


def node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def init(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in model.graph.initializer if t.name == name)


def set_value(model: onnx.ModelProto, name: str, index: tuple[int, ...], value: float) -> None:
    tensor = init(model, name)
    array = numpy_helper.to_array(tensor).copy()
    array[index] = value
    tensor.CopyFrom(numpy_helper.from_array(array, name))


def to_typed_field(tensor: onnx.TensorProto, field: str) -> None:
    values = numpy_helper.to_array(tensor).reshape(-1)
    tensor.ClearField("raw_data")
    getattr(tensor, field).extend(float(v) for v in values)


def assert_one_line_error(error: VerirepairError, path: Path) -> str:
    """The message is one line, names the file, and shows numbers plainly."""
    message = str(error)
    assert "\n" not in message and "\r" not in message, message
    assert str(path) in message, message
    assert "np." not in message and "dtype(" not in message, message
    return message


def refuse(tmp_path: Path, model_or_bytes, match: str,
           error: type[VerirepairError] = NetworkFormatError) -> str:
    path = tmp_path / "bad.onnx"
    data = (model_or_bytes if isinstance(model_or_bytes, bytes)
            else model_or_bytes.SerializeToString())
    path.write_bytes(data)
    with pytest.raises(error, match=match) as info:
        load_onnx(path)
    return assert_one_line_error(info.value, path)


def ort_refuses(data: bytes) -> bool:
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime's own exception types
        return True
    return False


# ------------------------------------------------------- one case per rule
def _flatten_x_w(m):  # the MatMul rewritten as Flatten(x, W): W silently dropped
    node(m, "mm1").op_type = "Flatten"


def _relu_x_b(m):  # Relu(x, b): the bias silently dropped
    node(m, "relu1").input.append("b1")


def _flatten_input_mean(m):  # Flatten(input, mean): the input offset silently dropped
    node(m, "flatten").input.append("mean")


def _bad_dims(m):
    init(m, "W1").dims[1] = 5


def _bad_dims_typed(m):
    to_typed_field(init(m, "W1"), "float_data")
    init(m, "W1").dims[0] = 2


def _constant_node_nan(m):
    value = numpy_helper.from_array(np.array([1.0, np.nan, 0.0, 2.0], np.float32), "b1")
    m.graph.initializer.remove(init(m, "b1"))
    m.graph.node.insert(0, helper.make_node("Constant", [], ["b1"], name="b1_const", value=value))


def _both_storages(m):
    init(m, "W2").float_data.extend([0.0] * 8)


def _external(m):
    init(m, "W2").data_location = TensorProto.EXTERNAL


def _duplicate_initializer(m):
    m.graph.initializer.add().CopyFrom(init(m, "W1"))


def _duplicate_node_name(m):
    node(m, "mm2").name = "relu1"


def _output_twice(m):
    node(m, "mm2").output[0] = "flat"


def _ghost(m):
    node(m, "mm2").input[1] = "ghost"


def _opset(version):
    def edit(m):
        m.opset_import[0].version = version
    return edit


def _no_default_opset(m):
    m.opset_import[0].domain = "com.example"


def _custom_domain(m):
    node(m, "relu1").domain = "com.example"
    m.opset_import.append(helper.make_opsetid("com.example", 1))


def _unknown_attribute(m):
    node(m, "relu1").attribute.append(helper.make_attribute("alpha", 0.5))


def _set(path: str, value):
    def edit(m):
        *owner, leaf = path.split(".")
        target = init(m, owner[0]) if owner else m
        setattr(target, leaf, value)
    return edit


def _nan(name, index):
    return lambda m: set_value(m, name, index, np.nan)


CASES: list[tuple[str, Callable, str]] = [
    ("Flatten(x, W)", _flatten_x_w, r"node 'mm1' \(Flatten\): has 2 inputs \['flat', 'W1'\], but "
     r"Flatten at opset 13 takes exactly 1; an extra input is an error, never ignored"),
    ("Relu(x, b)", _relu_x_b, r"node 'relu1' \(Relu\): has 2 inputs \['a1', 'b1'\].*exactly 1"),
    ("Flatten(input, mean)", _flatten_input_mean,
     r"node 'flatten' \(Flatten\): has 2 inputs \['s', 'mean'\].*exactly 1"),
    ("MatMul(x)", lambda m: node(m, "mm2").input.pop(),
     r"node 'mm2' \(MatMul\): has 1 inputs \['r1'\].*exactly 2; a required input is missing"),
    ("two outputs", lambda m: node(m, "relu1").output.append("r1b"),
     r"node 'relu1' \(Relu\): has 2 outputs \['r1', 'r1b'\], but Relu has 1"),
    ("dims vs raw_data", _bad_dims, r"initializer 'W1': dims \[3, 5\] need 15 FLOAT values "
     r"\(60 bytes of raw_data\), found 48 bytes"),
    ("dims vs float_data", _bad_dims_typed,
     r"initializer 'W1': dims \[2, 4\] need 8 values, found 12 in float_data"),
    ("negative dim", lambda m: init(m, "W1").dims.__setitem__(0, -3),
     r"initializer 'W1': dims \[-3, 4\] has a negative dimension"),
    ("data_type 0", _set("W1.data_type", 0), r"initializer 'W1': data_type 0 \(UNDEFINED\)"),
    ("data_type 99", _set("W1.data_type", 99),
     r"initializer 'W1': data_type 99 is not an ONNX tensor type"),
    ("data_type STRING", _set("W1.data_type", TensorProto.STRING),
     r"initializer 'W1': data_type 8 \(STRING\) is not supported; supported: BOOL, DOUBLE, FLOAT,"),
    ("NaN weight", _nan("W1", (1, 2)),
     r"initializer 'W1': holds nan at index \(1, 2\); weights must be finite"),
    ("-inf bias", lambda m: set_value(m, "b2", (1,), -np.inf),
     r"initializer 'b2': holds -inf at index \(1\); weights must be finite"),
    ("NaN in a Constant node", _constant_node_nan,
     r"node 'b1_const' \(Constant\) attribute 'value': holds nan at index \(1\)"),
    ("raw_data and float_data", _both_storages,
     r"initializer 'W2': holds values in both raw_data and float_data"),
    ("wrong typed field", lambda m: to_typed_field(init(m, "W2"), "double_data"),
     r"initializer 'W2': a FLOAT tensor keeps its values in float_data or raw_data, not in "
     r"double_data"),
    ("external data", _external, r"initializer 'W2': external data is not supported"),
    ("output elem_type 0", lambda m: setattr(m.graph.output[0].type.tensor_type, "elem_type", 0),
     r"graph output 'y' has elem_type 0, which is not a tensor element type"),
    ("value_info elem_type 0",
     lambda m: m.graph.value_info.append(helper.make_tensor_value_info("r1", 0, [1, 4])),
     r"value_info 'r1' has elem_type 0, which is not a tensor element type"),
    ("initializer twice", _duplicate_initializer, r"initializer 'W1' is defined twice"),
    ("node name twice", _duplicate_node_name,
     r"node name 'relu1' is used twice \(node #5\); node names must be unique"),
    ("output assigned twice", _output_twice,
     r"node 'mm2' \(MatMul\): output 'flat' is already defined \(each tensor is assigned once\)"),
    ("undefined input", _ghost, r"node 'mm2' \(MatMul\): input 'ghost' must be a constant"),
    ("opset 6", _opset(6), rf"ai.onnx opset 6 is not supported; supported: {MIN_OPSET} to "),
    ("opset too new", _opset(max_opset() + 1),
     rf"ai.onnx opset {max_opset() + 1} is not supported; supported: {MIN_OPSET} to {max_opset()}"),
    ("no ai.onnx opset", _no_default_opset,
     r"must import exactly one ai.onnx opset version, found none"),
    ("unknown attribute", _unknown_attribute,
     r"rejected by onnx.checker \(full check\): Unrecognized attribute: alpha for operator Relu"),
]


@pytest.mark.parametrize("edit,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_is_a_typed_one_line_error(edit, match, tmp_path) -> None:
    model = tiny_model()
    edit(model)
    refuse(tmp_path, model, match)


def test_the_unedited_model_loads(tmp_path) -> None:
    network = load_onnx(save_model(tiny_model(), tmp_path))
    assert (network.n_inputs, network.n_outputs, network.n_layers) == (3, 2, 2)


@pytest.mark.parametrize("edit,op", [(lambda m: setattr(node(m, "relu1"), "op_type", "Selu"),
                                      "'Selu'"),
                                     (_custom_domain, "'com.example.Relu'")])
def test_unsupported_operator_names_file_node_and_supported_list(edit, op, tmp_path) -> None:
    model = tiny_model()
    edit(model)
    message = refuse(tmp_path, model, rf"unsupported ONNX operator {op} at node 'relu1'",
                     UnsupportedOperatorError)
    assert "supported operators: " + ", ".join(supported_ops()) in message


def test_checker_messages_are_collapsed_to_one_line(tmp_path) -> None:
    model = tiny_model()
    _unknown_attribute(model)
    with pytest.raises(onnx.checker.ValidationError) as raw:
        onnx.checker.check_model(model, full_check=True)
    assert "\n" in str(raw.value)  # what onnx says spans lines ...
    refuse(tmp_path, model, "Unrecognized attribute")  # ... what we say does not


def test_a_name_that_is_not_utf8_is_refused(tmp_path) -> None:
    data = tiny_model().SerializeToString().replace(b"relu1", b"rel\xff1")
    refuse(tmp_path, data, r"node #4 name b'rel\\xff1' is not valid UTF-8")


def test_a_zero_input_dimension_is_refused(tmp_path) -> None:
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                       [value_info("x", [1, 0])], [value_info("y", [1, 0])], {})
    refuse(tmp_path, model, r"input 'x' has shape \[1, 0\]; every fixed dimension must be positive")


def test_gemm_with_a_nan_alpha_is_refused(tmp_path) -> None:
    gemm = helper.make_node("Gemm", ["x", "W"], ["y"], name="gemm", alpha=float("nan"))
    model = make_model([gemm],
                       [value_info("x", [1, 3])], [value_info("y", [1, 2])],
                       {"W": np.ones((3, 2), np.float32)})
    refuse(tmp_path, model, r"node 'gemm': alpha nan and beta 1.0 must be finite")


# ------------------------------------------------- opset-dependent arities
def _unsqueeze_model(opset: int, with_axes_input: bool) -> onnx.ModelProto:
    inputs, kwargs, inits = ["x"], {"axes": [0]}, {}
    if with_axes_input:
        inputs, kwargs, inits = ["x", "axes"], {}, {"axes": np.array([0], np.int64)}
    return make_model([helper.make_node("Unsqueeze", inputs, ["y"], name="unsq", **kwargs)],
                      [value_info("x", [3])], [value_info("y", [1, 3])], inits, opset=opset,
                      check=False)


@pytest.mark.parametrize("opset,with_axes_input,match", [
    (13, False, r"node 'unsq' \(Unsqueeze\): has 1 inputs \['x'\], but Unsqueeze at opset 13 "
                r"takes exactly 2; a required input is missing"),
    (11, True, r"node 'unsq' \(Unsqueeze\): has 2 inputs \['x', 'axes'\], but Unsqueeze at "
               r"opset 11 takes exactly 1; an extra input is an error"),
])
def test_arity_follows_the_opset(opset, with_axes_input, match, tmp_path) -> None:
    refuse(tmp_path, _unsqueeze_model(opset, with_axes_input), match)
    load_onnx(save_model(_unsqueeze_model(opset, not with_axes_input), tmp_path, "ok.onnx"))


@pytest.mark.parametrize("opset,loads", [(9, False), (11, True), (13, True)])
def test_gemm_bias_is_optional_from_opset_11(opset, loads, tmp_path) -> None:
    model = make_model([helper.make_node("Gemm", ["x", "W"], ["y"], name="gemm")],
                       [value_info("x", [1, 3])], [value_info("y", [1, 2])],
                       {"W": np.ones((3, 2), np.float32)}, opset=opset, check=False)
    if loads:
        assert load_onnx(save_model(model, tmp_path)).n_outputs == 2
    else:
        refuse(tmp_path, model, r"node 'gemm' \(Gemm\): has 2 inputs.*Gemm at opset 9 takes "
                                r"exactly 3")


def test_every_converter_declares_its_arity() -> None:
    for op in supported_ops():
        assert output_arity(op) == 1
        for opset in range(MIN_OPSET, max_opset() + 1):
            low, high = input_arity(op, opset)
            assert 0 <= low <= high <= 3, (op, opset)
    assert input_arity("Constant", 13) == (0, 0) and input_arity("Relu", 13) == (1, 1)
    with pytest.raises(TypeError):
        onnx_ops.register_op("NewOp")  # the arity is not optional


# --------------------------------------------------------- the safety net
def test_an_unexpected_converter_error_becomes_a_typed_error(tmp_path, monkeypatch) -> None:
    def broken(node, state):
        raise KeyError("something the checks did not foresee")

    monkeypatch.setitem(onnx_ops._CONVERTERS, "Relu", broken)
    path = save_model(tiny_model(), tmp_path)
    with pytest.raises(NetworkFormatError, match=r"node 'relu1' \(Relu\): cannot be converted "
                                                 r"\(KeyError: ") as info:
        load_onnx(path)
    assert isinstance(info.value.__cause__, KeyError)
    assert_one_line_error(info.value, path)


# ------------------------------------------------------------ file level
@pytest.mark.parametrize("content,match", [
    (b"", r"the file is empty \(0 bytes\), not an ONNX model"),
    (b"\x0a\xff\xff\xff\xff", r"not an ONNX model: protobuf cannot decode its 5 bytes"),
    (b"not onnx at all\n", r"not an ONNX model"),
])
def test_empty_and_garbage_files(content, match, tmp_path) -> None:
    refuse(tmp_path, content, match)
    path = tmp_path / "bad.onnx"
    with pytest.raises(NetworkFormatError, match=match):
        load_network(path)


def test_an_onnx_file_truncated_anywhere_is_a_typed_error(tmp_path) -> None:
    data = tiny_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    undecodable = 0
    for cut in range(1, len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(NetworkFormatError) as info:
            load_onnx(path)
        undecodable += "protobuf cannot decode" in assert_one_line_error(info.value, path)
    assert undecodable > len(data) // 2  # the rest decode into a model missing its tail


@pytest.mark.parametrize("reader", [load_network, load_onnx, load_nnet])
def test_a_directory_is_named_as_a_directory(reader, tmp_path) -> None:
    folder = tmp_path / "nets.onnx"
    folder.mkdir()
    with pytest.raises(NetworkFormatError, match=r"nets.onnx: is a directory, not a") as info:
        reader(folder)
    assert_one_line_error(info.value, folder)


def test_a_path_with_a_newline_is_shown_escaped(tmp_path) -> None:
    path = tmp_path / "odd\nname.onnx"
    path.write_bytes(b"")
    with pytest.raises(NetworkFormatError, match=r"odd\\nname.onnx': the file is empty") as info:
        load_onnx(path)
    assert "\n" not in str(info.value)


def test_formatting_helpers() -> None:
    assert plain([np.float64(1.0), np.int64(2), (np.float32(0.5),)]) == "[1.0, 2, (0.5)]"
    assert one_line("a\n\n  b\tc") == "a b c"
    assert one_line("x" * 1000, limit=10) == "xxxxxxx..."


# ---------------------------------------------- the real ACAS Xu file
ACAS_CASES = [
    ("Flatten(x, W)", lambda m: setattr(m.graph.node[2], "op_type", "Flatten"),
     r"node 'Operation_1_MatMul' \(Flatten\): has 2 inputs .*exactly 1", True),
    ("Relu(x, b)", lambda m: m.graph.node[4].input.append("Operation_1_Add_B"),
     r"node 'relu_1' \(Relu\): has 2 inputs .*exactly 1", True),
    ("Flatten(input, mean)", lambda m: m.graph.node[1].input.append("input_AvgImg"),
     r"node 'Operation_1_Flatten' \(Flatten\): has 2 inputs .*'input_AvgImg'", True),
    ("dims", lambda m: m.graph.initializer[1].dims.__setitem__(1, 49),
     r"initializer 'Operation_1_MatMul_W': dims \[5, 49\] need 245 FLOAT values", True),
    ("data_type 0", _set("Operation_1_MatMul_W.data_type", 0), r"data_type 0 \(UNDEFINED\)", True),
    ("data_type 99", _set("Operation_1_MatMul_W.data_type", 99), r"data_type 99 is not", True),
    ("NaN", _nan("Operation_2_MatMul_W", (3, 4)),
     r"initializer 'Operation_2_MatMul_W': holds nan at index \(3, 4\)", False),
]


@pytest.mark.acasxu
@pytest.mark.parametrize("edit,match,ort_refuses_too", [c[1:] for c in ACAS_CASES],
                         ids=[c[0] for c in ACAS_CASES])
def test_named_cases_on_the_acasxu_file(edit, match, ort_refuses_too, acasxu_dir, tmp_path) -> None:
    model = onnx.load(str(acasxu_dir / "onnx" / "ACASXU_run2a_1_1_batch_2000.onnx"))
    edit(model)
    data = model.SerializeToString()
    assert ort_refuses(data) == ort_refuses_too  # a NaN weight is valid ONNX; we refuse it anyway
    refuse(tmp_path, data, match)


# ------------------------------------------------------------ .nnet files
TINY_NNET = ("// tiny\n2,2,1,3,\n2,3,1,\n0,\n-1.0,0.0,\n1.0,10.0,\n0.5,5.0,7.0,\n2.0,10.0,4.0,\n"
             "1.0,0.0,\n0.0,1.0,\n1.0,1.0,\n0.0,\n-1.0,\n0.5,\n1.0,-1.0,2.0,\n0.25,\n")


def refuse_nnet(tmp_path: Path, content: bytes, match: str) -> str:
    path = tmp_path / "bad.nnet"
    path.write_bytes(content)
    with pytest.raises(NetworkFormatError, match=match) as info:
        load_network(path)
    return assert_one_line_error(info.value, path)


@pytest.mark.parametrize("content,match", [
    (b"", r"the file is empty"),
    (b" \n\n\t\n", r"the file is empty"),
    (b"// only a comment\n// and another\n", r"no data lines \(only comments or blank lines\)"),
    (TINY_NNET.encode().replace(b"0.5,5.0", b"0.5,\xff5.0"),
     r"line 7, column 5: byte 0xff is not UTF-8 text"),
    (TINY_NNET.encode().replace(b"1.0,10.0,", b"1.0,1_0,"), r"line 6: .*got '1.0,1_0,'"),
    (TINY_NNET.encode().replace(b"0,\n", b"0,\x00\n", 1), r"line 4: .*got '0,\\x00'"),
    (TINY_NNET.encode().replace(b"-1.0,0.0,\n", b"-1.0," + b"x" * 500 + b"\n"),
     r"line 5: the input minima: expected comma-separated numbers, got '-1\.0,x{55}\.\.\.'$"),
    (TINY_NNET.encode().replace(b"2,3,1,", b"2,3,"), r"line 3: the layer sizes: expected 3 values"),
], ids=["empty", "blank", "comments only", "non-UTF-8", "digit separator", "NUL byte",
        "long line", "wrong count"])
def test_malformed_nnet_files(content, match, tmp_path) -> None:
    refuse_nnet(tmp_path, content, match)


def test_nnet_truncated_at_every_line_is_a_typed_error(tmp_path) -> None:
    lines = TINY_NNET.splitlines(keepends=True)
    for keep in range(len(lines) - 1):  # the last line is the final bias
        message = refuse_nnet(tmp_path, "".join(lines[:keep]).encode(),
                              "empty|no data lines|end of file")
        assert re.search(r"line \d+|empty|no data lines", message)


def test_nnet_byte_mutants_give_only_typed_one_line_errors(tmp_path) -> None:
    rng = np.random.default_rng(2024)
    base = bytearray(TINY_NNET.encode())
    path = tmp_path / "m.nnet"
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(400):
        data = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(len(data)))
            kind = int(rng.integers(4))
            if kind == 0:
                data[pos] = int(rng.integers(256))
            elif kind == 1:
                data[pos:pos] = bytes([int(rng.integers(256))])
            elif kind == 2:
                del data[pos:pos + int(rng.integers(1, 8))]
            else:
                data[pos:pos] = _pick_token(rng)
        path.write_bytes(bytes(data))
        try:
            load_nnet(path)
            outcomes["loaded"] += 1
        except NetworkFormatError as exc:
            assert_one_line_error(exc, path)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 200, outcomes


def _pick_token(rng: np.random.Generator) -> bytes:
    tokens = [b",", b"\n", b"nan", b"1e999", b"-", b"//", b"\r", b"99999999999", b"0x1", b"1_0"]
    return tokens[int(rng.integers(len(tokens)))]
