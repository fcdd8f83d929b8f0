"""Registry of LP/MILP backends (CONVENTIONS.md, 6).

Pipeline position: the repair stage asks :func:`get_backend` for the solver
named in its :class:`~verirepair.repair.config.RepairConfig`.  The built-in
adapters are listed in :data:`BUILTIN_BACKENDS` and imported when first asked
for; others call :func:`register_backend`.  Optional solver packages are
imported only inside the adapters' methods.
"""

from __future__ import annotations

from collections.abc import Callable

from verirepair.errors import SolverUnavailableError
from verirepair.solvers.backend import Backend

_FACTORIES: dict[str, Callable[[], Backend]] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Register a backend factory under ``name`` (lower case)."""
    _FACTORIES[name.lower()] = factory


#: The built-in adapters: name -> (module, class).  Imported by name when first
#: asked for, so that this module imports none of them (no import circle) and a
#: missing solver package never breaks ``import verirepair``.
BUILTIN_BACKENDS: dict[str, tuple[str, str]] = {
    "cbc": ("verirepair.solvers.cbc", "CbcBackend"),
    "highs": ("verirepair.solvers.highs", "HighsBackend"),
    "gurobi": ("verirepair.solvers.gurobi", "GurobiBackend"),
}


def _ensure_builtin() -> None:
    import importlib

    for name, (module, cls) in BUILTIN_BACKENDS.items():
        if name not in _FACTORIES:
            _FACTORIES[name] = getattr(importlib.import_module(module), cls)


def get_backend(name: str) -> Backend:
    """Return a fresh backend instance by name.

    Parameters
    ----------
    name : str
        ``"cbc"`` (default solver of the project), ``"highs"`` or ``"gurobi"``.

    Returns
    -------
    Backend

    Raises
    ------
    SolverUnavailableError
        For an unknown name, or a known one whose package is not installed.
    """
    _ensure_builtin()
    key = name.lower()
    if key not in _FACTORIES:
        raise SolverUnavailableError(
            f"unknown LP/MILP backend {name!r}; known backends: {', '.join(sorted(_FACTORIES))}"
        )
    backend = _FACTORIES[key]()
    if not backend.available():
        others = [n for n in list_backends(only_available=True) if n != key]
        raise SolverUnavailableError(
            f"LP/MILP backend {name!r} is not available (package missing or unlicensed); "
            f"available alternatives: {', '.join(others) or 'none'}"
        )
    return backend


def list_backends(only_available: bool = True) -> list[str]:
    """Names of the registered backends, optionally only the usable ones."""
    _ensure_builtin()
    names = sorted(_FACTORIES)
    if only_available:
        names = [n for n in names if _FACTORIES[n]().available()]
    return names
