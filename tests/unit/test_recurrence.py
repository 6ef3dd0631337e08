"""Series expanded from the horizon, never walked from a DTSTART decades back.

Expected occurrences are computed independently, by dateutil's ``rrule`` walked from the
rule's own DTSTART in the zone named by hand (cheap for these rules), minus EXDATEs, plus
RDATEs, with overrides in place. Parses of hostile rules run in a process of their own
with a generous timeout: the reader before this walked them for hours.
"""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule
from icalendar.prop import vRecur

from notifier.sources.ics import MAX_OCCURRENCES, ParsedFeed, occurrence_key, parse_ics
from notifier.sources.recurrence import Rule, read_rule, walk_from

BERLIN = ZoneInfo("Europe/Berlin")
#: Half a second past a whole second: a per-second occurrence never starts exactly now.
NOW = datetime(2030, 3, 20, 11, 0, 0, 500000, tzinfo=UTC)
#: Hostile parses must end well within this (they took hours, then ran out of memory).
PATIENCE = 60


def calendar(*events: str) -> bytes:
    body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
    for event in events:
        body += "BEGIN:VEVENT\r\n" + event.strip().replace("\n", "\r\n") + "\r\nEND:VEVENT\r\n"
    return (body + "END:VCALENDAR\r\n").encode()


def parse_apart(body: bytes, horizon: timedelta = timedelta(days=30)) -> ParsedFeed:
    """`parse_ics` in a process of its own, given up (and killed) after PATIENCE seconds."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pending = pool.apply_async(parse_ics, (body,), {"now": NOW, "horizon": horizon})
        try:
            return pending.get(timeout=PATIENCE)
        except multiprocessing.TimeoutError:
            pytest.fail(f"the parse did not end within {PATIENCE} s")
        finally:
            pool.terminate()


NORMAL = "UID:talks\nDTSTAMP:20300101T000000Z\nDTSTART:20300402T160000Z\nSUMMARY:Talks"


def test_a_per_second_rule_from_1970_is_expanded_from_now_and_the_feed_is_read() -> None:
    spam = "UID:spam\nDTSTAMP:20300101T000000Z\nDTSTART:19700101T000000Z\nRRULE:FREQ=SECONDLY"
    parsed = parse_apart(calendar(spam, NORMAL))
    starts = [i.starts_at for i in parsed.items if i.series == "spam"]
    # Every second from 1970 on: the first one after 11:00:00.5 is 11:00:01.
    first = datetime(2030, 3, 20, 11, 0, 1, tzinfo=UTC)
    assert starts == [first + timedelta(seconds=n) for n in range(MAX_OCCURRENCES)]
    assert [i.ident for i in parsed.items if i.series == "spam"][:1] == [
        occurrence_key("spam", first)
    ]
    assert any("'spam' has more than" in note for note in parsed.notes)
    assert "spam" not in parsed.complete_series
    assert [i.uid for i in parsed.items if i.series is None] == ["talks"]
    assert parsed.refused == []


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MINUTELY;INTERVAL=7;BYSECOND=5,35",
        "FREQ=HOURLY;BYMINUTE=0,30;BYDAY=MO,WE,FR",
        "FREQ=SECONDLY;INTERVAL=90;BYHOUR=9,10,11",
        "FREQ=DAILY;BYHOUR=9,17;BYMINUTE=15",
        "FREQ=MONTHLY;BYDAY=MO,WE,FR;BYHOUR=8,20",
    ],
)
def test_rules_with_by_parts_from_1970_start_at_the_horizon(rule: str) -> None:
    body = calendar(
        f"UID:s\nDTSTAMP:20300101T000000Z\nDTSTART:19700105T000000Z\nDURATION:PT1M\nRRULE:{rule}"
    )
    parsed = parse_apart(body, horizon=timedelta(days=2))
    # Independently, from Monday 2030-03-18 (walking from 1970 is the bug itself): each
    # rule's period divides a week, so a Monday lines up with Monday 1970-01-05.
    expected = [
        d
        for d in rrule.rrulestr(rule, dtstart=datetime(2030, 3, 18, tzinfo=UTC)).between(
            NOW - timedelta(minutes=1), NOW + timedelta(days=2), inc=True
        )
        if d + timedelta(minutes=1) > NOW and d < NOW + timedelta(days=2)
    ]
    got = sorted(i.starts_at for i in parsed.items)
    assert got == expected[:MAX_OCCURRENCES]
    assert got
    assert parsed.refused == []


@pytest.mark.parametrize(
    ("reason", "event"),
    [
        (
            "occurrences to walk",
            "DTSTART:19700101T000000Z\nRRULE:FREQ=SECONDLY;COUNT=2000000000;BYMINUTE=1,2,3",
        ),
        (
            "occurrences to walk",
            "DTSTART:19700101T000000Z\nRRULE:FREQ=YEARLY;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;"
            "BYMONTHDAY=1,2,3,4,5,6,7,8,9,10;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12;"
            "BYMINUTE=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23",
        ),
        ("occurrences to walk", "DTSTART:20300301T000000Z\nDURATION:P2D\nRRULE:FREQ=SECONDLY"),
        ("never occurs", "DTSTART:20300101T000000Z\nRRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30"),
        ("INTERVAL 0 is out of range", "DTSTART:20300101T000000Z\nRRULE:FREQ=DAILY;INTERVAL=0"),
    ],
    ids=["count-over-by-parts", "yearly-every-minute", "overlapping", "never", "interval-0"],
)
def test_a_rule_whose_cost_cannot_be_bounded_is_refused_with_its_reason(
    reason: str, event: str
) -> None:
    body = calendar(f"UID:hostile\nDTSTAMP:20300101T000000Z\n{event}", NORMAL)
    parsed = parse_apart(body)
    (refused,) = parsed.refused
    assert refused[0] == "hostile"
    assert reason in refused[1]
    assert [i.uid for i in parsed.items] == ["talks"]


def test_an_edited_series_from_long_ago_keeps_its_exdates_rdates_and_overrides() -> None:
    """Daily at 10:00 Berlin since 2001 until 5 April 2030 (COUNT), across the 2030-03-31
    clock change; one EXDATE, one RDATE, one occurrence moved and one cancelled."""
    master = (
        "UID:daily\nDTSTAMP:20300101T000000Z\nDTSTART;TZID=Europe/Berlin:20010101T100000\n"
        "DTEND;TZID=Europe/Berlin:20010101T110000\nRRULE:FREQ=DAILY;COUNT=10687\n"
        "EXDATE;TZID=Europe/Berlin:20300325T100000\nRDATE;TZID=Europe/Berlin:20300326T180000\n"
        "SUMMARY:Daily"
    )
    moved = (
        "UID:daily\nDTSTAMP:20300101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:20300402T100000\n"
        "DTSTART;TZID=Europe/Berlin:20300402T150000\nDTEND;TZID=Europe/Berlin:20300402T160000\n"
        "SUMMARY:Moved\nSEQUENCE:1"
    )
    cancelled = (
        "UID:daily\nDTSTAMP:20300101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:20300404T100000\n"
        "DTSTART;TZID=Europe/Berlin:20300404T100000\nSTATUS:CANCELLED\nSEQUENCE:1"
    )
    parsed = parse_ics(calendar(master, moved, cancelled), now=NOW, horizon=timedelta(days=30))
    rule = rrule.rrule(rrule.DAILY, count=10687, dtstart=datetime(2001, 1, 1, 10, tzinfo=BERLIN))
    assert list(rule)[-1] == datetime(2030, 4, 5, 10, tzinfo=BERLIN)  # within the horizon
    originals = [
        d
        for d in rule.between(NOW - timedelta(hours=1), NOW + timedelta(days=30), inc=True)
        if d + timedelta(hours=1) > NOW and d != datetime(2030, 3, 25, 10, tzinfo=BERLIN)
    ]
    originals.append(datetime(2030, 3, 26, 18, tzinfo=BERLIN))
    items = {i.original: i for i in parsed.items}
    assert sorted(items) == sorted(d.astimezone(UTC) for d in originals)
    shifted = items[datetime(2030, 4, 2, 10, tzinfo=BERLIN).astimezone(UTC)]
    assert (shifted.title, shifted.starts_at) == (
        "Moved",
        datetime(2030, 4, 2, 13, tzinfo=UTC),  # 15:00 Berlin in summer time
    )
    gone = items[datetime(2030, 4, 4, 10, tzinfo=BERLIN).astimezone(UTC)]
    assert gone.status.value == "cancelled"
    # 10:00 Berlin: 09:00Z in winter, 08:00Z from 31 March.
    assert items[datetime(2030, 3, 30, 9, tzinfo=UTC)].ends_at == datetime(
        2030, 3, 30, 10, tzinfo=UTC
    )
    assert datetime(2030, 3, 31, 8, tzinfo=UTC) in items
    assert parsed.complete_series["daily"] == NOW + timedelta(days=30)


def test_a_count_that_ended_before_now_leaves_no_occurrence() -> None:
    body = calendar(
        "UID:old\nDTSTAMP:20300101T000000Z\nDTSTART:19700101T000000Z\n"
        "RRULE:FREQ=MINUTELY;COUNT=1000000",  # ends in 1971
        NORMAL,
    )
    parsed = parse_apart(body)
    assert [i.uid for i in parsed.items] == ["talks"]
    assert parsed.refused == []


@pytest.mark.parametrize(
    ("start", "rule"),
    [
        (datetime(1990, 1, 31, 9, tzinfo=BERLIN), "FREQ=MONTHLY"),  # only months with a 31st
        (datetime(1988, 2, 29, 9, tzinfo=BERLIN), "FREQ=YEARLY"),  # only leap years
        (datetime(1999, 5, 31, 9, tzinfo=BERLIN), "FREQ=MONTHLY;INTERVAL=5"),
        (datetime(1995, 1, 2, 9, tzinfo=BERLIN), "FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,TH"),
    ],
)
def test_a_moved_start_is_an_occurrence_of_the_rule_as_written(start: datetime, rule: str) -> None:
    walk = walk_from(
        [read_rule_of(rule)],
        start,
        now=NOW,
        horizon=timedelta(days=30),
        longest=timedelta(0),
        most=1000,
    )
    assert NOW - timedelta(days=5 * 366) < walk.start <= NOW
    written = rrule.rrulestr(rule, dtstart=start)
    assert written.after(walk.start - timedelta(seconds=1)) == walk.start


def test_a_simple_count_is_lowered_by_the_occurrences_left_behind() -> None:
    start = datetime(1970, 1, 1, tzinfo=UTC)
    walk = walk_from(
        [read_rule_of("FREQ=HOURLY;COUNT=600000")],
        start,
        now=NOW,
        horizon=timedelta(days=30),
        longest=timedelta(minutes=30),
        most=1000,
    )
    # Independently: the hours from 1970 to the moved start, each one occurrence.
    left_behind = int((walk.start - start).total_seconds() // 3600)
    assert walk.count == 600000 - left_behind
    assert NOW - timedelta(hours=5) < walk.start < NOW
    assert walk.start.minute == walk.start.second == 0


def read_rule_of(text: str) -> Rule:
    return read_rule(vRecur.from_ical(text))


def test_an_hourly_series_from_1970_reads_as_the_same_series_written_from_today() -> None:
    """Every half hour, Berlin wall time, since 1970; the window holds the 2030-03-31 switch
    to summer time, an EXDATE and an instance moved by ten minutes. Read exactly as the same
    series starting at midnight before (a whole number of hours after 1970's midnight)."""

    def series(start: str) -> bytes:
        master = (
            f"UID:half\nDTSTAMP:20300101T000000Z\nDTSTART;TZID=Europe/Berlin:{start}\n"
            "DURATION:PT10M\nRRULE:FREQ=HOURLY;BYMINUTE=0,30\n"
            "EXDATE;TZID=Europe/Berlin:20300331T053000"
        )
        moved = (
            "UID:half\nDTSTAMP:20300101T000000Z\n"
            "RECURRENCE-ID;TZID=Europe/Berlin:20300331T060000\n"
            "DTSTART;TZID=Europe/Berlin:20300331T061000\nDURATION:PT10M\nSUMMARY:Moved\n"
            "SEQUENCE:1"
        )
        return calendar(master, moved)

    now = datetime(2030, 3, 30, 22, 0, tzinfo=UTC)
    horizon = timedelta(hours=12)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pending = pool.apply_async(
            parse_ics, (series("19700101T000000"),), {"now": now, "horizon": horizon}
        )
        try:
            parsed = pending.get(timeout=PATIENCE)
        except multiprocessing.TimeoutError:
            pytest.fail(f"the parse did not end within {PATIENCE} s")
        finally:
            pool.terminate()
    today = parse_ics(series("20300330T000000"), now=now, horizon=horizon)
    assert parsed.items == today.items
    items = {i.original: i for i in parsed.items}
    # Independently: half-hourly from 23:00 Berlin, 22:00Z; 05:30 CEST (03:30Z) excluded.
    assert datetime(2030, 3, 30, 22, 0, tzinfo=UTC) in items
    assert datetime(2030, 3, 31, 3, 30, tzinfo=UTC) not in items
    assert datetime(2030, 3, 31, 9, 30, tzinfo=UTC) in items
    shifted = items[datetime(2030, 3, 31, 4, tzinfo=UTC)]  # 06:00 CEST
    assert (shifted.title, shifted.starts_at) == ("Moved", datetime(2030, 3, 31, 4, 10, tzinfo=UTC))
    assert {i.timezone for i in parsed.items} == {"Europe/Berlin"}
