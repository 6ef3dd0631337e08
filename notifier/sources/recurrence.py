"""Where a series' expansion starts: near the horizon, never at a DTSTART of 1970.

dateutil (under recurring-ical-events) walks every occurrence from DTSTART up to the
window it is asked for: a per-second rule that began in 1970 is 1.7 billion occurrences
before the first one that matters, each cached. A rule repeats in periods of its FREQ and
INTERVAL (every 5 minutes, every 2 months), each period laid out alike in wall time; the
same rule started a whole number of periods later yields the very same occurrences from
there on. So the walk starts at the last period that begins before the horizon, less the
event's length and a margin for clock changes, with COUNT lowered by the occurrences left
behind. What that cannot bound (a COUNT over a rule that makes several occurrences per
period, several RRULEs) is walked as written when that is cheap, and otherwise the series
is refused with its reason, as is a rule that can never occur (dateutil would look for
its first occurrence until the year 9999).

Pure: `now` is a parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: Fixed-length frequencies, in seconds of wall time.
_SECONDS = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600, "DAILY": 86400, "WEEKLY": 604800}
#: Calendar frequencies, in months.
_MONTHS = {"MONTHLY": 1, "YEARLY": 12}
#: The shortest a calendar period can be (a month, a year).
_SHORTEST_MONTHS = {1: timedelta(days=28), 12: timedelta(days=365)}
_BY = ("BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO")
_LONGEST_MONTH = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}
#: Occurrences a series may cost to walk before the horizon (dateutil makes each one).
MAX_WALK = 50_000
#: How far before the horizon a moved start lies beyond the event's length: wall time and
#: the instant differ by up to two hours around a clock change.
MARGIN = timedelta(hours=3)


class Unbounded(ValueError):
    """A series whose expansion cannot be bounded: refused with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One RRULE as far as its cost goes."""

    text: str
    freq: str
    interval: int
    count: int | None
    parts: dict[str, list[Any]]

    @property
    def per_period(self) -> int:
        """At most how many occurrences one period makes (BYxxx parts finer than FREQ
        expand it, coarser ones only filter)."""

        def listed(name: str) -> int:
            return len(self.parts.get(name) or ()) or 1

        seconds, minutes, hours = listed("BYSECOND"), listed("BYMINUTE"), listed("BYHOUR")
        times = {
            "SECONDLY": 1,
            "MINUTELY": seconds,
            "HOURLY": minutes * seconds,
        }.get(self.freq, hours * minutes * seconds)
        days_chosen = any(
            self.parts.get(p) for p in ("BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO")
        )
        days = {
            "WEEKLY": 7 if self.parts.get("BYDAY") else 1,
            "MONTHLY": 31 if days_chosen else 1,
            "YEARLY": 366 if days_chosen else listed("BYMONTH"),
        }.get(self.freq, 1)
        made = days * times
        return min(made, listed("BYSETPOS")) if self.parts.get("BYSETPOS") else made

    @property
    def shortest(self) -> timedelta:
        """The shortest one period can be."""
        if self.freq in _SECONDS:
            return timedelta(seconds=_SECONDS[self.freq] * self.interval)
        return _SHORTEST_MONTHS[_MONTHS[self.freq]] * self.interval

    @property
    def simple(self) -> bool:
        """Whether every period makes exactly one occurrence, at DTSTART's place in it (no
        BYxxx part): then the occurrences before a moved start are counted by arithmetic."""
        return not any(self.parts.get(p) for p in (*_BY, "BYMONTH", "BYSETPOS"))

    def never_occurs(self) -> bool:
        """Whether the rule names only days its months do not have (BYMONTH=2;BYMONTHDAY=30)."""
        months, days = self.parts.get("BYMONTH"), self.parts.get("BYMONTHDAY")
        if not months or not days:
            return False
        try:
            longest = max(_LONGEST_MONTH.get(int(m), 31) for m in months)
            return min(abs(int(d)) for d in days) > longest
        except (TypeError, ValueError):
            return False


def read_rule(value: Any) -> Rule:
    """An RRULE value (icalendar's vRecur: names to lists) as a `Rule`."""
    text = value.to_ical().decode(errors="replace")[:120]

    def first(name: str) -> Any:
        listed = value.get(name)
        return listed[0] if isinstance(listed, list) and listed else listed

    freq = str(first("FREQ") or "").upper()
    if freq not in _SECONDS and freq not in _MONTHS:
        raise Unbounded(f"RRULE {text!r} has no known FREQ")
    try:
        interval, count = first("INTERVAL"), first("COUNT")
        interval = int(interval) if interval is not None else 1
        count = int(count) if count is not None else None
    except (TypeError, ValueError):
        raise Unbounded(f"RRULE {text!r} has an INTERVAL or COUNT that is not a number") from None
    if not 1 <= interval <= 1_000_000:
        raise Unbounded(f"RRULE {text!r}: INTERVAL {interval} is out of range")
    parts = {
        str(k).upper(): list(v) if isinstance(v, list) else [v]
        for k, v in value.items()
        if str(k).upper().startswith("BY")
    }
    return Rule(
        text=text,
        freq=freq,
        interval=interval,
        count=count if count and count > 0 else None,
        parts=parts,
    )


@dataclass(frozen=True, kw_only=True)
class Walk:
    """Where to start expanding a series and how much of the horizon to ask for at once."""

    #: DTSTART, moved a whole number of periods towards the horizon (or as written).
    start: datetime
    #: The COUNT left from the moved start (0: the rule has no occurrence left), or None
    #: when COUNT stays as written.
    count: int | None
    #: How much of the horizon one query covers: never more occurrences than `most`.
    window: timedelta


def walk_from(
    rules: list[Rule],
    start: datetime,
    *,
    now: datetime,
    horizon: timedelta,
    longest: timedelta,
    most: int,
) -> Walk:
    """Where the expansion of a series starting at `start` (aware) under `rules` begins so
    that it yields the same occurrences from ``now - longest`` on, walking at most
    `MAX_WALK` before `now`; `longest` is how long an occurrence lasts (or is moved). Raises
    `Unbounded` with a reason when that cannot be done."""
    if not rules:
        return Walk(start=start, count=None, window=horizon)
    for rule in rules:
        if rule.never_occurs():
            raise Unbounded(
                f"RRULE {rule.text!r} names days its months do not have; it never occurs"
            )
    wall = start.replace(tzinfo=None)
    target = now.astimezone(start.tzinfo).replace(tzinfo=None) - abs(longest) - MARGIN
    moved, count = wall, None
    if len(rules) == 1 and wall < target:
        (rule,) = rules
        periods, moved = _periods_before(rule, wall, target)
        if periods and rule.count is not None:
            if rule.simple and (rule.freq in _SECONDS or wall.day <= 28):
                count = max(rule.count - periods, 0)
            else:  # the occurrences left behind cannot be counted without the walk
                moved = wall
    per_period = sum(rule.per_period for rule in rules)
    shortest = min(rule.shortest for rule in rules)
    ahead = now.astimezone(start.tzinfo).replace(tzinfo=None) - moved
    cost = per_period * (math.ceil(max(ahead, timedelta(0)) / shortest) + 1)
    counts = [rule.count for rule in rules]
    if count is None and all(c is not None for c in counts):
        cost = min(cost, sum(c for c in counts if c is not None))
    if cost > MAX_WALK:
        what = "; ".join(rule.text for rule in rules)[:160]
        raise Unbounded(
            f"RRULE {what!r} from {start:%Y-%m-%d %H:%M}: about {cost:,} occurrences to walk "
            f"before the horizon, more than {MAX_WALK:,}; refused"
        )
    window = min(horizon, shortest * max(1, math.ceil((most + 1) / per_period)))
    return Walk(start=moved.replace(tzinfo=start.tzinfo), count=count, window=window)


def _periods_before(rule: Rule, wall: datetime, target: datetime) -> tuple[int, datetime]:
    """How many whole periods of `rule` from `wall` begin at or before `target`, and the
    start of the last (on the same day of the month, for a calendar rule: one that exists
    in that month)."""
    if rule.freq in _SECONDS:
        step = _SECONDS[rule.freq] * rule.interval
        periods = int((target - wall).total_seconds() // step)
        return periods, wall + timedelta(seconds=periods * step)
    step = _MONTHS[rule.freq] * rule.interval
    months = (target.year - wall.year) * 12 + target.month - wall.month
    periods = months // step
    for _ in range(60):  # 31 January every 2 months: a 31st comes back within a few steps
        if periods <= 0:
            break
        moved = _add_months(wall, periods * step)
        if moved is not None and moved <= target:
            return periods, moved
        periods -= 1
    return 0, wall


def _add_months(value: datetime, months: int) -> datetime | None:
    year, month = divmod(value.year * 12 + value.month - 1 + months, 12)
    try:
        return value.replace(year=year, month=month + 1)
    except ValueError:  # no such day in that month (or past the year 9999)
        return None


__all__ = ["MAX_WALK", "Rule", "Unbounded", "Walk", "read_rule", "walk_from"]
