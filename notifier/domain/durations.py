"""Durations as people write them in config files: ``30s``, ``15m``, ``1h``, ``1d2h``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
#: At most six digits a unit: every duration written so fits a `timedelta` (999999w is
#: about 19,000 years; seven digits of weeks would not always fit).
_PART = re.compile(r"(\d{1,6})([wdhms])")
_WHOLE = re.compile(r"(?:\d{1,6}[wdhms])+")


def parse_duration(text: str) -> timedelta:
    """Parse ``1d2h30m``-style text into a positive `timedelta`.

    Units are ``w``, ``d``, ``h``, ``m``, ``s``, each at most once and largest first.
    Raises `ValueError` with a message saying what is wrong and what is accepted.
    """
    cleaned = text.strip().lower()
    if not _WHOLE.fullmatch(cleaned):
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit, e.g. 30s, 15m, 1h, 1d2h"
        )
    seconds = 0
    seen: list[str] = []
    for number, unit in _PART.findall(cleaned):
        if unit in seen or (seen and list(_UNITS).index(unit) < list(_UNITS).index(seen[-1])):
            raise ValueError(
                f"invalid duration {text!r}: each unit at most once, largest first (1d2h, not 2h1d)"
            )
        seen.append(unit)
        seconds += int(number) * _UNITS[unit]
    if seconds == 0:
        raise ValueError(f"invalid duration {text!r}: must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Write a whole-second `timedelta` the way `parse_duration` reads it (``1d2h``)."""
    seconds = int(value.total_seconds())
    if seconds <= 0 or seconds != value.total_seconds():
        raise ValueError(f"cannot format {value!r}: a positive whole number of seconds is needed")
    parts: list[str] = []
    for unit, size in _UNITS.items():
        if unit == "w":
            continue  # "7d" reads better than "1w" in reminder lists
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
