"""Command-line interface: ``verirepair <command> ...``.

Pipeline position: the outermost shell.  This package is the only code that
prints, configures logging, or turns errors into exit codes (CONVENTIONS.md):
:mod:`.common` (exit codes, the error printer, input/output checks),
:mod:`.commands` (info, spec, properties, verify, bench, localize),
:mod:`.repair_commands` (repair, demo), :mod:`.parser` and :mod:`.entry` (``main``).  Every
command's work is done by library functions; this module parses arguments,
shows progress with ``rich`` and renders results (tables from
:mod:`verirepair.render`).

Exit codes (also in ``verirepair --help``):

* 0 -- the command completed (``verify``: whatever the verdict; ``repair``:
  REPAIRED or NOT_NEEDED, every property proven on the delivered file);
* 2 -- bad input (missing file, malformed network or property, an option out
  of range, an output that cannot be written), with ONE line on stderr;
* 3 -- ``repair`` ended PARTIAL: not certified, nothing written at ``--out``;
* 4 -- ``repair`` ended FAILED: no layer admitted a repair, nothing written;
* 130 / 143 -- interrupted by SIGINT / SIGTERM; no delivered network is left.

Errors are written to stderr as one physical line whatever the terminal
width (rich would hard-wrap them at 80 columns in a pipe).
"""

from verirepair.cli.common import (
                                   EXIT_BAD_INPUT,
                                   EXIT_NOT_CERTIFIED,
                                   EXIT_OK,
                                   EXIT_REPAIR_FAILED,
                                   EXIT_SIGINT,
                                   EXIT_SIGTERM,
                                   print_error,
)
from verirepair.cli.entry import BLAS_THREAD_VARIABLES, main
from verirepair.cli.parser import build_parser
from verirepair.cli.repair_commands import run_config_from_args

__all__ = ["BLAS_THREAD_VARIABLES", "EXIT_BAD_INPUT", "EXIT_NOT_CERTIFIED", "EXIT_OK", "EXIT_REPAIR_FAILED",
           "EXIT_SIGINT", "EXIT_SIGTERM", "build_parser", "main", "print_error", "run_config_from_args"]
