"""What the store hands back (typed records) and how rows become domain objects."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Row,
    case,
)

from notifier.clockrules import tzdata_version
from notifier.domain.audiences import freeze, thaw
from notifier.domain.clock import Anchor, ClockChange, Wall, instant_at, wall_of
from notifier.domain.languages import freeze_texts, thaw_texts
from notifier.domain.models import (
    EventKind,
    HistoryEntry,
    Meeting,
    MeetingStatus,
    QuietHours,
    Source,
    Subscriber,
)
from notifier.domain.outbox import (
    Channel,
    Delivery,
    DeliveryStatus,
)
from notifier.domain.reminders import Reminder, ReminderState


@dataclass(frozen=True, kw_only=True)
class MeetingRecord:
    """A stored meeting with the bookkeeping the domain does not need."""

    meeting: Meeting
    file_state: str | None
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None
    #: The instant stored for the start: what readers were last told. A wall-anchored
    #: meeting's `meeting.starts_at` is derived from its local time under the rules in
    #: force, so the two differ when the zone's rules changed since.
    stored_starts_at: datetime | None = None
    #: The local reading stored with it (None for rows from before it was kept).
    wall: Wall | None = None


@dataclass(frozen=True, kw_only=True)
class StoredReminder:
    """A reminder as the store keeps it."""

    id: int
    meeting_id: str
    subscriber_id: str
    offset: timedelta
    due_at: datetime
    sequence: int
    state: ReminderState
    fired_at: datetime | None
    late: bool


REMINDERS_VERSION = "reminders_version"


#: What a replay sets: due again, with a fresh set of attempts (the old ones stay in
#: delivery_attempts to read).
_REPLAYED = {"status": DeliveryStatus.PENDING.value, "last_error": None, "attempts": 0}


log = logging.getLogger(__name__)


#: The PostgreSQL channel on which new deliveries are announced to every replica.
OUTBOX_CHANNEL = "notifier_outbox"


@dataclass(frozen=True, kw_only=True)
class Lease:
    """One reign over a lease: its holder and term (the fencing token), until `expires_at`."""

    name: str
    holder: str
    term: int
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class Fanout:
    """A change whose readers after `after` (in id order) are still to be planned."""

    meeting: Meeting
    sequence: int
    planned_at: datetime
    after: str


@dataclass(frozen=True, kw_only=True)
class SubscriberRecord:
    """A stored subscriber with its bookkeeping."""

    subscriber: Subscriber
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None
    #: Self-service: when the emailed link was followed (None: still waiting).
    confirmed_at: datetime | None = None
    #: Signs the subscriber's manage and calendar links (rotated to retire them).
    link_salt: str = ""


def _record(row: Row[Any]) -> MeetingRecord:
    return MeetingRecord(
        meeting=_meeting(row),
        file_state=row.file_state,
        created_at=row.created_at,
        updated_at=row.updated_at,
        retired_at=row.retired_at,
        stored_starts_at=row.starts_at,
        wall=_wall(row),
    )


def _wall(row: Row[Any]) -> Wall | None:
    if not row.local_starts_at:
        return None
    return Wall(
        starts=datetime.fromisoformat(row.local_starts_at),
        ends=datetime.fromisoformat(row.local_ends_at) if row.local_ends_at else None,
        fold=int(row.fold or 0),
        offset=timedelta(seconds=row.utc_offset or 0),
        tzdata=row.tzdata or "",
    )


def _meeting(row: Row[Any]) -> Meeting:
    zone = ZoneInfo(row.timezone)
    anchor = Anchor(row.anchor or Anchor.WALL.value)
    starts_at = row.starts_at.astimezone(zone)
    ends_at = row.ends_at.astimezone(zone) if row.ends_at else None
    if anchor is Anchor.WALL and row.local_starts_at:
        # The local time is the truth: the instant is what it is under today's rules.
        starts_at = instant_at(
            datetime.fromisoformat(row.local_starts_at), row.timezone, fold=row.fold or 0
        )
        if row.local_ends_at:
            ends_at = instant_at(datetime.fromisoformat(row.local_ends_at), row.timezone)
    return Meeting(
        id=row.id,
        title=row.title,
        description=row.description,
        location=row.location,
        participants=tuple(row.participants),
        timezone=row.timezone,
        starts_at=starts_at,
        ends_at=ends_at,
        status=MeetingStatus(row.status),
        reason=row.reason,
        conditions=tuple(row.conditions),
        tags=tuple(row.tags),
        sequence=row.sequence,
        source=Source(row.source),
        coalesce=timedelta(seconds=row.coalesce_seconds) if row.coalesce_seconds else None,
        audience=row.audience,
        variants=freeze(row.variants or {}),
        anchor=anchor,
        texts=freeze_texts(row.texts),
        require_languages=tuple(row.require_languages or ()),
    )


def _meeting_values(meeting: Meeting) -> dict[str, Any]:
    wall = wall_of(meeting.starts_at, meeting.ends_at, meeting.timezone, tzdata=tzdata_version())
    return {
        "anchor": meeting.anchor.value,
        "texts": thaw_texts(meeting.texts),
        "require_languages": list(meeting.require_languages) or None,
        "local_starts_at": wall.starts.isoformat(),
        "local_ends_at": wall.ends.isoformat() if wall.ends else None,
        "fold": wall.fold,
        "utc_offset": int(wall.offset.total_seconds()),
        "tzdata": wall.tzdata,
        "title": meeting.title,
        "description": meeting.description,
        "location": meeting.location,
        "participants": list(meeting.participants),
        "timezone": meeting.timezone,
        "starts_at": meeting.starts_at,
        "ends_at": meeting.ends_at,
        "status": meeting.status.value,
        "reason": meeting.reason,
        "conditions": list(meeting.conditions),
        "tags": list(meeting.tags),
        "sequence": meeting.sequence,
        "source": meeting.source.value,
        "coalesce_seconds": int(meeting.coalesce.total_seconds()) if meeting.coalesce else None,
        "audience": meeting.audience,
        "variants": thaw(meeting.variants),
    }


def _history(row: Row[Any], zone: ZoneInfo) -> HistoryEntry:
    return HistoryEntry(
        meeting_id=row.meeting_id,
        sequence=row.sequence,
        at=row.at.astimezone(zone),
        kind=EventKind(row.kind),
        from_status=MeetingStatus(row.from_status) if row.from_status else None,
        to_status=MeetingStatus(row.to_status),
        reason=row.reason,
        previous_starts_at=row.previous_starts_at.astimezone(zone)
        if row.previous_starts_at
        else None,
        starts_at=row.starts_at.astimezone(zone) if row.starts_at else None,
        event_id=row.event_id,
        source=Source(row.source),
        forced=bool(row.forced),
        cleared=tuple(row.cleared or ()),
        clock=ClockChange.from_dict(row.clock) if row.clock else None,
        texts=freeze_texts(row.texts),
        variants=freeze(row.variants or {}),
    )


def _quiet(text: str | None) -> QuietHours | None:
    return QuietHours.parse(text) if text else None


def _reminder_row(reminder: Reminder) -> dict[str, Any]:
    return {
        "meeting_id": reminder.meeting_id,
        "subscriber_id": reminder.subscriber_id,
        "offset_seconds": int(reminder.offset.total_seconds()),
        "due_at": reminder.due_at,
        "sequence": reminder.sequence,
        "state": _PENDING,
    }


_PENDING = ReminderState.PENDING.value


_WITHDRAWN = ReminderState.WITHDRAWN.value


def _item_id(url: str, key: str) -> str:
    return hashlib.sha256(f"{url}\x1f{key}".encode()).hexdigest()


def case_pending(attempts: Any) -> Any:
    """``pending`` for a delivery never tried, ``retrying`` for one tried before."""
    return case((attempts == 0, DeliveryStatus.PENDING.value), else_=DeliveryStatus.RETRYING.value)


#: Enum members by stored value: a dict lookup is several times cheaper than ``Enum(v)``,
#: and the claim reads thousands of rows a second.
_CHANNELS = {c.value: c for c in Channel}
_KINDS = {k.value: k for k in EventKind}
_STATUSES = {s.value: s for s in DeliveryStatus}

#: The columns a `Delivery` is read from (`_delivery`), in its fields' order.
DELIVERY_COLUMNS = (
    "id",
    "meeting_id",
    "subscriber_id",
    "channel",
    "kind",
    "sequence",
    "notice_id",
    "next_attempt_at",
    "status",
    "attempts",
    "last_error",
    "target",
)


def _claimed(row: Sequence[Any]) -> Delivery:
    """A delivery from a row of exactly `DELIVERY_COLUMNS`, by position: reading a Row's
    fields by name costs about a microsecond each, and the claim reads thousands a second."""
    (
        id_,
        meeting_id,
        subscriber_id,
        channel,
        kind,
        sequence,
        notice_id,
        next_attempt_at,
        status,
        attempts,
        last_error,
        target,
    ) = row
    return Delivery(
        id=id_,
        meeting_id=meeting_id,
        subscriber_id=subscriber_id,
        channel=_CHANNELS[channel],
        kind=_KINDS[kind],
        sequence=sequence,
        notice_id=notice_id,
        next_attempt_at=next_attempt_at,
        status=_STATUSES[status],
        attempts=attempts,
        last_error=last_error,
        target=target,
    )


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        meeting_id=row.meeting_id,
        subscriber_id=row.subscriber_id,
        channel=_CHANNELS[row.channel],
        kind=_KINDS[row.kind],
        sequence=row.sequence,
        notice_id=row.notice_id,
        next_attempt_at=row.next_attempt_at,
        status=_STATUSES[row.status],
        attempts=row.attempts,
        last_error=row.last_error,
        target=row.target,
    )


@dataclass(frozen=True, kw_only=True)
class Suppression:
    """An address that bounced for good: nothing is sent to it."""

    address: str
    reason: str
    since: datetime

    def to_dict(self) -> dict[str, str]:
        """The API and ``--json`` shape."""
        return {"address": self.address, "reason": self.reason, "since": self.since.isoformat()}


@dataclass(frozen=True, kw_only=True)
class QueueStats:
    """The outbox at a glance: deliveries per status, and how long the oldest unsent one
    has waited."""

    per_status: dict[DeliveryStatus, int]
    oldest_pending_seconds: float


@dataclass(frozen=True, kw_only=True)
class Stamp:
    """What changes whenever anything one audience may see of the meetings changes: a
    cheap validator for pages and feeds (no document is built to compare)."""

    #: Meetings the audience may know of (a retirement or an audience change moves it).
    meetings: int
    #: The latest of their `updated_at`.
    updated_at: datetime | None
    #: The newest of their history entries' row ids.
    latest_change: int


@dataclass(frozen=True, kw_only=True)
class Counts:
    """What the store holds that is not retired (the daemon's start-up line)."""

    meetings: int
    subscribers: int
    pending_reminders: int

    def as_dict(self) -> dict[str, int]:
        """For log records' structured fields."""
        return {
            "meetings": self.meetings,
            "subscribers": self.subscribers,
            "pending_reminders": self.pending_reminders,
        }


@dataclass(frozen=True, kw_only=True)
class Pruned:
    """How many records of each kind a prune deleted."""

    deliveries: int = 0
    attempts: int = 0
    events: int = 0
    notices: int = 0
    #: Self-service subscriptions never confirmed within `public.confirm_within`.
    unconfirmed: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            deliveries=self.deliveries + other.deliveries,
            attempts=self.attempts + other.attempts,
            events=self.events + other.events,
            notices=self.notices + other.notices,
            unconfirmed=self.unconfirmed + other.unconfirmed,
        )

    def __bool__(self) -> bool:
        return any(self.as_dict().values())

    def as_dict(self) -> dict[str, int]:
        """Kind -> count, in a stable order."""
        return {
            "deliveries": self.deliveries,
            "attempts": self.attempts,
            "events": self.events,
            "notices": self.notices,
            "unconfirmed": self.unconfirmed,
        }


@dataclass(frozen=True, kw_only=True)
class SourceState:
    """A watched source's health and last read, as the poller keeps it."""

    url: str
    kind: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_polled_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_error: str | None = None
    failures: int = 0
    next_poll_at: datetime | None = None
    #: The last read: events followed, skipped, refused, changes applied, progress.
    counts: dict[str, int] = field(default_factory=dict)
    #: Each skipped or refused event's reason, by event key.
    problems: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Row[Any]) -> SourceState:
        """A `sources` row as a record."""
        values = dict(row._mapping)
        return cls(
            **{k: v for k, v in values.items() if k not in ("counts", "problems")},
            counts=dict(values.get("counts") or {}),
            problems=dict(values.get("problems") or {}),
        )
