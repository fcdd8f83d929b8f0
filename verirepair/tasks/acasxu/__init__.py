"""The ACAS Xu task: the 45 networks, their normalisation, the ten properties, arg-min advisories.

Pipeline position: at the edge.  ``verirepair repair NET --task acasxu`` (or
``--acasxu``) builds this task; nothing in the core knows ACAS Xu.

* :mod:`.networks` -- which network is which (names, advisories, tau), which
  properties apply to each, and where the benchmark data lies;
* :mod:`.physical` -- the properties in physical units (``data/properties``)
  and their compilation to VNN-LIB (``data/vnnlib``, shipped in the package);
* this module -- the task builder: every property that applies to the named
  network, the normalised input domain of the ACAS Xu constants, and the
  arg-min decision rule (the advisory is the lowest score).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Box
from verirepair.task import NamedProperties, RepairTask

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The advisory is the output with the lowest score.
DECISION = "argmin"


def acasxu_properties(network_name: str) -> NamedProperties:
    """``("phi<n>", properties)`` for every ACAS Xu property that applies to the named network.

    Raises
    ------
    ValueError -- the name is not an ACAS Xu network's
    """
    from verirepair.properties import parse_vnnlib
    from verirepair.tasks.acasxu.networks import network_info
    from verirepair.tasks.acasxu.physical import default_vnnlib_dir

    try:
        info = network_info(network_name)
    except (KeyError, ValueError, LookupError):
        raise ValueError(f"{network_name} is not named like an ACAS Xu network (expected e.g. "
                         "ACASXU_run2a_2_1_batch_2000.onnx or N2_1); give its properties with "
                         "--property instead") from None
    return [(f"phi{n}", parse_vnnlib(default_vnnlib_dir() / f"prop_{n}.vnnlib"))
            for n in info.applicable_properties]


def acasxu_domain(network: Network) -> Box:
    """The normalised input domain: the network file's own range (.nnet), else the ACAS Xu constants."""
    from verirepair.tasks.acasxu.physical import NORMALIZATION_FILE, default_properties_dir, load_normalization
    from verirepair.tasks.vnnlib import network_domain

    own = network_domain(network)
    if own is not None:
        return own
    norm = load_normalization(default_properties_dir() / NORMALIZATION_FILE)
    return Box(norm.normalize_inputs(np.asarray(norm.input_min)), norm.normalize_inputs(np.asarray(norm.input_max)))


@dataclass(frozen=True)
class AcasXuTask(RepairTask):
    """The ACAS Xu repair task: a :class:`RepairTask` whose report adds policy maps.

    ``metadata["network"]`` is the network's label (``"N2,1"``).
    """

    def report_figures(self, original: Network, repaired: Network, property_names: Sequence[str],
                       rng: np.random.Generator, repaired_label: str = "repaired",
                       deadline: float | None = None) -> list[tuple[str, Figure]]:
        """One policy map (:mod:`.policy_maps`) per repaired property with an input region to map."""
        from verirepair.tasks.acasxu.physical import NORMALIZATION_FILE, default_properties_dir, load_normalization
        from verirepair.tasks.acasxu.policy_maps import policy_map_figures

        wanted = set(property_names)
        named = [(name, props) for name, props in self.properties if name in wanted]
        if not named or original.n_inputs != 5 or original.n_outputs != 5:
            return []
        norm = load_normalization(default_properties_dir() / NORMALIZATION_FILE)
        return policy_map_figures(str(self.metadata.get("network", original.name)), original, repaired, named,
                                  norm, rng, repaired_label, deadline)


def build_acasxu_task(network_path: Path, network: Network, property_paths: Sequence[Path],
                      decision: str | None) -> RepairTask:
    """Every applicable ACAS Xu property of the network named by ``network_path``, plus any files given."""
    from verirepair.tasks.vnnlib import read_named_properties

    named = acasxu_properties(network_path.stem)
    seen = {name for name, _ in named}
    named += [(name, props) for name, props in read_named_properties(property_paths) if name not in seen]
    from verirepair.tasks.acasxu.networks import network_info

    return AcasXuTask("acasxu", named, decision or DECISION, acasxu_domain(network),
                      description=f"ACAS Xu {network_path.stem}: " + ", ".join(name for name, _ in named),
                      metadata={"network": network_info(network_path.stem).label})

