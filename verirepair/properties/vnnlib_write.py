"""Property objects to VNN-LIB text (the inverse of :mod:`.vnnlib`'s reader).

Pipeline position: used by :mod:`.physical` to export the ACAS Xu properties and
by the demo and repair report to write properties next to networks.  Numbers
are written with ``repr(float)``, so parsing gives back exactly the same arrays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from verirepair.atomic import write_text_atomic
from verirepair.properties.property import Box, HalfSpaces, Property


def _num(value: float) -> str:
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"cannot write the non-finite number {value!r} to VNN-LIB")
    return repr(value + 0.0)


def _sum(terms: list[str]) -> str:
    return terms[0] if len(terms) == 1 else f"(+ {' '.join(terms)})"


def _row_atom(a: np.ndarray, b: float) -> str:
    """``a @ y <= b`` as a comparison that parses back to exactly ``(a, b)``."""
    def term(j: int, c: float) -> str:
        return f"Y_{j}" if c == 1.0 else f"(* {_num(c)} Y_{j})"

    pos = [term(j, c) for j, c in enumerate(a) if c > 0]
    neg = [term(j, -c) for j, c in enumerate(a) if c < 0]
    if pos:
        right = neg + ([_num(b)] if b != 0.0 or not neg else [])
        return f"(<= {_sum(pos)} {_sum(right)})"
    if neg:
        return f"(>= {_sum(neg)} {_num(-b)})"
    return f"(<= 0.0 {_num(b)})"


def _box_atoms(box: Box) -> list[str]:
    atoms = []
    for i, (lo, hi) in enumerate(zip(box.lower, box.upper, strict=True)):
        atoms += [f"(>= X_{i} {_num(lo)})", f"(<= X_{i} {_num(hi)})"]
    return atoms


def _poly_atoms(poly: HalfSpaces) -> list[str]:
    return [_row_atom(a, b) for a, b in zip(poly.A, poly.b, strict=True)]


def _disjunction(conjuncts: list[list[str]]) -> str:
    lines = "\n".join(f"    (and {' '.join(atoms)})" for atoms in conjuncts)
    return f"(assert (or\n{lines}\n))"


def write_vnnlib(props: Property | Sequence[Property], comment: str | None = None) -> str:
    """VNN-LIB text for one property or a union of properties.

    Numbers are written with ``repr(float)``, so parsing the text gives back
    exactly the same arrays (for a single property, and for several whose
    boxes are pairwise distinct; otherwise a semantically equal grouping).

    Parameters
    ----------
    props : Property or sequence of Property
        All with the same input and output dimensions.
    comment : str, optional
        Written as ``;`` comment lines at the top.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        No property, mismatched dimensions, or a non-finite number.
    """
    props = [props] if isinstance(props, Property) else list(props)
    if not props:
        raise ValueError("write_vnnlib needs at least one property")
    n_in, n_out = props[0].n_inputs, props[0].n_outputs
    if any(p.n_inputs != n_in or p.n_outputs != n_out for p in props):
        raise ValueError("all properties written to one file need the same input and output "
                         "dimensions")
    out: list[str] = []
    if comment:
        out += [f"; {line}".rstrip() for line in comment.splitlines()] + [""]
    out += [f"(declare-const X_{i} Real)" for i in range(n_in)] + [""]
    out += [f"(declare-const Y_{j} Real)" for j in range(n_out)] + [""]
    if len(props) > 1:
        out.append(_disjunction([_box_atoms(box) + _poly_atoms(poly) for p in props
                                 for box in p.input_boxes for poly in p.unsafe]))
        return "\n".join(out) + "\n"
    (prop,) = props
    if len(prop.input_boxes) == 1:
        out += [f"(assert {atom})" for atom in _box_atoms(prop.input_boxes[0])]
    else:
        out.append(_disjunction([_box_atoms(box) for box in prop.input_boxes]))
    out.append("")
    if len(prop.unsafe) == 1:
        out += [f"(assert {atom})" for atom in _poly_atoms(prop.unsafe[0])]
    else:
        out.append(_disjunction([_poly_atoms(poly) for poly in prop.unsafe]))
    return "\n".join(out) + "\n"


def save_vnnlib(props: Property | Sequence[Property], path: str | os.PathLike[str],
                comment: str | None = None) -> Path:
    """Write :func:`write_vnnlib` output to ``path`` atomically; returns the path."""
    return write_text_atomic(Path(path), write_vnnlib(props, comment))
