"""VNN-COMP result files: write and read ``sat``/``unsat`` answers with witnesses.

Pipeline position: after ``verify`` (either engine), ``write_result`` stores the
answer in the format the VNN-COMP scripts expect, so our results can be checked
by the competition's tooling; ``parse_result`` reads such a file back (ours or
another tool's).

Format (VNN-COMP 2021-2024)::

    sat
    ((X_0 0.1)
     (X_1 -0.25)
     (Y_0 3.99))

The first line is ``sat`` (a counterexample follows), ``unsat`` (the property
holds), ``timeout`` or ``unknown``.  Numbers are written with Python's ``repr``
so that a float64 round-trips exactly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from verirepair.atomic import write_text_atomic
from verirepair.errors import VerirepairError
from verirepair.verify.result import Verdict, VerificationResult

#: The words a result file may start with.
RESULT_WORDS = ("sat", "unsat", "timeout", "unknown")

_ASSIGNMENT = re.compile(r"\(\s*([XY])_(\d+)\s+([^\s()]+)\s*\)")


def format_result(result: VerificationResult, n_inputs: int, n_outputs: int) -> str:
    """Render a verification result as VNN-COMP result text.

    Parameters
    ----------
    result : VerificationResult
    n_inputs, n_outputs : int
        Expected sizes of the counterexample's ``x`` (n_inputs,) and ``y`` (n_outputs,).

    Returns
    -------
    str
        Ends with a newline.  For ``VIOLATED`` the first confirmed
        counterexample follows the word ``sat``.

    Raises
    ------
    ValueError
        If the counterexample's sizes differ from ``n_inputs`` / ``n_outputs``.
    """
    word = result.verdict.vnncomp
    if result.verdict is not Verdict.VIOLATED:
        return word + "\n"
    cex = next(c for c in result.counterexamples if c.confirmed)
    if cex.x.shape != (n_inputs,) or cex.y.shape != (n_outputs,):
        raise ValueError(
            f"counterexample has shapes x{cex.x.shape}, y{cex.y.shape}; "
            f"expected ({n_inputs},) and ({n_outputs},)"
        )
    entries = [f"(X_{i} {float(v)!r})" for i, v in enumerate(cex.x)]
    entries += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(cex.y)]
    return word + "\n(" + "\n ".join(entries) + ")\n"


def write_result(result: VerificationResult, path: str | os.PathLike,
                 n_inputs: int | None = None, n_outputs: int | None = None) -> None:
    """Write :func:`format_result` text to ``path`` atomically.

    Parameters
    ----------
    result : VerificationResult
    path : path-like
    n_inputs, n_outputs : int, optional
        Default to the sizes of the first counterexample (ignored when there is none).
    """
    if result.counterexamples:
        n_inputs = result.counterexamples[0].x.shape[0] if n_inputs is None else n_inputs
        n_outputs = result.counterexamples[0].y.shape[0] if n_outputs is None else n_outputs
    text = format_result(result, n_inputs or 0, n_outputs or 0)
    write_text_atomic(Path(path), text)


def _collect(values: dict[int, float], name: str) -> np.ndarray | None:
    """Turn ``{index: value}`` into a dense array, requiring indices 0..n-1."""
    if not values:
        return None
    n = max(values) + 1
    missing = sorted(set(range(n)) - set(values))
    if missing:
        raise VerirepairError(f"result assignment lacks {name}_{missing[0]}")
    return np.array([values[i] for i in range(n)], dtype=np.float64)


def parse_result(text: str) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """Read VNN-COMP result text.

    Parameters
    ----------
    text : str

    Returns
    -------
    (str, array or None, array or None)
        The result word (lower-cased, one of :data:`RESULT_WORDS`), the
        assignment's inputs ``x`` shape (n_inputs,) and outputs ``y`` shape
        (n_outputs,), each ``None`` when absent.

    Raises
    ------
    VerirepairError
        On an unknown first word, a malformed number, a repeated or missing
        index, or leftover text in the assignment.
    """
    lines = text.strip().splitlines()
    word = lines[0].strip().lower() if lines else ""
    if word not in RESULT_WORDS:
        raise VerirepairError(
            f"result file starts with {word!r}; expected one of {', '.join(RESULT_WORDS)}"
        )
    body = "\n".join(lines[1:])
    values: dict[str, dict[int, float]] = {"X": {}, "Y": {}}
    for match in _ASSIGNMENT.finditer(body):
        kind, index, number = match.group(1), int(match.group(2)), match.group(3)
        try:
            value = float(number)
        except ValueError as exc:
            raise VerirepairError(f"bad number {number!r} for {kind}_{index}") from exc
        if index in values[kind]:
            raise VerirepairError(f"{kind}_{index} is assigned twice")
        values[kind][index] = value
    leftover = _ASSIGNMENT.sub("", body).replace("(", "").replace(")", "").strip()
    if leftover:
        raise VerirepairError(f"unexpected text in result assignment: {leftover[:40]!r}")
    return word, _collect(values["X"], "X"), _collect(values["Y"], "Y")
