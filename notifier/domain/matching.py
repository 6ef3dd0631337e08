"""Which subscribers hear about which change, and when quiet hours let them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from notifier.domain.audiences import Audiences
from notifier.domain.models import EventKind, Meeting, Subscriber

#: Kinds that go out even during a subscriber's quiet hours: the meeting will not happen
#: when the subscriber thinks it will.
URGENT_KINDS = frozenset({EventKind.POSTPONED, EventKind.RESCHEDULED, EventKind.CANCELLED})


def subscriber_matches(
    subscriber: Subscriber, meeting: Meeting, kind: EventKind, audiences: Audiences
) -> bool:
    """Whether `subscriber` wants to hear about `kind` for `meeting`, and may.

    An inactive subscriber matches nothing, nor does one whose audience is below the
    meeting's. Meeting ids and tags filter together: with either set, the meeting must be
    named or carry a listed tag; with neither, every meeting matches. Events match on
    ``"*"`` or the exact kind.
    """
    if not subscriber.active or not audiences.may_know(subscriber.audience, meeting.audience):
        return False
    if subscriber.meetings or subscriber.tags:
        named = meeting.id in subscriber.meetings
        tagged = bool(set(subscriber.tags) & set(meeting.tags))
        if not (named or tagged):
            return False
    return "*" in subscriber.events or kind.value in subscriber.events


def match_subscribers(
    subscribers: Iterable[Subscriber], meeting: Meeting, kind: EventKind, audiences: Audiences
) -> list[Subscriber]:
    """The subscribers who want `kind` for `meeting` (and may know of it), by id."""
    return sorted(
        (s for s in subscribers if subscriber_matches(s, meeting, kind, audiences)),
        key=lambda s: s.id,
    )


def release_at(subscriber: Subscriber, kind: EventKind, *, now: datetime) -> datetime:
    """When a notification of `kind` created at `now` may go out to `subscriber`.

    `now` unless it falls in the subscriber's quiet hours and the kind is not urgent;
    then the end of the quiet window, in absolute time (a DST jump is honoured).
    """
    quiet = subscriber.quiet_hours
    if quiet is None or kind in URGENT_KINDS:
        return now
    zone = ZoneInfo(subscriber.timezone)
    local = now.astimezone(zone)
    if not quiet.contains(local.time()):
        return now
    end_day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        end_day = end_day + timedelta(days=1)
    end = datetime.combine(end_day, quiet.end, tzinfo=zone)
    # A wall-clock end that a DST gap skips resolves (fold=0) to the instant after the gap.
    return max(now, end.astimezone(now.tzinfo))
