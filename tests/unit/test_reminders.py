from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.domain.audiences import Audiences
from notifier.domain.models import Meeting, MeetingStatus, Subscriber
from notifier.domain.reminders import plan_reminders, reminder_instant

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def test_a_day_before_across_the_spring_jump_is_24_elapsed_hours() -> None:
    # New York moves to EDT at 02:00 on 8 March 2026: 10:00 EDT is 14:00 UTC.
    starts = datetime(2026, 3, 8, 10, 0, tzinfo=NEW_YORK)
    due = reminder_instant(starts, timedelta(hours=24))
    assert due == datetime(2026, 3, 7, 14, 0, tzinfo=UTC)
    # ...which the day before, still on EST, reads 09:00 on the wall clock.
    assert due.astimezone(NEW_YORK).hour == 9
    # Naive wall-clock arithmetic would have been an hour late.
    assert starts - timedelta(hours=24) != due


def test_an_hour_before_inside_the_autumn_fold_is_exact() -> None:
    # Berlin falls back at 03:00 CEST on 25 October 2026; 03:30 CET comes after 02:30 twice.
    starts = datetime(2026, 10, 25, 3, 30, tzinfo=BERLIN)
    due = reminder_instant(starts, timedelta(hours=1))
    assert starts.astimezone(UTC) - due == timedelta(hours=1)
    assert due == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert due.astimezone(BERLIN).fold == 1  # the second 02:30


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        reminder_instant(datetime(2026, 3, 2, 19, 0), timedelta(hours=1))  # noqa: DTZ001 -- the point


zones = st.sampled_from(
    [
        "Europe/Moscow",
        "America/New_York",
        "Europe/Berlin",
        "Asia/Tbilisi",
        "Australia/Lord_Howe",
        "UTC",
    ]
)


@given(
    # hypothesis generates wall-clock times; the zone is attached in the test.
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)),  # noqa: DTZ001
    zones,
    st.integers(min_value=1, max_value=14 * 86_400),
)
def test_every_reminder_is_exactly_its_offset_before_the_start(
    local: datetime, zone: str, seconds: int
) -> None:
    starts = local.replace(tzinfo=ZoneInfo(zone))
    offset = timedelta(seconds=seconds)
    due = reminder_instant(starts, offset)
    assert due.tzinfo is UTC
    assert starts.astimezone(UTC) - due == offset


def test_plans_one_reminder_per_subscriber_offset_still_ahead(
    meeting_factory: Callable[..., Meeting], subscriber_factory: Callable[..., Subscriber]
) -> None:
    starts = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    meeting = meeting_factory(
        id="talks", starts_at=starts, status=MeetingStatus.RESCHEDULED, sequence=4
    )
    press = subscriber_factory(id="press", reminders=(timedelta(hours=1), timedelta(minutes=15)))
    wire = subscriber_factory(id="wire", reminders=(timedelta(days=2),))
    other = subscriber_factory(id="other", meetings=("elsewhere",), reminders=(timedelta(hours=1),))
    now = starts - timedelta(days=1)
    plan = plan_reminders(meeting, [press, wire, other], now=now, audiences=Audiences())
    assert [(r.subscriber_id, r.offset) for r in plan] == [
        ("press", timedelta(hours=1)),
        ("press", timedelta(minutes=15)),
    ]
    assert all(r.sequence == 4 and r.due_at > now for r in plan)


@pytest.mark.parametrize(
    "status",
    [
        MeetingStatus.POSTPONED,
        MeetingStatus.CANCELLED,
        MeetingStatus.CONCLUDED,
        MeetingStatus.IN_PROGRESS,
    ],
)
def test_no_reminders_for_a_meeting_that_is_not_on_schedule(
    meeting_factory: Callable[..., Meeting],
    subscriber_factory: Callable[..., Subscriber],
    status: MeetingStatus,
) -> None:
    meeting = meeting_factory(status=status)
    subscriber = subscriber_factory(reminders=(timedelta(hours=1),))
    assert (
        plan_reminders(
            meeting, [subscriber], now=meeting.starts_at - timedelta(days=3), audiences=Audiences()
        )
        == []
    )


def test_no_reminders_for_subscribers_who_do_not_take_them(
    meeting_factory: Callable[..., Meeting], subscriber_factory: Callable[..., Subscriber]
) -> None:
    meeting = meeting_factory()
    now = meeting.starts_at - timedelta(days=3)
    inactive = subscriber_factory(reminders=(timedelta(hours=1),), active=False)
    no_reminder_kind = subscriber_factory(
        reminders=(timedelta(hours=1),), events=("meeting.postponed",)
    )
    assert (
        plan_reminders(meeting, [inactive, no_reminder_kind], now=now, audiences=Audiences()) == []
    )


def test_a_meeting_at_the_dawn_of_the_calendar_plans_no_reminder_and_raises_nothing() -> None:
    # Schemathesis made one (starts 0001-01-01): every offset went below datetime.min, and
    # saving any subscriber answered 500 (OverflowError) from then on.
    from datetime import UTC, datetime, timedelta

    from notifier.domain.reminders import reminder_instant

    dawn = datetime(1, 1, 1, 0, 30, tzinfo=UTC)
    assert reminder_instant(dawn, timedelta(days=1)) == datetime.min.replace(tzinfo=UTC)
    assert reminder_instant(dawn, timedelta(minutes=10)) == datetime(1, 1, 1, 0, 20, tzinfo=UTC)
