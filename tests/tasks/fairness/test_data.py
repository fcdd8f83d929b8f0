"""Loaders of the fairness data: parsing, missing values, malformed rows, encoding, split, missing folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verirepair.errors import DataMissingError
from verirepair.tasks.fairness.data import (
    ADULT,
    GERMAN,
    DataFormatError,
    build_dataset,
    encode_rows,
    fit_encoding,
    load_dataset,
    parse_rows,
    split_indices,
)

ADULT_TEXT = """\
39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, US, <=50K
50, ?, 83311, Bachelors, 13, Married-civ-spouse, ?, Husband, White, Male, 0, 0, 13, US, <=50K

38, Private, 215646, HS-grad, 9, Divorced, Handlers-cleaners, Not-in-family, White, Male, 0, 0, 40
53, Private, 234721, 11th, 7, Married-civ-spouse, Handlers-cleaners, Husband, Black, Male, 0, 0, 40, ?, >50K
28, Private, 338409, Bachelors, 13, Married-civ-spouse, Prof-specialty, Wife, Black, Female, 0, 0, 40, Cuba, >50K
x7, Private, 338409, Bachelors, 13, Married-civ-spouse, Prof-specialty, Wife, Black, Female, 0, 0, 40, Cuba, >50K
37, Private, 284582, Masters, 14, Married-civ-spouse, Exec-managerial, Wife, White, Female, 0, 0, 40, US, maybe
"""
ADULT_TEST_TEXT = """\
|1x3 Cross validator
25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, US, <=50K.
44, Private, 160323, College, 10, Married-civ-spouse, Machine-op-inspct, Husband, Black, Male, 7688, 0, 40, US, >50K.
"""
GERMAN_TEXT = """\
A11 6 A34 A43 1169 A65 A75 4 A93 A101 4 A121 67 A143 A152 2 A173 1 A192 A201 1
A12 48 A32 A43 5951 A61 A73 2 A92 A101 2 A121 22 A143 A152 1 A173 1 A191 A201 2
A14 12 A34 A46 2096 A61 A74 2 A99 A101 3 A121 49 A143 A152 1 A172 2 A191 A201 1
A11 42 A32 A42 7882 A61 A74 2 A95 A103 4 A122 45 A143 A153 1 A173 2 A191 A201 1
"""


def test_adult_rows_missing_counted_and_malformed_listed() -> None:
    parsed = parse_rows(ADULT, [("adult.data", ADULT_TEXT), ("adult.test", ADULT_TEST_TEXT)])
    assert len(parsed.rows) == 4          # 2 good in each file
    assert parsed.rows_with_missing == 2
    assert parsed.missing == {"workclass": 1, "occupation": 1, "native-country": 1}
    lines = [(f, n) for f, n, _ in parsed.malformed]
    assert lines == [("adult.data", 4), ("adult.data", 7), ("adult.data", 8)]
    reasons = [r for *_, r in parsed.malformed]
    assert "expected 15 fields, got 13" in reasons[0]
    assert "'age': expected a number" in reasons[1]
    assert "'income'" in reasons[2]


def test_adult_labels_and_test_split_dots() -> None:
    data = build_dataset(ADULT, [("adult.data", ADULT_TEXT), ("adult.test", ADULT_TEST_TEXT)], seed=0,
                         test_fraction=0.25)
    labels = sorted(np.concatenate([data.y_train, data.y_test]).tolist())
    assert labels == [0, 0, 1, 1]          # <=50K, <=50K., >50K, >50K.
    assert data.summary()["rows_read"] == 9 and data.summary()["rows_dropped_malformed"] == 3


def test_german_sex_split_from_personal_status() -> None:
    parsed = parse_rows(GERMAN, [("german.data", GERMAN_TEXT)])
    assert [(r["sex"], r["personal_status"]) for r in parsed.rows] == [
        ("male", "single"), ("female", "divorced/separated/married"), ("female", "single")]
    assert "personal_status_sex" not in parsed.columns and parsed.columns[-2:] == ("sex", "personal_status")
    assert parsed.malformed[0][1] == 3 and "A99" in parsed.malformed[0][2]


def test_encoding_layout_scaling_and_onehot() -> None:
    rows = [{"c": "b", "v": "10"}, {"c": "a", "v": "30"}, {"c": "b", "v": "20"}]
    encoding = fit_encoding(rows, ("c", "v"), frozenset({"v"}))
    assert encoding.layout() == [
        {"index": 0, "column": "c", "kind": "onehot", "value": "a"},
        {"index": 1, "column": "c", "kind": "onehot", "value": "b"},
        {"index": 2, "column": "v", "kind": "numeric", "offset": 10.0, "scale": 20.0}]
    np.testing.assert_array_equal(encode_rows(encoding, rows), [[0, 1, 0.0], [1, 0, 1.0], [0, 1, 0.5]])
    with pytest.raises(ValueError, match="unknown value 'z'"):
        encode_rows(encoding, [{"c": "z", "v": "1"}])


def test_split_is_seeded_and_disjoint() -> None:
    train, test = split_indices(50, 0.2, seed=3)
    again, _ = split_indices(50, 0.2, seed=3)
    other, _ = split_indices(50, 0.2, seed=4)
    assert test.size == 10 and np.intersect1d(train, test).size == 0 and train.size + test.size == 50
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)


def test_no_usable_row_is_one_clear_error() -> None:
    with pytest.raises(DataFormatError, match="only 0 usable row"):
        build_dataset(GERMAN, [("german.data", "A11 6 A34\n")])


def test_missing_folder_names_the_file_and_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DataMissingError, match=r"german data not found: expected .*german\.data.*"
                                               r"VERIREPAIR_FAIRNESS_DIR"):
        load_dataset("german", folder=tmp_path / "nowhere")
    with pytest.raises(KeyError, match="known: adult, german"):
        load_dataset("bank")
