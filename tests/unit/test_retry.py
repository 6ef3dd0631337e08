from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.domain.models import EventKind
from notifier.domain.outbox import (
    AttemptResult,
    Channel,
    Delivery,
    DeliveryStatus,
    Outcome,
    after_attempt,
)
from notifier.domain.retry import DEFAULT_SCHEDULE, RetryPolicy

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_the_default_schedule_is_the_documented_one() -> None:
    hours = [d.total_seconds() / 3600 for d in DEFAULT_SCHEDULE]
    assert DEFAULT_SCHEDULE[:3] == (timedelta(0), timedelta(seconds=5), timedelta(minutes=5))
    assert hours[3:] == [0.5, 2, 5, 10, 14, 20, 24]


def test_without_jitter_each_retry_waits_its_scheduled_delay() -> None:
    policy = RetryPolicy(jitter=0)
    for attempts, delay in enumerate(DEFAULT_SCHEDULE[1:], start=1):
        assert policy.next_attempt(attempts=attempts, now=NOW, random=0.9) == NOW + delay
    assert policy.next_attempt(attempts=len(DEFAULT_SCHEDULE), now=NOW, random=0) is None


@given(st.integers(min_value=1, max_value=9), st.floats(min_value=0, max_value=0.999))
def test_jitter_only_lengthens_a_delay_by_at_most_its_fraction(attempts: int, r: float) -> None:
    policy = RetryPolicy(jitter=0.2)
    due = policy.next_attempt(attempts=attempts, now=NOW, random=r)
    assert due is not None
    base = DEFAULT_SCHEDULE[attempts]
    assert NOW + base <= due <= NOW + base * 1.2


def test_retry_after_is_honoured_but_capped() -> None:
    policy = RetryPolicy(jitter=0)
    assert policy.next_attempt(attempts=1, now=NOW, random=0, retry_after=600) == NOW + timedelta(
        minutes=10
    )
    # Shorter than the schedule: the schedule wins.
    assert policy.next_attempt(attempts=2, now=NOW, random=0, retry_after=1) == NOW + timedelta(
        minutes=5
    )
    assert policy.next_attempt(attempts=1, now=NOW, random=0, retry_after=10**9) == NOW + timedelta(
        hours=24
    )


def delivery(attempts: int = 0) -> Delivery:
    return Delivery(
        id="msg_1",
        meeting_id="m",
        subscriber_id="s",
        channel=Channel.WEBHOOK,
        kind=EventKind.CLEARED,
        sequence=1,
        notice_id="ntc_1",
        next_attempt_at=NOW,
        attempts=attempts,
    )


@pytest.mark.parametrize(
    ("outcome", "attempts", "status"),
    [
        (Outcome.SENT, 0, DeliveryStatus.SENT),
        (Outcome.PERMANENT, 0, DeliveryStatus.DEAD),
        (Outcome.TEMPORARY, 0, DeliveryStatus.RETRYING),
        (Outcome.TEMPORARY, 8, DeliveryStatus.RETRYING),
        (Outcome.TEMPORARY, 9, DeliveryStatus.DEAD),  # the tenth attempt was the last
    ],
)
def test_after_an_attempt(outcome: Outcome, attempts: int, status: DeliveryStatus) -> None:
    result = after_attempt(
        delivery(attempts),
        AttemptResult(outcome=outcome),
        at=NOW,
        duration_ms=3,
        policy=RetryPolicy(jitter=0),
        random=0.5,
    )
    assert result.status is status
    assert (result.next_attempt_at is not None) == (status is DeliveryStatus.RETRYING)
