"""Typed exceptions for bad input, shared by every stage.

Only :mod:`verirepair.cli` turns these into one-line messages and exit codes.
"""

from __future__ import annotations

from collections.abc import Iterable


class VerirepairError(Exception):
    """Base class of every error verirepair raises on purpose."""


class SpecError(VerirepairError):
    """A malformed or unsupported property file.

    Parameters
    ----------
    path : str
        The file (or ``"<string>"`` for text parsed from memory).
    line, col : int
        1-based position of the offending token.
    message : str
        What went wrong and what was expected instead.
    """

    def __init__(self, path: str, line: int, col: int, message: str) -> None:
        self.path = path
        self.line = line
        self.col = col
        self.message = message
        super().__init__(f"{path}:{line}:{col}: {message} (line {line}, column {col})")


class UnsupportedOperatorError(VerirepairError):
    """An ONNX graph uses an operator that no converter handles.

    Parameters
    ----------
    op : str
        The ONNX op type, e.g. ``"Conv"``.
    node : str
        The node's name (or its index when unnamed).
    supported : Iterable[str]
        The op types that are supported, listed in the message.
    """

    def __init__(self, op: str, node: str, supported: Iterable[str]) -> None:
        self.op = op
        self.node = node
        self.supported = tuple(sorted(supported))
        super().__init__(
            f"unsupported ONNX operator {op!r} at node {node!r}; "
            f"supported operators: {', '.join(self.supported)}"
        )


class NetworkFormatError(VerirepairError):
    """A network file that cannot be read as a fully connected ReLU network."""


class UnsupportedActivationError(VerirepairError):
    """An activation that a stage cannot handle soundly (e.g. a smooth layer in
    the fixed-pattern repair LP, or an ELU with ``alpha > 1`` in the verifier)."""


class DataMissingError(VerirepairError):
    """Benchmark data (e.g. the ACAS Xu networks) is not where it was looked for."""


class SolverUnavailableError(VerirepairError):
    """An LP/MILP backend or verifier is not installed or not licensed."""


class OutputError(VerirepairError):
    """An output location that cannot be written (checked before any work starts)."""


class PropertyDimensionError(VerirepairError):
    """A property whose input or output count differs from the network's.

    Parameters
    ----------
    path : str
        The property file.
    name : str
        The property's name.
    property_inputs, property_outputs : int
        The property's X and Y counts.
    network_inputs, network_outputs : int
        The network's input and output dimensions.
    network : str, optional
        The network file, named in the message when given.
    """

    def __init__(self, path: str, name: str, property_inputs: int, property_outputs: int,
                 network_inputs: int, network_outputs: int, network: str | None = None) -> None:
        self.path = path
        self.name = name
        self.property_inputs = property_inputs
        self.property_outputs = property_outputs
        self.network_inputs = network_inputs
        self.network_outputs = network_outputs
        self.network = network
        parts = []
        if property_inputs != network_inputs:
            parts.append(f"{property_inputs} inputs (X_0..X_{property_inputs - 1}) but the "
                         f"network has {network_inputs} inputs")
        if property_outputs != network_outputs:
            parts.append(f"{property_outputs} outputs (Y_0..Y_{property_outputs - 1}) but the "
                         f"network has {network_outputs} outputs")
        target = f" ({network})" if network else ""
        super().__init__(f"{path}: property {name!r} has {'; and '.join(parts)}{target}; the "
                         "property file does not fit this network")
