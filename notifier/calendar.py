"""iCalendar (.ics) parts for emails, so calendars move or cancel the meeting by themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from icalendar import Alarm, Calendar, Event, vCalAddress

from notifier import __version__
from notifier.domain.models import Meeting, MeetingStatus

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
) -> bytes:
    """An iCalendar object for `meeting`: METHOD, stable UID, SEQUENCE, STATUS, a VALARM.

    Times are written in UTC, which every calendar reads without a VTIMEZONE block.
    """
    calendar = Calendar()
    calendar.add("prodid", f"-//notifier//notifier {__version__}//EN")
    calendar.add("version", "2.0")
    calendar.add("method", ics_method(meeting))
    event = Event()
    event.add("uid", meeting_uid(meeting.id, domain))
    event.add("sequence", meeting.sequence)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", meeting.starts_at.astimezone(UTC))
    if meeting.ends_at is not None:
        event.add("dtend", meeting.ends_at.astimezone(UTC))
    event.add("summary", meeting.title)
    if meeting.description:
        event.add("description", meeting.description)
    if meeting.location:
        event.add("location", meeting.location)
    event.add("status", _STATUS[meeting.status])
    event.add("organizer", vCalAddress(f"mailto:{organizer}"))
    if alarm is not None and meeting.status is not MeetingStatus.CANCELLED:
        reminder = Alarm()
        reminder.add("action", "DISPLAY")
        reminder.add("description", meeting.title)
        reminder.add("trigger", -alarm)
        event.add_component(reminder)
    calendar.add_component(event)
    return bytes(calendar.to_ical())
