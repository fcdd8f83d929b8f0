"""The generic task: the properties are VNN-LIB files given by the user.

Pipeline position: ``verirepair repair NET --property P.vnnlib`` builds this
task.  The input domain is the network's own normalisation range when its
file carries one (.nnet headers), otherwise the smallest box holding every
property's input region; the decision rule is the user's (``argmax`` by
default: a classifier's class).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Box
from verirepair.task import NamedProperties, RepairTask, bounding_box

#: Decision rule of a network about which nothing else is known.
DEFAULT_DECISION = "argmax"


def read_named_properties(paths: Sequence[Path]) -> NamedProperties:
    """``(file stem, properties)`` per VNN-LIB file, in order; a repeated stem is read once."""
    from verirepair.properties import parse_vnnlib

    named: NamedProperties = []
    seen: set[str] = set()
    for path in paths:
        if path.stem in seen:
            continue
        named.append((path.stem, parse_vnnlib(path)))
        seen.add(path.stem)
    return named


def network_domain(network: Network) -> Box | None:
    """The normalised input range a network file declares (.nnet), or None."""
    norm = network.normalization
    if norm is None:
        return None
    lower = (np.asarray(norm.input_min) - norm.input_mean) / np.asarray(norm.input_range)
    upper = (np.asarray(norm.input_max) - norm.input_mean) / np.asarray(norm.input_range)
    return Box(lower, upper)


def build_vnnlib_task(network_path: Path, network: Network, property_paths: Sequence[Path],
                      decision: str | None) -> RepairTask:
    """The task of the given property files on ``network`` (see the module docstring)."""
    named = read_named_properties(property_paths)
    if not named:
        raise ValueError("the vnnlib task needs at least one --property FILE")
    props = [p for _, group in named for p in group]
    domain = network_domain(network) or bounding_box(props)
    return RepairTask("vnnlib", named, decision or DEFAULT_DECISION, domain,
                      description=f"{network_path.name}: " + ", ".join(name for name, _ in named))

