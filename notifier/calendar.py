"""iCalendar (.ics) parts for emails, so calendars move or cancel the meeting by themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event, vCalAddress, vDuration

from notifier import __version__
from notifier.domain.clock import Anchor
from notifier.domain.models import Meeting, MeetingStatus
from notifier.domain.text import clean_text

_STATUS = {
    MeetingStatus.SCHEDULED: "TENTATIVE",
    MeetingStatus.CONFIRMED: "CONFIRMED",
    MeetingStatus.POSTPONED: "TENTATIVE",
    MeetingStatus.CLEARED: "TENTATIVE",
    MeetingStatus.RESCHEDULED: "CONFIRMED",
    MeetingStatus.IN_PROGRESS: "CONFIRMED",
    MeetingStatus.CONCLUDED: "CONFIRMED",
    MeetingStatus.CANCELLED: "CANCELLED",
}


def ics_method(meeting: Meeting) -> str:
    """``CANCEL`` for a cancelled meeting, else ``REQUEST``."""
    return "CANCEL" if meeting.status is MeetingStatus.CANCELLED else "REQUEST"


#: Stands where the reader's ATTENDEE line goes in a calendar built for a group of readers.
ATTENDEE_PLACEHOLDER = b"X-NOTIFIER-ATTENDEE:reader\r\n"


def attendee_lines(address: str, name: str = "") -> bytes:
    """The folded ``ATTENDEE`` content line naming one reader (iTIP wants one in REQUEST
    and CANCEL); RSVP=FALSE, since nobody reads replies to a notification."""
    event = Event()
    parameters = {"ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION", "RSVP": "FALSE"}
    cleaned = clean_text(name)
    if cleaned:
        parameters["CN"] = cleaned
    event.add("attendee", vCalAddress(f"mailto:{address}"), parameters=parameters)
    lines = bytes(event.to_ical()).split(b"\r\n")
    return b"\r\n".join(lines[1:-2]) + b"\r\n"


def meeting_uid(meeting_id: str, domain: str) -> str:
    """The stable iCalendar UID of a meeting: the same in every message about it."""
    return f"{meeting_id}@{domain}"


def build_ics(
    meeting: Meeting,
    *,
    organizer: str,
    domain: str,
    now: datetime,
    alarm: timedelta | None = timedelta(minutes=15),
    attendee: tuple[str, str] | None = None,
    language: str | None = None,
) -> bytes:
    """An iCalendar object for `meeting`: METHOD, stable UID, SEQUENCE, STATUS, a VALARM.

    A wall-anchored meeting's times are written on its zone's clocks (TZID) with a
    VTIMEZONE of the rules in force, so a calendar keeps them at that local time as we do
    (`notifier.domain.clock`); an instant-anchored one's in UTC. With
    `attendee`, the event names that reader as ATTENDEE; without, it holds
    `ATTENDEE_PLACEHOLDER` for `attendee_lines` to replace per reader. Text is cleaned of
    control characters; icalendar escapes it and folds lines at 75 octets (RFC 5545).
    """
    calendar = Calendar()
    calendar.add("prodid", f"-//notifier//notifier {__version__}//EN")
    calendar.add("version", "2.0")
    calendar.add("method", ics_method(meeting))
    event = _event(
        meeting, domain=domain, now=now, summary=clean_text(meeting.title), language=language
    )
    event.add("organizer", vCalAddress(f"mailto:{organizer}"))
    if alarm is not None and meeting.status is not MeetingStatus.CANCELLED:
        reminder = Alarm()
        reminder.add("action", "DISPLAY")
        reminder.add("description", clean_text(meeting.title))
        reminder.add("trigger", -alarm)
        event.add_component(reminder)
    calendar.add_component(event)
    _add_zones(calendar, [meeting])
    built = bytes(calendar.to_ical())
    reader = attendee_lines(*attendee) if attendee else ATTENDEE_PLACEHOLDER
    # After ORGANIZER, inside the VEVENT: the one place the reader's line belongs.
    head, found, rest = built.partition(b"\r\nORGANIZER")
    organizer_line, _, tail = rest.partition(b"\r\n")
    while tail.startswith(b" "):  # the folded continuation of the ORGANIZER line
        more, _, tail = tail.partition(b"\r\n")
        organizer_line += b"\r\n" + more
    assert found, "the event always has an ORGANIZER"
    return head + found + organizer_line + b"\r\n" + reader + tail


#: What a feed's event title says before the title while the meeting waits on a new time.
_FEED_PREFIX = {
    MeetingStatus.POSTPONED: "Postponed: ",
    MeetingStatus.CANCELLED: "Cancelled: ",
}


def feed_calendar(
    meetings: list[Meeting],
    *,
    name: str,
    domain: str,
    now: datetime,
    refresh: timedelta,
    language: str | None = None,
) -> bytes:
    """A subscribable calendar (webcal) of `meetings`, each already in its reader's view.

    Each meeting keeps its one UID (the same as in emails) and its SEQUENCE; a postponed
    meeting stays TENTATIVE with "Postponed:" before its title, a cancelled one is
    CANCELLED. `refresh` is said both ways calendar apps read it (REFRESH-INTERVAL and
    X-PUBLISHED-TTL). No METHOD: a feed is not an invitation.
    """
    calendar = Calendar()
    calendar.add("prodid", f"-//notifier//notifier {__version__}//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", clean_text(name))
    calendar.add("refresh-interval", refresh, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(refresh))
    for meeting in meetings:
        prefix = _FEED_PREFIX.get(meeting.status, "")
        summary = prefix + clean_text(meeting.title)
        calendar.add_component(
            _event(meeting, domain=domain, now=now, summary=summary, language=language)
        )
    _add_zones(calendar, meetings)
    return bytes(calendar.to_ical())


def _add_zones(calendar: Calendar, meetings: list[Meeting]) -> None:
    """A VTIMEZONE for every zone the events' times are written in, with the rules in
    force over the span of those events (a day either side), not decades of them."""
    walls = [m for m in meetings if m.anchor is Anchor.WALL and m.timezone != "UTC"]
    if not walls:
        return
    first = min(m.starts_at.astimezone(UTC) for m in walls)
    last = max((m.ends_at or m.starts_at).astimezone(UTC) for m in walls)
    calendar.add_missing_timezones(
        first_date=(first - timedelta(days=1)).date(), last_date=(last + timedelta(days=1)).date()
    )


def _on_its_clocks(meeting: Meeting, value: datetime) -> datetime:
    """`value` as the event writes it: on the meeting's clocks for a wall-anchored meeting
    (DTSTART;TZID=...), else in UTC."""
    if meeting.anchor is Anchor.WALL and meeting.timezone != "UTC":
        return value.astimezone(ZoneInfo(meeting.timezone))
    return value.astimezone(UTC)


def _event(
    meeting: Meeting, *, domain: str, now: datetime, summary: str, language: str | None = None
) -> Event:
    """The VEVENT of a meeting, as emails and feeds both write it: the one UID, SEQUENCE,
    times on the meeting's clocks or in UTC (`_on_its_clocks`), the text cleaned of
    control characters, STATUS."""
    event = Event()
    event.add("uid", meeting_uid(meeting.id, domain))
    event.add("sequence", meeting.sequence)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", _on_its_clocks(meeting, meeting.starts_at))
    if meeting.ends_at is not None:
        event.add("dtend", _on_its_clocks(meeting, meeting.ends_at))
    # LANGUAGE (RFC 5545 3.2.10) says which language the text is in, where it is known.
    said: dict[str, str] = {"LANGUAGE": language} if language else {}
    event.add("summary", summary, parameters=said)
    if meeting.description:
        event.add("description", clean_text(meeting.description, multiline=True), parameters=said)
    if meeting.location:
        event.add("location", clean_text(meeting.location), parameters=said)
    event.add("status", _STATUS[meeting.status])
    return event
