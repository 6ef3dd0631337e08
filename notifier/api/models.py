"""The API's own request and response bodies (config-file records are reused only where
the shape is the file's: meetings and subscribers)."""

from __future__ import annotations

from copy import copy
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    create_model,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from notifier.configfile import ChangeTexts, LanguageCode, MeetingTexts, SubscriberConfig
from notifier.domain.models import MeetingStatus
from notifier.domain.outbox import REPLAYABLE, DeliveryFilter
from notifier.fields import (
    AudienceName,
    EventId,
    Instant,
    OneLine,
    Slug,
    TieredList,
    TieredMultiLine,
    TieredOneLine,
    Title,
    WrittenTime,
)
from notifier.views import SourceProblem, SourceReport

__all__ = [
    "DeliveryOut",
    "HistoryEntryOut",
    "MeetingOut",
    "MeetingPatch",
    "ReplayAnswer",
    "ReplayRequest",
    "SourceProblem",
    "SourceReport",
    "StatusAnswer",
    "StatusPush",
    "SubscriberOut",
    "SuppressionOut",
    "Unsubscribed",
    "WebhookOut",
]


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
                },
                {
                    "status": "postponed",
                    "reason": {
                        "public": "postponed",
                        "participants": "medical reasons: a second health assessment",
                    },
                    "conditions": {"public": [], "participants": ["health clearance"]},
                    "event_id": "upstream-4710",
                },
            ]
        },
    )

    #: The meeting this change is for. Required in a signed push (the body is what the
    #: signature covers, so it binds the change to one meeting); when given, it must be
    #: the meeting of the URL.
    meeting: Slug | None = None
    status: MeetingStatus
    #: Plain text every audience reads, or variants by audience:
    #: ``{"public": "postponed", "participants": "medical reasons"}``.
    reason: TieredOneLine = ""
    #: The new start: RFC 9557, an offset, or the meeting's local time (resolved on the
    #: meeting's own clocks; a time they skip or pass twice is refused, naming both).
    starts_at: WrittenTime | None = None
    #: Which of two readings of a local time the clocks pass twice: 0 the first, 1 the second.
    fold: Literal[0, 1] | None = None
    #: Pending conditions after the change (null keeps them), plain or by audience.
    conditions: TieredList | None = None
    #: The reason and conditions in other languages than the fallback, each plain or by
    #: audience: ``{"ru": {"reason": "отложена"}}``. A language left out reads the
    #: fallback's reason.
    texts: dict[LanguageCode, ChangeTexts] = {}
    event_id: EventId | None = None
    #: true or false (strict: 0, 1 and "yes" are refused rather than read as booleans).
    force: StrictBool = False


class MeetingPatch(BaseModel):
    """Descriptive fields of a meeting; status and time change through the status push.

    A field left out is kept; only ``ends_at`` may be null (it removes the end time). The
    schema says the same: the other fields are not nullable there.
    """

    model_config = ConfigDict(extra="forbid")

    title: Title | SkipJsonSchema[None] = None
    description: TieredMultiLine | SkipJsonSchema[None] = None
    location: TieredOneLine | SkipJsonSchema[None] = None
    participants: TieredList | SkipJsonSchema[None] = None
    tags: list[OneLine] | SkipJsonSchema[None] = None
    conditions: TieredList | SkipJsonSchema[None] = None
    ends_at: Instant | None = None
    #: The lowest audience that may know of the meeting.
    audience: AudienceName | SkipJsonSchema[None] = None
    #: The details in other languages (each replaces that language's details whole).
    texts: dict[LanguageCode, MeetingTexts] | SkipJsonSchema[None] = None
    reason: OneLine = ""

    @model_validator(mode="after")
    def _null_only_ends(self) -> MeetingPatch:
        for name in sorted(self.model_fields_set - {"ends_at"}):
            if getattr(self, name) is None:
                raise ValueError(f"{name}: may not be null (leave it out to keep it)")
        return self


def _optional(model: type[BaseModel], name: str) -> type[BaseModel]:
    """`model`'s fields, each optional and none nullable that is not nullable there, with
    no cross-field rule: the shape of a PATCH body, checked again once merged."""
    fields: dict[str, Any] = {}
    for field, info in model.model_fields.items():
        optional = copy(info)  # the constraints and schema of the field, not its default
        optional.default, optional.default_factory = None, None
        fields[field] = (info.annotation, optional)
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


#: The body of ``PATCH /v1/subscribers/{id}``: any of a subscriber's fields.
SubscriberPatch = _optional(SubscriberConfig, "SubscriberPatch")


#: The delivery filters a replay takes: those that select only replayable deliveries (the
#: schema lists these, not every filter, so it permits exactly what is accepted).
ReplayFilter = StrEnum(  # type: ignore[misc]  # built from the domain's list, not repeated
    "ReplayFilter",
    {
        f.name: f.value
        for f in DeliveryFilter
        if all(status in REPLAYABLE for status in f.statuses())
    },
)


def _replayable(value: object) -> object:
    # A filter that selects nothing replayable says so, as the CLI does, rather than
    # only listing the values the enum takes.
    if isinstance(value, str) and value in set(DeliveryFilter) - set(ReplayFilter):
        usable = ", ".join(f.value for f in ReplayFilter)
        raise ValueError(f"{value} deliveries cannot be replayed (use {usable})")
    return value


class ReplayRequest(BaseModel):
    """Which deliveries to replay."""

    model_config = ConfigDict(extra="forbid")

    status: Annotated[ReplayFilter, BeforeValidator(_replayable)] = ReplayFilter.DEAD  # type: ignore[attr-defined]
    #: Only deliveries created at or after this instant.
    since: Instant | None = None
    subscriber: Slug | None = None
    #: Count what would be replayed; change nothing (true or false, strictly).
    dry_run: StrictBool = False


class ReplayAnswer(BaseModel):
    """How many deliveries were (or would be) replayed, and the first hundred ids."""

    count: int
    dry_run: bool
    ids: list[str]


# -- answers ----------------------------------------------------------------------------------
# Instants are ISO 8601 strings exactly as the store keeps them (with their offset), so the
# API, ``--json`` and the webhook body write a time the same way.


class MeetingOut(BaseModel):
    """A meeting as the API shows it (the webhook body's ``data.meeting`` shape)."""

    id: str
    title: str
    #: Tiered fields show their variants by audience where they have them.
    description: str | dict[str, str]
    location: str | dict[str, str]
    participants: list[str] | dict[str, list[str]]
    timezone: str
    starts_at: str
    ends_at: str | None
    status: MeetingStatus
    reason: str | dict[str, str]
    conditions: list[str] | dict[str, list[str]]
    tags: list[str]
    sequence: int
    source: str
    audience: str
    #: "wall" (the local time stands when the zone's rules change) or "instant".
    anchor: str = "wall"
    #: Its text in other languages: {language: {field: value or {audience: value}}}.
    texts: dict[str, dict[str, Any]] | None = None


class HistoryEntryOut(BaseModel):
    """One entry of a meeting's history."""

    model_config = ConfigDict(populate_by_name=True)

    sequence: int
    at: str
    kind: str
    from_: MeetingStatus | None = Field(alias="from")
    to: MeetingStatus
    reason: str | dict[str, str]
    previous_starts_at: str | None
    starts_at: str | None
    event_id: str | None
    source: str
    forced: bool
    #: The conditions a clearance lifted: a list, or its variants by audience.
    cleared: list[str] | dict[str, list[str]] = []
    #: What a change of the zone's clock rules did (entries from "tzdata" only).
    clock: dict[str, str] | None = None
    #: The reason in other languages.
    texts: dict[str, dict[str, Any]] | None = None


class StatusAnswer(BaseModel):
    """What a status push did: the meeting after it, the change, and how many
    deliveries it queued (none for a duplicate)."""

    meeting: MeetingOut
    change: HistoryEntryOut
    duplicate: bool
    deliveries: int


class WebhookOut(BaseModel):
    """A subscriber's webhook: secrets are counted, never shown."""

    url: str
    secrets: int


class SubscriberOut(BaseModel):
    """A subscriber as the API shows it."""

    id: str
    name: str
    email: str | None
    webhook: WebhookOut | None
    timezone: str
    locale: str
    meetings: list[str]
    tags: list[str]
    events: list[str]
    reminders: list[str]
    quiet_hours: str | None
    active: bool
    #: file, api, or public (self-service on the public pages).
    source: str
    audience: str
    #: False while a self-service subscriber has not followed the emailed link.
    confirmed: bool
    #: How many chat and push URLs (Apprise) the subscriber has; never the URLs.
    notify: int


class DeliveryOut(BaseModel):
    """One message in the outbox."""

    id: str
    meeting: str
    subscriber: str
    channel: str
    kind: str
    sequence: int
    status: str
    attempts: int
    next_attempt_at: str
    last_error: str | None


class SuppressionOut(BaseModel):
    """An address that bounced for good."""

    address: str
    reason: str
    since: str


class Unsubscribed(BaseModel):
    """Who stopped receiving what."""

    unsubscribed: str
    channel: str


class Health(BaseModel):
    """``/healthz``: the process is up; what it runs (the daemon adds its components)."""

    model_config = ConfigDict(extra="allow")

    status: str
    version: str
    uptime_seconds: float | None = None
    sources: int | None = None


class Ready(BaseModel):
    """``/readyz``: every check true."""

    model_config = ConfigDict(extra="allow")

    status: str
    database: bool
    scheduler: bool
    worker: bool
