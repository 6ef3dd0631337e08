"""iCalendar feeds: each VEVENT is a meeting; STATUS, DTSTART and SEQUENCE carry changes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar

from notifier.domain.models import MeetingStatus
from notifier.sources.feed import FeedItem

_STATUS = {
    "TENTATIVE": MeetingStatus.SCHEDULED,
    "CONFIRMED": MeetingStatus.CONFIRMED,
    "CANCELLED": MeetingStatus.CANCELLED,
}


class FeedError(ValueError):
    """The feed could not be read as promised."""


def _zone_name(value: datetime, default: str) -> str:
    key = getattr(value.tzinfo, "key", None)
    return key if isinstance(key, str) else default


def parse_ics(body: bytes, *, default_timezone: str = "UTC") -> tuple[list[FeedItem], list[str]]:
    """Feed items from an iCalendar document, and one line per event that was skipped.

    Floating times (no zone) are read in `default_timezone`; all-day events, events without
    a UID or DTSTART, and recurring events (RRULE) are skipped with a reason.
    """
    try:
        calendar = Calendar.from_ical(body)
    except ValueError as exc:
        raise FeedError(f"not an iCalendar document: {exc}") from None
    items: list[FeedItem] = []
    skipped: list[str] = []
    for event in calendar.walk("VEVENT"):
        uid = str(event.get("UID", "")).strip()
        start = event.get("DTSTART")
        if not uid or start is None:
            skipped.append(f"event {uid or '(no UID)'}: no UID or DTSTART")
            continue
        if event.get("RRULE") is not None:
            skipped.append(f"event {uid}: recurring events are not followed")
            continue
        starts_at = start.dt
        if isinstance(starts_at, date) and not isinstance(starts_at, datetime):
            skipped.append(f"event {uid}: all-day events have no start time")
            continue
        zone = default_timezone
        if starts_at.tzinfo is None:
            starts_at = starts_at.replace(tzinfo=ZoneInfo(default_timezone))
        else:
            zone = _zone_name(starts_at, default_timezone)
        ends_at = None
        end = event.get("DTEND")
        if end is not None and isinstance(end.dt, datetime):
            ends_at = end.dt if end.dt.tzinfo else end.dt.replace(tzinfo=ZoneInfo(default_timezone))
        elif event.get("DURATION") is not None:
            duration = event.get("DURATION").dt
            if isinstance(duration, timedelta):
                ends_at = starts_at + duration
        raw_status = str(event.get("STATUS", "CONFIRMED")).upper()
        sequence = event.get("SEQUENCE")
        items.append(
            FeedItem(
                uid=uid,
                title=str(event.get("SUMMARY", "")).strip() or uid,
                starts_at=starts_at,
                ends_at=ends_at if ends_at and ends_at > starts_at else None,
                status=_STATUS.get(raw_status, MeetingStatus.CONFIRMED),
                timezone=zone,
                location=str(event.get("LOCATION", "")).strip(),
                description=str(event.get("DESCRIPTION", "")).strip(),
                sequence=int(sequence) if sequence is not None else None,
            )
        )
    return items, skipped
