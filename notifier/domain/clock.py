"""A meeting's time as its zone's clock reads it, and what a change of clock rules does.

A meeting announced for 19:00 in Almaty is a meeting at 19:00 on Almaty's clocks, whatever
Kazakhstan decides about its offset later (RFC 5545 keeps local time and TZID for this
reason; Google Calendar does too). So a meeting is anchored to its wall-clock time by
default: the store keeps its local start (and end), its zone and the offset and tzdata
version it resolved to, and the instant is derived from them with the rules this process
runs on. A meeting may instead be anchored to an instant (a call fixed in UTC for people in
many zones): then the instant stands and its local reading is what a rule change moves.

Also here: reading the times people write (RFC 9557, ``2026-12-10T19:00+03:00[Europe/Moscow]``,
an offset, or a bare local time in the meeting's zone) and refusing the ones that do not
name one instant: a local time the clocks skip (a DST gap), one they pass twice (a fold)
unless the input says which, and an offset the zone's rules do not give.

Pure: no I/O; the tzdata version is given by the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifier.domain.errors import InvalidChange


class Anchor(StrEnum):
    """What a meeting's time is fixed to when a zone's clock rules change."""

    #: Its local time on the zone's clocks (the default): the instant moves with the rules.
    WALL = "wall"
    #: Its instant: the local time moves with the rules.
    INSTANT = "instant"


@dataclass(frozen=True, kw_only=True)
class Wall:
    """How a meeting's start (and end) read on its zone's clocks when it was stored."""

    #: The local start, without an offset (``2026-12-10T19:00``).
    starts: datetime
    ends: datetime | None = None
    #: 1 for the second of two readings of a local time the clocks pass twice.
    fold: int = 0
    #: The UTC offset the start resolved to.
    offset: timedelta = timedelta(0)
    #: The tzdata version it was resolved with ("" when unknown).
    tzdata: str = ""


def reading(instant: datetime, zone: str) -> tuple[datetime, int, timedelta]:
    """The local time (naive), fold and UTC offset of `instant` on `zone`'s clocks."""
    local = instant.astimezone(ZoneInfo(zone))
    offset = local.utcoffset()
    assert offset is not None
    return local.replace(tzinfo=None, fold=0), local.fold, offset


def wall_of(starts_at: datetime, ends_at: datetime | None, zone: str, *, tzdata: str) -> Wall:
    """The wall reading of a meeting's start and end under the rules in force."""
    starts, fold, offset = reading(starts_at, zone)
    ends = reading(ends_at, zone)[0] if ends_at is not None else None
    return Wall(starts=starts, ends=ends, fold=fold, offset=offset, tzdata=tzdata)


def instant_at(local: datetime, zone: str, *, fold: int = 0) -> datetime:
    """The instant a naive `local` time on `zone`'s clocks is under the rules in force
    (its `fold` picks the reading where the clocks pass it twice), as an aware time in
    that zone. A local time the rules now skip resolves by the offset before the gap."""
    tz = ZoneInfo(zone)
    return local.replace(tzinfo=tz, fold=fold).astimezone(UTC).astimezone(tz)


def same_instant(a: datetime | None, b: datetime | None) -> bool:
    """Whether two aware times are the same instant. (Python compares two times of one
    `tzinfo` by their wall reading, so a moved instant in the same zone looks equal.)"""
    if a is None or b is None:
        return a is b
    return a.astimezone(UTC) == b.astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class Moment:
    """A time as someone wrote it, before it is resolved against a meeting's zone."""

    #: The local time written, without an offset.
    local: datetime
    #: The UTC offset written, if any.
    offset: timedelta | None = None
    #: The zone written in brackets (RFC 9557), if any.
    zone: str | None = None
    #: Which reading of a time the clocks pass twice (0 the first, 1 the second), if said.
    fold: int | None = None

    def text(self) -> str:
        """The moment written back (RFC 9557 when it names a zone)."""
        written = self.local.isoformat()
        if self.offset is not None:
            written += _offset_text(self.offset)
        return written + (f"[{self.zone}]" if self.zone else "")

    def resolve(self, zone: str, *, field: str = "starts_at") -> datetime:
        """The instant this names on `zone`'s clocks, as an aware time in that zone.

        `InvalidChange` naming `field` when the bracketed zone is not `zone`, when the
        offset disagrees with the zone's rules (both named), when the local time does not
        exist there (a gap) or exists twice (a fold) and neither an offset nor `fold`
        says which (both candidates named)."""
        if self.zone is not None and self.zone != zone:
            raise InvalidChange(
                f"{field}: the time is given in [{self.zone}] but the meeting's zone is "
                f"{zone}; write it in {zone}, or change the meeting's timezone first"
            )
        if self.offset is not None and self.zone is None:
            # An instant (today's form): whatever the zone's clocks say at it.
            return self.local.replace(tzinfo=timezone(self.offset)).astimezone(ZoneInfo(zone))
        found = candidates(self.local, zone)
        when = f"{self.local:%Y-%m-%d %H:%M}"
        if not found:
            before = instant_at(self.local, zone, fold=0)
            after = instant_at(self.local, zone, fold=1)
            raise InvalidChange(
                f"{field}: {when} does not exist in {zone} (the clocks skip it); did you "
                f"mean {_written(min(before, after, key=_utc))} or "
                f"{_written(max(before, after, key=_utc))}?"
            )
        if self.offset is not None:
            for candidate in found:
                if candidate.utcoffset() == self.offset:
                    return candidate
            given = _offset_text(self.offset)
            rules = " or ".join(_offset_text(c.utcoffset()) for c in found)
            raise InvalidChange(
                f"{field}: the offset {given} disagrees with {zone}'s rules, which give "
                f"{rules} at {when}"
            )
        if len(found) == 2:
            if self.fold is None:
                first, second = found
                raise InvalidChange(
                    f"{field}: {when} happens twice in {zone} (the clocks go back); say "
                    f"which: {_written(first)} (fold 0, the first) or {_written(second)} "
                    "(fold 1, the second)"
                )
            return found[self.fold]
        return found[0]


def candidates(local: datetime, zone: str) -> list[datetime]:
    """Every instant a naive `local` time is on `zone`'s clocks: none in a gap, two in a
    fold (the first first), one otherwise."""
    tz = ZoneInfo(zone)
    found: list[datetime] = []
    for fold in (0, 1):
        aware = local.replace(tzinfo=tz, fold=fold)
        back = aware.astimezone(UTC).astimezone(tz)
        if back.replace(tzinfo=None, fold=0) != local.replace(fold=0):
            continue
        if not any(_utc(f) == _utc(back) for f in found):
            found.append(back)
    return sorted(found, key=_utc)


_MOMENT = re.compile(
    r"(?P<local>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)"
    r"(?P<offset>Z|[+-]\d{2}:?\d{2}(?::?\d{2})?)?"
    r"(?P<tags>(?:\[[^\[\]]*\])*)"
)
_TAG = re.compile(r"\[(?P<critical>!)?(?P<body>[^\[\]]*)\]")


def parse_moment(text: str, *, fold: int | None = None) -> Moment:
    """Read ``2026-12-10T19:00`` (local), ``2026-12-10T19:00+03:00`` (an instant) or
    RFC 9557's ``2026-12-10T19:00+03:00[Europe/Moscow]``; `ValueError` saying what is
    accepted otherwise. A suffix tag other than the zone (``[u-ca=iso8601]``) is ignored
    unless marked critical (``[!u-ca=...]``), which is refused as RFC 9557 asks."""
    match = _MOMENT.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"invalid time {text!r}: write 2026-12-10T19:00 (the meeting's local time), "
            "2026-12-10T19:00+03:00, or 2026-12-10T19:00+03:00[Europe/Moscow]"
        )
    try:
        local = datetime.fromisoformat(match["local"].replace(" ", "T"))
    except ValueError as exc:
        raise ValueError(f"invalid time {text!r}: {exc}") from None
    if not 1000 <= local.year <= 8999:
        raise ValueError(f"invalid time {text!r}: the year is between 1000 and 8999")
    offset = None
    if match["offset"]:
        written = match["offset"]
        offset = (
            timedelta(0)
            if written == "Z"
            else datetime.fromisoformat(f"2000-01-01T00:00{written}").utcoffset()
        )
    zone = None
    for tag in _TAG.finditer(match["tags"]):
        body = tag["body"]
        if "=" in body:
            if tag["critical"]:
                raise ValueError(f"invalid time {text!r}: the critical tag [!{body}] is unknown")
            continue
        if zone is not None:
            raise ValueError(f"invalid time {text!r}: more than one time zone in brackets")
        zone = _zone(body, text)
    if fold not in (None, 0, 1):
        raise ValueError("fold: 0 (the first reading) or 1 (the second)")
    return Moment(local=local, offset=offset, zone=zone, fold=fold)


def _zone(name: str, text: str) -> str:
    if name.startswith(("+", "-")):
        raise ValueError(
            f"invalid time {text!r}: [{name}] is an offset, not a time zone; name the zone"
        )
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"invalid time {text!r}: unknown time zone [{name}]") from None
    return name


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _offset_text(offset: timedelta | None) -> str:
    seconds = int((offset or timedelta(0)).total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    return f"{sign}{hours:02d}:{rest // 60:02d}"


def _written(value: datetime) -> str:
    """``2026-10-25T02:30+02:00``: a candidate as it can be written back."""
    return f"{value:%Y-%m-%dT%H:%M}{_offset_text(value.utcoffset())}"


@dataclass(frozen=True, kw_only=True)
class ClockChange:
    """What a change of a zone's clock rules did to a meeting (kept on its history entry):
    a wall-anchored meeting kept its local time and its instant moved; an instant-anchored
    one kept its instant and its local time moved."""

    zone: str
    anchor: Anchor
    #: The local start on the zone's clocks before and after (equal for "wall").
    local_before: datetime
    local_after: datetime
    offset_before: timedelta
    offset_after: timedelta
    tzdata_before: str
    tzdata_after: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready (the webhook ``change.clock`` and the history's shape)."""
        return {
            "zone": self.zone,
            "anchor": self.anchor.value,
            "local_before": self.local_before.isoformat(timespec="minutes"),
            "local_after": self.local_after.isoformat(timespec="minutes"),
            "offset_before": _offset_text(self.offset_before),
            "offset_after": _offset_text(self.offset_after),
            "tzdata_before": self.tzdata_before,
            "tzdata_after": self.tzdata_after,
        }

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> ClockChange:
        """The inverse of `to_dict`."""
        return cls(
            zone=data["zone"],
            anchor=Anchor(data["anchor"]),
            local_before=datetime.fromisoformat(data["local_before"]),
            local_after=datetime.fromisoformat(data["local_after"]),
            offset_before=_offset_of(data["offset_before"]),
            offset_after=_offset_of(data["offset_after"]),
            tzdata_before=data["tzdata_before"],
            tzdata_after=data["tzdata_after"],
        )


def _offset_of(text: str) -> timedelta:
    offset = datetime.fromisoformat(f"2000-01-01T00:00{text}").utcoffset()
    assert offset is not None
    return offset
