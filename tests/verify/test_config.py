"""Specification of VerifyConfig's validation: a budget that cannot fire is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from verirepair.verify import VerifyConfig


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -math.inf, 0.0, -1.0, -1e-9])
def test_non_finite_or_non_positive_timeout_is_rejected(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout_s must be finite and positive"):
        VerifyConfig(timeout_s=timeout)


def test_non_numeric_timeout_is_rejected() -> None:
    with pytest.raises(ValueError, match="timeout_s must be a number"):
        VerifyConfig(timeout_s="soon")  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [1e-3, 5, 60.0, np.float64(2.5)])
def test_positive_timeouts_are_accepted(timeout: float) -> None:
    assert VerifyConfig(timeout_s=timeout).timeout_s == timeout


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("workers", 0),
                                          ("max_counterexamples", 0), ("falsify_samples", -1),
                                          ("pgd_steps", -5), ("batch_size", 2.5),
                                          ("workers", True)])
def test_counts_out_of_range_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{field} must be an integer >= "):
        VerifyConfig(**{field: value})


def test_numpy_integers_and_zero_samples_are_fine() -> None:
    config = VerifyConfig(batch_size=np.int64(8), falsify_samples=0, pgd_steps=0)
    assert config.batch_size == 8


def test_messages_show_numpy_numbers_plainly() -> None:
    with pytest.raises(ValueError) as info:
        VerifyConfig(batch_size=np.float64(2.5))
    assert "got 2.5" in str(info.value) and "np." not in str(info.value)
    with pytest.raises(ValueError) as info:
        VerifyConfig(timeout_s=np.float64(-1.0))
    assert "got -1.0" in str(info.value) and "np." not in str(info.value)
