"""Networks: the immutable model (:mod:`.model`) and file formats (ONNX, .nnet, torch)."""

from verirepair.network.activation import (
    IDENTITY,
    RELU,
    SIGMOID,
    SOFTPLUS,
    TANH,
    Activation,
    ActivationKind,
    parse_activation,
)
from verirepair.network.loader import load_network
from verirepair.network.model import AffineLayer, Network, Normalization, SourceGraph, random_network
from verirepair.network.nnet import load_nnet
from verirepair.network.onnx_io import load_onnx, save_onnx
from verirepair.network.onnx_ops import SUPPORTED_OPS
from verirepair.network.torch_export import to_torch

__all__ = [
    "Activation",
    "ActivationKind",
    "AffineLayer",
    "IDENTITY",
    "RELU",
    "SIGMOID",
    "SOFTPLUS",
    "TANH",
    "Network",
    "Normalization",
    "SourceGraph",
    "SUPPORTED_OPS",
    "load_network",
    "load_nnet",
    "load_onnx",
    "parse_activation",
    "random_network",
    "save_onnx",
    "to_torch",
]
