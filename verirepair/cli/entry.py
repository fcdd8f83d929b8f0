"""The entry point: ``main`` turns errors into one-line messages and exit codes.

Pipeline position: the outermost shell (see :mod:`verirepair.cli`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

from verirepair.errors import VerirepairError

if TYPE_CHECKING:
    pass

from verirepair.cli import parser as cli_parser
from verirepair.cli.common import EXIT_BAD_INPUT, EXIT_SIGINT, EXIT_SIGTERM, BadInput, Terminated, print_error
from verirepair.cli.parser import build_parser, print_help_and_fail

#: Thread-count variables of the BLAS/OpenMP libraries under numpy and torch.
#: Unless the environment sets them, the CLI runs them single-threaded: the
#: networks' matrices are small (50 wide), and on the 2-core machine with other
#: jobs running a threaded OpenBLAS made ``verify`` of N1,9 phi7 take 31 s
#: instead of 5.5 s.  ``--workers`` is the way to use more cores.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``verirepair`` console script.

    Returns the exit code (see the module docstring); usage errors exit 2
    from the parser with one line on stderr.
    """
    for variable in BLAS_THREAD_VARIABLES:      # before numpy is first imported
        os.environ.setdefault(variable, "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        return print_help_and_fail(parser, "a command", cli_parser.COMMANDS)
    previous = None
    if threading_is_main():
        # SIGTERM becomes an exception, so that every ``finally`` removes its
        # temporary files and kills its child processes, as for Ctrl-C.
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return int(args.func(args))
    except (VerirepairError, BadInput, OSError) as exc:
        # OSError: a file vanished or a disk filled while working; still one line.
        print_error(_describe(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print_error(f"interrupted (SIGINT){_stop_note(args)}")
        return EXIT_SIGINT
    except Terminated:
        print_error(f"terminated (SIGTERM){_stop_note(args)}")
        return EXIT_SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_note(args: argparse.Namespace) -> str:
    """What an interrupted command left behind, for its one-line message."""
    if args.command == "repair" or args.command == "demo" or getattr(args, "action", None) == "repair":
        return "; no repaired network was delivered by this run"
    return ""


def threading_is_main() -> bool:
    """True in the main thread (only there may signal handlers be installed)."""
    import threading

    return threading.current_thread() is threading.main_thread()


def _describe(exc: BaseException) -> str:
    """The message of an error, with the file name for OSErrors."""
    if isinstance(exc, OSError) and not isinstance(exc, VerirepairError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


if __name__ == "__main__":
    raise SystemExit(main())
