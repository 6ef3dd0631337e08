"""iCalendar feeds: each VEVENT, or each occurrence of a recurring one, is a meeting.

What real calendars publish and how it is read:

- **Recurrence**: a series (RRULE, RDATE) is expanded with recurring-ical-events into its
  occurrences within a horizon; each is a meeting keyed by UID and original start (its
  RECURRENCE-ID), so an edited instance changes that occurrence, a cancelled one cancels
  it, and the series' own edits reach every occurrence not overridden. The expansion
  starts near the horizon, not at DTSTART (`recurrence`): a rule from 1970 repeating
  every second costs what one from today does, and one whose cost has no bound is refused.
- **Time zones are the feed's own**: a TZID is resolved per feed (never through
  icalendar's process-wide cache), as an IANA name, a Windows or Outlook display name, a
  vendor path, or the feed's VTIMEZONE definition; the meeting's zone is the IANA zone it
  maps to. A TZID that resolves to nothing refuses the event. ``X-WR-TIMEZONE`` is read as
  Google means it (and as the x-wr-timezone library does): UTC and floating times are
  shown, and series repeat, in that zone.
- **One bad event never spoils a feed**: a broken DTSTART, DURATION, SEQUENCE, RRULE or
  TZID refuses that event (or series) with a reason; the rest is read.

Pure apart from parsing: `now` is a parameter.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, cast

import recurring_ical_events
from icalendar import Calendar, Component, Event, Timezone
from icalendar.prop import vDDDLists, vDDDTypes, vRecur
from icalendar.timezone import tzp

from notifier.domain.models import MeetingStatus
from notifier.sources.decoding import decode_ics
from notifier.sources.feed import FeedItem
from notifier.sources.recurrence import Unbounded, read_rule, walk_from
from notifier.sources.zones import iana_matching, iana_name, zone

_STATUS = {
    "TENTATIVE": MeetingStatus.SCHEDULED,
    "CONFIRMED": MeetingStatus.CONFIRMED,
    "CANCELLED": MeetingStatus.CANCELLED,
}
#: Properties whose parse errors make an event unreadable.
_ESSENTIAL = frozenset(
    {"DTSTART", "DTEND", "DURATION", "SEQUENCE", "RECURRENCE-ID", "RRULE", "RDATE", "EXDATE"}
)
_SINGLE = ("UID", "DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "SEQUENCE", "STATUS")
_TIMES = ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "RDATE")
#: Occurrences followed per series within the horizon (a FREQ=MINUTELY rule is cut here).
MAX_OCCURRENCES = 1000
#: Events (and occurrences) followed per feed; the rest are left with a note.
MAX_EVENTS = 100_000
#: icalendar caches every VTIMEZONE it parses process-wide by TZID (the first definition
#: wins for every later feed); parsing holds this lock and forgets that cache afterwards.
_PARSE_LOCK = threading.Lock()


class FeedError(ValueError):
    """The feed could not be read as promised."""


@dataclass(kw_only=True)
class ParsedFeed:
    """What a feed says: the items it describes and, per event, why one was not read."""

    items: list[FeedItem] = field(default_factory=list)
    #: (event key, reason): not meetings by design (all-day events).
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: (event key, reason): events that could not be read.
    refused: list[tuple[str, str]] = field(default_factory=list)
    #: Feed-level notes (encoding guesses, a cut series).
    notes: list[str] = field(default_factory=list)
    #: Series read in full within the horizon: uid -> horizon end, for telling which of
    #: their earlier occurrences are gone.
    complete_series: dict[str, datetime] = field(default_factory=dict)
    #: Occurrence keys whose edited instance could not be read: each keeps what readers
    #: were last told (never the series' time again, never cancelled for it).
    held: list[str] = field(default_factory=list)


def _if_out_of_memory(exc: BaseException) -> None:
    """Raise MemoryError if `exc` is one or was caused by one (icalendar makes it a
    ValueError): running out is the parse's memory budget, not the event's fault."""
    cause: BaseException | None = exc
    for _ in range(10):
        if cause is None:
            return
        if isinstance(cause, MemoryError):
            raise MemoryError from exc
        cause = cause.__cause__ or cause.__context__


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def occurrence_key(uid: str, original: datetime) -> str:
    """The key of one occurrence of a series: its UID and original start in UTC."""
    return f"{uid}/{original.astimezone(UTC):%Y%m%dT%H%M%SZ}"


class _Zones:
    """One VCALENDAR's time zones: its VTIMEZONEs, its X-WR-TIMEZONE, the source default."""

    def __init__(self, calendar: Calendar, default: str) -> None:
        self.definitions: dict[str, Timezone] = {}
        for component in calendar.walk("VTIMEZONE"):
            tzid = component.get("TZID")
            if tzid is not None:
                self.definitions.setdefault(str(tzid), cast(Timezone, component))
        self.resolved: dict[str, tuple[tzinfo, str]] = {}
        self.names: dict[int, str] = {}
        self.default = default
        self.problem: str | None = None
        self.wall: tuple[tzinfo, str] | None = None
        declared = calendar.get("X-WR-TIMEZONE")
        if declared is not None:
            name = iana_name(str(declared))
            if name is None:
                self.problem = f"X-WR-TIMEZONE {str(declared)[:80]!r} is not a known zone; ignored"
            else:
                self.wall = (zone(name) or UTC, name)

    def floating(self) -> tuple[tzinfo, str]:
        if self.wall is not None:
            return self.wall
        return zone(self.default) or UTC, self.default

    def resolve(self, tzid: str, at: datetime) -> tuple[tzinfo, str]:
        if tzid in self.resolved:
            return self.resolved[tzid]
        name = iana_name(tzid)
        definition = self.definitions.get(tzid)
        result: tuple[tzinfo, str]
        if name is not None and (definition is None or zone(tzid.strip()) is not None):
            # An IANA name means the tz database's rules, as icalendar and Google read it.
            result = (zone(name) or UTC, name)
        elif definition is not None:
            try:
                defined = tzp.create_timezone(definition)  # not cached: this feed's only
                at.replace(tzinfo=defined).utcoffset()
            except Exception as exc:  # any failure: unreadable
                _if_out_of_memory(exc)
                raise _Refused(f"VTIMEZONE {tzid[:80]!r} cannot be read: {exc}") from None
            location = definition.get("X-LIC-LOCATION")
            name = name or (iana_name(str(location)) if location is not None else None)
            # The name the definition's own rules agree with: a display name read by its
            # standard offset alone may name a zone without the definition's DST.
            name = iana_matching(defined, at.replace(tzinfo=defined), prefer=name or self.default)
            if name is None:
                raise _Refused(f"VTIMEZONE {tzid[:80]!r} matches no IANA time zone")
            result = (defined, name)
        else:
            raise _Refused(f"TZID {tzid[:80]!r} names no VTIMEZONE in the feed and no known zone")
        self.resolved[tzid] = result
        self.names[id(result[0])] = result[1]
        return result

    def name_of(self, value: datetime) -> str:
        tz = value.tzinfo
        key = getattr(tz, "key", None)
        if isinstance(key, str):
            return key
        if tz is not None and id(tz) in self.names:
            return self.names[id(tz)]
        if self.wall is not None and tz is self.wall[0]:
            return self.wall[1]
        return "UTC"


def _localize(value: Any, params: dict[str, Any], zones: _Zones) -> Any:
    """A parsed date/time re-read in this feed's own zones (dates pass through)."""
    if isinstance(value, tuple):  # an RDATE period
        return (_localize(value[0], params, zones), value[1])
    if not isinstance(value, datetime):
        return value
    wall = value.replace(tzinfo=None)
    tzid = params.get("TZID")
    if tzid and str(tzid).upper() not in ("UTC", "Z"):
        tz, _name = zones.resolve(str(tzid), wall)
        return wall.replace(tzinfo=tz)
    if value.tzinfo is None:
        return wall.replace(tzinfo=zones.floating()[0])
    if zones.wall is not None:  # UTC in a Google calendar: shown in the calendar's zone
        return value.astimezone(zones.wall[0])
    return value.astimezone(UTC)


def _relocalize(event: Component, zones: _Zones) -> None:
    for name in _TIMES:
        values = event.get(name)
        if values is None:
            continue
        if name in ("EXDATE", "RDATE"):
            fixed = []
            for listed in values if isinstance(values, list) else [values]:
                if not isinstance(listed, vDDDLists):
                    raise _Refused(f"{name} cannot be read")
                params = dict(listed.params)
                fixed.append(
                    vDDDLists([_localize(d.dt, params | dict(d.params), zones) for d in listed.dts])
                )
            event[name] = fixed if len(fixed) != 1 else fixed[0]
        else:
            if not isinstance(values, vDDDTypes):
                raise _Refused(f"{name} cannot be read")
            localized = vDDDTypes(_localize(values.dt, dict(values.params), zones))
            if "RANGE" in values.params:  # RECURRENCE-ID;RANGE=THISANDFUTURE stays said
                localized.params["RANGE"] = values.params["RANGE"]
            event[name] = localized


def _check(event: Component) -> None:
    """Refuse an event whose essential properties are broken or given twice. A line that
    cannot be read at all costs the event only when it is one of its time properties (a
    broken ATTENDEE or a stray line of junk says nothing about when it takes place)."""
    for name, message in getattr(event, "errors", []):
        what = str(name).upper() if name else _line_name(str(message))
        if what in _ESSENTIAL:
            raise _Refused(f"{what} cannot be read: {str(message)[:200]}")
    for name in _SINGLE:
        if isinstance(event.get(name), list):
            raise _Refused(f"more than one {name}")
    if event.get("DTSTART") is None:
        raise _Refused("no DTSTART")
    if event.get("DTEND") is not None and event.get("DURATION") is not None:
        start, end, length = _dt(event, "DTSTART"), _dt(event, "DTEND"), _dt(event, "DURATION")
        # Thunderbird writes DURATION:PT0S beside the DTEND of an edited instance; a
        # DURATION that agrees with DTEND says nothing more. Either way DTEND stands.
        agrees = isinstance(end, datetime) and isinstance(start, datetime) and end - start == length
        if length != timedelta(0) and not agrees:
            raise _Refused("both DTEND and DURATION, and they disagree")
        del event["DURATION"]
    duration = event.get("DURATION")
    if duration is not None and not isinstance(getattr(duration, "dt", None), timedelta):
        raise _Refused("DURATION cannot be read")
    sequence = event.get("SEQUENCE")
    if sequence is not None:
        try:
            number = int(sequence)
        except (ValueError, TypeError):
            raise _Refused(f"SEQUENCE {str(sequence)[:20]!r} is not a whole number") from None
        if not 0 <= number < 2**31:
            raise _Refused(f"SEQUENCE {number} is out of range")


def _line_name(message: str) -> str:
    """The property name of an unreadable content line, from icalendar's message about it
    ("Content line could not be parsed into parts: 'DTSTART;TZID=...'")."""
    found = re.search(r"parts: '([A-Za-z0-9-]+)", message)
    return found[1].upper() if found else ""


def _dt(component: Component, name: str) -> Any:
    """The parsed value of a date, time or duration property (None when absent)."""
    return getattr(component.get(name), "dt", None)


def _text(event: Component, name: str, limit: int) -> str:
    value = event.get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    # Cut far above the stored cap before cleaning: a 5 MB DESCRIPTION costs nothing more.
    return str(value if value is not None else "")[: limit * 2].strip()


def _item(
    event: Component,
    *,
    key: str,
    uid: str,
    zones: _Zones,
    series: str | None = None,
    original: datetime | None = None,
) -> FeedItem:
    starts_at: datetime = _dt(event, "DTSTART")
    ends_at: datetime | None = None
    end, duration = _dt(event, "DTEND"), _dt(event, "DURATION")
    if isinstance(end, datetime):
        ends_at = end
    elif isinstance(duration, timedelta):
        ends_at = starts_at + duration
    raw_status = str(event.get("STATUS", "CONFIRMED")).upper()
    sequence = event.get("SEQUENCE")
    title = _text(event, "SUMMARY", 500)
    return FeedItem(
        uid=uid,
        key=key,
        series=series,
        original=original.astimezone(UTC) if original is not None else None,
        title=title or uid,
        # Instants in UTC: the zone is named apart, and a feed's own VTIMEZONE (dateutil's
        # tzical) costs an RRULE walk at every offset lookup downstream.
        starts_at=starts_at.astimezone(UTC),
        ends_at=ends_at.astimezone(UTC) if ends_at and ends_at > starts_at else None,
        status=_STATUS.get(raw_status, MeetingStatus.CONFIRMED),
        timezone=zones.name_of(starts_at),
        location=_text(event, "LOCATION", 500),
        description=_text(event, "DESCRIPTION", 20000),
        sequence=int(sequence) if sequence is not None else None,
        texts=_by_language(event),
    )


#: The text properties a feed may give per language (RFC 5545's LANGUAGE parameter).
_LANGUAGE_TEXT = (("SUMMARY", "title", 500), ("LOCATION", "location", 500))
_LANGUAGE_LONG = (("DESCRIPTION", "description", 20000),)


def _by_language(event: Component) -> dict[str, dict[str, str]]:
    """SUMMARY, LOCATION and DESCRIPTION by their LANGUAGE parameter (``ru``, ``en-GB``
    read as ``en``), for those that have one: language -> field -> text."""
    found: dict[str, dict[str, str]] = {}
    for name, field_name, limit in _LANGUAGE_TEXT + _LANGUAGE_LONG:
        values = event.get(name)
        for value in values if isinstance(values, list) else [values]:
            language = getattr(value, "params", {}).get("LANGUAGE") if value is not None else None
            if not language:
                continue
            code = str(language).replace("_", "-").split("-")[0].lower()
            if re.fullmatch(r"[a-z]{2,3}", code):
                found.setdefault(code, {}).setdefault(field_name, str(value)[: limit * 2].strip())
    return found


def _calendars(text: str) -> list[Calendar]:
    upper = text.upper()
    if "BEGIN:VCALENDAR" not in upper:
        raise FeedError(f"not an iCalendar document (starts with {text[:40]!r})")
    # Text before the first calendar (a stray blank, a byte of junk) is not ours to read.
    text = text[upper.index("BEGIN:VCALENDAR") :]
    with _PARSE_LOCK:
        try:
            found = Calendar.from_ical(text, multiple=True)
        except Exception as exc:  # icalendar has more ways to fail than it documents
            _if_out_of_memory(exc)
            raise FeedError(f"not an iCalendar document: {str(exc)[:300]}") from None
        finally:
            tzp.use_zoneinfo()  # forget the VTIMEZONEs icalendar cached process-wide
    calendars = [c for c in found if isinstance(c, Calendar)]
    if not calendars:
        raise FeedError("not an iCalendar document: no VCALENDAR")
    return calendars


def parse_ics(
    body: bytes,
    *,
    now: datetime,
    default_timezone: str = "UTC",
    horizon: timedelta = timedelta(days=30),
    content_type: str | None = None,
) -> ParsedFeed:
    """Read an iCalendar document (one or several concatenated VCALENDARs).

    Single events are read whatever their date; series are expanded into the occurrences
    that end after `now` and start before ``now + horizon``.
    """
    decoded = decode_ics(body, content_type=content_type)
    parsed = ParsedFeed(notes=list(decoded.notes))
    for calendar in _calendars(decoded.text):
        zones = _Zones(calendar, default_timezone)
        if zones.problem:
            parsed.notes.append(zones.problem)
        groups: dict[str, list[Component]] = defaultdict(list)
        #: Per series, the original starts (UTC) of edited instances that were not read.
        held: dict[str, set[datetime]] = defaultdict(set)
        for event in calendar.walk("VEVENT"):
            uid = _text(event, "UID", 1000)
            label = uid or f"(no UID, {_text(event, 'SUMMARY', 60)[:60]!r})"
            try:
                if not uid:
                    raise _Refused("no UID")
                _check(event)
                if not isinstance(_dt(event, "DTSTART"), datetime):
                    kept = _hold(event, uid, zones, held)
                    parsed.skipped.append((label, "all-day events have no start time" + kept))
                    continue
                _relocalize(event, zones)
            except _Refused as refused:
                kept = _hold(event, uid, zones, held)
                parsed.refused.append((label, refused.reason + kept))
                continue
            except Exception as exc:  # a shape no rule above foresaw: this event only
                _if_out_of_memory(exc)
                kept = _hold(event, uid, zones, held)
                parsed.refused.append((label, f"cannot be read ({type(exc).__name__})" + kept))
                continue
            groups[uid].append(event)
        for uid, events in groups.items():
            if len(parsed.items) >= MAX_EVENTS:
                parsed.notes.append(
                    f"more than {MAX_EVENTS:,} events and occurrences; the first are followed"
                )
                return parsed
            try:
                _read_group(
                    uid, events, zones, parsed, now=now, horizon=horizon, held=held.get(uid)
                )
            except Exception as exc:  # as above, for the series or event `uid`
                _if_out_of_memory(exc)
                parsed.refused.append((uid, f"cannot be read ({type(exc).__name__})"))
    return parsed


def _hold(event: Component, uid: str, zones: _Zones, held: dict[str, set[datetime]]) -> str:
    """For an edited instance (RECURRENCE-ID) that cannot be read: remember its original
    start, so the series does not put the occurrence back at the series' time; what it
    adds to the reason. Nothing for anything else."""
    if not uid:
        return ""
    try:
        value = event.get("RECURRENCE-ID")
        if value is None or isinstance(value, list):
            return ""
        original = _localize(value.dt, dict(value.params), zones)
    except Exception as exc:  # its RECURRENCE-ID is unreadable too: nothing to hold
        _if_out_of_memory(exc)
        return ""
    if not isinstance(original, datetime):
        return ""
    held[uid].add(original.astimezone(UTC))
    return "; the occurrence keeps the time readers were last told"


def _sequence(event: Component) -> int:
    value = event.get("SEQUENCE")
    return int(value) if value is not None else 0


def _start_near(
    master: Component | None, overrides: list[Component], *, now: datetime, horizon: timedelta
) -> timedelta:
    """Move the master's DTSTART (and DTEND, and COUNT) a whole number of its rule's periods
    towards the horizon, so that the expansion does not walk from a DTSTART of 1970 (see
    `recurrence`); the window one query of the series may cover. Raises `Unbounded`."""
    if master is None:
        return horizon
    values = master.get("RRULE")
    rules = [read_rule(v) for v in (values if isinstance(values, list) else [values]) if v]
    start: datetime = _dt(master, "DTSTART")
    longest = abs(_length(master, start))
    for override in overrides:
        # An instance moved with RANGE=THISANDFUTURE moves the later ones by as much.
        recurrence_id = override.get("RECURRENCE-ID")
        if str(recurrence_id.params.get("RANGE", "")).upper() == "THISANDFUTURE":
            moved_to: datetime = _dt(override, "DTSTART")
            moved = abs(moved_to - recurrence_id.dt) + abs(_length(override, moved_to))
            longest = max(longest, moved)
    walk = walk_from(rules, start, now=now, horizon=horizon, longest=longest, most=MAX_OCCURRENCES)
    if walk.start != start:
        end = _dt(master, "DTEND")
        master["DTSTART"] = vDDDTypes(walk.start)
        if isinstance(end, datetime):
            # The same length as the library reckons it (a wall-time difference in one zone).
            master["DTEND"] = vDDDTypes(walk.start + (end - start))
        if walk.count == 0:
            del master["RRULE"]  # nothing left of the rule: only RDATEs and overrides
        elif walk.count is not None:
            (value,) = [values] if not isinstance(values, list) else values
            rule = vRecur(value)
            rule["COUNT"] = [walk.count]
            master["RRULE"] = rule
    return walk.window


def _from_future(
    occurrence: Component, original: datetime, futures: list[tuple[datetime, Component]]
) -> tuple[Component, datetime]:
    """`occurrence` as the latest RANGE=THISANDFUTURE edit before it left it: moved by as
    much as that edit moved its own instance, lasting as long, with its text and status."""
    edits = [(at, edit) for at, edit in futures if at < original]
    start: datetime = _dt(occurrence, "DTSTART")
    if not edits:
        return occurrence, start
    at, edit = edits[-1]
    moved_to: datetime = _dt(edit, "DTSTART")
    start = start + (moved_to - at)
    changed = Event()
    changed.add("dtstart", start)
    length = _length(edit, moved_to)
    if length:
        changed.add("dtend", start + length)
    for name in ("SUMMARY", "LOCATION", "DESCRIPTION", "STATUS", "SEQUENCE"):
        value = edit.get(name, occurrence.get(name))
        if value is not None:
            changed[name] = value
    return changed, start


def _length(event: Component, start: datetime) -> timedelta:
    end, duration = _dt(event, "DTEND"), _dt(event, "DURATION")
    if isinstance(end, datetime):
        return end - start
    return duration if isinstance(duration, timedelta) else timedelta(0)


def _read_group(
    uid: str,
    events: list[Component],
    zones: _Zones,
    parsed: ParsedFeed,
    *,
    now: datetime,
    horizon: timedelta,
    held: set[datetime] | None = None,
) -> None:
    held = held or set()
    masters = [e for e in events if e.get("RECURRENCE-ID") is None]
    overrides = [e for e in events if e.get("RECURRENCE-ID") is not None]
    if len(masters) > 1:
        masters.sort(key=_sequence, reverse=True)
        for _extra in masters[1:]:
            parsed.refused.append(
                (uid, "UID given to more than one event; the highest SEQUENCE is read")
            )
        masters = masters[:1]
    recurring = (
        bool(overrides)
        or bool(held)
        or any(m.get("RRULE") is not None or m.get("RDATE") is not None for m in masters)
    )
    if not recurring:
        parsed.items.append(_item(masters[0], key=uid, uid=uid, zones=zones))
        return
    if not masters and not overrides:
        return  # only instances that could not be read: nothing to follow
    by_original: dict[datetime, Component] = {}
    for override in sorted(overrides, key=_sequence):
        by_original[_dt(override, "RECURRENCE-ID")] = override  # the highest SEQUENCE wins
    end = now + horizon
    try:
        window = _start_near(
            masters[0] if masters else None, list(by_original.values()), now=now, horizon=horizon
        )
    except Unbounded as unbounded:
        parsed.refused.append((uid, unbounded.reason))
        return
    # RANGE=THISANDFUTURE: the edit applies to its instance and every later one.
    futures = sorted(
        (
            (_dt(o, "RECURRENCE-ID"), o)
            for o in by_original.values()
            if str(o.get("RECURRENCE-ID").params.get("RANGE", "")).upper() == "THISANDFUTURE"
        ),
        key=lambda pair: pair[0],
    )
    for _at, edit in futures:
        # Applied to the later instances here (`_from_future`), where each keeps its own
        # original start, its key; the library would give them all the edit's.
        del edit.get("RECURRENCE-ID").params["RANGE"]
    series = Calendar()
    for component in masters + list(by_original.values()):
        series.add_component(component)
    count = 0
    read: set[str] = set()
    try:
        query = recurring_ical_events.of(series)
        # A window at a time, each holding at most about MAX_OCCURRENCES: the library's own
        # `after` doubles its window while it finds nothing, up to millions of occurrences.
        since = now
        while since < end:
            until = min(since + window, end)
            found = [
                o for o in query.between(since, until) if isinstance(_dt(o, "DTSTART"), datetime)
            ]
            since = until
            for occurrence in sorted(found, key=lambda o: _dt(o, "DTSTART")):
                start = _dt(occurrence, "DTSTART")
                original = _dt(occurrence, "RECURRENCE-ID") or start
                key = occurrence_key(uid, original)
                if key in read:
                    continue
                if original.astimezone(UTC) in held:
                    read.add(key)
                    parsed.held.append(key)
                    continue
                if original not in by_original:
                    occurrence, start = _from_future(occurrence, original, futures)
                if start >= end:
                    continue
                read.add(key)
                count += 1
                if count > MAX_OCCURRENCES or len(parsed.items) >= MAX_EVENTS:
                    parsed.notes.append(
                        f"series {uid[:80]!r} has more than {MAX_OCCURRENCES} occurrences "
                        "within the horizon; the first are followed"
                    )
                    return
                parsed.items.append(
                    _item(
                        occurrence,
                        key=key,
                        uid=uid,
                        zones=zones,
                        series=uid,
                        original=original,
                    )
                )
    except Exception as exc:  # the library cannot expand it
        _if_out_of_memory(exc)
        parsed.refused.append((uid, f"the series cannot be expanded: {str(exc)[:200]}"))
        return
    parsed.complete_series[uid] = end


__all__ = ["FeedError", "ParsedFeed", "occurrence_key", "parse_ics"]
