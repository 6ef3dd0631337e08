"""The time zones a visitor picks from: current names only, grouped by region, in words.

The list is tzdata's ``zone.tab`` (one current name per inhabited region: Europe/Kyiv, not
Europe/Kiev; Asia/Kathmandu, not Asia/Katmandu; no US/East-Indiana), plus UTC. Each is
labelled in the visitor's language by its country and city as CLDR names them ("Norway
(Oslo)", "Норвегия (Осло)") under its region, and `find` reads what a visitor typed: an
exact zone name (old names too, they still work), or a city or country as labelled.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from zoneinfo import ZoneInfo, available_timezones

from babel import Locale
from babel.dates import get_timezone_location

#: Regions in the order they are offered, with their names per language.
REGIONS: dict[str, dict[str, str]] = {
    "Europe": {"en": "Europe", "ru": "Европа"},
    "Asia": {"en": "Asia", "ru": "Азия"},
    "Africa": {"en": "Africa", "ru": "Африка"},
    "America": {"en": "Americas", "ru": "Америка"},
    "Australia": {"en": "Australia", "ru": "Австралия"},
    "Pacific": {"en": "Pacific", "ru": "Тихий океан"},
    "Atlantic": {"en": "Atlantic", "ru": "Атлантический океан"},
    "Indian": {"en": "Indian Ocean", "ru": "Индийский океан"},
    "Antarctica": {"en": "Antarctica", "ru": "Антарктида"},
    "Arctic": {"en": "Arctic", "ru": "Арктика"},
}
UTC_LABEL = {"en": "Coordinated Universal Time", "ru": "Всемирное координированное время"}


@dataclass(frozen=True)
class Zone:
    """One choice: the IANA name sent, the words shown."""

    name: str
    region: str  # the region's words
    label: str  # "Norway (Oslo)"

    @property
    def shown(self) -> str:
        """What the option says: ``Europe · Norway (Oslo)``."""
        return f"{self.region} · {self.label}" if self.region else self.label


@functools.cache
def current_names() -> dict[str, str]:
    """tzdata's current zone names (``zone.tab``) that this Python can load, each with its
    country's ISO 3166 code, by name."""
    table = importlib.resources.files("tzdata") / "zoneinfo" / "zone.tab"
    rows = [
        line.split("\t")
        for line in table.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    loadable = available_timezones()
    return {row[2]: row[0] for row in sorted(rows, key=lambda r: r[2]) if row[2] in loadable}


@functools.cache
def choices(lang: str) -> tuple[Zone, ...]:
    """Every current zone labelled in `lang`, by region then label, UTC first."""
    found = [Zone("UTC", "", f"UTC · {UTC_LABEL.get(lang, UTC_LABEL['en'])}")]
    order = list(REGIONS)
    rows: list[tuple[int, str, Zone]] = []
    territories = Locale.parse(lang).territories
    for name, country in current_names().items():
        region = name.split("/", 1)[0]
        words = REGIONS.get(region, {"en": region})
        city = str(get_timezone_location(ZoneInfo(name), locale=lang, return_city=True))
        nation = territories.get(country, country)
        label = f"{nation} ({city})" if city and city != nation else nation
        zone = Zone(name, words.get(lang, words["en"]), label)
        rank = order.index(region) if region in order else len(order)
        rows.append((rank, label.casefold(), zone))
    found.extend(zone for _, _, zone in sorted(rows, key=lambda row: (row[0], row[1])))
    return tuple(found)


@functools.cache
def _every_zone() -> frozenset[str]:
    return frozenset(z for z in available_timezones() if not z.startswith(("Etc/", "posix/")))


def find(typed: str | None, lang: str = "en") -> str | None:
    """The zone a visitor meant, or None: an exact zone name (case aside; old names too),
    or the words of one choice (``Norway (Oslo)``, ``Europe · Norway (Oslo)``), or a city
    alone when only one choice has it (``Oslo``, ``Осло``)."""
    text = " ".join((typed or "").split())[:100]
    if not text:
        return None
    if text in _every_zone() or text == "UTC":
        return text
    folded = text.casefold()
    by_name = {name.casefold(): name for name in _every_zone()}
    if folded in by_name:
        return by_name[folded]
    if folded.replace(" ", "_") in by_name:
        return by_name[folded.replace(" ", "_")]
    for language in dict.fromkeys((lang, "en", "ru")):
        zones = choices(language)
        for zone in zones:
            if folded in (zone.label.casefold(), zone.shown.casefold()):
                return zone.name
        cities = [z for z in zones if _city(z.label).casefold() == folded]
        if len(cities) == 1:
            return cities[0].name
    return None


def _city(label: str) -> str:
    """``Oslo`` of ``Norway (Oslo)``; the label itself when it names no city."""
    head, _, tail = label.rpartition("(")
    return tail.rstrip(")") if head else label
