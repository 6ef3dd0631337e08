"""The value types of settings and config-file records: durations, time zones, ids, text
that may reach a mail header, webhook secrets, allowed address ranges."""

from __future__ import annotations

import base64
import difflib
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    WithJsonSchema,
)

from notifier.domain.addresses import allow_range_problem
from notifier.domain.clock import Moment, parse_moment
from notifier.domain.durations import format_duration, parse_duration
from notifier.domain.text import check_text

SLUG = r"^[a-z0-9][a-z0-9._-]{0,99}$"


def _duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"durations need a unit: write '{value}s' rather than {value}")
    return value


#: What `parse_duration` reads, as the API's schema says it: each unit at most once,
#: largest first, not all zero (the schema's and the server's rules are the same).
DURATION_PATTERN = (
    r"^\s*(?=[^1-9]*[1-9])(?:\d{1,6}[wW])?(?:\d{1,6}[dD])?(?:\d{1,6}[hH])?(?:\d{1,6}[mM])?"
    r"(?:\d{1,6}[sS])?\s*$"
)
_DURATION_SCHEMA = {
    "type": "string",
    "pattern": DURATION_PATTERN,
    "minLength": 2,
    "examples": ["15m", "1d2h"],
}

#: A duration written ``30s`` / ``15m`` / ``1h`` / ``1d2h``.
Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(_DURATION_SCHEMA),
]


def _retention(value: object) -> object:
    if value in (0, "0"):
        return timedelta(0)
    return _duration(value)


#: How long finished records are kept; 0 keeps them for ever.
Retention = Annotated[
    timedelta,
    BeforeValidator(_retention),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"anyOf": [_DURATION_SCHEMA, {"type": "string", "enum": ["0"]}]}),
]


def _in_range(value: datetime) -> datetime:
    if not 1000 <= value.year <= 8999:
        raise ValueError("the year is between 1000 and 8999")
    return value


#: An aware instant whose year (as written) is between 1000 and 8999, so it stays a valid
#: datetime in every zone it is shown in; the schema's pattern says the same.
Instant = Annotated[
    AwareDatetime,
    AfterValidator(_in_range),
    Field(json_schema_extra={"pattern": r"^[1-8][0-9]{3}-"}),
]


def _written_time(value: object) -> Moment:
    if isinstance(value, Moment):
        return value
    if isinstance(value, datetime):  # TOML's own date-times
        offset = value.utcoffset()
        local = value.replace(tzinfo=None)
        if not 1000 <= local.year <= 8999:
            raise ValueError("the year is between 1000 and 8999")
        return Moment(local=local, offset=offset)
    if isinstance(value, str):
        return parse_moment(value)
    raise ValueError("a date-time, as text: 2026-12-10T19:00+03:00[Europe/Moscow]")


#: The schema of a written time: what `parse_moment` reads, narrowed to what a JSON Schema
#: can say without the meeting (days to the 28th; no zone in brackets, which the server
#: also reads but checks against the meeting's own zone).
WRITTEN_TIME_PATTERN = (
    r"^[1-8][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]"
    r"(:[0-5][0-9])?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?$"
)

#: A start or end as people write it, before it is resolved on the meeting's clocks:
#: RFC 9557 (``2026-12-10T19:00+03:00[Europe/Moscow]``), an instant with an offset, or the
#: meeting's local time (``2026-12-10T19:00``). See `notifier.domain.clock`.
WrittenTime = Annotated[
    Moment,
    PlainValidator(_written_time),
    PlainSerializer(lambda m: m.text(), return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": WRITTEN_TIME_PATTERN,
            "description": "RFC 9557 (2026-12-10T19:00+03:00[Europe/Moscow]), an offset "
            "(2026-12-10T19:00+03:00), or the meeting's local time (2026-12-10T19:00)",
            "examples": ["2026-12-10T19:00+03:00[Europe/Moscow]", "2026-12-10T19:00"],
        }
    ),
]


def check_timezone(name: str) -> str:
    """Return `name` if it is an IANA time zone known here, else raise `ValueError`."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}{_zone_hint(name)}") from None
    return name


@cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def did_you_mean(word: str, known: Iterable[str]) -> str | None:
    """The one of `known` closest to `word` (a misspelling of it), if one is close."""
    found = difflib.get_close_matches(word, list(known), n=1, cutoff=0.75)
    return found[0] if found else None


def _zone_hint(name: str) -> str:
    # Case differences are the commonest slip (europe/moscow) and hurt the ratio most.
    folded = {zone.casefold(): zone for zone in _zone_names()}
    close = folded.get(name.casefold()) or did_you_mean(name, _zone_names())
    if close is not None:
        return f" (did you mean {close!r}?)"
    return ": use an IANA name such as Europe/Moscow"


#: An IANA zone name; the schema lists every zone this server knows, so a client (or a
#: fuzzer) reads from it exactly what the server accepts.
class _EveryZone:
    """The JSON Schema of a zone name: an enum of every zone, listed when a schema is made
    (not at import: the parser processes import this module and never need it)."""

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "enum": list(_zone_names()), "examples": ["Europe/Moscow"]}


TimeZoneName = Annotated[str, AfterValidator(check_timezone), _EveryZone()]


Slug = Annotated[str, Field(pattern=SLUG, description="lowercase letters, digits, . _ -")]


#: `check_text`'s rules as a JSON Schema pattern: no control character (C0, DEL, C1), no
#: line or paragraph separator, no bidirectional override and, on one line, no RFC 2047
#: encoded word.
ONE_LINE_PATTERN = (
    r"^(?!.*=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)"
    r"[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*$"
)
MULTI_LINE_PATTERN = (
    r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*$"
)


def _one_line(value: str) -> str:
    return check_text(value, field="")


def _multi_line(value: str) -> str:
    return check_text(value, field="", multiline=True)


#: Text that may reach a mail header or a calendar line: no control characters, no
#: RFC 2047 encoded words (`notifier.domain.text`).
OneLine = Annotated[
    str,
    Field(max_length=2000, json_schema_extra={"pattern": ONE_LINE_PATTERN}),
    AfterValidator(_one_line),
]


#: A description: line breaks and tabs allowed, no other control characters.
MultiLine = Annotated[
    str,
    Field(max_length=20000, json_schema_extra={"pattern": MULTI_LINE_PATTERN}),
    AfterValidator(_multi_line),
]


Title = Annotated[
    str,
    Field(min_length=1, max_length=500, json_schema_extra={"pattern": ONE_LINE_PATTERN}),
    AfterValidator(_one_line),
]


#: A caller's id for a change (idempotency key): short, one line.
EventId = Annotated[
    str,
    Field(min_length=1, max_length=200, json_schema_extra={"pattern": ONE_LINE_PATTERN}),
    AfterValidator(_one_line),
]


def check_webhook_secret(secret: SecretStr) -> SecretStr:
    """Accept Standard Webhooks secrets: ``whsec_`` and base64 of at least 24 bytes."""
    value = secret.get_secret_value()
    if not value.startswith("whsec_"):
        raise ValueError("webhook secrets start with 'whsec_' (Standard Webhooks)")
    try:
        raw = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise ValueError("webhook secret after 'whsec_' is not valid base64") from None
    if len(raw) < 24:
        raise ValueError("webhook secret is too short: use at least 24 random bytes")
    if len(raw) > 64:
        # The Standard Webhooks specification bounds secrets at 64 bytes; receivers built
        # on its libraries refuse longer ones, so every signature would fail to verify.
        raise ValueError("webhook secret is too long: Standard Webhooks allows at most 64 bytes")
    return secret


#: `check_webhook_secret` as a pattern: ``whsec_`` and canonical base64 of 24 to 64 bytes.
WEBHOOK_SECRET_PATTERN = (
    r"^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
    r"|(?:[A-Za-z0-9+/]{4}){21}(?:[A-Za-z0-9+/]{2}==)?)$"
)
WebhookSecret = Annotated[
    SecretStr,
    AfterValidator(check_webhook_secret),
    Field(json_schema_extra={"pattern": WEBHOOK_SECRET_PATTERN}),
]


def _narrow(network: IPv4Network | IPv6Network) -> IPv4Network | IPv6Network:
    problem = allow_range_problem(network)
    if problem is not None:
        raise ValueError(problem)
    return network


#: An allow-list entry: a private range an operator opens on purpose, never everything.
AllowRange = Annotated[IPv4Network | IPv6Network, AfterValidator(_narrow)]


AUDIENCE_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
#: A language code (``ru``); the API's schema lists the languages configured other than
#: the fallback (`notifier.web.app`), the only keys of `texts` the server accepts.
LANGUAGE_PATTERN = r"^[a-z]{2,3}$"

#: An audience's name (`notifier.domain.audiences`); the API's schema lists the audiences
#: configured (`notifier.web.app`), the only names the server accepts.
AudienceName = Annotated[
    str,
    Field(pattern=AUDIENCE_PATTERN, description="lowercase letters, digits, _ -"),
]


def _some_variant(value: dict[str, object]) -> dict[str, object]:
    if len(value) > 20:
        raise ValueError("at most 20 variants")
    return value


#: A text field every audience reads alike, or its variants by audience:
#: ``{public = "postponed", participants = "medical reasons"}``.
#: (The schema says what the server checks: keys are audience names, at most 20 of them.)
_VARIANTS = Field(json_schema_extra={"additionalProperties": False, "maxProperties": 20})
TieredOneLine = (
    OneLine | Annotated[dict[AudienceName, OneLine], AfterValidator(_some_variant), _VARIANTS]
)
TieredMultiLine = (
    MultiLine | Annotated[dict[AudienceName, MultiLine], AfterValidator(_some_variant), _VARIANTS]
)
#: A list field (participants, conditions), plain or by audience (each variant a list).
TieredList = (
    list[OneLine]
    | Annotated[dict[AudienceName, list[OneLine]], AfterValidator(_some_variant), _VARIANTS]
)
