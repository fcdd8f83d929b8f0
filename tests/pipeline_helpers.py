"""Test helpers for the pipeline tests: a RunConfig from flat keywords, the demo task."""

from __future__ import annotations

import dataclasses

from verirepair.run_config import SECTIONS, RunConfig


def run_config(**flat) -> RunConfig:
    """A RunConfig whose fields are given by name (``max_rounds=4, solver="highs", timeout_s=60``).

    ``timeout_s`` and ``seed`` are the run's; ``verify_timeout_s`` is
    ``verify.timeout_s``; every other name must belong to exactly one part.
    """
    top = {k: flat.pop(k) for k in ("timeout_s", "seed") if k in flat}
    parts: dict[str, dict] = {}
    if "verify_timeout_s" in flat:
        parts.setdefault("verify", {})["timeout_s"] = flat.pop("verify_timeout_s")
    for key, value in flat.items():
        owners = [name for name, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
        assert len(owners) == 1, f"{key} is in {owners}"
        parts.setdefault(owners[0], {})[key] = value
    base = RunConfig()
    return RunConfig(**top, **{name: dataclasses.replace(getattr(base, name), **values)
                               for name, values in parts.items()})
