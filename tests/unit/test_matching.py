from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from notifier.domain.audiences import Audiences
from notifier.domain.matching import match_subscribers, release_at, subscriber_matches
from notifier.domain.models import EventKind, Meeting, QuietHours, Subscriber

AUDIENCES = Audiences()

K = EventKind


@pytest.mark.parametrize(
    ("filters", "kind", "expected"),
    [
        ({}, K.POSTPONED, True),  # neither meetings nor tags: every meeting
        ({"meetings": ("talks",)}, K.POSTPONED, True),
        ({"meetings": ("other",)}, K.POSTPONED, False),
        ({"tags": ("bilateral",)}, K.POSTPONED, True),
        ({"tags": ("summit",)}, K.POSTPONED, False),
        ({"meetings": ("other",), "tags": ("bilateral",)}, K.POSTPONED, True),  # either one
        ({"events": ("meeting.cleared",)}, K.POSTPONED, False),
        ({"events": ("meeting.cleared",)}, K.CLEARED, True),
        ({"events": ("*",)}, K.REMINDER, True),
        ({"active": False}, K.CANCELLED, False),
    ],
)
def test_filters_on_meeting_tags_and_kinds(
    meeting_factory: Callable[..., Meeting],
    subscriber_factory: Callable[..., Subscriber],
    filters: dict[str, object],
    kind: EventKind,
    expected: bool,
) -> None:
    meeting = meeting_factory(id="talks", tags=("bilateral",))
    assert subscriber_matches(subscriber_factory(**filters), meeting, kind, AUDIENCES) is expected


def test_matches_come_back_sorted_by_id(
    meeting_factory: Callable[..., Meeting], subscriber_factory: Callable[..., Subscriber]
) -> None:
    subscribers = [subscriber_factory(id=name) for name in ("zeta", "alpha", "mid")]
    matched = match_subscribers(subscribers, meeting_factory(), K.CONFIRMED, AUDIENCES)
    assert [s.id for s in matched] == ["alpha", "mid", "zeta"]


@pytest.mark.parametrize(
    ("window", "local", "inside"),
    [
        ((time(22), time(7)), time(23, 30), True),
        ((time(22), time(7)), time(6, 59), True),
        ((time(22), time(7)), time(7), False),
        ((time(22), time(7)), time(12), False),
        ((time(12), time(14)), time(13), True),
        ((time(12), time(14)), time(14), False),
    ],
)
def test_quiet_hours_windows_may_span_midnight(
    window: tuple[time, time], local: time, inside: bool
) -> None:
    assert QuietHours(start=window[0], end=window[1]).contains(local) is inside


def test_quiet_hours_parse_and_print_round_trip() -> None:
    quiet = QuietHours.parse("22:00-07:30")
    assert (quiet.start, quiet.end) == (time(22), time(7, 30))
    assert str(quiet) == "22:00-07:30"
    for bad in ("22-07", "25:00-07:00", "07:00-07:00"):
        with pytest.raises(ValueError, match="quiet hours"):
            QuietHours.parse(bad)


def test_quiet_hours_hold_routine_news_until_morning_in_the_subscriber_zone(
    subscriber_factory: Callable[..., Subscriber],
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    subscriber = subscriber_factory(
        timezone="Europe/Berlin", quiet_hours=QuietHours(start=time(22), end=time(7))
    )
    night = datetime(2026, 3, 1, 23, 15, tzinfo=berlin).astimezone(UTC)
    released = release_at(subscriber, K.CONFIRMED, now=night)
    assert released == datetime(2026, 3, 2, 7, 0, tzinfo=berlin)
    # Urgent kinds go straight through.
    for kind in (K.POSTPONED, K.RESCHEDULED, K.CANCELLED):
        assert release_at(subscriber, kind, now=night) == night
    day = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert release_at(subscriber, K.CONFIRMED, now=day) == day
    early = datetime(2026, 3, 2, 5, 0, tzinfo=berlin)
    assert release_at(subscriber, K.REMINDER, now=early) == datetime(
        2026, 3, 2, 7, 0, tzinfo=berlin
    )
