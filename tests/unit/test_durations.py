from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.domain.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("1d2h", timedelta(days=1, hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("2w", timedelta(days=14)),
        (" 24H ", timedelta(hours=24)),
    ],
)
def test_parses_the_forms_people_write(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "use a number and a unit"),
        ("15", "use a number and a unit"),
        ("1.5h", "use a number and a unit"),
        ("-1h", "use a number and a unit"),
        ("h", "use a number and a unit"),
        ("2h1d", "largest first"),
        ("1h1h", "at most once"),
        ("0s", "longer than zero"),
    ],
)
def test_refuses_malformed_durations_saying_why(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10**8))
def test_format_then_parse_is_the_identity(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value
