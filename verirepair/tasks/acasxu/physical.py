"""ACAS Xu properties in physical units (``properties/*.toml``) -> :class:`Property`.

Pipeline position: the readable source of the ten ACAS Xu properties.  Each
``properties/phiN.toml`` states one property of Katz et al. (2017) in
physical units (rho in ft, theta and psi in rad, speeds in ft/s, output
scores in the units of the ``.nnet`` files); ``properties/normalization.toml``
holds the one copy of the normalisation constants.  :func:`compile_property`
turns a property into the network's normalised coordinates, and
:func:`export_properties` writes the ``vnnlib/acasxu/prop_N.vnnlib`` files
that are committed to the repository.

Normalisation follows VNN-COMP's ``generate.py``: ``x = (x_phys - mean) / range``
**without clipping** to the training range ``[min, max]`` (so phi6's
rho <= 62000 ft maps above the training maximum), and output constraints
``a . y_phys <= c`` become ``a . y <= (c - mean * sum(a)) / range`` because
``y_phys = y * range + mean``: a threshold ``COC >= 1500`` becomes
``COC >= (1500 - mean) / range``, and a comparison of two scores is unchanged.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from verirepair.atomic import write_text_atomic
from verirepair.errors import SpecError
from verirepair.network.model import Normalization
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.properties.vnnlib_write import write_vnnlib
from verirepair.tasks.acasxu.infix import InfixError, Linear, parse_constraint, parse_value

NORMALIZATION_FILE = "normalization.toml"
_PROPERTY_KEYS = frozenset({"number", "description", "desired", "networks", "input_boxes",
                            "unsafe"})


@dataclass(frozen=True, slots=True)
class OutputConstraint:
    """``sum(c * score[name]) + const <= 0`` in physical output units.

    Parameters
    ----------
    coeffs : tuple of (str, float)
        Output name and coefficient.
    const : float
    text : str
        The source text, e.g. ``"COC >= 1500"``.
    """

    coeffs: tuple[tuple[str, float], ...]
    const: float
    text: str


@dataclass(frozen=True, slots=True)
class PhysicalProperty:
    """One ACAS Xu property in physical units, as read from ``phiN.toml``.

    Parameters
    ----------
    number : int
        N of Katz's phi_N; the compiled property is named ``prop_N``.
    description, desired : str
        Katz's description and the desired (safe) output behaviour.
    networks : tuple of str
        Networks it applies to, as ``"N<x>,<y>"``.
    input_boxes : tuple of tuple of (float, float)
        Per box, ``(lower, upper)`` for every input in normalisation order.
    unsafe : tuple of tuple of OutputConstraint
        A disjunction of conjunctions.
    source : Path
    """

    number: int
    description: str
    desired: str
    networks: tuple[str, ...]
    input_boxes: tuple[tuple[tuple[float, float], ...], ...]
    unsafe: tuple[tuple[OutputConstraint, ...], ...]
    source: Path

    @property
    def name(self) -> str:
        """The compiled property's name, ``prop_N`` (as in VNN-COMP)."""
        return f"prop_{self.number}"


# -- locations ---------------------------------------------------------------

#: The task's data, shipped inside the package (so ``pip install .`` has it).
DATA_DIR = Path(__file__).resolve().parent / "data"


def default_properties_dir() -> Path:
    """The package's ``data/properties``: phi1..phi10 in physical units and ``normalization.toml``."""
    return DATA_DIR / "properties"


def default_vnnlib_dir() -> Path:
    """The package's ``data/vnnlib``: ``prop_1..10.vnnlib``, compiled from the physical properties."""
    return DATA_DIR / "vnnlib"


# -- reading -----------------------------------------------------------------

def _where(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of ``needle`` in ``text`` ((1, 1) if absent)."""
    offset = text.find(needle)
    if offset < 0:
        return 1, 1
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def _load_toml(path: Path) -> tuple[dict[str, Any], str]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(str(path), line, col, f"byte 0x{data[exc.start]:02x} is not valid "
                        "UTF-8; property files must be UTF-8 text") from exc
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_POSITION.search(str(exc))
        line, col = (int(found[1]), int(found[2])) if found else (1, 1)
        raise SpecError(str(path), line, col, f"invalid TOML: {exc}") from exc


def load_normalization(path: str | os.PathLike[str]) -> Normalization:
    """Read ``normalization.toml`` (sections ``[inputs]`` and ``[outputs]``).

    Returns
    -------
    Normalization
        With names and units; ``d`` = 5 inputs and 5 output names for ACAS Xu.

    Raises
    ------
    SpecError
        Missing keys or arrays of the wrong length.
    """
    path = Path(path)
    data, text = _load_toml(path)
    try:
        inputs, outputs = data["inputs"], data["outputs"]
        names, units = tuple(inputs["names"]), tuple(inputs["units"])
        arrays = {key: np.array(inputs[key], dtype=np.float64)
                  for key in ("min", "max", "mean", "range")}
        output_names = tuple(outputs["names"])
        output_mean, output_range = float(outputs["mean"]), float(outputs["range"])
    except KeyError as exc:
        raise SpecError(str(path), 1, 1, f"missing key {exc.args[0]!r}; expected [inputs] "
                        "names, units, min, max, mean, range and [outputs] names, mean, "
                        "range") from exc
    except (TypeError, ValueError) as exc:
        raise SpecError(str(path), 1, 1, "expected [inputs] names and units as lists of "
                        "strings, min, max, mean, range as lists of numbers, and [outputs] "
                        "names (strings), mean and range (numbers)") from exc
    sizes = {len(units)} | {a.shape[0] if a.ndim == 1 else -1 for a in arrays.values()}
    finite = all(np.isfinite(a).all() for a in arrays.values()) and \
        math.isfinite(output_mean) and math.isfinite(output_range)
    if sizes != {len(names)} or not finite or np.any(arrays["range"] <= 0) or output_range <= 0:
        raise SpecError(str(path), *_where(text, "[inputs]"), "every [inputs] array needs one "
                        "entry per name, every number must be finite and every range "
                        "positive")
    return Normalization(tuple(arrays["min"]), tuple(arrays["max"]), tuple(arrays["mean"]),
                         tuple(arrays["range"]), output_mean, output_range,
                         input_names=names, input_units=units, output_names=output_names)


def _valid_network(label: str) -> bool:
    x, sep, y = label.removeprefix("N").partition(",")
    return (label.startswith("N") and sep == "," and x.isdigit() and y.isdigit()
            and 1 <= int(x) <= 5 and 1 <= int(y) <= 9)


def _bound(value: Any, path: Path, text: str, what: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        where = _where(text, repr(value))
    elif isinstance(value, str):
        where = _where(text, f'"{value}"')
        try:
            number = parse_value(value)
        except InfixError as exc:
            raise SpecError(str(path), *where, f"{what}: {exc}") from exc
    else:
        raise SpecError(str(path), 1, 1, f"{what}: expected a number or an expression string, "
                        f"got {_short(value)}")
    if not math.isfinite(number):
        raise SpecError(str(path), *where, f"{what}: {_short(value)} is not a finite number")
    return number


def _short(value: Any) -> str:
    """``repr(value)`` cut to one short line for a message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_box(table: Any, norm: Normalization, path: Path, text: str,
              k: int) -> tuple[tuple[float, float], ...]:
    where = f"input box {k + 1}"
    if not isinstance(table, dict) or set(table) != set(norm.input_names):
        got = sorted(table) if isinstance(table, dict) else table
        raise SpecError(str(path), *_where(text, "[[input_boxes]]"), f"{where}: expected "
                        f"exactly the inputs {', '.join(norm.input_names)}, got {_short(got)}")
    box = []
    for name in norm.input_names:
        pair = table[name]
        if not isinstance(pair, list) or len(pair) != 2:
            raise SpecError(str(path), *_where(text, f"{name} ="), f"{where}: {name} must be "
                            f"[lower, upper], got {_short(pair)}")
        lo, hi = (_bound(v, path, text, f"{where}, {name}") for v in pair)
        if lo > hi:
            raise SpecError(str(path), *_where(text, f"{name} ="), f"{where}: {name} has "
                            f"lower bound {lo!r} above upper bound {hi!r}")  # floats: plain
        box.append((lo, hi))
    return tuple(box)


def _read_conjunct(items: Any, norm: Normalization, path: Path,
                   text: str) -> tuple[OutputConstraint, ...]:
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise SpecError(str(path), *_where(text, "any_of"), "each entry of unsafe.any_of must "
                        "be a list of constraint strings such as [\"COC >= 1500\"]")
    out = []
    for item in items:
        try:
            atoms: tuple[Linear, ...] = parse_constraint(item, norm.output_names)
        except InfixError as exc:
            raise SpecError(str(path), *_where(text, f'"{item}"'), str(exc)) from exc
        out += [OutputConstraint(atom.coeffs, atom.const, item) for atom in atoms]
    return tuple(out)


def load_physical_property(path: str | os.PathLike[str],
                           normalization: Normalization) -> PhysicalProperty:
    """Read one ``phiN.toml`` file; see ``properties/phi1.toml`` for the format.

    Raises
    ------
    SpecError
        Unknown or missing keys, malformed boxes, constraints or network names.
    """
    path = Path(path)
    data, text = _load_toml(path)
    unknown = set(data) - _PROPERTY_KEYS
    missing = _PROPERTY_KEYS - set(data)
    if unknown or missing:
        raise SpecError(str(path), 1, 1, f"unknown keys {sorted(unknown)}, missing keys "
                        f"{sorted(missing)}; expected exactly {sorted(_PROPERTY_KEYS)}")
    _check_types(data, path, text)
    bad = [n for n in data["networks"] if not isinstance(n, str) or not _valid_network(n)]
    if bad or not data["networks"]:
        raise SpecError(str(path), *_where(text, "networks"), f"bad network names {bad}; "
                        "expected a non-empty list of \"N<x>,<y>\" with x in 1..5, y in 1..9")
    unsafe = data["unsafe"]
    if not isinstance(unsafe, dict) or set(unsafe) != {"any_of"} or not unsafe["any_of"]:
        raise SpecError(str(path), *_where(text, "[unsafe]"), "expected an [unsafe] table with "
                        "one key, any_of = [[...], ...] (a disjunction of conjunctions)")
    boxes = tuple(_read_box(t, normalization, path, text, k)
                  for k, t in enumerate(data["input_boxes"]))
    if not boxes:
        raise SpecError(str(path), 1, 1, "expected at least one [[input_boxes]] table")
    return PhysicalProperty(
        number=int(data["number"]), description=str(data["description"]).strip(),
        desired=str(data["desired"]).strip(), networks=tuple(data["networks"]),
        input_boxes=boxes,
        unsafe=tuple(_read_conjunct(c, normalization, path, text) for c in unsafe["any_of"]),
        source=path)


def _check_types(data: dict[str, Any], path: Path, text: str) -> None:
    """The top-level keys of a ``phiN.toml`` have the types the format needs."""
    expected = {"number": (int, "an integer"), "description": (str, "a string"),
                "desired": (str, "a string"), "networks": (list, "an array"),
                "input_boxes": (list, "an array of tables"), "unsafe": (dict, "a table")}
    for key, (kind, what) in expected.items():
        value = data[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise SpecError(str(path), *_where(text, key), f"{key} must be {what}, got "
                            f"{_short(value)}")
    any_of = data["unsafe"].get("any_of")
    if any_of is not None and not isinstance(any_of, list):
        raise SpecError(str(path), *_where(text, "any_of"), "unsafe.any_of must be an array of "
                        "arrays of constraint strings")


def load_physical_properties(directory: str | os.PathLike[str] | None = None
                             ) -> list[PhysicalProperty]:
    """Read every ``phi*.toml`` of ``directory`` (default: :func:`default_properties_dir`).

    Returns
    -------
    list of PhysicalProperty
        Sorted by property number.

    Raises
    ------
    SpecError
        A malformed file, or two files with the same number.
    FileNotFoundError
        No ``normalization.toml`` in the directory.
    """
    directory = Path(directory) if directory is not None else default_properties_dir()
    norm = load_normalization(directory / NORMALIZATION_FILE)
    props = [load_physical_property(p, norm) for p in sorted(directory.glob("phi*.toml"))]
    numbers = [p.number for p in props]
    for p in props:
        if numbers.count(p.number) > 1:
            raise SpecError(str(p.source), 1, 1, f"property number {p.number} is used by "
                            "more than one file")
    return sorted(props, key=lambda p: p.number)


# -- compiling and exporting -------------------------------------------------

def compile_property(pp: PhysicalProperty, normalization: Normalization) -> Property:
    """The property in the networks' normalised coordinates (no clipping).

    Parameters
    ----------
    pp : PhysicalProperty
    normalization : Normalization

    Returns
    -------
    Property
        Named ``prop_N``; boxes of shape (5,), polytopes ``A`` of shape (k, 5).
    """
    boxes = []
    for box in pp.input_boxes:
        bounds = np.array(box, dtype=np.float64)  # (d, 2)
        boxes.append(Box(normalization.normalize_inputs(bounds[:, 0], clip=False),
                         normalization.normalize_inputs(bounds[:, 1], clip=False)))
    index = {name: j for j, name in enumerate(normalization.output_names)}
    polys = []
    for conjunct in pp.unsafe:
        A = np.zeros((len(conjunct), len(index)))
        b = np.zeros(len(conjunct))
        for r, constraint in enumerate(conjunct):
            for name, c in constraint.coeffs:
                A[r, index[name]] = c
            # a.(y*range + mean) + const <= 0  <=>  a.y <= -(const + mean*sum(a)) / range
            shift = constraint.const + normalization.output_mean * A[r].sum()
            b[r] = 0.0 - shift / normalization.output_range
        polys.append(HalfSpaces(A, b))
    return Property(tuple(boxes), tuple(polys), pp.name)


def _comment(pp: PhysicalProperty, norm: Normalization) -> str:
    lines = [f"ACAS Xu property phi{pp.number} (Katz et al. 2017), generated by "
             f"verirepair.tasks.acasxu.physical from properties/{pp.source.name}; do not edit.",
             pp.description, f"Desired (safe) behaviour: {pp.desired}",
             f"Networks: {' '.join(pp.networks)}"]
    for k, box in enumerate(pp.input_boxes, start=1):
        parts = [f"{n} in [{lo!r}, {hi!r}] {u}"
                 for n, u, (lo, hi) in zip(norm.input_names, norm.input_units, box, strict=True)]
        lines.append(f"Input box {k}: " + "; ".join(parts))
    disjuncts = [" and ".join(dict.fromkeys(c.text for c in conj)) for conj in pp.unsafe]
    lines.append("Unsafe if: " + " | ".join(f"({d})" for d in disjuncts))
    lines.append("Inputs normalised without clipping, x = (x_phys - mean) / range; output "
                 f"thresholds c become (c - {norm.output_mean!r}) / {norm.output_range!r}.")
    return "\n".join(lines)


def export_properties(src_dir: str | os.PathLike[str] | None = None,
                      dest_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Compile every ``phi*.toml`` of ``src_dir`` and write ``dest_dir/prop_N.vnnlib``.

    Each file is written atomically; nothing else in ``dest_dir`` is touched.
    Defaults: :func:`default_properties_dir` and :func:`default_vnnlib_dir`.

    Returns
    -------
    list of Path
        The written files, by property number.
    """
    src = Path(src_dir) if src_dir is not None else default_properties_dir()
    dest = Path(dest_dir) if dest_dir is not None else default_vnnlib_dir()
    norm = load_normalization(src / NORMALIZATION_FILE)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for pp in load_physical_properties(src):
        text = write_vnnlib(compile_property(pp, norm), comment=_comment(pp, norm))
        written.append(write_text_atomic(dest / f"{pp.name}.vnnlib", text))
    return written
