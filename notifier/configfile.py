"""The config file's records (meetings, subscribers, sources) and how each becomes a domain
object; the same shapes are the API's request bodies for meetings and subscribers."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, cast
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from notifier.domain.audiences import PUBLIC, TIERED, Value, split
from notifier.domain.clock import Anchor, Moment, parse_moment
from notifier.domain.errors import InvalidChange
from notifier.domain.languages import freeze_texts
from notifier.domain.models import (
    EventKind,
    Meeting,
    MeetingStatus,
    QuietHours,
    Source,
    Subscriber,
    WebhookEndpoint,
)
from notifier.fields import (
    LANGUAGE_PATTERN,
    ONE_LINE_PATTERN,
    AudienceName,
    Duration,
    Instant,
    OneLine,
    Slug,
    TieredList,
    TieredMultiLine,
    TieredOneLine,
    TimeZoneName,
    Title,
    WebhookSecret,
    _one_line,
)


class _Record(BaseModel):
    """A record of the config file: unknown keys refused, immutable once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: A language of `languages` (``ru``): the key of a meeting's texts in it.
LanguageCode = Annotated[str, Field(pattern=LANGUAGE_PATTERN)]


class ReasonTexts(_Record):
    """A change's reason in one language other than the fallback."""

    reason: TieredOneLine | None = None


class ChangeTexts(ReasonTexts):
    """A status change's text in one language other than the fallback."""

    conditions: TieredList | None = None


class MeetingTexts(ChangeTexts):
    """A meeting's text in one language other than the fallback: any field left out is
    read in the fallback language (and marked so)."""

    title: Title | None = None
    description: TieredMultiLine | None = None
    location: TieredOneLine | None = None
    participants: TieredList | None = None


def texts_of(given: dict[str, Any] | None) -> dict[str, Any]:
    """Texts by language as the domain takes them (`notifier.domain.languages`)."""
    return freeze_texts(
        {
            lang: (layer.model_dump(exclude_none=True) if isinstance(layer, BaseModel) else layer)
            for lang, layer in (given or {}).items()
        }
    )


def _text_audiences(
    texts: dict[str, Any] | None, where: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], str]]:
    named: list[tuple[tuple[str | int, ...], str]] = []
    for lang, layer in (texts or {}).items():
        for name, value in layer.model_dump(exclude_none=True).items():
            if isinstance(value, dict):
                named.extend(((*where, lang, name, a), a) for a in value)
    return named


class HistoryConfig(_Record):
    """A past event of a meeting, imported once when the meeting is first created."""

    at: Instant
    #: The status entered; omitted for a note that changed no status.
    status: MeetingStatus | None = None
    reason: TieredOneLine = ""
    #: The reason in other languages: ``{ru = {reason = "..."}}``.
    texts: dict[LanguageCode, ReasonTexts] = {}


class MeetingConfig(_Record):
    """A meeting as written in the config file or posted to the API."""

    id: Slug
    title: Title
    description: TieredMultiLine = ""
    location: TieredOneLine = ""
    participants: TieredList = []
    timezone: TimeZoneName
    #: Which reading of a local start (or end) the clocks pass twice: 0 the first, 1 the
    #: second (only needed then).
    fold: Literal[0, 1] | None = None
    starts_at: Instant
    ends_at: Instant | None = None
    status: MeetingStatus = MeetingStatus.SCHEDULED
    reason: TieredOneLine = ""
    conditions: TieredList = []
    tags: list[OneLine] = []
    #: The lowest audience that may know of this meeting at all.
    audience: AudienceName = PUBLIC
    #: Changes within this window go out as one message per subscriber (default: off).
    coalesce: Duration | None = None
    #: What the time is fixed to when the zone's clock rules change: "wall" (its local
    #: time, the default) or "instant" (a call fixed in UTC across zones).
    anchor: Anchor = Anchor.WALL
    #: Its text in other languages than the fallback (the first of `languages`), each
    #: field plain or by audience: ``[meetings.texts.ru] title = "..."``.
    texts: dict[LanguageCode, MeetingTexts] = {}
    #: Languages `notifier check` expects every text field of this meeting in (it warns
    #: about each gap; readers there get the fallback's text meanwhile).
    require_languages: list[LanguageCode] = []
    history: list[HistoryConfig] = []

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _on_its_clocks(cls, value: Any, info: ValidationInfo) -> Any:
        """A start or end as written (RFC 9557, an offset, or a local time in `timezone`,
        TOML's own local date-time included) becomes an instant, resolved on the meeting's
        clocks: a time they skip or pass twice is refused naming both readings."""
        zone = info.data.get("timezone")
        if not isinstance(zone, str) or not _written_locally(value):
            return value
        fold = info.data.get("fold")
        try:
            moment = (
                parse_moment(value, fold=fold)
                if isinstance(value, str)
                else Moment(local=cast(datetime, value), fold=fold)
            )
            return moment.resolve(zone, field=info.field_name or "starts_at")
        except InvalidChange as exc:
            raise ValueError(exc.message.partition(": ")[2] or exc.message) from None

    @model_validator(mode="after")
    def _consistent(self) -> MeetingConfig:
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.history:
            replayed = self.history[0].status
            if replayed is None:
                raise ValueError("history: the first entry needs a status")
            for entry in self.history[1:]:
                replayed = entry.status or replayed
            if replayed is not self.status:
                raise ValueError(
                    f"status is {self.status.value!r} but its history ends in {replayed.value!r}"
                )
            times = [entry.at for entry in self.history]
            if times != sorted(times):
                raise ValueError("history entries must be in time order")
        return self

    def to_domain(self, *, source: Source = Source.FILE) -> Meeting:
        """The meeting this config describes, before any change is applied to it."""
        zone = ZoneInfo(self.timezone)
        plain, variants = self.tiered()
        return Meeting(
            id=self.id,
            title=self.title,
            timezone=self.timezone,
            starts_at=self.starts_at.astimezone(zone),
            ends_at=self.ends_at.astimezone(zone) if self.ends_at else None,
            status=self.status,
            tags=tuple(self.tags),
            sequence=max(len(self.history) - 1, 0),
            source=source,
            coalesce=self.coalesce,
            audience=self.audience,
            anchor=self.anchor,
            texts=texts_of(self.texts),
            require_languages=tuple(self.require_languages),
            variants=variants,
            **plain,  # type: ignore[arg-type]
        )

    def tiered(self) -> tuple[dict[str, object], dict[str, dict[str, Value]]]:
        """The tiered fields as plain values and variants by audience."""
        plain: dict[str, object] = {}
        variants: dict[str, dict[str, Value]] = {}
        for name in TIERED:
            plain[name], tiers = split(name, getattr(self, name))
            if tiers is not None:
                variants[name] = tiers
        return plain, variants

    def audience_names(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every audience this record names, with where (to check against the list)."""
        named: list[tuple[tuple[str | int, ...], str]] = [(("audience",), self.audience)]
        for name in TIERED:
            value = getattr(self, name)
            if isinstance(value, dict):
                named.extend(((name, audience), audience) for audience in value)
        for index, entry in enumerate(self.history):
            if isinstance(entry.reason, dict):
                named.extend(
                    (("history", index, "reason", audience), audience) for audience in entry.reason
                )
            named.extend(_text_audiences(entry.texts, ("history", index, "texts")))
        named.extend(_text_audiences(self.texts, ("texts",)))
        return named

    def language_names(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every language this record gives text in, with where."""
        named: list[tuple[tuple[str | int, ...], str]] = [
            (("texts", lang), lang) for lang in self.texts
        ]
        named += [
            (("require_languages", index), lang)
            for index, lang in enumerate(self.require_languages)
        ]
        for index, entry in enumerate(self.history):
            named.extend((("history", index, "texts", lang), lang) for lang in entry.texts)
        return named


class WebhookConfig(_Record):
    """A webhook endpoint: the URL and one or more signing secrets (rotation)."""

    url: HttpUrl
    secrets: list[WebhookSecret] = Field(min_length=1)


def _known_kind(value: str) -> str:
    if value != "*" and value not in {k.value for k in EventKind}:
        raise ValueError(
            f"unknown event kind {value!r}: use '*' or one of "
            + ", ".join(k.value for k in EventKind)
        )
    return value


#: `QuietHours.parse` as a pattern: HH:MM-HH:MM, hours 0-23, minutes 0-59, start and end
#: different (the lookahead refuses the same time twice).
QUIET_HOURS_PATTERN = (
    r"^\s*(?!0?(\d{1,2}):(\d{2})\s*-\s*0?\1:\2\s*$)"
    r"(?:[01]?\d|2[0-3]):[0-5]\d\s*-\s*(?:[01]?\d|2[0-3]):[0-5]\d\s*$"
)


class SubscriberConfig(_Record):
    """A subscriber as written in the config file or posted to the API."""

    id: Slug
    name: Annotated[
        str,
        Field(max_length=200, json_schema_extra={"pattern": ONE_LINE_PATTERN}),
        AfterValidator(_one_line),
    ] = ""
    email: EmailStr | None = None
    webhook: WebhookConfig | None = None
    timezone: TimeZoneName = "UTC"
    locale: Annotated[str, Field(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] = "en"
    meetings: list[Slug] = []
    tags: list[OneLine] = []
    events: list[
        Annotated[
            str,
            AfterValidator(_known_kind),
            Field(json_schema_extra={"enum": ["*", *(k.value for k in EventKind)]}),
        ]
    ] = Field(default=["*"], json_schema_extra={"minItems": 1})  # the validator says why
    reminders: list[Duration] = []
    quiet_hours: (
        Annotated[
            str,
            AfterValidator(lambda v: str(QuietHours.parse(v))),
            Field(json_schema_extra={"pattern": QUIET_HOURS_PATTERN}),
        ]
        | None
    ) = None
    #: Which variants of a meeting's text this reader gets (an operator's decision: the
    #: file or the API; self-service subscribers are always the lowest).
    audience: AudienceName = PUBLIC
    #: Apprise URLs of chat and push services (secrets: never shown).
    notify: list[Annotated[SecretStr, Field(max_length=2000)]] = Field(default=[], max_length=20)

    @model_validator(mode="after")
    def _reachable(self) -> SubscriberConfig:
        if self.email is None and self.webhook is None and not self.notify:
            raise ValueError("a subscriber needs an email, a webhook, or a notify URL")
        if not self.events:
            raise ValueError("events is empty: use ['*'] for every kind")
        return self

    def to_domain(self, *, source: Source = Source.FILE) -> Subscriber:
        """The subscriber this config describes."""
        return Subscriber(
            id=self.id,
            name=self.name,
            email=self.email,
            webhook=WebhookEndpoint(
                url=str(self.webhook.url),
                secrets=tuple(s.get_secret_value() for s in self.webhook.secrets),
            )
            if self.webhook
            else None,
            timezone=self.timezone,
            locale=self.locale,
            meetings=tuple(self.meetings),
            tags=tuple(self.tags),
            events=tuple(self.events),
            reminders=tuple(self.reminders),
            quiet_hours=QuietHours.parse(self.quiet_hours) if self.quiet_hours else None,
            source=source,
            audience=self.audience,
            notify=tuple(url.get_secret_value().strip() for url in self.notify),
        )


class SourceConfig(_Record):
    """A feed the daemon polls for status changes."""

    kind: Literal["ics", "json"]
    url: HttpUrl
    every: Duration = timedelta(seconds=60)
    #: The zone of times the feed writes without one (iCalendar "floating" times).
    timezone: TimeZoneName = "UTC"
    #: For JSON feeds: where each field is found in an item (documented shape by default),
    #: and ``items``: where the list of meetings is.
    fields: dict[str, str] = {}
    #: For ICS feeds: how far ahead a recurring event's occurrences are followed.
    horizon: Duration = timedelta(days=30)
    #: The audience the feed speaks for: its meetings are known to this audience and
    #: above, and their text is this audience's variant.
    audience: AudienceName = PUBLIC

    @field_validator("horizon")
    @classmethod
    def _horizon_in_range(cls, value: timedelta) -> timedelta:
        if not timedelta(hours=1) <= value <= timedelta(days=366):
            raise ValueError("horizon is between 1h and 366d")
        return value


_OFFSET_AT_END = re.compile(r"(Z|[+-]\d{2}:?\d{2}(:?\d{2})?)$", re.IGNORECASE)


def _written_locally(value: object) -> bool:
    """Whether a start or end is written on the meeting's clocks (a naive date-time, a
    text without an offset, or RFC 9557's zone in brackets), not as a bare instant."""
    if isinstance(value, datetime):
        return value.tzinfo is None
    if isinstance(value, str):
        text = value.strip()
        return "[" in text or ("T" in text and not _OFFSET_AT_END.search(text))
    return False
