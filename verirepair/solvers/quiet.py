"""Solvers that print nothing: HiGHS instances with all output off, fd-level silence.

Pipeline position: every place that creates a HiGHS model (the ``"highs"``
repair backend in :mod:`verirepair.solvers.highs`, the LP tightening of
:mod:`verirepair.verify.lp_tighten`) calls :func:`quiet_highs`, and the
Marabou adapter runs its C++ solver inside :func:`stdout_silenced`.  Only
``cli.py`` may print (CONVENTIONS.md, 7), and ``verify --json`` must put
nothing but JSON on stdout.

Why fd-level: HiGHS prints its banner ("Running HiGHS ...") from the C++
constructor of the *first* ``Highs`` object of a process, before any option
can be set, and Marabou prints with ``printf`` even at verbosity 0.  Neither
goes through ``sys.stdout``, so only redirecting file descriptor 1 stops them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # highspy is imported lazily, when a solver is built
    import highspy

_FIRST_HIGHS_LOCK = threading.Lock()
_first_highs_done = False


@contextlib.contextmanager
def stdout_silenced() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null for the duration of the block.

    Python's ``sys.stdout`` is flushed before, and C's stdio buffers after the
    block (while fd 1 still points to /dev/null), so neither text written
    before the block is lost nor text written inside it leaks out later.
    Marabou's own ``redirect`` argument is not used because ``solve`` returns
    early without restoring stdout when preprocessing already decides the query.
    """
    sys.stdout.flush()
    libc = ctypes.CDLL(None)
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        libc.fflush(None)  # C stdio buffers still hold the solver's text: drop it first
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def quiet_highs() -> highspy.Highs:
    """A new ``highspy.Highs`` that prints nothing, not even the banner.

    Returns
    -------
    highspy.Highs
        With ``output_flag`` and ``log_to_console`` off.

    Raises
    ------
    ImportError
        If highspy is not installed (callers translate it).
    """
    global _first_highs_done
    import highspy

    # The banner comes once per process, from the first constructor; later
    # constructions need no redirect (measured with highspy 1.16: three
    # Highs() in one process print it once).
    with _FIRST_HIGHS_LOCK:
        if _first_highs_done:
            solver = highspy.Highs()
        else:
            with stdout_silenced():
                solver = highspy.Highs()
            _first_highs_done = True
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("log_to_console", False)
    return solver
