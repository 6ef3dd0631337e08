"""Domain records: meetings, their status and history, subscribers.

Frozen, keyword-only dataclasses; every datetime is timezone-aware.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any

from notifier.domain.audiences import PUBLIC, TIERED, Variants, freeze, shown, split
from notifier.domain.clock import Anchor, ClockChange, Moment
from notifier.domain.durations import format_duration
from notifier.domain.languages import Texts, freeze_texts, thaw_texts


class MeetingStatus(StrEnum):
    """Where a meeting stands."""

    #: Arranged, not yet confirmed.
    SCHEDULED = "scheduled"
    #: Both sides confirmed.
    CONFIRMED = "confirmed"
    #: Put off, usually with a reason and pending conditions.
    POSTPONED = "postponed"
    #: The conditions that held it back are met; a new time may follow.
    CLEARED = "cleared"
    #: Moved to a new `starts_at`.
    RESCHEDULED = "rescheduled"
    #: Under way.
    IN_PROGRESS = "in_progress"
    #: Over. Final.
    CONCLUDED = "concluded"
    #: Called off. Final.
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Final: the meeting is over or called off, and no more news of it will come."""
        return self in (MeetingStatus.CONCLUDED, MeetingStatus.CANCELLED)


class EventKind(StrEnum):
    """What a notification is about; names are the webhook ``type`` field."""

    SCHEDULED = "meeting.scheduled"
    CONFIRMED = "meeting.confirmed"
    POSTPONED = "meeting.postponed"
    CLEARED = "meeting.cleared"
    RESCHEDULED = "meeting.rescheduled"
    STARTED = "meeting.started"
    CONCLUDED = "meeting.concluded"
    CANCELLED = "meeting.cancelled"
    #: Details changed (title, place, conditions) without a new status.
    UPDATED = "meeting.updated"
    REMINDER = "meeting.reminder"


_KIND_OF_STATUS = {
    MeetingStatus.SCHEDULED: EventKind.SCHEDULED,
    MeetingStatus.CONFIRMED: EventKind.CONFIRMED,
    MeetingStatus.POSTPONED: EventKind.POSTPONED,
    MeetingStatus.CLEARED: EventKind.CLEARED,
    MeetingStatus.RESCHEDULED: EventKind.RESCHEDULED,
    MeetingStatus.IN_PROGRESS: EventKind.STARTED,
    MeetingStatus.CONCLUDED: EventKind.CONCLUDED,
    MeetingStatus.CANCELLED: EventKind.CANCELLED,
}


def kind_of_status(status: MeetingStatus) -> EventKind:
    """The event kind announced when a meeting enters `status`."""
    return _KIND_OF_STATUS[status]


class Source(StrEnum):
    """Where a record or a change came from."""

    FILE = "file"
    API = "api"
    CLI = "cli"
    FEED = "feed"
    #: Self-service: subscribed on the public pages (always the lowest audience).
    PUBLIC = "public"
    #: The daemon, after the tz database's rules for a meeting's zone changed.
    TZDATA = "tzdata"


@dataclass(frozen=True, kw_only=True)
class Meeting:
    """A meeting and its current state. `sequence` goes up on every accepted change."""

    id: str
    title: str
    timezone: str
    starts_at: datetime
    ends_at: datetime | None = None
    description: str = ""
    location: str = ""
    participants: tuple[str, ...] = ()
    status: MeetingStatus = MeetingStatus.SCHEDULED
    reason: str = ""
    conditions: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    sequence: int = 0
    source: Source = Source.API
    #: When set, changes within this window go out as one message per subscriber.
    coalesce: timedelta | None = None
    #: The lowest audience that may know of this meeting at all.
    audience: str = PUBLIC
    #: Variants by audience of the tiered fields (`notifier.domain.audiences`): a field
    #: named here is read through `view_meeting`, never from its plain value.
    variants: Variants = field(default_factory=dict)
    #: What the time is fixed to when the zone's clock rules change (`notifier.domain.clock`):
    #: its local time (the default) or its instant.
    anchor: Anchor = Anchor.WALL
    #: Its text in languages other than the fallback (`notifier.domain.languages`):
    #: language -> field -> plain value or variants by audience.
    texts: Texts = field(default_factory=dict)
    #: Languages every change must give its text in (a change without is refused).
    require_languages: tuple[str, ...] = ()

    def replace(self, **changes: object) -> Meeting:
        """A copy with `changes` applied."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """The meeting as JSON-ready data (the API, webhook and ``--json`` shape).

        A tiered field shows its table of variants: operators see every one. What a reader
        gets is made from `view_meeting`, which leaves none."""
        v = self.variants
        return {
            "id": self.id,
            "title": self.title,
            "description": shown("description", self.description, v),
            "location": shown("location", self.location, v),
            "participants": shown("participants", self.participants, v),
            "timezone": self.timezone,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "status": self.status.value,
            "reason": shown("reason", self.reason, v),
            "conditions": shown("conditions", self.conditions, v),
            "tags": list(self.tags),
            "sequence": self.sequence,
            "source": self.source.value,
            "audience": self.audience,
            "anchor": self.anchor.value,
            **({"texts": thaw_texts(self.texts)} if self.texts else {}),
            **(
                {"require_languages": list(self.require_languages)}
                if self.require_languages
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Meeting:
        """The inverse of `to_dict`."""
        plain, variants = _tiered(data)
        return cls(
            id=data["id"],
            title=data["title"],
            timezone=data["timezone"],
            starts_at=datetime.fromisoformat(data["starts_at"]),
            ends_at=datetime.fromisoformat(data["ends_at"]) if data["ends_at"] else None,
            status=MeetingStatus(data["status"]),
            tags=tuple(data["tags"]),
            sequence=data["sequence"],
            source=Source(data["source"]),
            audience=data.get("audience", PUBLIC),
            anchor=Anchor(data.get("anchor", Anchor.WALL.value)),
            texts=freeze_texts(data.get("texts")),
            require_languages=tuple(data.get("require_languages") or ()),
            variants=variants,
            **plain,  # type: ignore[arg-type]
        )


def _tiered(data: dict[str, Any]) -> tuple[dict[str, object], dict[str, dict[str, Any]]]:
    """The tiered fields of `data` split into plain values and variants."""
    plain: dict[str, object] = {}
    variants: dict[str, dict[str, Any]] = {}
    for name in TIERED:
        if name not in data:
            continue
        value, tiers = split(name, data[name])
        plain[name] = value
        if tiers is not None:
            variants[name] = tiers
    return plain, freeze(variants)


@dataclass(frozen=True, kw_only=True)
class StatusChange:
    """A request to move a meeting to `status`; `starts_at` is required for a reschedule."""

    meeting_id: str
    status: MeetingStatus
    reason: str = ""
    starts_at: datetime | None = None
    #: The new start as written (RFC 9557, an offset, or a local time in the meeting's
    #: zone), resolved against the meeting's zone when applied; instead of `starts_at`.
    starts_local: Moment | None = None
    #: Pending conditions after the change; None keeps them (cleared empties them).
    conditions: tuple[str, ...] | None = None
    #: The caller's id for this change: a repeat with the same id is a no-op.
    event_id: str | None = None
    force: bool = False
    source: Source = Source.API
    #: Variants by audience of `reason` and `conditions` (then their plain values are
    #: empty): see `notifier.domain.audiences`.
    variants: Variants = field(default_factory=dict)
    #: `reason` and `conditions` in other languages (`notifier.domain.languages`).
    texts: Texts = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    """One accepted change, as it is kept forever in the meeting's history."""

    meeting_id: str
    sequence: int
    at: datetime
    kind: EventKind
    from_status: MeetingStatus | None
    to_status: MeetingStatus
    reason: str = ""
    previous_starts_at: datetime | None = None
    starts_at: datetime | None = None
    event_id: str | None = None
    source: Source = Source.API
    forced: bool = False
    #: The conditions a clearance lifted (what was pending before it); empty otherwise.
    cleared: tuple[str, ...] = ()
    #: What a change of the zone's clock rules did (`Source.TZDATA` entries only).
    clock: ClockChange | None = None
    #: The reason (and what was cleared) in languages other than the fallback.
    texts: Texts = field(default_factory=dict)
    #: Variants by audience of `reason` and `cleared` (see `notifier.domain.audiences`).
    variants: Variants = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data (a tiered reason as its table of variants)."""
        return {
            "sequence": self.sequence,
            "at": self.at.isoformat(),
            "kind": self.kind.value,
            "from": self.from_status.value if self.from_status else None,
            "to": self.to_status.value,
            "reason": shown("reason", self.reason, self.variants),
            "previous_starts_at": self.previous_starts_at.isoformat()
            if self.previous_starts_at
            else None,
            "starts_at": self.starts_at.isoformat() if self.starts_at else None,
            "event_id": self.event_id,
            "source": self.source.value,
            "forced": self.forced,
            "cleared": shown("cleared", self.cleared, self.variants),
            "clock": self.clock.to_dict() if self.clock else None,
            **({"texts": thaw_texts(self.texts)} if self.texts else {}),
        }


@dataclass(frozen=True, kw_only=True)
class WebhookEndpoint:
    """Where a subscriber's webhooks go; every secret signs (so secrets can be rotated)."""

    url: str
    secrets: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True, kw_only=True)
class QuietHours:
    """A daily window, in the subscriber's zone, when non-urgent alerts wait.

    `start` after `end` means the window spans midnight (22:00-07:00).
    """

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """Read ``"22:00-07:00"``; `ValueError` with what is accepted otherwise."""
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
        if not match:
            raise ValueError(f"invalid quiet hours {text!r}: write HH:MM-HH:MM, e.g. 22:00-07:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        try:
            start, end = time(h1, m1), time(h2, m2)
        except ValueError:
            raise ValueError(f"invalid quiet hours {text!r}: hours 0-23, minutes 0-59") from None
        if start == end:
            raise ValueError(f"invalid quiet hours {text!r}: start and end are the same")
        return cls(start=start, end=end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, local: time) -> bool:
        """Whether the wall-clock time `local` falls inside the window."""
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True, kw_only=True)
class Subscriber:
    """Someone to notify, by email and/or webhook, and what they want to hear about."""

    id: str
    name: str = ""
    email: str | None = None
    webhook: WebhookEndpoint | None = None
    timezone: str = "UTC"
    locale: str = "en"
    #: Meeting ids; with `tags`, either one matching is enough; neither = every meeting.
    meetings: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    #: Event kinds, or ``"*"`` for all.
    events: tuple[str, ...] = ("*",)
    reminders: tuple[timedelta, ...] = ()
    quiet_hours: QuietHours | None = None
    active: bool = True
    source: Source = Source.API
    #: Which variants of a meeting's text this reader gets, and which meetings they may
    #: hear of at all (`notifier.domain.audiences`).
    audience: str = PUBLIC
    #: False for a self-service subscriber who has not followed the emailed link yet (and
    #: who is not active until then).
    confirmed: bool = True
    #: Apprise URLs of chat and push services (secrets: counted, never shown).
    notify: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The subscriber as JSON-ready data; webhook secrets only as a count, never shown."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "webhook": {"url": self.webhook.url, "secrets": len(self.webhook.secrets)}
            if self.webhook
            else None,
            "timezone": self.timezone,
            "locale": self.locale,
            "meetings": list(self.meetings),
            "tags": list(self.tags),
            "events": list(self.events),
            "reminders": [format_duration(r) for r in self.reminders],
            "quiet_hours": str(self.quiet_hours) if self.quiet_hours else None,
            "active": self.active,
            "source": self.source.value,
            "audience": self.audience,
            "confirmed": self.confirmed,
            "notify": len(self.notify),
        }
