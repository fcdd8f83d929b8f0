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


class DataMissingError(VerirepairError):
    """Benchmark data (e.g. the ACAS Xu networks) is not where it was looked for."""


class SolverUnavailableError(VerirepairError):
    """An LP/MILP backend or verifier is not installed or not licensed."""


class OutputError(VerirepairError):
    """An output location that cannot be written (checked before any work starts)."""
