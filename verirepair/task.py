"""Repair tasks: what the certify loop establishes, and how it judges the result.

Pipeline position: the CLI (or a script) builds a :class:`RepairTask` with a
task builder from the registry (``get_task("acasxu")``, ``get_task("vnnlib")``;
:mod:`verirepair.tasks`), and :func:`verirepair.pipeline.run_pipeline` runs
the certify loop on it.  The core never knows which benchmark a task comes
from: everything benchmark-specific (which networks, which properties apply,
the normalisation, the decision rule, where preservation and fidelity samples
come from) is the task's.

A new task (fairness, backdoor, imitation) is a module at the edge that
subclasses :class:`RepairTask` where the defaults do not fit (for example
preservation points drawn from a data set) and offers a builder as an entry
point of the group ``verirepair.tasks`` (or calls :func:`register_task`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from verirepair.decision import DecisionRule, get_decision_rule
from verirepair.network.model import Network
from verirepair.properties.property import Box, Property, violating_mask

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Named property groups: one entry per property file (or per named property),
#: each a list of the file's properties (a VNN-LIB file may hold several).
NamedProperties = list[tuple[str, list[Property]]]


def bounding_box(props: Sequence[Property]) -> Box:
    """The smallest box containing every input region of ``props``."""
    boxes = [box for prop in props for box in prop.input_boxes]
    return Box(np.min([b.lower for b in boxes], axis=0), np.max([b.upper for b in boxes], axis=0))


@dataclass(frozen=True)
class RepairTask:
    """What to repair and how to judge it.

    Parameters
    ----------
    name : str -- the task's registry name (recorded in the report)
    properties : list of (name, list of Property)
        Every property group the repaired network must provably satisfy.
    decision : str
        Registry name of the decision rule (:mod:`verirepair.decision`):
        ``"argmin"`` (ACAS Xu advisories), ``"argmax"`` (classifiers), ...
    domain : Box
        The valid inputs, shape (d,): preservation and fidelity points are
        drawn from it by default.
    description : str -- one line for the report, e.g. "ACAS Xu N2,1, phi1-phi4"

    The methods below are the defaults (uniform sampling of ``domain``);
    a task with a data set overrides them.
    """

    name: str
    properties: NamedProperties
    decision: str
    domain: Box
    description: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_decision_rule(self.decision)        # a ValueError naming the rules, early
        if not self.properties:
            raise ValueError("a repair task needs at least one property")

    @property
    def rule(self) -> DecisionRule:
        """The decision rule object."""
        return get_decision_rule(self.decision)

    @property
    def all_properties(self) -> list[Property]:
        """Every property of every group, in order."""
        return [prop for _, props in self.properties for prop in props]

    def preservation_points(self, network: Network, rng: np.random.Generator, n: int) -> np.ndarray:
        """Inputs whose original behaviour the repair keeps, shape (<= n, d).

        Default: uniform over ``domain``, without the points where the
        original violates a property (keeping their decision would contradict
        the repair).
        """
        x = self.domain.sample(rng, n)
        return x[~violating_mask(self.all_properties, x, network.forward(x))]

    def fidelity_points(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Inputs on which the repaired network's decisions are compared with the original's, (n, d)."""
        return self.domain.sample(rng, n)

    def report_figures(self, original: Network, repaired: Network, property_names: Sequence[str],
                       rng: np.random.Generator, repaired_label: str = "repaired",
                       deadline: float | None = None) -> list[tuple[str, Figure]]:
        """Figures of this task for the report of a repair: ``[(title, matplotlib Figure)]``.

        Called after a repair with the properties the original violated; the report saves
        each figure beside report.md and embeds it in report.html.  Default: none.  A task adds
        what its users look at first (the ACAS Xu task: policy maps).

        Parameters
        ----------
        original, repaired : Network -- the input network and the delivered (or candidate) one
        property_names : sequence of str -- names of ``properties`` groups violated before
        rng : numpy Generator -- seeded by the run
        repaired_label : str -- how to name the changed network ("repaired", or
            "uncertified candidate" when nothing was certified)
        deadline : float or None -- ``time.perf_counter()`` value by which the figures must be
            drawn (the run's total budget); a task leaves out what it cannot draw in time
        """
        return []


class TaskBuilder(Protocol):
    """Builds a task from what the user gave: the network and property files."""

    def __call__(self, network_path: Path, network: Network, property_paths: Sequence[Path],
                 decision: str | None) -> RepairTask: ...


#: Entry-point group through which packages (this one included) offer task builders:
#: ``[project.entry-points."verirepair.tasks"] name = "module:builder"`` in pyproject.toml.
ENTRY_POINT_GROUP = "verirepair.tasks"

_TASKS: dict[str, Callable[[], TaskBuilder]] = {}


def register_task(name: str, factory: Callable[[], TaskBuilder]) -> None:
    """Make ``get_task(name)`` return ``factory()`` (at run time, e.g. for a task defined in a script)."""
    _TASKS[name] = factory


def _entry_points() -> dict[str, Callable[[], TaskBuilder]]:
    from importlib.metadata import entry_points

    return {ep.name: ep.load for ep in entry_points(group=ENTRY_POINT_GROUP)}


def get_task(name: str) -> TaskBuilder:
    """The builder registered as ``name`` (at run time, or as an entry point).

    Raises
    ------
    ValueError -- naming the registered tasks
    """
    factory = _TASKS.get(name) or _entry_points().get(name)
    if factory is None:
        raise ValueError(f"unknown task {name!r}; registered: {', '.join(list_tasks()) or 'none'}")
    return factory()


def list_tasks() -> list[str]:
    """Names of the registered tasks (run time and entry points), sorted."""
    return sorted({*_TASKS, *_entry_points()})
