"""UCI Adult and German Credit: reading, encoding and a seeded split.

Pipeline position: the edge of the fairness task.  ``load_dataset("adult")``
reads ``../shared/fairness`` (or ``$VERIREPAIR_FAIRNESS_DIR``), drops and counts
rows with missing values (``?``) or malformed lines, fits an encoding on the
training split and returns a :class:`FairnessData` whose ``x_train`` /
``x_test`` go straight into a classifier.

Encoding (written into every report as ``feature_layout``): a numeric column
``c`` becomes one input ``(value - offset) / scale`` with ``offset`` the training
minimum and ``scale`` the training range, so training values lie in ``[0, 1]``;
a categorical column becomes one one-hot input per value (values sorted; the
categories are those of the whole file, so the test split never meets an
unknown one).

German Credit's ``personal_status_sex`` mixes two attributes.  Its codes are
split on reading into ``sex`` (male: A91, A93, A94; female: A92, A95) and
``personal_status`` (the status part of the code), so that the protected
attribute ``sex`` can change alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verirepair.errors import DataMissingError, VerirepairError

__all__ = [
    "DATASETS", "ENV_VAR", "DataFormatError", "Encoding", "FairnessData", "FeatureSpec",
    "encode_rows", "fairness_dir", "fit_encoding", "load_dataset", "parse_rows", "split_indices",
]

ENV_VAR = "VERIREPAIR_FAIRNESS_DIR"


class DataFormatError(VerirepairError):
    """A data file with no usable row, or one whose rows cannot be read at all."""


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """How one data set's files are read."""

    name: str
    files: tuple[str, ...]
    columns: tuple[str, ...]
    numeric: frozenset[str]
    label: str
    positive: tuple[str, ...]
    separator: str | None          # None: any whitespace
    skip_prefix: str = "|"         # lines starting with it are comments (adult.test's first line)


ADULT = DatasetSpec(
    "adult", ("adult.data", "adult.test"),
    ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
     "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
     "income"),
    frozenset({"age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}),
    "income", (">50K", ">50K."), ",")

GERMAN = DatasetSpec(
    "german", ("german.data",),
    ("status", "duration", "credit_history", "purpose", "credit_amount", "savings", "employment_since",
     "installment_rate", "personal_status_sex", "other_debtors", "residence_since", "property", "age",
     "other_installment_plans", "housing", "existing_credits", "job", "people_liable", "telephone",
     "foreign_worker", "class"),
    frozenset({"duration", "credit_amount", "installment_rate", "residence_since", "age",
               "existing_credits", "people_liable"}),
    "class", ("1",), None)

DATASETS = {"adult": ADULT, "german": GERMAN}

#: German ``personal_status_sex`` code -> (sex, personal status), from the UCI codebook.
GERMAN_SEX_STATUS = {"A91": ("male", "divorced/separated"), "A92": ("female", "divorced/separated/married"),
                     "A93": ("male", "single"), "A94": ("male", "married/widowed"),
                     "A95": ("female", "single")}

MISSING = "?"


def fairness_dir() -> Path:
    """``$VERIREPAIR_FAIRNESS_DIR`` if set, else ``../shared/fairness`` beside the checkout."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[3]
    if (repo_root / "pyproject.toml").is_file():
        return repo_root.parent / "shared" / "fairness"
    return Path.cwd().parent / "shared" / "fairness"


@dataclass(frozen=True, slots=True)
class ParsedRows:
    """Rows of one data set as strings, with what was dropped and why.

    ``rows`` are dicts column -> value (German's sex split already applied);
    ``missing`` counts, per column, the dropped rows with ``?`` there;
    ``malformed`` lists ``(file, line number, reason)`` of unreadable lines.
    """

    rows: tuple[dict[str, str], ...]
    columns: tuple[str, ...]
    missing: dict[str, int]
    rows_with_missing: int
    malformed: tuple[tuple[str, int, str], ...]


def parse_rows(spec: DatasetSpec, texts: Sequence[tuple[str, str]]) -> ParsedRows:
    """Read data-file texts into rows of strings.

    Parameters
    ----------
    spec : DatasetSpec
    texts : sequence of (file name, file text)

    Returns
    -------
    ParsedRows
        Blank lines and ``spec.skip_prefix`` comment lines are skipped; lines
        with the wrong number of fields, an unreadable number, an unknown label
        or an unknown German code are dropped and listed in ``malformed``;
        rows with a missing value are dropped and counted per column.
    """
    rows: list[dict[str, str]] = []
    missing: dict[str, int] = {}
    with_missing = 0
    malformed: list[tuple[str, int, str]] = []
    width = len(spec.columns)
    labels = set(spec.positive) | _negative_labels(spec)
    for file_name, text in texts:
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith(spec.skip_prefix):
                continue
            parts = ([p.strip() for p in stripped.split(spec.separator)] if spec.separator
                     else stripped.split())
            if len(parts) != width:
                malformed.append((file_name, number, f"expected {width} fields, got {len(parts)}"))
                continue
            row = dict(zip(spec.columns, parts, strict=True))
            absent = [c for c in spec.columns if row[c] == MISSING]
            if absent:
                with_missing += 1
                for column in absent:
                    missing[column] = missing.get(column, 0) + 1
                continue
            problem = _row_problem(spec, row, labels)
            if problem:
                malformed.append((file_name, number, problem))
                continue
            rows.append(_split_german(row) if spec is GERMAN else row)
    columns = spec.columns
    if spec is GERMAN:
        columns = tuple(c for c in spec.columns if c != "personal_status_sex") + ("sex", "personal_status")
    return ParsedRows(tuple(rows), columns, missing, with_missing, tuple(malformed))


def _negative_labels(spec: DatasetSpec) -> set[str]:
    return {"<=50K", "<=50K."} if spec is ADULT else {"2"}


def _row_problem(spec: DatasetSpec, row: dict[str, str], labels: set[str]) -> str:
    for column in spec.numeric:
        try:
            value = float(row[column])
        except ValueError:
            return f"column {column!r}: expected a number, got {row[column]!r}"
        if not np.isfinite(value):
            return f"column {column!r}: expected a finite number, got {row[column]!r}"
    if row[spec.label] not in labels:
        return f"column {spec.label!r}: expected one of {sorted(labels)}, got {row[spec.label]!r}"
    if spec is GERMAN and row["personal_status_sex"] not in GERMAN_SEX_STATUS:
        return (f"column 'personal_status_sex': expected one of {sorted(GERMAN_SEX_STATUS)}, "
                f"got {row['personal_status_sex']!r}")
    return ""


def _split_german(row: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in row.items() if k != "personal_status_sex"}
    out["sex"], out["personal_status"] = GERMAN_SEX_STATUS[row["personal_status_sex"]]
    return out


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One encoded column: numeric ``(value - offset) / scale`` or one-hot over ``values``."""

    column: str
    kind: str                     # "numeric" or "onehot"
    start: int                    # first input index
    offset: float = 0.0
    scale: float = 1.0
    values: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        """Number of inputs the column occupies."""
        return 1 if self.kind == "numeric" else len(self.values)

    @property
    def indices(self) -> np.ndarray:
        """Input indices of the column, shape ``(width,)``."""
        return np.arange(self.start, self.start + self.width)


@dataclass(frozen=True, slots=True)
class Encoding:
    """The feature encoding of a data set: one :class:`FeatureSpec` per source column."""

    features: tuple[FeatureSpec, ...]

    @property
    def n_inputs(self) -> int:
        """Width of the encoded vector."""
        return sum(f.width for f in self.features)

    def feature(self, column: str) -> FeatureSpec:
        """The spec of ``column``; ``KeyError`` naming the known columns otherwise."""
        for spec in self.features:
            if spec.column == column:
                return spec
        raise KeyError(f"no column {column!r}; columns: {', '.join(f.column for f in self.features)}")

    def layout(self) -> list[dict]:
        """``feature_layout`` as written into ``report.json``: one entry per input index."""
        entries: list[dict] = []
        for spec in self.features:
            if spec.kind == "numeric":
                entries.append({"index": spec.start, "column": spec.column, "kind": "numeric",
                                "offset": spec.offset, "scale": spec.scale})
            else:
                entries.extend({"index": spec.start + k, "column": spec.column, "kind": "onehot", "value": v}
                               for k, v in enumerate(spec.values))
        return entries

    def numeric_indices(self) -> np.ndarray:
        """Input indices of the numeric columns, shape ``(k,)``."""
        return np.array([f.start for f in self.features if f.kind == "numeric"], dtype=int)


def fit_encoding(rows: Sequence[dict[str, str]], columns: Sequence[str], numeric: frozenset[str],
                 all_rows: Sequence[dict[str, str]] | None = None) -> Encoding:
    """Fit offsets/scales on ``rows`` and categories on ``all_rows`` (default ``rows``).

    A numeric column that is constant on ``rows`` gets ``scale = 1``.
    """
    source = rows if all_rows is None else all_rows
    features: list[FeatureSpec] = []
    start = 0
    for column in columns:
        if column in numeric:
            values = np.array([float(r[column]) for r in rows])
            low, high = float(values.min()), float(values.max())
            features.append(FeatureSpec(column, "numeric", start, low, (high - low) or 1.0))
        else:
            features.append(FeatureSpec(column, "onehot", start, values=tuple(sorted({r[column] for r in source}))))
        start += features[-1].width
    return Encoding(tuple(features))


def encode_rows(encoding: Encoding, rows: Sequence[dict[str, str]]) -> np.ndarray:
    """Encode rows into an array of shape ``(n, encoding.n_inputs)``.

    Raises
    ------
    ValueError
        A categorical value the encoding does not know.
    """
    x = np.zeros((len(rows), encoding.n_inputs))
    for spec in encoding.features:
        if spec.kind == "numeric":
            x[:, spec.start] = (np.array([float(r[spec.column]) for r in rows]) - spec.offset) / spec.scale
            continue
        position = {v: k for k, v in enumerate(spec.values)}
        for i, row in enumerate(rows):
            value = row[spec.column]
            if value not in position:
                raise ValueError(f"column {spec.column!r}: unknown value {value!r}; known: {', '.join(spec.values)}")
            x[i, spec.start + position[value]] = 1.0
    return x


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``range(n)`` into sorted (train, test) index arrays."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


@dataclass(frozen=True, slots=True)
class FairnessData:
    """An encoded, split data set.

    Attributes
    ----------
    name : str
    encoding : Encoding
    x_train, x_test : arrays, shape (n, d)
    y_train, y_test : int arrays, shape (n,) (1 = ``>50K`` for Adult, 1 = good credit for German)
    rows_train, rows_test : the source rows (strings), aligned with x
    n_read : int
        Rows read (before dropping).
    missing : dict
        Per column, dropped rows with a missing value there.
    rows_with_missing : int
    malformed : tuple of (file, line, reason)
    """

    name: str
    encoding: Encoding
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    rows_train: tuple[dict[str, str], ...] = field(repr=False)
    rows_test: tuple[dict[str, str], ...] = field(repr=False)
    n_read: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    rows_with_missing: int = 0
    malformed: tuple[tuple[str, int, str], ...] = ()

    def summary(self) -> dict:
        """Counts for reports (JSON-ready)."""
        return {"data": self.name, "rows_read": self.n_read, "rows_used": len(self.rows_train) + len(self.rows_test),
                "rows_dropped_missing": self.rows_with_missing, "missing_by_column": dict(self.missing),
                "rows_dropped_malformed": len(self.malformed), "n_train": int(self.x_train.shape[0]),
                "n_test": int(self.x_test.shape[0]), "n_inputs": self.encoding.n_inputs,
                "positive_rate_train": float(np.mean(self.y_train))}


def build_dataset(spec: DatasetSpec, texts: Sequence[tuple[str, str]], seed: int = 0,
                  test_fraction: float = 0.2) -> FairnessData:
    """Parse, split (seeded), fit the encoding on the training split and encode."""
    parsed = parse_rows(spec, texts)
    if len(parsed.rows) < 2:
        detail = f"; first malformed line: {parsed.malformed[0]}" if parsed.malformed else ""
        raise DataFormatError(f"{spec.name}: only {len(parsed.rows)} usable row(s) in "
                              f"{', '.join(n for n, _ in texts)}{detail}")
    features = [c for c in parsed.columns if c != spec.label]
    train_idx, test_idx = split_indices(len(parsed.rows), test_fraction, seed)
    rows_train = tuple(parsed.rows[i] for i in train_idx)
    rows_test = tuple(parsed.rows[i] for i in test_idx)
    encoding = fit_encoding(rows_train, features, spec.numeric, parsed.rows)
    positive = set(spec.positive)

    def labels(rows: Sequence[dict[str, str]]) -> np.ndarray:
        return np.array([int(r[spec.label] in positive) for r in rows], dtype=int)

    n_read = len(parsed.rows) + parsed.rows_with_missing + len(parsed.malformed)
    return FairnessData(spec.name, encoding, encode_rows(encoding, rows_train), labels(rows_train),
                        encode_rows(encoding, rows_test), labels(rows_test), rows_train, rows_test,
                        n_read, parsed.missing, parsed.rows_with_missing, parsed.malformed)


def load_dataset(name: str, seed: int = 0, test_fraction: float = 0.2,
                 folder: Path | None = None) -> FairnessData:
    """Read ``adult`` or ``german`` from the fairness data folder and encode it.

    Parameters
    ----------
    name : {"adult", "german"}
    seed : int
        Seed of the train/test split.
    test_fraction : float
    folder : Path, optional
        Defaults to :func:`fairness_dir`.

    Raises
    ------
    KeyError
        Unknown data set name.
    DataMissingError
        The folder or one of the data set's files does not exist.
    DataFormatError
        No usable rows.
    """
    if name not in DATASETS:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    folder = fairness_dir() if folder is None else Path(folder)
    texts = []
    for file_name in spec.files:
        path = folder / file_name
        if not path.is_file():
            raise DataMissingError(f"{name} data not found: expected {path} (UCI file {file_name}; set "
                                   f"${ENV_VAR} or put the files in {folder}; see ../shared/fairness/SOURCE.md)")
        texts.append((file_name, path.read_text(encoding="utf-8", errors="replace")))
    return build_dataset(spec, texts, seed, test_fraction)
