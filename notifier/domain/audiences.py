"""Audiences: each reader gets the detail they may know, and never more.

An installation orders its audiences, lowest first (``public``, ``press``,
``participants``, ``internal`` by default). A subscriber belongs to one; a meeting names
the lowest that may know of it at all. The text fields `TIERED` of a meeting, a status
change and a history entry are either plain (every audience sees them) or a table of
variants by audience; a reader sees the variant of the highest audience at or below their
own that has one, and with none the field is empty.

Everything here is pure: `view_meeting` and `view_entry` make what one audience may see,
and every output (email, calendar, webhook, reminders, pages, feeds) is made from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from notifier.domain.errors import InvalidChange

#: The default order, lowest first.
DEFAULT_AUDIENCES = ("public", "press", "participants", "internal")
#: The audience of a subscriber or meeting that names none.
PUBLIC = "public"
#: The fields that may have variants by audience; the list-valued ones take lists.
TIERED = ("reason", "description", "location", "participants", "conditions")
LISTS = frozenset({"participants", "conditions", "cleared"})
#: The tiered fields a status change sets (the rest change as details).
CHANGE_TIERED = ("reason", "conditions")

#: One variant's value: text, or a list of texts for `LISTS`.
Value = str | tuple[str, ...]
#: Field -> audience -> value. Frozen by convention: never mutated once built.
Variants = Mapping[str, Mapping[str, Value]]


def empty(field: str) -> Value:
    """What a field with no variant for a reader holds: nothing."""
    return () if field in LISTS else ""


@dataclass(frozen=True)
class Audiences:
    """An installation's audiences, lowest first."""

    order: tuple[str, ...] = DEFAULT_AUDIENCES

    def __post_init__(self) -> None:
        if not self.order:
            raise ValueError("audiences: at least one")
        if len(set(self.order)) != len(self.order):
            raise ValueError("audiences: each name once")

    @property
    def lowest(self) -> str:
        """The audience everyone belongs to (self-service subscribers, pages, feeds)."""
        return self.order[0]

    def rank(self, audience: str) -> int:
        """Where `audience` stands; a name no longer in the list ranks lowest (a reader
        of it sees only what everyone sees)."""
        try:
            return self.order.index(audience)
        except ValueError:
            return 0

    def gate_rank(self, audience: str) -> int:
        """Where a meeting's gate stands; a name no longer in the list shuts out everyone
        (refused at the door rather than shown to all)."""
        try:
            return self.order.index(audience)
        except ValueError:
            return len(self.order)

    def may_know(self, reader: str, meeting_audience: str) -> bool:
        """Whether a reader of audience `reader` may know of a meeting at all."""
        return self.rank(reader) >= self.gate_rank(meeting_audience)

    def pick(self, tiers: Mapping[str, Value], reader: str, field: str) -> Value:
        """The variant of the highest audience at or below `reader` that has one; empty
        if none. Variants of names not in the list are never shown."""
        top = self.rank(reader) if reader in self.order else 0
        for audience in reversed(self.order[: top + 1]):
            if audience in tiers:
                return tiers[audience]
        return empty(field)

    def unknown(self, names: Iterable[str]) -> list[str]:
        """Those of `names` that are not audiences here, in order."""
        return [n for n in names if n not in self.order]

    def check(self, audience: str | None = None, variants: Variants | None = None) -> None:
        """Refuse (`InvalidChange`, naming the field) an audience or a variant's audience
        that is not one of these: text meant for a name nobody reads would be lost, and a
        typo in a gate would hide a meeting from everyone."""
        if audience is not None and audience not in self.order:
            raise InvalidChange(f"audience: unknown audience {audience!r}; {self._listed()}")
        for field, tiers in (variants or {}).items():
            for name in tiers:
                if name not in self.order:
                    raise InvalidChange(
                        f"{field}.{name}: unknown audience {name!r}; {self._listed()}"
                    )

    def _listed(self) -> str:
        return "audiences are " + ", ".join(self.order)


def freeze(variants: Mapping[str, Mapping[str, object]]) -> dict[str, dict[str, Value]]:
    """Variants as the domain keeps them: list values as tuples, empty tables dropped."""
    frozen: dict[str, dict[str, Value]] = {}
    for field, tiers in variants.items():
        if not tiers:
            continue
        frozen[field] = {
            audience: tuple(str(v) for v in value)
            if isinstance(value, list | tuple)
            else str(value)
            for audience, value in tiers.items()
        }
    return frozen


def thaw(variants: Variants) -> dict[str, dict[str, object]] | None:
    """Variants as JSON-ready data (lists for tuples); None when there are none."""
    if not variants:
        return None
    return {
        field: {a: list(v) if isinstance(v, tuple) else v for a, v in tiers.items()}
        for field, tiers in variants.items()
    }


def split(field: str, value: object) -> tuple[Value, dict[str, Value] | None]:
    """A field as given (plain, or a table of variants) -> (plain value, variants or None).

    A table leaves the plain value empty: once a field is tiered, only its variants speak.
    """
    if isinstance(value, Mapping):
        tiers = freeze({field: value}).get(field, {})
        return empty(field), tiers
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value), None
    return ("" if value is None else str(value)), None


def change_texts(
    reason: object, conditions: object
) -> tuple[str, tuple[str, ...] | None, dict[str, dict[str, Value]]]:
    """A status change's `reason` and `conditions` as given (plain or by audience; None
    conditions keep the meeting's) -> (reason, conditions, variants) for `StatusChange`."""
    variants: dict[str, dict[str, Value]] = {}
    plain_reason, tiers = split("reason", reason)
    if tiers is not None:
        variants["reason"] = tiers
    plain_conditions: tuple[str, ...] | None = None
    if conditions is not None:
        value, tiers = split("conditions", conditions)
        plain_conditions = value if isinstance(value, tuple) else ()
        if tiers is not None:
            variants["conditions"] = tiers
    return str(plain_reason), plain_conditions, variants


def variant_texts(variants: Variants) -> Iterable[tuple[str, str, str]]:
    """(field, audience, text) for every variant (each item of a list on its own)."""
    for field, tiers in variants.items():
        for audience, value in tiers.items():
            for text in value if isinstance(value, tuple) else (value,):
                yield field, audience, text


def shown(field: str, plain: Value, variants: Variants) -> object:
    """How operators' reads show a field: its table of variants, or its plain value."""
    tiers = variants.get(field)
    if tiers is None:
        return list(plain) if isinstance(plain, tuple) else plain
    return {a: list(v) if isinstance(v, tuple) else v for a, v in tiers.items()}
