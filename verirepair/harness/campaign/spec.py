"""What a campaign runs: its jobs, read from a VNN-COMP ``instances.csv`` or a campaign TOML file.

Pipeline position: the first step of :mod:`verirepair.harness.campaign`; ``verirepair campaign
SPEC`` reads SPEC with :func:`read_campaign_spec` and hands the jobs to
:func:`verirepair.harness.campaign.runner.run_campaign`.

A campaign TOML file (paths relative to the file; ``networks`` and ``properties`` may be glob
patterns, expanded in sorted order)::

    kind = "repair"            # "verify" (one job per network x property file) or "repair"
                               # (one job per network, with every property file)
    timeout_s = 900            # budget of one job, seconds (default 300)
    task = "acasxu"            # repair: the task (default "vnnlib": the property files)
    config = "run.toml"        # repair: a run configuration (as ``repair --config``)
    engine = "own"             # verify: the verifier (default "own")
    networks = ["onnx/ACASXU_run2a_2_*_batch_2000.onnx"]
    properties = ["vnnlib/prop_2.vnnlib"]

    [[jobs]]                   # more jobs, one table each (keys: network, properties, timeout_s)
    network = "onnx/ACASXU_run2a_1_9_batch_2000.onnx"
    timeout_s = 1500

Unknown keys, wrong types, missing files and empty globs are a :class:`ConfigError` naming the
file, the line (top-level keys) or the ``jobs[i]`` table, and the key.

Every job has a stable identifier made of its kind, its network's file name and a hash of what
decides its result (the resolved files, the budget, the settings and the run configuration's
text), so that running the same command again finds the jobs that are already done.
"""

from __future__ import annotations

import glob
import hashlib
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verirepair.run_config import ConfigError, load_run_config, toml_key_location

#: The kinds of job a campaign runs.
KINDS = ("verify", "repair")

#: Budget of one job when the TOML file gives none (seconds).
DEFAULT_JOB_TIMEOUT_S = 300.0

_TOP_KEYS = frozenset({"kind", "timeout_s", "task", "config", "engine", "networks", "properties", "jobs"})
_JOB_KEYS = frozenset({"network", "properties", "timeout_s"})


@dataclass(frozen=True, slots=True)
class Job:
    """One verify or repair run of a campaign.

    Parameters
    ----------
    kind : str -- ``"verify"`` or ``"repair"``
    network : str -- the network's path as the specification gives it (results.csv shows this)
    vnnlib : str -- the property file(s) as given (several joined with ``;``; ``""`` when the task
        brings its own properties)
    network_path : str -- the network, resolved to an absolute path
    vnnlib_paths : tuple of str -- the property files, resolved
    timeout_s : float -- the job's whole budget, seconds
    engine : str -- verify jobs: the verifier
    task : str -- repair jobs: the task name (``verirepair repair --task``)
    config_path : str or None -- repair jobs: a run configuration file, resolved
    settings_digest : str -- hash of the configuration file's text ("" without one)
    """

    kind: str
    network: str
    vnnlib: str
    network_path: str
    vnnlib_paths: tuple[str, ...]
    timeout_s: float
    engine: str = "own"
    task: str = "vnnlib"
    config_path: str | None = None
    settings_digest: str = ""

    @property
    def job_id(self) -> str:
        """``<kind>-<network stem>[-<property stem>]-<12 hex digits>``: stable across runs."""
        digest = hashlib.sha256("\0".join([
            self.kind, self.network_path, *self.vnnlib_paths, repr(float(self.timeout_s)), self.engine,
            self.task, self.config_path or "", self.settings_digest]).encode()).hexdigest()[:12]
        parts = [self.kind, Path(self.network_path).stem]
        if len(self.vnnlib_paths) == 1:
            parts.append(Path(self.vnnlib_paths[0]).stem)
        slug = re.sub(r"[^A-Za-z0-9_.]+", "_", "-".join(parts))[:80]
        return f"{slug}-{digest}"


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """A campaign: where it was read from and its jobs, in order.

    Parameters
    ----------
    path : str -- the specification file
    kind : str -- ``"verify"`` or ``"repair"``
    jobs : tuple of Job -- each ``job_id`` unique
    """

    path: str
    kind: str
    jobs: tuple[Job, ...]


def read_campaign_spec(path: str | Path) -> CampaignSpec:
    """Read a campaign from a VNN-COMP ``instances.csv`` (verify jobs) or a campaign TOML file.

    Raises
    ------
    ConfigError -- unreadable file, bad syntax, unknown key, wrong type, missing file, empty glob,
        two identical jobs
    VerirepairError -- a malformed ``instances.csv`` (the message names the line)
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such campaign specification (expected an instances.csv or a .toml file)")
    if path.suffix.lower() == ".toml":
        jobs, kind = _read_toml(path)
    else:
        jobs, kind = _read_instances_csv(path), "verify"
    if not jobs:
        raise ConfigError(f"{path}: the campaign has no job")
    seen: dict[str, Job] = {}
    for job in jobs:
        if job.job_id in seen:
            raise ConfigError(f"{path}: the job {job.network} {job.vnnlib} is listed twice")
        seen[job.job_id] = job
    return CampaignSpec(str(path), kind, tuple(jobs))


def _read_instances_csv(path: Path) -> list[Job]:
    from verirepair.harness.vnncomp_bench import read_instances

    jobs = []
    for inst in read_instances(path):
        for what, file in (("network", inst.onnx_path), ("property", inst.vnnlib_path)):
            if not Path(file).is_file():
                raise ConfigError(f"{path}: {inst.onnx},{inst.vnnlib}: no such {what} file {file}")
        jobs.append(Job("verify", inst.onnx, inst.vnnlib, str(Path(inst.onnx_path).resolve()),
                        (str(Path(inst.vnnlib_path).resolve()),), inst.timeout_s))
    return jobs


class _TomlReader:
    """Reads one campaign TOML file, each error naming the file, the line or table, and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the campaign: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (offset {exc.start})") from None
        try:
            self.data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {' '.join(str(exc).split())}") from None
        self.base = path.resolve().parent

    def where(self, key: str, table: int | None = None) -> str:
        if table is None:
            return toml_key_location(self.path, self.text, None, key)
        return f"{self.path}: jobs[{table}].{key}"

    def fail(self, key: str, message: str, table: int | None = None) -> ConfigError:
        return ConfigError(f"{self.where(key, table)}: {message}")

    def string(self, data: dict, key: str, default: str | None, table: int | None = None) -> str | None:
        value = data.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {type(value).__name__} {value!r}", table)
        return value

    def seconds(self, data: dict, key: str, default: float, table: int | None = None) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or value <= 0:
            raise self.fail(key, f"expected a positive number of seconds, got {value!r}", table)
        return float(value)

    def files(self, data: dict, key: str, what: str, table: int | None = None) -> list[tuple[str, str]]:
        """``(as given, resolved)`` for every file the patterns of ``data[key]`` name."""
        value = data.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a list of {what} paths (glob patterns allowed), got {value!r}", table)
        found = []
        for pattern in value:
            full = Path(pattern) if Path(pattern).is_absolute() else self.base / pattern
            if glob.has_magic(pattern):
                matches = sorted(glob.glob(str(full)))
                if not matches:
                    raise self.fail(key, f"the pattern {pattern!r} matches no file", table)
                found += [(str(Path(m).relative_to(self.base)) if not Path(pattern).is_absolute() else m,
                           str(Path(m).resolve())) for m in matches]
            elif not full.is_file():
                raise self.fail(key, f"no such {what} file {full}", table)
            else:
                found.append((pattern, str(full.resolve())))
        return found


def _read_toml(path: Path) -> tuple[list[Job], str]:
    from verirepair.task import list_tasks
    from verirepair.verify import list_verifiers

    reader = _TomlReader(path)
    data = reader.data
    for key in data:
        if key not in _TOP_KEYS:
            raise reader.fail(key, f"unknown key at the top level; known keys: {', '.join(sorted(_TOP_KEYS))}")
    kind = reader.string(data, "kind", None)
    if kind not in KINDS:
        raise reader.fail("kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    timeout_s = reader.seconds(data, "timeout_s", DEFAULT_JOB_TIMEOUT_S)
    engine = reader.string(data, "engine", "own") or "own"
    task = reader.string(data, "task", "vnnlib") or "vnnlib"
    config = reader.string(data, "config", None)
    for key, allowed_kind in (("engine", "verify"), ("task", "repair"), ("config", "repair")):
        if key in data and kind != allowed_kind:
            raise reader.fail(key, f"only {allowed_kind} campaigns take {key!r}")
    if engine not in list_verifiers():
        raise reader.fail("engine", f"unknown verifier {engine!r}; known: {', '.join(list_verifiers())}")
    if task not in list_tasks():
        raise reader.fail("task", f"unknown task {task!r}; registered: {', '.join(list_tasks())}")
    config_path, digest = None, ""
    if config is not None:
        full = Path(config) if Path(config).is_absolute() else reader.base / config
        if not full.is_file():
            raise reader.fail("config", f"no such run configuration {full}")
        load_run_config(full)       # a bad run file is an error now, not in every job
        config_path = str(full.resolve())
        digest = hashlib.sha256(full.read_bytes()).hexdigest()[:16]

    def make(network: tuple[str, str], props: list[tuple[str, str]], budget: float) -> Job:
        return Job(kind, network[0], ";".join(p[0] for p in props), network[1], tuple(p[1] for p in props),
                   budget, engine=engine, task=task, config_path=config_path, settings_digest=digest)

    def expand(networks: list[tuple[str, str]], props: list[tuple[str, str]], budget: float,
               table: int | None) -> list[Job]:
        if kind == "verify":
            if networks and not props:
                raise reader.fail("properties", "a verify job needs at least one property file", table)
            return [make(n, [p], budget) for n in networks for p in props]
        if networks and task == "vnnlib" and not props:
            raise reader.fail("properties", "task vnnlib needs at least one property file", table)
        return [make(n, props, budget) for n in networks]

    jobs = expand(reader.files(data, "networks", "network"), reader.files(data, "properties", "property"),
                  timeout_s, None)
    tables = data.get("jobs", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise reader.fail("jobs", "expected tables [[jobs]]")
    for index, table in enumerate(tables):
        for key in table:
            if key not in _JOB_KEYS:
                raise reader.fail(key, f"unknown key in a [[jobs]] table; known keys: {', '.join(sorted(_JOB_KEYS))}",
                                  index)
        if "network" not in table:
            raise reader.fail("network", "missing: every [[jobs]] table names its network", index)
        jobs += expand(reader.files(table, "network", "network", index),
                       reader.files(table, "properties", "property", index) or
                       reader.files(data, "properties", "property"),
                       reader.seconds(table, "timeout_s", timeout_s, index), index)
    return jobs, kind


def spec_summary(spec: CampaignSpec) -> dict[str, Any]:
    """The specification as recorded in ``campaign.json``."""
    return {"path": str(Path(spec.path).resolve()), "kind": spec.kind, "jobs": len(spec.jobs)}
