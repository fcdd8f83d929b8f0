"""Properties: the model (:mod:`.property`, with :func:`check_dimensions` against a
network), VNN-LIB reading (:mod:`.vnnlib`, built on :mod:`.sexpr`, :mod:`.formula` and
:mod:`.conjunct`) and writing (:mod:`.vnnlib_write`).  The ACAS Xu properties in
physical units are the ACAS Xu task's (:mod:`verirepair.tasks.acasxu.physical`).

Imports here are explicit re-exports of the public API; nothing runs at import.
"""

from verirepair.properties.property import Box, HalfSpaces, Property, check_dimensions, violation_score_torch
from verirepair.properties.vnnlib import parse_vnnlib, parse_vnnlib_bytes, parse_vnnlib_string
from verirepair.properties.vnnlib_write import save_vnnlib, write_vnnlib

__all__ = [
    "Box",
    "HalfSpaces",
    "Property",
    "check_dimensions",
    "parse_vnnlib",
    "parse_vnnlib_bytes",
    "parse_vnnlib_string",
    "save_vnnlib",
    "violation_score_torch",
    "write_vnnlib",
]
