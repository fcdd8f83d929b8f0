"""Verification stage: ``verify(network, props, config) -> VerificationResult``.

Engines are looked up by name (:func:`get_verifier`, :func:`list_verifiers`; a new one is
added with :func:`register_verifier`):
``"own"`` is our sound and complete bound-propagation + branch-and-bound
engine, ``"marabou"`` wraps maraboupy (imported lazily).
"""

from verirepair.verify.engine import get_verifier, list_verifiers, register_verifier, verify
from verirepair.verify.result import (
    Counterexample,
    Verdict,
    VerificationResult,
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
    "register_verifier",
    "verify",
]
