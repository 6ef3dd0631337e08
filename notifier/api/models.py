"""The API's own request and response bodies (config-file records are reused only where
the shape is the file's: meetings and subscribers)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict

from notifier.domain.models import MeetingStatus
from notifier.domain.outbox import DeliveryFilter
from notifier.fields import EventId, MultiLine, OneLine, Slug, Title


class StatusPush(BaseModel):
    """A status change pushed over HTTP."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "status": "rescheduled",
                    "reason": "talks moved to the evening",
                    "starts_at": "2026-03-02T21:00:00+03:00",
                    "event_id": "upstream-4711",
                }
            ]
        },
    )

    #: The meeting this change is for. Required in a signed push (the body is what the
    #: signature covers, so it binds the change to one meeting); when given, it must be
    #: the meeting of the URL.
    meeting: Slug | None = None
    status: MeetingStatus
    reason: OneLine = ""
    starts_at: AwareDatetime | None = None
    conditions: list[OneLine] | None = None
    event_id: EventId | None = None
    force: bool = False


class MeetingPatch(BaseModel):
    """Descriptive fields of a meeting; status and time change through the status push."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: MultiLine | None = None
    location: OneLine | None = None
    participants: list[OneLine] | None = None
    tags: list[OneLine] | None = None
    conditions: list[OneLine] | None = None
    ends_at: AwareDatetime | None = None
    reason: OneLine = ""


class ReplayRequest(BaseModel):
    """Which deliveries to replay."""

    model_config = ConfigDict(extra="forbid")

    status: DeliveryFilter = DeliveryFilter.DEAD
    #: Only deliveries created at or after this instant.
    since: AwareDatetime | None = None
    subscriber: Slug | None = None
    #: Count what would be replayed; change nothing.
    dry_run: bool = False


class ReplayAnswer(BaseModel):
    """How many deliveries were (or would be) replayed, and the first hundred ids."""

    count: int
    dry_run: bool
    ids: list[str]


class SourceProblem(BaseModel):
    """One event a feed's last read skipped or refused, and why."""

    event: str
    reason: str


class SourceReport(BaseModel):
    """A watched feed: its health and what its last read followed, skipped and refused."""

    url: str
    kind: str
    every_seconds: float
    last_polled_at: str | None
    last_ok_at: str | None
    next_poll_at: str | None
    failures: int
    followed: int
    skipped: int
    refused: int
    #: Changes (meetings created, moved, updated, cancelled) the last read applied.
    applied: int
    #: ``done/total`` while a large read is applied in chunks; null when finished.
    applying: str | None
    last_error: str | None
    problems: list[SourceProblem]
