"""LP/MILP solver layer: a solver-neutral problem description and backends.

Pipeline position: used by :mod:`verirepair.repair` to solve the repair LP/MILP.
Backends are obtained by name with :func:`get_backend` (``"cbc"``, the default,
``"highs"``, ``"gurobi"``); :func:`list_backends` tells which are usable here.
"""

from verirepair.solvers.backend import Backend
from verirepair.solvers.model import LinearProblem, Solution, SolveStatus, problem_from_inequalities
from verirepair.solvers.registry import get_backend, list_backends, register_backend

__all__ = [
    "Backend",
    "LinearProblem",
    "Solution",
    "SolveStatus",
    "get_backend",
    "list_backends",
    "problem_from_inequalities",
    "register_backend",
]
