"""Time zones as calendars name them: IANA, Windows, Outlook's display names, vendor paths.

A feed's TZID may be ``Europe/Berlin``, ``W. Europe Standard Time``, ``(UTC+01:00)
Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna``, ``/mozilla.org/20050126_1/Europe/Berlin``
or a name the author made up with a VTIMEZONE that defines it. `iana_name` maps a name to
an IANA zone; `iana_matching` finds the IANA zone whose offsets agree with a definition.
Pure: no I/O beyond the tz database Python ships with.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

_DISPLAY = re.compile(r"^\(?(?:UTC|GMT)\s*(?:([+-])(\d{1,2}):?(\d{2}))?\)?\s*(.*)$", re.I)
_WORD = re.compile(r"[A-Za-z]+")
_WINDOWS = {name.lower(): zone for name, zone in WINDOWS_TO_OLSON.items()}


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def _by_city() -> dict[str, str]:
    """IANA zones by their last component (``new york`` -> ``America/New_York``)."""
    found: dict[str, str] = {}
    for zone in sorted(_zones(), key=lambda z: (z.startswith(("Etc/", "SystemV/")), len(z), z)):
        if "/" in zone:
            found.setdefault(zone.rsplit("/", 1)[1].replace("_", " ").lower(), zone)
    return found


def zone(name: str) -> ZoneInfo | None:
    """The IANA zone `name`, or None (never raises, whatever the string)."""
    if name not in _zones():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _standard_offset(name: str, year: int = 2030) -> timedelta | None:
    zone_info = zone(name)
    if zone_info is None:
        return None
    offsets = []
    for month in (1, 7):
        moment = datetime(year, month, 1, 12, tzinfo=UTC).astimezone(zone_info)
        offset, dst = moment.utcoffset(), moment.dst()
        if offset is not None:
            offsets.append(offset - (dst or timedelta()))
    return min(offsets) if offsets else None


def _display_name(text: str) -> str | None:
    """An IANA zone for Outlook's ``(UTC+01:00) Amsterdam, Berlin, ...`` form."""
    found = _DISPLAY.match(text.strip())
    if not found:
        return None
    sign, hours, minutes, rest = found.groups()
    offset = timedelta()
    if hours is not None:
        offset = timedelta(hours=int(hours), minutes=int(minutes))
        if sign == "-":
            offset = -offset
    if not rest.strip():
        return "UTC" if offset == timedelta() else None
    candidates: list[str] = []
    for city in re.split(r",|\bor\b|/|&", rest):
        cleaned = re.sub(r"\(.*?\)", "", city).strip().lower()
        if cleaned in _by_city():
            candidates.append(_by_city()[cleaned])
    words = {w.lower() for w in _WORD.findall(re.sub(r"\(.*?\)", "", rest))}
    for windows, iana in sorted(_WINDOWS.items()):
        if words and words <= set(_WORD.findall(windows)) | {"time"}:
            candidates.append(iana)
    for candidate in candidates:
        if _standard_offset(candidate) == offset:
            return candidate
    return None


def iana_name(tzid: str) -> str | None:
    """The IANA zone a calendar's TZID means, or None when the name alone does not say."""
    name = tzid.strip().strip('"')
    if not name or len(name) > 200:
        return None
    if zone(name) is not None:
        return name
    if name.lower() in _WINDOWS:
        return _WINDOWS[name.lower()]
    stripped = name.strip("/")
    if zone(stripped) is not None:
        return stripped
    if name.startswith("/"):
        # A "globally unique" TZID: /vendor/version/Area/City.
        parts = stripped.split("/")
        for start in range(1, len(parts)):
            candidate = "/".join(parts[start:])
            if zone(candidate) is not None:
                return candidate
    if name.upper() in ("Z", "GMT", "UTC", "UT", "ZULU"):
        return "UTC"
    return _display_name(name)


def _samples(start: datetime) -> list[datetime]:
    """Instants around `start` where two zones with different rules would disagree."""
    base = start.astimezone(UTC)
    return [base] + [datetime(base.year, month, 15, 12, tzinfo=UTC) for month in range(1, 13)]


def iana_matching(definition: tzinfo, at: datetime, *, prefer: str | None = None) -> str | None:
    """An IANA zone whose UTC offsets agree with `definition` through the year of `at`.

    Windows' canonical zones are tried first (one per region, as Outlook would mean),
    then every other zone; `prefer` (the source's zone) wins when it agrees.
    """
    wanted = [moment.astimezone(definition).utcoffset() for moment in _samples(at)]

    def agrees(name: str) -> bool:
        zone_info = zone(name)
        if zone_info is None:
            return False
        return [moment.astimezone(zone_info).utcoffset() for moment in _samples(at)] == wanted

    canonical = sorted(set(WINDOWS_TO_OLSON.values()))
    rest = sorted(z for z in _zones() if "/" in z and not z.startswith(("SystemV/", "posix/")))
    for candidate in ([prefer] if prefer else []) + canonical + rest:
        if agrees(candidate):
            return candidate
    return None
