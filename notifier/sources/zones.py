"""Time zones as calendars name them: IANA, Windows, Outlook's display names, vendor paths.

A feed's TZID may be ``Europe/Berlin``, ``W. Europe Standard Time``, ``(UTC+01:00)
Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna``, ``/mozilla.org/20050126_1/Europe/Berlin``
or a name the author made up with a VTIMEZONE that defines it. `iana_name` maps a name to
an IANA zone; `iana_matching` finds the IANA zone whose offsets agree with a definition.
Pure: no I/O beyond the tz database Python ships with.
"""

from __future__ import annotations

import importlib.resources
import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel.dates import get_timezone, get_timezone_location
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

_DISPLAY = re.compile(r"^\(?(?:UTC|GMT)\s*(?:([+-])(\d{1,2}):?(\d{2}))?\)?\s*(.*)$", re.I)
_WORD = re.compile(r"[A-Za-z]+")
_WINDOWS = {name.lower(): zone for name, zone in WINDOWS_TO_OLSON.items()}
#: Cities in Windows' display names that are not the last part of an IANA name.
_CITIES = {
    "beijing": "Asia/Shanghai",
    "bern": "Europe/Zurich",
    "brasilia": "America/Sao_Paulo",
    "canberra": "Australia/Sydney",
    "chennai": "Asia/Kolkata",
    "edinburgh": "Europe/London",
    "alaska": "America/Anchorage",
    "arizona": "America/Phoenix",
    "hanoi": "Asia/Bangkok",
    "hawaii": "Pacific/Honolulu",
    "indiana": "America/Indiana/Indianapolis",
    "islamabad": "Asia/Karachi",
    "kyiv": "Europe/Kyiv",
    "new delhi": "Asia/Kolkata",
    "osaka": "Asia/Tokyo",
    "saskatchewan": "America/Regina",
    "st. petersburg": "Europe/Moscow",
    "washington": "America/New_York",
}


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def _by_city() -> dict[str, str]:
    """IANA zones by their last component (``new york`` -> ``America/New_York``)."""
    found: dict[str, str] = {}
    legacy = ("Etc/", "SystemV/", "Canada/", "US/", "Brazil/", "Mexico/", "Chile/")
    for zone in sorted(_zones(), key=lambda z: (z.startswith(legacy), len(z), z)):
        if "/" in zone:
            found.setdefault(zone.rsplit("/", 1)[1].replace("_", " ").lower(), zone)
    return found


#: Languages whose Outlook writes its display names' cities in their own words.
_LOCALES = ("de", "fr", "es", "it", "pt", "nl", "pl", "ru", "uk", "cs", "sv", "da", "fi", "tr")


@cache
def _by_local_city() -> dict[str, str]:
    """IANA zones by their city as CLDR writes it in other languages (``wien``,
    ``москва``), for display names a localised Outlook wrote (read once, ~0.3 s)."""
    found: dict[str, str] = {}
    current = _current()
    zones = sorted(
        (z for z in _zones() if "/" in z and not z.startswith(("Etc/", "SystemV/"))),
        key=lambda z: (z not in current, z),  # Europe/Kyiv before its old name Europe/Kiev
    )
    for locale in _LOCALES:
        for name in zones:
            try:
                city = get_timezone_location(get_timezone(name), locale=locale, return_city=True)
            except (LookupError, ValueError):
                continue
            found.setdefault(city.casefold(), name)
    return found


@cache
def _current() -> frozenset[str]:
    """tzdata's current zone names (``zone.tab``), without the old ones kept as links."""
    table = importlib.resources.files("tzdata") / "zoneinfo" / "zone.tab"
    try:
        lines = table.read_text(encoding="utf-8").splitlines()
    except OSError:  # pragma: no cover - the tzdata package is a dependency
        return frozenset()
    return frozenset(line.split("\t")[2] for line in lines if line and not line.startswith("#"))


def zone(name: str) -> ZoneInfo | None:
    """The IANA zone `name`, or None (never raises, whatever the string)."""
    if name not in _zones():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _standard_offset(name: str, year: int = 2030) -> timedelta | None:
    """The lower of a zone's January and July offsets (summer time only ever adds; Irish
    "negative DST" included)."""
    zone_info = zone(name)
    if zone_info is None:
        return None
    offsets = [
        datetime(year, month, 1, 12, tzinfo=UTC).astimezone(zone_info).utcoffset()
        for month in (1, 7)
    ]
    known = [offset for offset in offsets if offset is not None]
    return min(known) if known else None


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
    words = {w.lower() for w in _WORD.findall(re.sub(r"\(.*?\)", "", rest))}
    if offset == timedelta() and (not rest.strip() or {"coordinated", "universal"} <= words):
        return "UTC"
    candidates: list[str] = []
    for city in re.split(r",|\bor\b|/|&", rest):
        cleaned = re.sub(r"\(.*?\)", "", city).strip().lower()
        if cleaned in _CITIES:
            candidates.append(_CITIES[cleaned])
        elif cleaned in _by_city():
            candidates.append(_by_city()[cleaned])
        elif cleaned and cleaned.casefold() in _by_local_city():
            candidates.append(_by_local_city()[cleaned.casefold()])
    # Windows zones whose name holds every word of the display name, the closest first:
    # "Central Time (US & Canada)" is "Central Standard Time" (Chicago, with DST), not
    # "Canada Central Standard Time" (Regina, without), though both are UTC-06:00.
    named = []
    for windows, iana in _WINDOWS.items():
        said = set(_WORD.findall(windows))
        if words and words <= said | {"time"}:
            named.append((len(said - words - {"standard", "time"}), windows, iana))
    candidates += [iana for _extra, _windows, iana in sorted(named)]
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


#: Where several zones agree on every offset, the one most calendars mean.
_MAJOR = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Athens",
    "Europe/Moscow",
    "Africa/Cairo",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
]


def _samples(start: datetime) -> list[datetime]:
    """Instants around `start` where two zones with different rules would disagree."""
    base = start.astimezone(UTC)
    return [base] + [datetime(base.year, month, 15, 12, tzinfo=UTC) for month in range(1, 13)]


def iana_matching(definition: tzinfo, at: datetime, *, prefer: str | None = None) -> str | None:
    """An IANA zone whose UTC offsets agree with `definition` through the year of `at`.

    `prefer` (the source's zone) wins when it agrees; then zones whose abbreviations agree
    too (EST/EDT), Windows' canonical zones (one per region, as Outlook means) first.
    """
    samples = _samples(at)
    wanted = [moment.astimezone(definition).utcoffset() for moment in samples]
    names = [moment.astimezone(definition).tzname() for moment in samples]

    def offsets(name: str) -> list[timedelta | None] | None:
        zone_info = zone(name)
        if zone_info is None:
            return None
        return [moment.astimezone(zone_info).utcoffset() for moment in samples]

    def abbreviations(name: str) -> list[str | None]:
        zone_info = zone(name) or UTC
        return [moment.astimezone(zone_info).tzname() for moment in samples]

    if prefer and offsets(prefer) == wanted:
        return prefer
    canonical = sorted(set(WINDOWS_TO_OLSON.values()))
    rest = sorted(z for z in _zones() if "/" in z and not z.startswith(("SystemV/", "posix/")))
    agreeing = [c for c in _MAJOR + canonical + rest if offsets(c) == wanted]
    for candidate in agreeing:
        if abbreviations(candidate) == names:
            return candidate
    return agreeing[0] if agreeing else None
