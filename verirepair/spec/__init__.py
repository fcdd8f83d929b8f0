"""Properties: the model (:mod:`.property`, with :func:`check_dimensions` against a
network), VNN-LIB reading (:mod:`.vnnlib`, built on :mod:`.sexpr`, :mod:`.formula` and
:mod:`.conjunct`) and writing (:mod:`.vnnlib_write`), and ACAS Xu properties in
physical units (:mod:`.physical`).

Imports here are explicit re-exports of the public API; nothing runs at import.
"""

from verirepair.spec.physical import (compile_property, export_properties,
                                      load_normalization, load_physical_properties)
from verirepair.spec.property import (Box, HalfSpaces, Property, check_dimensions,
                                      violation_score_torch)
from verirepair.spec.vnnlib import parse_vnnlib, parse_vnnlib_bytes, parse_vnnlib_string
from verirepair.spec.vnnlib_write import save_vnnlib, write_vnnlib

__all__ = [
    "Box",
    "HalfSpaces",
    "Property",
    "check_dimensions",
    "compile_property",
    "export_properties",
    "load_normalization",
    "load_physical_properties",
    "parse_vnnlib",
    "parse_vnnlib_bytes",
    "parse_vnnlib_string",
    "save_vnnlib",
    "violation_score_torch",
    "write_vnnlib",
]
