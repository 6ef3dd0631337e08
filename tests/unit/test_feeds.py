from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifier.domain.models import Meeting, MeetingStatus, Source
from notifier.sources.feed import Change, Create, Details, FeedItem, actions_for, snapshot
from notifier.sources.ics import FeedError, parse_ics
from notifier.sources.jsonfeed import parse_json_feed

S = MeetingStatus


def calendar(*events: str) -> bytes:
    body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
    for event in events:
        body += "BEGIN:VEVENT\r\n" + event.strip().replace("\n", "\r\n") + "\r\nEND:VEVENT\r\n"
    return (body + "END:VCALENDAR\r\n").encode()


NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_ics_reads_zones_floating_times_and_skips_what_it_cannot_follow() -> None:
    parsed = parse_ics(
        calendar(
            "UID:a\nDTSTAMP:20300101T000000Z\nDTSTART;TZID=America/New_York:20300310T100000\n"
            "DURATION:PT2H\nSUMMARY:A\nSTATUS:TENTATIVE\nSEQUENCE:3",
            "UID:b\nDTSTAMP:20300101T000000Z\nDTSTART:20300310T100000\nSUMMARY:B",
            "UID:c\nDTSTAMP:20300101T000000Z\nDTSTART;VALUE=DATE:20300310\nSUMMARY:C",
        ),
        default_timezone="Europe/Berlin",
        now=NOW,
    )
    a, b = parsed.items
    assert a.timezone == "America/New_York"
    assert a.starts_at == datetime(2030, 3, 10, 14, 0, tzinfo=UTC)
    assert a.ends_at == a.starts_at + timedelta(hours=2)
    assert (a.status, a.sequence) == (S.SCHEDULED, 3)
    assert b.starts_at == datetime(2030, 3, 10, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert b.timezone == "Europe/Berlin"
    assert b.status is S.CONFIRMED
    assert parsed.skipped == [("c", "all-day events have no start time")]
    with pytest.raises(FeedError):
        parse_ics(b"<html>not a calendar</html>", now=NOW)


def test_json_feed_items_that_cannot_be_read_are_skipped_with_a_reason() -> None:
    parsed = parse_json_feed(
        b'[{"id": "a", "status": "confirmed", "starts_at": "2030-03-02T19:00:00+03:00"},'
        b' {"id": "b", "status": "adjourned", "starts_at": "2030-03-02T19:00:00+03:00"},'
        b' {"status": "confirmed"}]'
    )
    assert [i.uid for i in parsed.items] == ["a"]
    assert parsed.refused[0][0] == "b"
    assert parsed.refused[1] == ("(item 2)", "no id")
    with pytest.raises(FeedError, match="no list"):
        parse_json_feed(b'{"other": 1}')


def item(**kw: object) -> FeedItem:
    values: dict[str, object] = {
        "uid": "talks",
        "title": "Talks",
        "starts_at": datetime(2030, 3, 2, 16, 0, tzinfo=UTC),
        "status": S.CONFIRMED,
        "timezone": "UTC",
        "sequence": 1,
    }
    values.update(kw)
    return FeedItem(**values)  # type: ignore[arg-type]


def stored(**kw: object) -> Meeting:
    values: dict[str, object] = {
        "id": "talks",
        "title": "Talks",
        "timezone": "UTC",
        "starts_at": datetime(2030, 3, 2, 16, 0, tzinfo=UTC),
        "status": S.CONFIRMED,
        "source": Source.FEED,
    }
    values.update(kw)
    return Meeting(**values)  # type: ignore[arg-type]


def test_a_new_uid_creates_a_meeting_and_an_unchanged_item_does_nothing() -> None:
    (create,) = actions_for(item(), None, source="s", last=None)
    assert isinstance(create, Create)
    assert create.meeting.source is Source.FEED
    assert actions_for(item(), stored(), source="s", last=snapshot(item())) == []


def test_only_what_the_feed_changed_is_applied() -> None:
    # The CLI postponed the meeting; the feed still says CONFIRMED as before: left alone.
    assert actions_for(item(), stored(status=S.POSTPONED), source="s", last=snapshot(item())) == []
    # The feed moves it: a reschedule, with a deterministic event id.
    moved = item(starts_at=datetime(2030, 3, 2, 18, 0, tzinfo=UTC), sequence=2)
    first = actions_for(moved, stored(), source="s", last=snapshot(item()))
    again = actions_for(moved, stored(), source="s", last=snapshot(item()))
    (change,) = first
    assert isinstance(change, Change)
    assert change.change.status is S.RESCHEDULED
    assert first == again
    renamed = actions_for(item(title="Summit"), stored(), source="s", last=snapshot(item()))
    assert [type(a) for a in renamed] == [Details]


def test_an_older_revision_is_ignored() -> None:
    newer = snapshot(item(sequence=5))
    assert actions_for(item(sequence=4, status=S.CANCELLED), stored(), source="s", last=newer) == []


def test_a_feed_may_give_its_text_per_language_and_each_reader_gets_theirs() -> None:
    """An ICS LANGUAGE parameter and a JSON feed's object form both give text per
    language: the fallback's becomes the meeting's plain text, the installation's other
    languages its texts, a language it does not list is not kept."""
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:t\r\n"
        "DTSTAMP:20300101T000000Z\r\nDTSTART:20300302T160000Z\r\n"
        "SUMMARY;LANGUAGE=ru:Переговоры\r\nSUMMARY;LANGUAGE=en-GB:Talks\r\n"
        "SUMMARY;LANGUAGE=de:Gespräche\r\nLOCATION;LANGUAGE=ru:Москва\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
    (from_ics,) = parse_ics(ics, now=datetime(2030, 3, 1, tzinfo=UTC)).items
    body = (
        '{"meetings": [{"id": "t", "status": "scheduled", "starts_at":'
        ' "2030-03-02T16:00:00+00:00", "title": {"ru": "Переговоры", "en": "Talks",'
        ' "de": "Gespräche"}, "location": {"ru": "Москва"}}]}'
    ).encode()
    (from_json,) = parse_json_feed(body).items
    for item_read in (from_ics, from_json):
        (create,) = actions_for(item_read, None, source="s", last=None)
        assert isinstance(create, Create)
        meeting = create.meeting
        assert meeting.title == "Talks"  # the fallback's, though the feed gave Russian first
        assert meeting.texts == {"ru": {"title": "Переговоры", "location": "Москва"}}
        # The Russian title changes: a details change in Russian, nothing else.
        renamed = FeedItem(
            **{
                **{f: getattr(item_read, f) for f in item_read.__dataclass_fields__},
                "texts": {**item_read.texts, "ru": {"title": "Встреча", "location": "Москва"}},
            }
        )
        (details,) = actions_for(renamed, meeting, source="s", last=snapshot(item_read))
        assert isinstance(details, Details)
        assert details.fields == {"texts": {"ru": {"title": "Встреча", "location": "Москва"}}}
        assert actions_for(item_read, meeting, source="s", last=snapshot(item_read)) == []
