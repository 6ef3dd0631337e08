"""Calendars as published, in the shapes the feed reader used to read wrong: each a time
that readers would have been told wrong. Fixtures of our own making; every expected
instant is worked out by hand from the zone's offset on that day (written beside it), not
read back through the code under test.

- an Outlook display name of a zone with DST, with and without its VTIMEZONE;
- RECURRENCE-ID;RANGE=THISANDFUTURE, which moves its instance and every later one;
- Thunderbird's edited instance with DTEND beside DURATION:PT0S;
- an edited instance the reader cannot take (turned all-day, or broken) keeps the time
  readers were last told: it never goes back to the series' time;
- a line of junk that says nothing about time does not cost the event.
"""

from __future__ import annotations

from datetime import UTC, datetime

from notifier.sources.ics import ParsedFeed, parse_ics

NOW = datetime(2030, 3, 30, tzinfo=UTC)


def feed(*events: str, zones: str = "") -> ParsedFeed:
    body = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n" + zones
    for event in events:
        body += "BEGIN:VEVENT\nDTSTAMP:20300101T000000Z\n" + event.strip() + "\nEND:VEVENT\n"
    body += "END:VCALENDAR\n"
    return parse_ics(body.replace("\n", "\r\n").encode(), now=NOW)


def starts(parsed: ParsedFeed) -> dict[str, datetime]:
    return {item.key: item.starts_at for item in parsed.items}


CENTRAL = "(UTC-06:00) Central Time (US & Canada)"
#: What Outlook sends with that name: US Central rules, DST from the second Sunday of March.
CENTRAL_ZONE = f"""BEGIN:VTIMEZONE
TZID:{CENTRAL}
BEGIN:STANDARD
DTSTART:16011104T020000
RRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11
TZOFFSETFROM:-0500
TZOFFSETTO:-0600
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010311T020000
RRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3
TZOFFSETFROM:-0600
TZOFFSETTO:-0500
END:DAYLIGHT
END:VTIMEZONE
"""


def test_an_outlook_display_name_of_a_zone_with_summer_time_keeps_its_summer_time() -> None:
    event = f'UID:c1\nDTSTART;TZID="{CENTRAL}":20300715T100000\nSUMMARY:Summer'
    # 15 July 2030 in Chicago is CDT, UTC-5: 10:00 local is 15:00 UTC (the no-DST zone of
    # the same standard offset, Regina, would say 16:00).
    for zones in ("", CENTRAL_ZONE):
        (item,) = feed(event, zones=zones).items
        assert item.starts_at == datetime(2030, 7, 15, 15, 0, tzinfo=UTC)
        assert item.timezone == "America/Chicago"


def test_other_display_names_name_the_zone_they_mean() -> None:
    cases = {
        "(UTC-06:00) Saskatchewan": ("America/Regina", 16),  # CST all year: UTC-6
        "(UTC-10:00) Hawaii": ("Pacific/Honolulu", 20),  # HST: UTC-10
        "(UTC-07:00) Mountain Time (US & Canada)": ("America/Denver", 16),  # MDT: UTC-6
        "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna": ("Europe/Amsterdam", 8),
    }
    for name, (zone, hour) in cases.items():
        (item,) = feed(f'UID:z\nDTSTART;TZID="{name}":20300715T100000\nSUMMARY:Z').items
        assert (item.timezone, item.starts_at.hour) == (zone, hour), name


SERIES = """UID:s
DTSTART:20300401T100000Z
DTEND:20300401T110000Z
RRULE:FREQ=DAILY;COUNT=5
SUMMARY:Daily"""


def test_this_and_future_moves_its_instance_and_every_later_one() -> None:
    moved = """UID:s
RECURRENCE-ID;RANGE=THISANDFUTURE:20300403T100000Z
DTSTART:20300403T150000Z
DTEND:20300403T170000Z
SUMMARY:Daily, now afternoons
SEQUENCE:1"""
    parsed = feed(SERIES, moved)
    assert starts(parsed) == {
        "s/20300401T100000Z": datetime(2030, 4, 1, 10, tzinfo=UTC),
        "s/20300402T100000Z": datetime(2030, 4, 2, 10, tzinfo=UTC),
        # Five hours later from the 3rd on, two hours long, with the edit's title; each
        # keeps its own original start as its key.
        "s/20300403T100000Z": datetime(2030, 4, 3, 15, tzinfo=UTC),
        "s/20300404T100000Z": datetime(2030, 4, 4, 15, tzinfo=UTC),
        "s/20300405T100000Z": datetime(2030, 4, 5, 15, tzinfo=UTC),
    }
    later = [i for i in parsed.items if i.starts_at.day >= 3]
    assert {i.title for i in later} == {"Daily, now afternoons"}
    assert all(i.ends_at == i.starts_at.replace(hour=17) for i in later)


def test_thunderbirds_edited_instance_with_a_zero_duration_is_read() -> None:
    edited = """UID:s
RECURRENCE-ID:20300402T100000Z
DTSTART:20300402T150000Z
DTEND:20300402T160000Z
DURATION:PT0S
SUMMARY:Moved
SEQUENCE:1"""
    parsed = feed(SERIES, edited)
    assert parsed.refused == []
    assert starts(parsed)["s/20300402T100000Z"] == datetime(2030, 4, 2, 15, tzinfo=UTC)


def test_an_edited_instance_that_cannot_be_read_never_goes_back_to_the_series_time() -> None:
    all_day = """UID:s
RECURRENCE-ID:20300403T100000Z
DTSTART;VALUE=DATE:20300403
SUMMARY:Now all day
SEQUENCE:1"""
    broken = """UID:s
RECURRENCE-ID:20300404T100000Z
DTSTART:20300404T1500
SUMMARY:Broken
SEQUENCE:1"""
    parsed = feed(SERIES, all_day, broken)
    found = starts(parsed)
    # Neither instance is put back at 10:00: each is held, so the poller keeps (and does
    # not cancel) what readers were last told of it.
    assert "s/20300403T100000Z" not in found
    assert "s/20300404T100000Z" not in found
    assert sorted(parsed.held) == ["s/20300403T100000Z", "s/20300404T100000Z"]
    assert found["s/20300405T100000Z"] == datetime(2030, 4, 5, 10, tzinfo=UTC)
    reasons = [reason for _key, reason in parsed.skipped + parsed.refused]
    assert all("keeps the time readers were last told" in r for r in reasons), reasons
    assert "s" in dict(parsed.complete_series)


def test_a_line_of_junk_does_not_cost_the_event_but_a_broken_time_does() -> None:
    junk = "UID:j1\nDTSTART:20300401T100000Z\nSUMMARY:Junk line\nthis is not a property"
    attendee = 'UID:j2\nDTSTART:20300401T100000Z\nSUMMARY:A\nATTENDEE;CN="x:mailto:a@example.org'
    broken = 'UID:j3\nDTSTART;TZID="Europe/Berlin:20300401T100000\nSUMMARY:Broken start'
    parsed = feed(junk, attendee, broken)
    assert sorted(starts(parsed)) == ["j1", "j2"]
    assert [key for key, _reason in parsed.refused] == ["j3"]


def test_a_localised_outlook_names_its_cities_in_its_own_words() -> None:
    cases = {
        # Moscow is UTC+3 all year: 10:00 local is 07:00 UTC.
        "(UTC+03:00) Москва, Санкт-Петербург": ("Europe/Moscow", 7),
        # Central European summer time, UTC+2: 10:00 local is 08:00 UTC.
        "(UTC+01:00) Brüssel, Kopenhagen, Madrid, Paris": ("Europe/Brussels", 8),
        "(UTC+01:00) Bruxelles, Copenhague, Madrid, Paris": ("Europe/Brussels", 8),
        # Eastern European summer time, UTC+3; the current name, not Europe/Kiev.
        "(UTC+02:00) Киев, Рига, София, Таллин, Вильнюс": ("Europe/Kyiv", 7),
    }
    for name, (zone, hour) in cases.items():
        (item,) = feed(f'UID:z\nDTSTART;TZID="{name}":20300715T100000\nSUMMARY:Z').items
        assert (item.timezone, item.starts_at.hour) == (zone, hour), name
