"""`normal_address`: the one spelling of an email address notifier stores and compares."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.domain.recipients import normal_address


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("Ann@Example.ORG", "ann@example.org"),
        ("  ann@example.org\t\r\n", "ann@example.org"),
        ("ANN+Talks@example.org", "ann+talks@example.org"),
    ],
)
def test_case_and_surrounding_space_are_ignored_the_local_part_too(
    written: str, stored: str
) -> None:
    assert normal_address(written) == stored


@pytest.mark.parametrize(
    "kept",
    [
        "<ann@example.org>",  # not parsed: brackets stay
        "ann smith@example.org",  # inner space stays
        "a.n.n+tag@example.org",  # dots and +tags stay
        "straße@bücher.example",  # lower-cased only: no folding, no IDNA
        "not an address",  # not validated
        "",
    ],
)
def test_nothing_but_case_and_surrounding_space_changes(kept: str) -> None:
    assert normal_address(kept) == kept


@given(st.text())
def test_it_is_what_the_store_has_always_written(text: str) -> None:
    # The suppression list and the bounces already hold addresses written this way.
    assert normal_address(text) == text.strip().lower()


@given(st.text())
def test_it_is_idempotent(text: str) -> None:
    assert normal_address(normal_address(text)) == normal_address(text)
