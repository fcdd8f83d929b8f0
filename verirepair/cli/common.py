"""What every command shares: exit codes, the one-line error printer, input and output checks.

Pipeline position: part of the command-line shell (see :mod:`verirepair.cli`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from verirepair.network.model import Network
    from verirepair.properties.property import Property


#: When this module was imported: a run's total budget counts from here, so that
#: loading the network and parsing the properties are inside ``--timeout`` too.
CLI_START = time.perf_counter()

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_NOT_CERTIFIED = 3
EXIT_REPAIR_FAILED = 4
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

EXIT_CODES_HELP = ("exit codes: 0 done (repair: certified), 2 bad input (one line on stderr), "
                   "3 repair not certified (PARTIAL), 4 repair FAILED, 130/143 interrupted "
                   "(SIGINT/SIGTERM)")

console = Console(highlight=False)


#: File types ``--plot`` can write (matplotlib picks the format from the suffix).
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


class BadInput(Exception):
    """Raised inside commands for user errors that argparse cannot catch."""


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that ``finally`` clauses clean up."""


def one_line(text: str) -> str:
    """``text`` with every line break and run of whitespace collapsed to one space."""
    return " ".join(str(text).split())


def print_error(message: str) -> None:
    """Write ``error: message`` to stderr as exactly one physical line.

    Plain ``sys.stderr.write``, not rich: rich hard-wraps at the console width
    (80 columns in a pipe, whatever ``COLUMNS`` says once it is unset).
    """
    text = one_line(message)
    stream = sys.stderr
    if stream.isatty() and "NO_COLOR" not in os.environ:
        stream.write(f"\x1b[1;31merror:\x1b[0m {text}\n")
    else:
        stream.write(f"error: {text}\n")
    stream.flush()


# ----------------------------------------------------------------------------- helpers
def existing_file(path_text: str) -> Path:
    path = Path(path_text)
    if path.is_dir():
        raise BadInput(f"{path} is a folder, expected a file")
    if not path.is_file():
        raise BadInput(f"no such file: {path}")
    return path


def load_network_file(path_text: str) -> Network:
    from verirepair.network import load_network

    return load_network(existing_file(path_text))


def load_property_file(path_text: str) -> list[Property]:
    from verirepair.properties import parse_vnnlib

    return parse_vnnlib(existing_file(path_text))


def check_property_dimensions(network: Network, props: Sequence[Property], path_text: str) -> None:
    """A property must speak about as many inputs and outputs as the network has."""
    for prop in props:
        if prop.n_inputs != network.n_inputs or prop.n_outputs != network.n_outputs:
            raise BadInput(f"{path_text}: the property has {prop.n_inputs} inputs and {prop.n_outputs} "
                            f"outputs, the network has {network.n_inputs} inputs and "
                            f"{network.n_outputs} outputs")


def check_output(path_text: str | None, what: str, suffixes: tuple[str, ...] = (),
                  inputs: Sequence[str] = ()) -> Path | None:
    """Validate an output path before any work: suffix, not an input, writable."""
    from verirepair.atomic import check_writable

    if path_text is None:
        return None
    path = Path(path_text)
    if suffixes and path.suffix.lower() not in suffixes:
        raise BadInput(f"{what} {path}: expected a file ending in {' or '.join(suffixes)}")
    for other in inputs:
        if Path(other).exists() and path.exists() and path.resolve() == Path(other).resolve():
            raise BadInput(f"{what} {path} is an input of this command; refusing to overwrite it")
    check_writable(path, what)
    return path


def dump_json(payload: dict) -> None:
    # Plain print (not rich) so that the output is exact, machine-readable JSON.
    sys.stdout.write(json.dumps(payload, indent=2, default=float) + "\n")
