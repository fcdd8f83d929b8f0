"""The configuration of a repair run, composed of the stage configurations.

Pipeline position: :func:`verirepair.pipeline.run_pipeline` takes one
:class:`RunConfig`; the certify loop hands each stage its own part (a
:class:`~verirepair.verify.result.VerifyConfig`, a
:class:`~verirepair.localize.config.LocalizeConfig`, a
:class:`~verirepair.repair.config.RepairConfig`) and reads the loop's and the
delivery's settings from :class:`LoopConfig` and :class:`DeliveryConfig`.
Every default lives in exactly one of these classes; the CLI reads its
defaults from them.

``--config run.toml`` files have top-level ``timeout_s`` and ``seed`` and one
table per part::

    timeout_s = 900
    seed = 0
    [verify]            # VerifyConfig: the budget of one property's verification per round
    timeout_s = 60
    [repair]
    solver = "highs"
    [loop]
    max_rounds = 8
    [delivery]
    cross_check = "none"
    [strategy]          # StrategyConfig: cover (default), lp, imitation or finetune
    name = "imitation"

Unknown keys, wrong types and out-of-range values are :class:`ConfigError`
with the file, the line and the key.  An optional setting is switched off
with the string ``"none"`` (TOML has no null).  :func:`config_to_toml`
writes a file that :func:`load_run_config` reads back to the same
configuration, which is how a report records its run.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import numbers
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verirepair.errors import VerirepairError
from verirepair.localize.config import LocalizeConfig
from verirepair.repair.config import RepairConfig
from verirepair.repair.strategy_config import StrategyConfig
from verirepair.verify.result import VerifyConfig


class ConfigError(VerirepairError):
    """A configuration file or value that cannot be used (one line: file, line, key, rule)."""


def _check_positive(owner: str, name: str, value: float) -> None:
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise ValueError(f"{owner}.{name} must be a finite number > 0, got {value}")


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """Settings of the certify loop (:mod:`verirepair.certify_loop`).

    Parameters
    ----------
    max_rounds : int
        Rounds of repair and re-verification (shrink trials not counted).
    layer : int or None
        Layer to repair; None: the output layer first, then the hidden layers
        the localization ranks (see ``repair_depth``).
    repair_depth : int
        With ``layer=None``: besides the output layer, the last
        ``repair_depth`` hidden layers may be repaired.  Every ReLU layer after
        the repaired one adds fixed-pattern rows for every sample; an ACAS Xu
        layer-3 LP with about 2000 samples did not finish in 150 s here.
    guilty_neurons : int or None
        Change only the rows of the repaired layer's ``guilty_neurons`` most
        guilty units and the columns of the previous layer's; None: whole layer.
    n_preserve : int
        Preservation points sampled by the task (its domain or its data).
    n_localize_correct : int
        Correctly handled inputs given to the localizer in each round.
    cex_per_property : int
        Counterexamples gathered per violated property and round.
    n_region_anchors : int
        Points sampled in each property's region, safe or not, that the repair
        must keep (or make) safe with a margin, once per property.  Without
        them the LP fixes only the counterexamples it sees and the next
        verification finds fresh ones beside them.
    margin_growth : float
        A property still violated after a round gets its margin multiplied by
        this (the first margin is ``RepairConfig.margin``).  With a fixed small
        margin the boundary lands just past the known counterexamples and the
        next verification finds a fresh one beyond it (N2,5 phi2: one new
        counterexample per round for 8 rounds).
    undecided_margin_growth : float
        A property the verifier could not decide (TIMEOUT or UNKNOWN) gets its
        margin multiplied by this, and points in the sub-boxes the verifier
        left open join the pool.  A repair a hair outside the unsafe set over a
        whole region is correct but beyond any verifier's reach (N1,9 phi7).
    open_box_samples : int
        Points sampled per open sub-box of an undecided property (plus its centre).
    shrink_steps : int
        Once all is proven after margins were widened for undecided
        properties, this many geometric bisection steps look for the narrowest
        margin that still proves.
    fallback_preserve_penalty : float or None
        When a layer's repair with hard preservation is infeasible, it is
        retried with soft preservation at this penalty per unit of slack
        (``RepairConfig.preserve_penalty``); None: hard only.
    """

    max_rounds: int = 8
    layer: int | None = None
    repair_depth: int = 2
    guilty_neurons: int | None = None
    n_preserve: int = 2000
    n_localize_correct: int = 512
    cex_per_property: int = 64
    n_region_anchors: int = 1000
    margin_growth: float = 2.0
    undecided_margin_growth: float = 8.0
    open_box_samples: int = 3
    shrink_steps: int = 2
    fallback_preserve_penalty: float | None = 10.0

    def __post_init__(self) -> None:
        for name, least in (("max_rounds", 1), ("repair_depth", 0), ("n_preserve", 0),
                            ("n_localize_correct", 1), ("cex_per_property", 1), ("n_region_anchors", 0),
                            ("open_box_samples", 0), ("shrink_steps", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise ValueError(f"LoopConfig.{name} must be an integer >= {least}, got {value}")
        if self.layer is not None and (isinstance(self.layer, bool) or self.layer < 0):
            raise ValueError(f"LoopConfig.layer must be a layer index >= 0 or None, got {self.layer}")
        if self.guilty_neurons is not None and self.guilty_neurons < 1:
            raise ValueError(f"LoopConfig.guilty_neurons must be at least 1 or None, got {self.guilty_neurons}")
        for name in ("margin_growth", "undecided_margin_growth"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 1):
                raise ValueError(f"LoopConfig.{name} must be a finite number >= 1, got {value}")
        if self.fallback_preserve_penalty is not None:
            _check_positive("LoopConfig", "fallback_preserve_penalty", self.fallback_preserve_penalty)


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """Settings of the delivery: the independent cross-check and the fidelity measures.

    Parameters
    ----------
    cross_check : str or None
        Verifier for the final independent check of every property of a
        certified network (a name of :func:`verirepair.verify.list_verifiers`),
        or None.
    cross_check_timeout_s : float
        Budget of the cross-check per property, within the run's total budget.
    n_fidelity : int
        Points for decision fidelity (the task's fidelity samples).
    n_care : int
        CARE-protocol samples per repaired property region (correct and violating).
    pac_epsilon : float or None
        A property that ends TIMEOUT or UNKNOWN gets a sampling statement
        "violation probability at most pac_epsilon with confidence
        1 - pac_delta" (:mod:`verirepair.pac`; never a proof), from
        ``ln(1/pac_delta)/pac_epsilon`` uniform samples of its region within
        the budget; None: no statement.
    pac_delta : float
        One minus the confidence of that statement.
    certificates : bool
        After a REPAIRED run, write a checkable certificate per proven property
        of the delivered file into ``REPORT_DIR/certificates/`` (listed in
        ``certificate.json``; ``verirepair check REPORT_DIR`` checks them), within
        the run's total budget.  Off by default: validating a certificate for the
        independent checker takes several times the verification
        (``benchmarks/results/certificates.md``).
    """

    cross_check: str | None = "marabou"
    cross_check_timeout_s: float = 300.0
    n_fidelity: int = 5000
    n_care: int = 10016
    pac_epsilon: float | None = 1e-3
    pac_delta: float = 1e-3
    certificates: bool = False

    def __post_init__(self) -> None:
        _check_positive("DeliveryConfig", "cross_check_timeout_s", self.cross_check_timeout_s)
        for name in ("pac_epsilon", "pac_delta"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < 1):
                raise ValueError(f"DeliveryConfig.{name} must lie in (0, 1), got {value}")
        for name in ("n_fidelity", "n_care"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"DeliveryConfig.{name} must be an integer >= 1, got {value}")
        if self.cross_check is not None:
            from verirepair.verify import list_verifiers

            if self.cross_check not in list_verifiers():
                raise ValueError(f"DeliveryConfig.cross_check must be one of {', '.join(list_verifiers())} "
                                 f"or none, got {self.cross_check!r}")


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything a repair run reads.

    Parameters
    ----------
    timeout_s : float
        Total wall-clock budget of the run, cross-check, fidelity and report included.
    seed : int
        The run's seed; it replaces the stage configs' own seeds.
    verify : VerifyConfig
        Our engine's settings; ``timeout_s`` is the budget of one property's
        verification in each round (a property not decided in time gets a
        wider margin in the next round).
    localize : LocalizeConfig
    repair : RepairConfig
        The layer repair; ``margin`` is every property's first margin and
        ``time_limit_s`` the solver budget of one layer attempt.
    loop : LoopConfig
    delivery : DeliveryConfig
    strategy : StrategyConfig
        Which repair strategy proposes each round's change (``lp``,
        ``imitation``, ``finetune``) and the trained strategies' settings.
    """

    timeout_s: float = 1800.0
    seed: int = 0
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    localize: LocalizeConfig = field(default_factory=LocalizeConfig)
    repair: RepairConfig = field(default_factory=RepairConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)

    def __post_init__(self) -> None:
        _check_positive("RunConfig", "timeout_s", self.timeout_s)
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed < 2**32:
            raise ValueError(f"RunConfig.seed must be an integer in 0..{2**32 - 1}, got {self.seed}")


#: The tables of a run file and the class each one is read into.
SECTIONS: dict[str, type] = {"verify": VerifyConfig, "localize": LocalizeConfig, "repair": RepairConfig,
                             "loop": LoopConfig, "delivery": DeliveryConfig, "strategy": StrategyConfig}

#: Keys a run file may not set inside a table: the run's own ``seed`` replaces
#: them, and ``repair.property_margins`` is the loop's business.
RESERVED_KEYS = {("verify", "seed"), ("localize", "seed"), ("repair", "property_margins"),
                 ("repair", "neurons"), ("repair", "inputs")}


def default_of(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (for CLI help and defaults)."""
    for item in dataclasses.fields(cls):
        if item.name == name:
            if item.default is not dataclasses.MISSING:
                return item.default
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def _value_of(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def config_dict(config: Any) -> dict:
    """A (nested) config dataclass as a JSON-ready dict (enums by value)."""
    out: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if dataclasses.is_dataclass(value):
            out[item.name] = config_dict(value)
        elif isinstance(value, tuple):
            out[item.name] = [_value_of(v) for v in value]
        else:
            out[item.name] = _value_of(value)
    return out


# ----------------------------------------------------------------------------- reading
def _allowed(hint: Any) -> tuple[list[type], bool]:
    """The plain types an annotation admits, and whether None is one of them."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        kinds: list[type] = []
        for arg in args:
            if arg is type(None):
                continue
            kinds.extend(_allowed(arg)[0])
        return kinds, type(None) in args
    if origin is tuple:
        return [tuple], False
    return [hint], False


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as read from TOML, checked against the field's annotation."""
    kinds, optional = _allowed(hint)
    if optional and value == "none":
        return None
    for kind in kinds:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
        if isinstance(kind, type) and issubclass(kind, enum.Enum) and isinstance(value, str):
            return value            # the config class validates the choice
        if kind is tuple and isinstance(value, list):
            return tuple(value)
    names = [getattr(k, "__name__", str(k)) for k in kinds] + (['"none"'] if optional else [])
    raise ConfigError(f"{where}: expected {' or '.join(names)}, got {type(value).__name__} {value!r}")


def _line_of(text: str, section: str | None, key: str) -> int | None:
    """1-based line of ``key = ...`` in table ``section`` (None: top level), if found."""
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.fullmatch(r"\[\s*([A-Za-z0-9_.\-]+)\s*\]\s*(#.*)?", stripped)
        if header:
            current = header.group(1)
            continue
        if current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
            return number
    return None


def _where(path: Path, text: str, section: str | None, key: str) -> str:
    line = _line_of(text, section, key)
    name = f"{section}.{key}" if section else key
    return f"{path}:{line}: {name}" if line else f"{path}: {name}"


def _check_key(cls: type, key: str, path: Path, text: str, section: str) -> None:
    names = {item.name for item in dataclasses.fields(cls) if item.init}
    if key not in names or (section, key) in RESERVED_KEYS:
        known = sorted(n for n in names if (section, n) not in RESERVED_KEYS)
        raise ConfigError(f"{_where(path, text, section, key)}: unknown key in table [{section}]; "
                          f"known keys: {', '.join(known)}")


def _build_part(cls: type, base: Any, table: dict, path: Path, text: str, section: str) -> Any:
    """``base`` with the keys of ``table`` replaced, each key and type checked."""
    hints = typing.get_type_hints(cls)
    changes = {}
    for key, value in table.items():
        _check_key(cls, key, path, text, section)
        changes[key] = _coerce(value, hints[key], _where(path, text, section, key))
    try:
        return dataclasses.replace(base, **changes)
    except (ValueError, TypeError) as exc:
        bad = next((k for k in changes if k in str(exc)), None)
        where = _where(path, text, section, bad) if bad else f"{path}: [{section}]"
        raise ConfigError(f"{where}: {' '.join(str(exc).split())}") from None


def load_run_config(path: Path, base: RunConfig | None = None) -> RunConfig:
    """Read a run file (see the module docstring) on top of ``base`` (default: all defaults).

    Raises
    ------
    ConfigError -- unreadable file, TOML syntax, unknown key, wrong type, value out of range
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (offset {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {' '.join(str(exc).split())}") from None
    base = base or RunConfig()
    parts = {}
    for name, cls in SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{_where(path, text, None, name)}: expected a table [{name}]")
        parts[name] = _build_part(cls, getattr(base, name), table, path, text, name)
    run_values: dict[str, Any] = {"timeout_s": base.timeout_s, "seed": base.seed}
    for key, value in data.items():
        if key in SECTIONS:
            continue
        if key not in run_values:
            known = ", ".join(sorted([*run_values, *SECTIONS]))
            raise ConfigError(f"{_where(path, text, None, key)}: unknown key at the top level; known keys: {known}")
        run_values[key] = _coerce(value, typing.get_type_hints(RunConfig)[key], _where(path, text, None, key))
    try:
        return RunConfig(timeout_s=run_values["timeout_s"], seed=run_values["seed"], **parts)
    except (ValueError, TypeError) as exc:
        bad = next((k for k in run_values if k in str(exc)), None)
        where = _where(path, text, None, bad) if bad else str(path)
        raise ConfigError(f"{where}: {' '.join(str(exc).split())}") from None


# ----------------------------------------------------------------------------- writing
def _toml_value(value: Any) -> str:
    value = _value_of(value)
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def config_to_toml(config: RunConfig) -> str:
    """The run file that :func:`load_run_config` reads back to ``config`` (every key written)."""
    lines = ["# verirepair run configuration: repeat with  verirepair repair NET --config THIS_FILE",
             f"timeout_s = {_toml_value(config.timeout_s)}", f"seed = {_toml_value(config.seed)}"]
    for name in SECTIONS:
        lines += ["", f"[{name}]"]
        part = getattr(config, name)
        for item in dataclasses.fields(part):
            if (name, item.name) in RESERVED_KEYS:
                continue
            lines.append(f"{item.name} = {_toml_value(getattr(part, item.name))}")
    return "\n".join(lines) + "\n"


def toml_key_location(path: Path, text: str, section: str | None, key: str) -> str:
    """``"FILE:LINE: section.key"`` (or ``"FILE: key"`` when the line is not found), for errors
    about other TOML files read in this style (e.g. campaign specifications)."""
    return _where(path, text, section, key)
