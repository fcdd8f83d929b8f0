"""Repair stage: minimal weight change of one layer by LP/MILP, checked in float64.

Pipeline position: after fault localization picks a layer, :func:`repair_layer`
returns a :class:`Patch`; :func:`apply_patch` gives the new network that is
then re-verified.
"""

from verirepair.repair.config import RepairConfig, RepairResult, RepairStats, RepairStatus
from verirepair.repair.patch import Patch, apply_patch
from verirepair.repair.repair import check_patch, repair_layer

__all__ = [
    "Patch",
    "RepairConfig",
    "RepairResult",
    "RepairStats",
    "RepairStatus",
    "apply_patch",
    "check_patch",
    "repair_layer",
]
