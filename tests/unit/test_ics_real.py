"""Calendars as Google, Outlook, Exchange and hand-rolled CMSs publish them.

Every expected instant here is computed independently of notifier's reader: recurrences
with dateutil's ``rrule`` in the zone named by hand, zones with ``zoneinfo``, custom
VTIMEZONE definitions with dateutil's own ``tzical`` reader over the fixture's text, or
written out as UTC by hand with the reasoning in a comment.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule
from dateutil.tz import tzical
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.sources import ics
from notifier.sources.decoding import decode_ics
from notifier.sources.feed import FeedItem, clean_item
from notifier.sources.ics import MAX_OCCURRENCES, FeedError, ParsedFeed, parse_ics
from notifier.sources.zones import iana_name

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ics"
NOW = datetime(2030, 3, 1, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def read(name: str, **kw: object) -> ParsedFeed:
    options: dict[str, object] = {"now": NOW, "horizon": timedelta(days=60)} | kw
    return parse_ics((FIXTURES / name).read_bytes(), **options)  # type: ignore[arg-type]


def by_key(parsed: ParsedFeed) -> dict[str, FeedItem]:
    return {item.ident: item for item in parsed.items}


def definition(name: str, tzid: str) -> ZoneInfo:
    """The fixture's VTIMEZONE `tzid`, read by dateutil's tzical (not by notifier)."""
    text = (FIXTURES / name).read_bytes().decode("latin-1")
    blocks = re.findall(r"BEGIN:VTIMEZONE\r\n.*?END:VTIMEZONE\r\n", text, flags=re.S)
    (block,) = [b for b in blocks if f"TZID:{tzid}\r\n" in b]
    return tzical(io.StringIO(block)).get()  # type: ignore[no-any-return]


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# -- recurrence ------------------------------------------------------------------------------


def test_a_google_series_is_one_meeting_per_occurrence_keyed_by_its_original_start() -> None:
    parsed = read("google_series.ics")
    uid = "0a1b2c3d4e5f6g7h8i9j@google.com"
    occurrences = sorted(
        (i for i in parsed.items if i.series == uid), key=lambda i: i.original or i.starts_at
    )
    # Independently: weekly on Thursdays at 10:00 Berlin wall time, 8 times, across the
    # 2030-03-31 switch to summer time, without the EXDATE, plus the RDATE.
    rule = rrule.rrule(
        rrule.WEEKLY, byweekday=rrule.TH, count=8, dtstart=datetime(2030, 3, 7, 10, tzinfo=BERLIN)
    )
    originals = [d for d in rule if d != datetime(2030, 3, 21, 10, tzinfo=BERLIN)]
    originals.append(datetime(2030, 4, 2, 17, tzinfo=BERLIN))
    assert [utc(i.original) for i in occurrences if i.original] == sorted(map(utc, originals))
    assert datetime(2030, 4, 4, 8, tzinfo=UTC) in [utc(i.starts_at) for i in occurrences]
    found = {utc(i.original): i for i in occurrences if i.original}
    # The edited instance: moved to the afternoon, still keyed by its original start.
    moved = found[utc(datetime(2030, 3, 28, 10, tzinfo=BERLIN))]
    assert moved.ident == f"{uid}/20300328T090000Z"
    assert utc(moved.starts_at) == utc(datetime(2030, 3, 28, 15, tzinfo=BERLIN))
    assert moved.title == "Weekly press briefing (afternoon)"
    # The cancelled instance is that occurrence cancelled; the others keep the series' text.
    assert found[utc(datetime(2030, 4, 11, 10, tzinfo=BERLIN))].status.value == "cancelled"
    others = [i for i in occurrences if i is not moved]
    assert {i.title for i in others} == {"Weekly press briefing"}
    # An override replaces the whole occurrence (RFC 5545): the cancelled one names no place.
    assert {i.location for i in others if i.status.value != "cancelled"} == {"Press centre, hall B"}
    assert {i.timezone for i in occurrences} == {"Europe/Berlin"}
    assert all(i.ends_at == i.starts_at + timedelta(hours=1) for i in occurrences)
    assert parsed.complete_series[uid] == NOW + timedelta(days=60)
    assert parsed.skipped == [("holiday@google.com", "all-day events have no start time")]
    assert parsed.refused == []


def test_x_wr_timezone_makes_a_utc_series_repeat_in_the_calendars_zone() -> None:
    parsed = read("google_series.ics")
    starts = sorted(utc(i.starts_at) for i in parsed.items if i.series == "utc-series@google.com")
    # Google means 13:00Z on 2030-03-07 as 14:00 Berlin, repeating at 14:00 Berlin time.
    rule = rrule.rrule(rrule.WEEKLY, count=6, dtstart=datetime(2030, 3, 7, 14, tzinfo=BERLIN))
    assert starts == [utc(d) for d in rule]
    assert starts[-1] == datetime(2030, 4, 11, 12, tzinfo=UTC)  # not 13:00Z: summer time
    assert {i.timezone for i in parsed.items if i.series == "utc-series@google.com"} == {
        "Europe/Berlin"
    }


def test_only_occurrences_within_the_horizon_are_followed() -> None:
    parsed = read("google_series.ics", horizon=timedelta(days=14))
    starts = [utc(i.starts_at) for i in parsed.items if i.series]
    assert starts
    assert all(NOW <= s < NOW + timedelta(days=14) for s in starts)
    later = read("google_series.ics", now=datetime(2030, 4, 20, tzinfo=UTC))
    assert [utc(i.starts_at) for i in later.items if i.series and "google" in i.series][:1] == [
        datetime(2030, 4, 25, 8, tzinfo=UTC)
    ]


def test_a_series_with_endless_occurrences_is_cut_with_a_note() -> None:
    body = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:spam\r\n"
        b"DTSTAMP:20300101T000000Z\r\nDTSTART:20300301T000000Z\r\nRRULE:FREQ=MINUTELY\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    parsed = parse_ics(body, now=NOW)
    assert len(parsed.items) == MAX_OCCURRENCES
    assert "spam" not in parsed.complete_series  # not read in full: nothing is "gone"
    assert any("more than" in note for note in parsed.notes)


# -- one bad event ---------------------------------------------------------------------------


def test_each_bad_event_is_refused_with_its_reason_and_the_rest_is_read() -> None:
    parsed = read("bad_events.ics")
    assert sorted(by_key(parsed)) == ["good-1@cms.example", "good-2@cms.example"]
    # 19:00 Moscow (UTC+3 all year) is 16:00Z.
    assert by_key(parsed)["good-1@cms.example"].starts_at == datetime(2030, 3, 2, 16, tzinfo=UTC)
    reasons = dict(parsed.refused)
    assert "DTSTART" in reasons["bad-start@cms.example"]
    assert reasons["two-starts@cms.example"] == "more than one DTSTART"
    assert "DURATION" in reasons["bad-duration@cms.example"]
    assert "SEQUENCE" in reasons["bad-sequence@cms.example"]
    assert "Mars Standard Time" in reasons["unknown-zone@cms.example"]
    assert "RRULE" in reasons["bad-rrule@cms.example"]
    assert any(key.startswith("(no UID") for key in reasons)
    assert len(parsed.refused) == 7


# -- time zones ------------------------------------------------------------------------------


def test_exchange_windows_zones_and_display_names_map_to_iana() -> None:
    parsed = read("outlook_windows.ics")
    items = {i.uid: i for i in parsed.items}
    exchange = next(i for uid, i in items.items() if uid.startswith("0400000082"))
    defined = definition("outlook_windows.ics", "W. Europe Standard Time")
    expected = datetime(2030, 4, 2, 14, tzinfo=defined)
    assert exchange.starts_at == expected
    assert utc(expected) == utc(datetime(2030, 4, 2, 14, tzinfo=BERLIN))  # the two agree
    assert exchange.timezone == "Europe/Berlin"
    display = items["display-name@outlook.example"]
    assert display.timezone == "Europe/Amsterdam"
    assert display.starts_at == datetime(2030, 1, 15, 9, tzinfo=ZoneInfo("Europe/Amsterdam"))
    custom = items["custom-zone@outlook.example"]
    assert custom.starts_at == datetime(2030, 1, 15, 3, 30, tzinfo=UTC)  # 09:00 at +05:30
    zone = ZoneInfo(custom.timezone)
    for month in range(1, 13):
        assert datetime(2030, month, 1, tzinfo=zone).utcoffset() == timedelta(hours=5, minutes=30)


def test_each_feed_uses_its_own_definition_of_a_custom_zone_whatever_the_order() -> None:
    for name in ["custom_zone_east.ics", "custom_zone_west.ics", "custom_zone_east.ics"]:
        (item,) = read(name).items
        expected = datetime(2030, 7, 2, 19, tzinfo=definition(name, "Custom Time Zone"))
        assert item.starts_at == expected, name
        # The meeting's zone is an IANA zone that agrees with the definition all year.
        zone = ZoneInfo(item.timezone)
        for month in range(1, 13):
            moment = datetime(2030, month, 10, 12, tzinfo=UTC)
            assert (
                moment.astimezone(zone).utcoffset()
                == moment.astimezone(definition(name, "Custom Time Zone")).utcoffset()
            )
    assert read("custom_zone_west.ics").items[0].timezone == "America/New_York"
    # A feed naming that zone without defining it does not borrow another feed's definition.
    orphan = (FIXTURES / "custom_zone_east.ics").read_bytes()
    orphan = re.sub(rb"BEGIN:VTIMEZONE.*?END:VTIMEZONE\r\n", b"", orphan, flags=re.S)
    parsed = parse_ics(orphan, now=NOW)
    assert parsed.items == []
    assert "names no VTIMEZONE" in dict(parsed.refused)["east-talks"]


@pytest.mark.parametrize(
    ("tzid", "iana"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Russian Standard Time", "Europe/Moscow"),
        ("(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna", "Europe/Amsterdam"),
        ("(UTC-05:00) Eastern Time (US & Canada)", "America/New_York"),
        ("(UTC-08:00) Pacific Time (US & Canada)", "America/Los_Angeles"),
        ("(UTC+03:00) Moscow, St. Petersburg", "Europe/Moscow"),
        ("(UTC+00:00) Dublin, Edinburgh, Lisbon, London", "Europe/Dublin"),
        ("(UTC) Coordinated Universal Time", "UTC"),
        ("(UTC-03:00) Brasilia", "America/Sao_Paulo"),
        ("(UTC+05:30) Chennai, Kolkata, Mumbai, New Delhi", "Asia/Kolkata"),
        ("/mozilla.org/20050126_1/America/Chicago", "America/Chicago"),
        ("/Europe/Vienna", "Europe/Vienna"),
        ("Mars Standard Time", None),
        ("../../etc/passwd", None),
        ("(UTC+07:00) Nowhere City", None),
    ],
)
def test_zone_names_as_calendars_write_them(tzid: str, iana: str | None) -> None:
    assert iana_name(tzid) == iana


def test_floating_times_are_the_sources_zone_and_utc_stays_utc() -> None:
    body = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
        b"BEGIN:VEVENT\r\nUID:f\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300310T100000\r\n"
        b"END:VEVENT\r\nBEGIN:VEVENT\r\nUID:u\r\nDTSTAMP:20300101T000000Z\r\n"
        b"DTSTART:20300310T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    items = by_key(parse_ics(body, now=NOW, default_timezone="Asia/Tokyo"))
    assert items["f"].starts_at == datetime(2030, 3, 10, 1, tzinfo=UTC)  # 10:00 at +09:00
    assert items["f"].timezone == "Asia/Tokyo"
    assert (items["u"].starts_at, items["u"].timezone) == (
        datetime(2030, 3, 10, 10, tzinfo=UTC),
        "UTC",
    )


# -- text as written -------------------------------------------------------------------------


def event_body(summary: bytes, *, head: bytes = b"SUMMARY", end: bytes = b"\r\n") -> bytes:
    lines = [
        b"BEGIN:VCALENDAR",
        b"VERSION:2.0",
        b"PRODID:-//t//EN",
        b"BEGIN:VEVENT",
        b"UID:e",
        b"DTSTAMP:20300101T000000Z",
        b"DTSTART:20300310T100000Z",
        head + b":" + summary,
        b"END:VEVENT",
        b"END:VCALENDAR",
    ]
    return end.join(lines) + end


def title(body: bytes, content_type: str | None = None) -> tuple[str, list[str]]:
    parsed = parse_ics(body, now=NOW, content_type=content_type)
    return parsed.items[0].title, parsed.notes


def test_windows_1252_is_read_as_written_with_a_note() -> None:
    text, notes = title(event_body("Réunion – Zürich €".encode("cp1252")))
    assert text == "Réunion – Zürich €"
    assert any("Windows-1252" in n for n in notes)
    parsed = read("outlook_windows.ics")
    exchange = next(i for i in parsed.items if i.uid.startswith("0400000082"))
    assert exchange.title == "Réunion de sécurité – délégations"
    assert exchange.description == "Café – Zürich\n© Protocol"
    assert exchange.location == "Salle à manger"


def test_a_fold_that_splits_a_utf8_character_is_joined_before_decoding() -> None:
    encoded = "Переговоры в Москве".encode()
    # Fold inside the two bytes of "е" (a line break and a space between them).
    split = encoded.index("е".encode()) + 1
    folded = encoded[:split] + b"\r\n " + encoded[split:]
    text, notes = title(event_body(folded))
    assert text == "Переговоры в Москве"
    assert notes == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\xef\xbb\xbf" + event_body("Café".encode()), None),
        (
            "\ufeff".encode("utf-16-le") + event_body(b"Caf\xc3\xa9").decode().encode("utf-16-le"),
            None,
        ),
        (event_body(b"Caf\xe9", head=b"SUMMARY;CHARSET=ISO-8859-1"), None),
        (event_body(b"Caf\xe9"), "text/calendar; charset=iso-8859-1"),
        (event_body("Café".encode()), "text/calendar; charset=UTF-8"),
        (event_body("Café".encode(), end=b"\r"), None),
        (event_body("Café".encode(), end=b"\n"), None),
    ],
    ids=["utf8-bom", "utf16-bom", "charset-param", "http-charset", "http-utf8", "cr-only", "lf"],
)
def test_bom_charset_parameter_http_charset_and_line_ends(
    body: bytes, content_type: str | None
) -> None:
    assert title(body, content_type)[0] == "Café"


def test_a_cr_only_file_is_read_and_says_so() -> None:
    _, notes = title(event_body(b"x", end=b"\r"))
    assert any("bare CR" in n for n in notes)


def test_concatenated_calendars_are_all_read() -> None:
    one = event_body(b"One")
    two = event_body(b"Two").replace(b"UID:e", b"UID:f")
    parsed = parse_ics(one + two, now=NOW)
    assert sorted(i.title for i in parsed.items) == ["One", "Two"]


def test_what_is_not_a_calendar_is_refused_as_a_whole() -> None:
    with pytest.raises(FeedError, match="not an iCalendar document"):
        parse_ics(b"<!DOCTYPE html><html>Sign in</html>", now=NOW)
    assert decode_ics(b"BEGIN:VCALENDAR\rEND:VCALENDAR\r").text == (
        "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
    )


def test_a_huge_description_is_cut_with_a_note() -> None:
    huge = b"A" * 5_000_000
    body = event_body(b"Talks").replace(b"SUMMARY:Talks", b"SUMMARY:Talks\r\nDESCRIPTION:" + huge)
    (item,) = parse_ics(body, now=NOW).items
    safe, note = clean_item(item)
    assert len(safe.description) == 20000
    assert note == "description cut to 20,000 characters"


def test_a_feed_with_endless_events_is_cut_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ics, "MAX_EVENTS", 10)
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:e{n}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300302T1900Z\r\n"
        f"END:VEVENT\r\n"
        for n in range(25)
    ).replace("T1900Z", "T190000Z")
    body = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{events}END:VCALENDAR\r\n"
    parsed = parse_ics(body.encode(), now=NOW)
    assert len(parsed.items) == 10
    assert any("more than 10 events" in note for note in parsed.notes)


SEEDS = sorted(FIXTURES.glob("*.ics"))


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A real-shaped fixture with a few bytes flipped, cut, inserted or repeated."""
    body = bytearray(draw(st.sampled_from(SEEDS)).read_bytes())
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(body) - 1))
        match draw(st.integers(0, 3)):
            case 0:
                body[at] = draw(st.integers(0, 255))
            case 1:
                del body[at : at + draw(st.integers(1, 40))]
            case 2:
                body[at:at] = draw(st.binary(max_size=20))
            case _:
                start = draw(st.integers(0, len(body) - 1))
                body[at:at] = body[start : start + draw(st.integers(1, 60))]
    return bytes(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_damaged_calendars_are_read_or_refused_never_crash(body: bytes) -> None:
    """Whatever the damage, the reader refuses the feed (FeedError) or reads it, refusing
    events it cannot read; it never raises anything else. (Found: icalendar's own
    AttributeError on ``BEGIN:\\x00TIMEZONE``.)"""
    try:
        parsed = parse_ics(body, now=NOW)
    except FeedError:
        return
    for item in parsed.items:
        assert item.starts_at.tzinfo is not None
    assert all(isinstance(reason, str) for _, reason in parsed.refused)
