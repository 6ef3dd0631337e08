"""The value types of settings and config-file records: durations, time zones, ids, text
that may reach a mail header, webhook secrets, allowed address ranges."""

from __future__ import annotations

import base64
import difflib
from collections.abc import Iterable
from datetime import timedelta
from functools import cache
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    SecretStr,
)

from notifier.domain.addresses import allow_range_problem
from notifier.domain.durations import format_duration, parse_duration
from notifier.domain.text import check_text

SLUG = r"^[a-z0-9][a-z0-9._-]{0,99}$"


def _duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"durations need a unit: write '{value}s' rather than {value}")
    return value


#: A duration written ``30s`` / ``15m`` / ``1h`` / ``1d2h``.
Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
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


TimeZoneName = Annotated[str, AfterValidator(check_timezone)]


Slug = Annotated[str, Field(pattern=SLUG, description="lowercase letters, digits, . _ -")]


def _one_line(value: str) -> str:
    return check_text(value, field="")


def _multi_line(value: str) -> str:
    return check_text(value, field="", multiline=True)


#: Text that may reach a mail header or a calendar line: no control characters, no
#: RFC 2047 encoded words (`notifier.domain.text`).
OneLine = Annotated[str, Field(max_length=2000), AfterValidator(_one_line)]


#: A description: line breaks and tabs allowed, no other control characters.
MultiLine = Annotated[str, Field(max_length=20000), AfterValidator(_multi_line)]


Title = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_one_line)]


#: A caller's id for a change (idempotency key): short, one line.
EventId = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_line)]


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


WebhookSecret = Annotated[SecretStr, AfterValidator(check_webhook_secret)]


def _narrow(network: IPv4Network | IPv6Network) -> IPv4Network | IPv6Network:
    problem = allow_range_problem(network)
    if problem is not None:
        raise ValueError(problem)
    return network


#: An allow-list entry: a private range an operator opens on purpose, never everything.
AllowRange = Annotated[IPv4Network | IPv6Network, AfterValidator(_narrow)]


#: An audience's name (`notifier.domain.audiences`).
AudienceName = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$", description="lowercase letters, digits, _ -"),
]


def _some_variant(value: dict[str, object]) -> dict[str, object]:
    if len(value) > 20:
        raise ValueError("at most 20 variants")
    return value


#: A text field every audience reads alike, or its variants by audience:
#: ``{public = "postponed", participants = "medical reasons"}``.
TieredOneLine = OneLine | Annotated[dict[AudienceName, OneLine], AfterValidator(_some_variant)]
TieredMultiLine = (
    MultiLine | Annotated[dict[AudienceName, MultiLine], AfterValidator(_some_variant)]
)
#: A list field (participants, conditions), plain or by audience (each variant a list).
TieredList = (
    list[OneLine] | Annotated[dict[AudienceName, list[OneLine]], AfterValidator(_some_variant)]
)
