"""Registry and data locator of the 45 ACAS Xu networks (see README.md).

Pipeline position: benchmark plumbing beside the ``verirepair`` package.  It
names the networks ``N_{x,y}`` (``ACASXU_run2a_{x}_{y}_batch_2000``), says
which Katz properties apply to each (read from ``properties/phi*.toml``),
and finds the data files, which are never copied into the repository:

* ``acasxu_dir()`` is ``$VERIREPAIR_ACASXU_DIR`` when set, else
  ``<repo root>/../shared/acasxu``;
* it holds ``onnx/<name>.onnx``, ``nnet/<name>.nnet``,
  ``vnnlib/prop_<n>.vnnlib`` (the VNN-COMP reference files) and
  ``instances.csv``.

Missing data raises :class:`~verirepair.errors.DataMissingError` saying which
file was expected where and how to provide it.  Tests call
:func:`data_or_skip` to skip cleanly without the data.
"""

from __future__ import annotations

import csv
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from verirepair.errors import DataMissingError

if TYPE_CHECKING:
    from verirepair.network.model import Network

ENV_VAR = "VERIREPAIR_ACASXU_DIR"
#: Output order of the networks, and the meaning of x (1-based) in N_{x,y}.
ADVISORIES = ("COC", "WL", "WR", "SL", "SR")
#: tau in seconds; y (1-based) in N_{x,y} indexes this tuple.
TAUS_S = (0, 1, 5, 10, 20, 40, 60, 80, 100)
FORMATS = ("onnx", "nnet")


def network_name(x: int, y: int) -> str:
    """``ACASXU_run2a_{x}_{y}_batch_2000`` for 1 <= x <= 5, 1 <= y <= 9."""
    if not (1 <= x <= len(ADVISORIES) and 1 <= y <= len(TAUS_S)):
        raise ValueError(f"no ACAS Xu network N{x},{y}: x must be in 1..5 and y in 1..9")
    return f"ACASXU_run2a_{x}_{y}_batch_2000"


#: The 45 full network names, in order N1,1 .. N1,9, N2,1 .. N5,9.
NETWORK_NAMES: tuple[str, ...] = tuple(network_name(x, y) for x in range(1, 6)
                                       for y in range(1, 10))


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """What is known about one ACAS Xu network.

    Parameters
    ----------
    name : str
        Full name, e.g. ``"ACASXU_run2a_2_9_batch_2000"``.
    x, y : int
        Indices of N_{x,y} (1-based).
    previous_advisory : str
        One of :data:`ADVISORIES` (``ADVISORIES[x - 1]``).
    tau_s : int
        Time to loss of vertical separation, seconds (``TAUS_S[y - 1]``).
    applicable_properties : tuple of int
        Katz property numbers that apply to this network.
    """

    name: str
    x: int
    y: int
    previous_advisory: str
    tau_s: int
    applicable_properties: tuple[int, ...]

    @property
    def label(self) -> str:
        """Short label ``"N<x>,<y>"``."""
        return f"N{self.x},{self.y}"


def parse_network_key(key: str | tuple[int, int]) -> tuple[int, int]:
    """``(x, y)`` of a network given as ``"N2,9"``, ``"2_9"``, ``(2, 9)`` or its full name.

    Also accepted: ``"2,9"``, ``"N2_9"``, and the full name with ``.onnx``/``.nnet``.

    Raises
    ------
    ValueError
        Anything else, or indices out of range.
    """
    if isinstance(key, tuple):
        if len(key) != 2 or not all(isinstance(v, int) for v in key):
            raise ValueError(f"network key {key!r}: expected a pair of ints (x, y)")
        network_name(*key)
        return key
    text = str(key).strip()
    for suffix in (".onnx", ".nnet"):
        text = text.removesuffix(suffix)
    if text.startswith("ACASXU_run2a_") and text.endswith("_batch_2000"):
        text = text.removeprefix("ACASXU_run2a_").removesuffix("_batch_2000")
    elif text[:1] in ("N", "n"):
        text = text[1:]
    x, sep, y = text.replace(",", "_").partition("_")
    if not (sep and x.isdigit() and y.isdigit()):
        raise ValueError(f"network key {key!r}: expected 'N<x>,<y>', '<x>_<y>', (x, y) or "
                         "'ACASXU_run2a_<x>_<y>_batch_2000'")
    network_name(int(x), int(y))
    return int(x), int(y)


@functools.lru_cache(maxsize=1)
def _applicability() -> dict[tuple[int, int], tuple[int, ...]]:
    """Property numbers per network, read once from the task's ``data/properties/phi*.toml``."""
    from verirepair.tasks.acasxu.physical import load_physical_properties

    table: dict[tuple[int, int], list[int]] = {(x, y): [] for x in range(1, 6)
                                               for y in range(1, 10)}
    for prop in load_physical_properties():
        for label in prop.networks:
            table[parse_network_key(label)].append(prop.number)
    return {key: tuple(sorted(numbers)) for key, numbers in table.items()}


def network_info(key: str | tuple[int, int]) -> NetworkInfo:
    """The :class:`NetworkInfo` of one network (any key form of :func:`parse_network_key`)."""
    x, y = parse_network_key(key)
    return NetworkInfo(network_name(x, y), x, y, ADVISORIES[x - 1], TAUS_S[y - 1],
                       _applicability()[(x, y)])


def all_networks() -> tuple[NetworkInfo, ...]:
    """All 45 networks, in the order of :data:`NETWORK_NAMES`."""
    return tuple(network_info(name) for name in NETWORK_NAMES)


def applicable_properties(key: str | tuple[int, int]) -> tuple[int, ...]:
    """Katz property numbers that apply to a network, e.g. ``(1, 2, 3, 4, 8)`` for N2,9."""
    return network_info(key).applicable_properties


def networks_for_property(number: int) -> tuple[str, ...]:
    """Full names of the networks property ``number`` applies to."""
    return tuple(info.name for info in all_networks() if number in info.applicable_properties)


# -- data location -------------------------------------------------------------

def acasxu_dir() -> Path:
    """``$VERIREPAIR_ACASXU_DIR`` if set, else ``../shared/acasxu`` beside the checkout.

    In a source checkout that is ``<repo root>/../shared/acasxu``; in an
    installed package (no checkout around it) it is ``../shared/acasxu``
    relative to the working directory.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[3]
    if (repo_root / "pyproject.toml").is_file():
        return repo_root.parent / "shared" / "acasxu"
    return Path.cwd().parent / "shared" / "acasxu"


def _existing(path: Path, what: str, fix: str) -> Path:
    if not path.is_file():
        raise DataMissingError(
            f"{what} not found: expected {path}. {fix} Data folder: {acasxu_dir()} "
            f"(set {ENV_VAR} to use another folder).")
    return path


_NET_FIX = ("Put the 45 ACAS Xu networks in <data folder>/onnx/*.onnx and "
            "<data folder>/nnet/*.nnet.")


def model_path(key: str | tuple[int, int], fmt: str = "onnx") -> Path:
    """Path of a network file in format ``fmt`` (``"onnx"`` or ``"nnet"``).

    Raises
    ------
    ValueError
        Unknown format or key.
    DataMissingError
        The file does not exist.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown network format {fmt!r}; expected one of {FORMATS}")
    name = network_name(*parse_network_key(key))
    return _existing(acasxu_dir() / fmt / f"{name}.{fmt}", f"ACAS Xu network {name}", _NET_FIX)


def onnx_path(key: str | tuple[int, int]) -> Path:
    """``<data>/onnx/<name>.onnx``; see :func:`model_path`."""
    return model_path(key, "onnx")


def nnet_path(key: str | tuple[int, int]) -> Path:
    """``<data>/nnet/<name>.nnet``; see :func:`model_path`."""
    return model_path(key, "nnet")


def vnnlib_path(number: int) -> Path:
    """The VNN-COMP reference file ``<data>/vnnlib/prop_<number>.vnnlib`` (1..10)."""
    if not 1 <= number <= 10:
        raise ValueError(f"ACAS Xu properties are numbered 1..10, got {number}")
    return _existing(acasxu_dir() / "vnnlib" / f"prop_{number}.vnnlib",
                     f"VNN-COMP property prop_{number}",
                     "Put the ten VNN-COMP prop_<n>.vnnlib files in <data folder>/vnnlib.")


def instances_csv() -> Path:
    """``<data>/instances.csv`` (rows ``onnx/<net>.onnx,vnnlib/prop_<n>.vnnlib,timeout_s``)."""
    return _existing(acasxu_dir() / "instances.csv", "VNN-COMP instances.csv",
                     "Put the VNN-COMP acasxu instances.csv in the data folder.")


@dataclass(frozen=True, slots=True)
class Instance:
    """One VNN-COMP benchmark instance: a network, a property and a timeout."""

    network: str
    property_number: int
    timeout_s: float


def read_instances() -> tuple[Instance, ...]:
    """The rows of :func:`instances_csv`, in file order."""
    rows = []
    with instances_csv().open(newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if not row:
                continue
            net, prop, timeout = (cell.strip() for cell in row)
            stem = Path(prop).stem
            rows.append(Instance(Path(net).stem, int(stem.removeprefix("prop_")),
                                 float(timeout)))
    return tuple(rows)


def require_data(formats: tuple[str, ...] = FORMATS) -> Path:
    """Check that the data folder has all 45 networks (in ``formats``) and ten properties.

    Returns
    -------
    Path
        :func:`acasxu_dir`.

    Raises
    ------
    DataMissingError
        Naming the first missing file.
    """
    for fmt in formats:
        for name in NETWORK_NAMES:
            model_path(name, fmt)
    for number in range(1, 11):
        vnnlib_path(number)
    instances_csv()
    return acasxu_dir()


def data_or_skip(formats: tuple[str, ...] = FORMATS) -> Path:
    """:func:`require_data`, or ``pytest.skip`` with its message (for tests and fixtures)."""
    try:
        return require_data(formats)
    except DataMissingError as exc:
        import pytest

        pytest.skip(str(exc))
        raise  # unreachable: pytest.skip raises


def load_acasxu(key: str | tuple[int, int], fmt: str = "onnx") -> Network:
    """Load a network with :func:`verirepair.network.load_network`.

    Parameters
    ----------
    key : str or (int, int)
        Any form accepted by :func:`parse_network_key`.
    fmt : {"onnx", "nnet"}

    Returns
    -------
    Network
        5 inputs (normalised), 6 hidden ReLU layers of 50, 5 outputs (raw scores).
    """
    from verirepair.network.loader import load_network

    return load_network(model_path(key, fmt))
