"""When reminders fire: `starts_at - offset` in absolute time, whatever the zone does.

Python subtracts a `timedelta` from an aware datetime in wall-clock time within its own
zone, which is an hour off across a DST change. Every computation here happens in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from notifier.domain.audiences import Audiences
from notifier.domain.machine import ON_SCHEDULE
from notifier.domain.matching import subscriber_matches
from notifier.domain.models import EventKind, Meeting, Subscriber


class ReminderState(StrEnum):
    """Where a planned reminder stands."""

    #: Waiting for its instant.
    PENDING = "pending"
    #: Sent (on time, or late within the grace period).
    FIRED = "fired"
    #: Superseded: the meeting moved, was postponed, cancelled or retired, or the reader left.
    WITHDRAWN = "withdrawn"
    #: Its instant passed longer ago than the grace period (the daemon was down): not sent.
    MISSED = "missed"


@dataclass(frozen=True, kw_only=True)
class Reminder:
    """A reminder to send `offset` before `meeting_id` starts, planned for one `sequence`."""

    meeting_id: str
    subscriber_id: str
    offset: timedelta
    due_at: datetime
    #: The meeting sequence this reminder was planned for; any later change supersedes it.
    sequence: int


def reminder_instant(starts_at: datetime, offset: timedelta) -> datetime:
    """The UTC instant exactly `offset` of elapsed time before `starts_at`."""
    if starts_at.tzinfo is None or starts_at.utcoffset() is None:
        raise ValueError(f"starts_at must be timezone-aware, got {starts_at.isoformat()}")
    try:
        return starts_at.astimezone(UTC) - offset
    except OverflowError:  # a meeting at the dawn of the calendar: the instant is before
        return datetime.min.replace(tzinfo=UTC)  # anything, so never a reminder ahead


def plan_reminders(
    meeting: Meeting,
    subscribers: list[Subscriber],
    *,
    now: datetime,
    audiences: Audiences,
) -> list[Reminder]:
    """Every reminder still ahead of `now` for `meeting`, one per subscriber and offset.

    Nothing is planned for a meeting that is not on schedule (postponed, under way, over,
    cancelled), for a subscriber who does not take ``meeting.reminder`` for this meeting
    (inactive, filtered out, below the meeting's audience), or for an instant already past.
    Sorted by due time, then subscriber, then offset, so plans compare equal when nothing
    changed.
    """
    if meeting.status not in ON_SCHEDULE:
        return []
    planned = [
        Reminder(
            meeting_id=meeting.id,
            subscriber_id=subscriber.id,
            offset=offset,
            due_at=due,
            sequence=meeting.sequence,
        )
        for subscriber in subscribers
        if subscriber_matches(subscriber, meeting, EventKind.REMINDER, audiences)
        for offset in sorted(set(subscriber.reminders), reverse=True)
        if (due := reminder_instant(meeting.starts_at, offset)) > now
    ]
    return sorted(planned, key=lambda r: (r.due_at, r.subscriber_id, -r.offset))
