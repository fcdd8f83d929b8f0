"""Load a network from any supported file format, chosen by suffix.

Pipeline position: the entry point the CLI and pipeline use to read a network.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from verirepair.errors import NetworkFormatError
from verirepair.network.model import Network
from verirepair.network.nnet import load_nnet
from verirepair.network.onnx_check import show_path
from verirepair.network.onnx_io import load_onnx

__all__ = ["LOADERS", "load_network"]

#: Reader per file suffix (lower case).
LOADERS: dict[str, Callable[[str | os.PathLike], Network]] = {
    ".onnx": load_onnx,
    ".nnet": load_nnet,
}


def load_network(path: str | os.PathLike) -> Network:
    """Read a network, dispatching on the file suffix.

    Parameters
    ----------
    path : str or PathLike
        A ``.onnx`` or ``.nnet`` file.

    Returns
    -------
    Network
        Named after the file stem.

    Raises
    ------
    NetworkFormatError
        For a directory, an unknown suffix (the message lists the supported ones) or
        bad content.
    FileNotFoundError
        When the file does not exist.
    """
    path = Path(path)
    where = show_path(path)
    if path.is_dir():
        raise NetworkFormatError(f"{where}: is a directory, not a network file; expected a "
                                 f"file ending in {' or '.join(sorted(LOADERS))}")
    reader = LOADERS.get(path.suffix.lower())
    if reader is None:
        raise NetworkFormatError(f"{where}: unsupported network file suffix {path.suffix!r}; "
                                 f"supported: {', '.join(sorted(LOADERS))}")
    return reader(path)
