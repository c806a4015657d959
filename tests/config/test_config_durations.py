"""Durations: human forms in files, float seconds in code, and a dump that reads back the same."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from novacron.config import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("50ms", 0.05),
        ("30s", 30.0),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h30m", 5400.0),
        ("250 ms", 0.25),
        ("2S", 2.0),
        (" 10s ", 10.0),
        ("30", 30.0),
        ("0.25", 0.25),
        ("0s", 0.0),
        (30, 30.0),
        (0.5, 0.5),
    ],
)
def test_parse_accepts_human_forms_and_plain_seconds(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5 parsecs", "not a duration"),
        ("ms", "not a duration"),
        ("", "not a duration"),
        ("1.2.3s", "not a duration"),
        ("5msec", "not a duration"),
        ("5m30", "not a duration"),
        ("-1s", "must not be negative"),
        (-1, "must not be negative"),
        (-0.5, "must not be negative"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (True, "not a duration"),
        (None, "not a duration"),
        ([1], "not a duration"),
    ],
)
def test_parse_rejects_bad_forms_with_a_reason(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "500ms"),
        (0.05, "50ms"),
        (30.0, "30s"),
        (1.5, "1500ms"),
        (90.0, "90s"),
        (300.0, "5m"),
        (3600.0, "1h"),
        (5400.0, "90m"),
        (0.0, "0s"),
        (0.0001234, "0.0001234s"),
    ],
)
def test_format_picks_the_largest_whole_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_format_then_parse_gives_back_the_same_float(seconds: float) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("seconds", [5e-324, 1e-9, 123456.789, 1e300])
def test_format_round_trips_extreme_values(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
