"""Verification stage: ``verify(network, props, config) -> VerificationResult``.

Engines are looked up by name (:func:`get_verifier`, :func:`list_verifiers`):
``"own"`` is our sound and complete bound-propagation + branch-and-bound
engine, ``"marabou"`` wraps maraboupy (imported lazily).
"""

from verirepair.verify.engine import get_verifier, list_verifiers, verify
from verirepair.verify.result import (
    Counterexample,
    VerificationResult,
    Verdict,
    VerifyConfig,
    VerifyStats,
)

__all__ = [
    "Counterexample",
    "VerificationResult",
    "Verdict",
    "VerifyConfig",
    "VerifyStats",
    "get_verifier",
    "list_verifiers",
    "verify",
]
