"""load_network dispatches on the suffix; the package re-exports the public API."""

from __future__ import annotations

import numpy as np
import pytest

import verirepair.network as network_pkg
from verirepair.errors import NetworkFormatError
from verirepair.network import load_network, random_network, save_onnx

TINY_NNET = "// tiny\n1,2,1,2,\n2,1,\n0,\n0,0,\n1,1,\n0,0,0,\n1,1,1,\n1.5,-2.0,\n0.25,\n"


def test_dispatch_on_suffix(tmp_path) -> None:
    save_onnx(random_network([2, 3, 1], seed=0), tmp_path / "a.onnx")
    (tmp_path / "b.NNET").write_text(TINY_NNET)
    from_onnx, from_nnet = load_network(tmp_path / "a.onnx"), load_network(tmp_path / "b.NNET")
    assert (from_onnx.name, from_onnx.source.format) == ("a", "onnx")
    assert (from_nnet.name, from_nnet.source.format) == ("b", "nnet")
    np.testing.assert_array_equal(from_nnet.forward(np.array([[1.0, 1.0]])), [[-0.25]])


def test_unknown_suffix_names_the_supported_ones(tmp_path) -> None:
    (tmp_path / "net.pb").write_bytes(b"")
    with pytest.raises(NetworkFormatError, match=r"'\.pb'.*supported: \.nnet, \.onnx"):
        load_network(tmp_path / "net.pb")


def test_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="gone.onnx"):
        load_network(tmp_path / "gone.onnx")


def test_public_api_is_re_exported() -> None:
    expected = {"Network", "AffineLayer", "Normalization", "SourceGraph", "random_network",
                "load_onnx", "save_onnx", "load_nnet", "load_network", "to_torch", "SUPPORTED_OPS"}
    assert expected <= set(network_pkg.__all__)
    assert all(hasattr(network_pkg, name) for name in expected)
    assert {"Gemm", "MatMul", "Add", "Sub", "Relu", "Flatten", "Reshape", "Identity", "Constant",
            "Squeeze", "Unsqueeze", "Tanh", "Sigmoid", "Elu", "LeakyRelu",
            "Softplus"} == set(network_pkg.SUPPORTED_OPS)
