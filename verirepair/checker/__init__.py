"""An independent checker of verirepair's HOLDS certificates (input splitting with linear bounds).

It re-reads the ONNX network itself, reads the VNN-LIB property with the
project's parser (which contains no bounding code), and recomputes every
bound, in outward-rounded float64 or in exact rational arithmetic.  It
imports nothing from :mod:`verirepair.verify`.  The format it reads is
documented in ``docs/certificate-format.md``.
"""

from verirepair.checker.check import (
    CheckResult,
    Rejected,
    check_certificate,
    evidence_margins,
    node_bounds,
    tree_margins,
)
from verirepair.checker.network_reader import NetworkRejected, read_chain

__all__ = ["CheckResult", "NetworkRejected", "Rejected", "check_certificate", "evidence_margins", "node_bounds",
           "read_chain", "tree_margins"]
