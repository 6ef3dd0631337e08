"""Times as people write them, resolved against a meeting's zone: RFC 9557, offsets, bare
local times; gaps and folds refused with both candidates named; what a change of clock
rules does to a wall-anchored and an instant-anchored meeting (notifier.domain.clock and
machine.clock_rules_changed). Instants are computed independently where it matters (UTC
arithmetic on the zone's known offsets), not read back through the code under test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.domain.clock import (
    Anchor,
    ClockChange,
    Wall,
    candidates,
    instant_at,
    parse_moment,
    same_instant,
    wall_of,
)
from notifier.domain.errors import InvalidChange
from notifier.domain.machine import clock_rules_changed
from notifier.domain.models import EventKind, Meeting, MeetingStatus, Source

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def resolve(text: str, zone: str, fold: int | None = None) -> datetime:
    return parse_moment(text, fold=fold).resolve(zone)


def test_the_three_forms_name_the_same_instant() -> None:
    expected = datetime(2026, 12, 10, 16, 0, tzinfo=UTC)  # 19:00 at UTC+3
    for text in (
        "2026-12-10T19:00",
        "2026-12-10T19:00:00+03:00",
        "2026-12-10T16:00Z",
        "2026-12-10T19:00+03:00[Europe/Moscow]",
        "2026-12-10T19:00[Europe/Moscow]",
        "2026-12-10T19:00+03:00[Europe/Moscow][u-ca=iso8601]",
    ):
        assert resolve(text, "Europe/Moscow").astimezone(UTC) == expected, text


def test_an_offset_the_zone_does_not_give_is_refused_with_both_named() -> None:
    with pytest.raises(InvalidChange) as refused:
        resolve("2026-12-10T19:00+04:00[Europe/Moscow]", "Europe/Moscow")
    message = str(refused.value)
    assert "+04:00" in message
    assert "+03:00" in message
    assert message.startswith("starts_at:")


def test_a_time_the_clocks_skip_is_refused_with_the_two_readings() -> None:
    with pytest.raises(InvalidChange) as refused:
        resolve("2026-03-29T02:30", "Europe/Berlin")
    message = str(refused.value)
    assert "does not exist in Europe/Berlin" in message
    assert "2026-03-29T01:30+01:00" in message
    assert "2026-03-29T03:30+02:00" in message


def test_a_time_the_clocks_pass_twice_needs_a_fold_or_an_offset() -> None:
    with pytest.raises(InvalidChange) as refused:
        resolve("2026-10-25T02:30", "Europe/Berlin")
    message = str(refused.value)
    assert "happens twice in Europe/Berlin" in message
    assert "2026-10-25T02:30+02:00 (fold 0, the first)" in message
    assert "2026-10-25T02:30+01:00 (fold 1, the second)" in message
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert resolve("2026-10-25T02:30", "Europe/Berlin", fold=0).astimezone(UTC) == first
    second = first + timedelta(hours=1)
    assert resolve("2026-10-25T02:30", "Europe/Berlin", fold=1).astimezone(UTC) == second
    bracketed = "2026-10-25T02:30+01:00[Europe/Berlin]"
    assert resolve(bracketed, "Europe/Berlin").astimezone(UTC) == second


def test_a_zone_in_brackets_must_be_the_meetings() -> None:
    with pytest.raises(InvalidChange, match=r"given in \[Asia/Tokyo\] but the meeting's zone"):
        resolve("2026-12-10T19:00+09:00[Asia/Tokyo]", "Europe/Moscow")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tomorrow at seven", "write 2026-12-10T19:00"),
        ("2026-12-10T19:00[Mars/Olympus]", "unknown time zone [Mars/Olympus]"),
        ("2026-12-10T19:00[+03:00]", "is an offset, not a time zone"),
        ("2026-12-10T19:00[!u-ca=hebrew]", "critical tag"),
        ("2026-12-10T19:00[Europe/Moscow][Asia/Tokyo]", "more than one time zone"),
        ("0999-12-10T19:00", "the year is between 1000 and 8999"),
        ("2026-02-30T19:00", "invalid time"),
    ],
)
def test_what_is_not_a_time_is_refused_saying_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_moment(text)


@settings(max_examples=200, deadline=None)
@given(
    minutes=st.integers(min_value=0, max_value=60 * 24 * 365 * 3),
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]),
)
def test_every_instant_reads_back_to_itself(minutes: int, zone: str) -> None:
    """A local reading and its fold name the instant they were read from, in any zone
    (Lord Howe moves by 30 minutes)."""
    instant = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    wall = wall_of(instant, None, zone, tzdata="x")
    assert same_instant(instant_at(wall.starts, zone, fold=wall.fold), instant)
    found = candidates(wall.starts, zone)
    assert any(same_instant(c, instant) for c in found)


def test_same_instant_is_not_fooled_by_a_shared_zone() -> None:
    first = resolve("2026-10-25T02:30", "Europe/Berlin", fold=0)
    second = resolve("2026-10-25T02:30", "Europe/Berlin", fold=1)
    assert first == second  # Python compares one tzinfo's times by their wall reading
    assert not same_instant(first, second)


def _meeting(anchor: Anchor, starts_at: datetime) -> Meeting:
    return Meeting(
        id="talks",
        title="Talks",
        timezone="Asia/Almaty",
        starts_at=starts_at,
        status=MeetingStatus.CONFIRMED,
        sequence=3,
        anchor=anchor,
    )


def test_a_wall_meeting_keeps_its_local_time_when_the_rules_move_its_instant() -> None:
    # Stored when Almaty was UTC+6: 19:00 local was 13:00 UTC. Read now (UTC+5), the same
    # 19:00 local is 14:00 UTC.
    stored = datetime(2026, 12, 10, 13, 0, tzinfo=UTC)
    wall = Wall(
        starts=datetime.fromisoformat("2026-12-10T19:00"), offset=timedelta(hours=6), tzdata="old"
    )
    derived = instant_at(wall.starts, "Asia/Almaty")
    assert derived.astimezone(UTC) == datetime(2026, 12, 10, 14, 0, tzinfo=UTC)
    moved = clock_rules_changed(
        _meeting(Anchor.WALL, derived), stored_starts_at=stored, wall=wall, now=NOW, tzdata="new"
    )
    assert moved is not None
    assert moved.meeting.sequence == 4
    entry = moved.entry
    assert (entry.kind, entry.source, entry.sequence) == (EventKind.UPDATED, Source.TZDATA, 4)
    assert same_instant(entry.previous_starts_at, stored)
    assert same_instant(entry.starts_at, derived)
    assert entry.clock == ClockChange(
        zone="Asia/Almaty",
        anchor=Anchor.WALL,
        local_before=wall.starts,
        local_after=wall.starts,
        offset_before=timedelta(hours=6),
        offset_after=timedelta(hours=5),
        tzdata_before="old",
        tzdata_after="new",
    )
    assert ClockChange.from_dict(entry.clock.to_dict()) == entry.clock
    # Read again once written: nothing moves twice.
    assert (
        clock_rules_changed(
            moved.meeting,
            stored_starts_at=derived,
            wall=wall_of(derived, None, "Asia/Almaty", tzdata="new"),
            now=NOW,
            tzdata="new",
        )
        is None
    )


def test_an_instant_meeting_keeps_its_instant_and_announces_the_new_local_time() -> None:
    stored = datetime(2026, 12, 10, 13, 0, tzinfo=UTC)
    wall = Wall(
        starts=datetime.fromisoformat("2026-12-10T19:00"), offset=timedelta(hours=6), tzdata="old"
    )
    moved = clock_rules_changed(
        _meeting(Anchor.INSTANT, stored.astimezone(UTC)),
        stored_starts_at=stored,
        wall=wall,
        now=NOW,
        tzdata="new",
    )
    assert moved is not None
    assert same_instant(moved.meeting.starts_at, stored)
    assert moved.entry.previous_starts_at is None
    assert moved.entry.clock is not None
    assert moved.entry.clock.local_after == _local("2026-12-10T18:00")
    assert moved.entry.clock.anchor is Anchor.INSTANT


def _local(text: str) -> datetime:
    """A naive local time (what `Wall` keeps)."""
    return datetime.fromisoformat(text)
