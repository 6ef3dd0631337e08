"""The meeting state machine: which status may follow which, and what a change does.

Pure: `apply_change` takes the current meeting, the requested change and `now`, and returns
the new meeting with the history entry to append. It never reads a clock or a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from notifier.domain.audiences import CHANGE_TIERED, TIERED, Value, Variants, split, variant_texts
from notifier.domain.clock import Anchor, ClockChange, Wall, reading, same_instant
from notifier.domain.errors import InvalidChange, TransitionError
from notifier.domain.languages import CHANGE_FIELDS, TEXT_FIELDS, freeze_texts, merged
from notifier.domain.models import (
    EventKind,
    HistoryEntry,
    Meeting,
    MeetingStatus,
    Source,
    StatusChange,
    kind_of_status,
)
from notifier.domain.text import text_problem

S = MeetingStatus

#: The statuses each status may move to without ``force``. A self-transition is listed
#: where repeating it carries news (postponed again for a new reason, moved again).
TRANSITIONS: dict[MeetingStatus, frozenset[MeetingStatus]] = {
    S.SCHEDULED: frozenset({S.CONFIRMED, S.POSTPONED, S.RESCHEDULED, S.IN_PROGRESS, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.POSTPONED, S.RESCHEDULED, S.IN_PROGRESS, S.CANCELLED}),
    S.POSTPONED: frozenset({S.POSTPONED, S.CLEARED, S.RESCHEDULED, S.CANCELLED}),
    S.CLEARED: frozenset({S.CONFIRMED, S.POSTPONED, S.RESCHEDULED, S.IN_PROGRESS, S.CANCELLED}),
    S.RESCHEDULED: frozenset({S.CONFIRMED, S.POSTPONED, S.RESCHEDULED, S.IN_PROGRESS, S.CANCELLED}),
    # Adjourned talks are postponed; nothing else interrupts a meeting under way.
    S.IN_PROGRESS: frozenset({S.CONCLUDED, S.POSTPONED}),
    S.CONCLUDED: frozenset(),
    S.CANCELLED: frozenset(),
}

#: Statuses after which the meeting is expected to take place at `starts_at`,
#: so reminders are planned for it.
ON_SCHEDULE = frozenset({S.SCHEDULED, S.CONFIRMED, S.CLEARED, S.RESCHEDULED})


def allowed_transitions(status: MeetingStatus) -> list[MeetingStatus]:
    """The statuses `status` may move to without force, in declaration order."""
    return [s for s in MeetingStatus if s in TRANSITIONS[status]]


@dataclass(frozen=True, kw_only=True)
class Transition:
    """The result of an accepted change: the meeting after it, and its history entry."""

    meeting: Meeting
    entry: HistoryEntry


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidChange(f"{name} must include a UTC offset or zone, got {value.isoformat()}")


def _require_languages(meeting: Meeting, change: StatusChange) -> None:
    """A meeting that requires languages refuses a change whose reason (or conditions) it
    gives in the fallback language and not in each of them, naming what is missing."""
    given = [
        name
        for name, said in (
            ("reason", change.reason or "reason" in change.variants),
            (
                "conditions",
                bool(change.conditions) or "conditions" in change.variants,
            ),
        )
        if said
    ]
    missing = [
        f"texts.{lang}.{name}"
        for lang in meeting.require_languages
        for name in given
        if name not in change.texts.get(lang, {})
    ]
    if missing:
        raise InvalidChange(
            f"{', '.join(missing)}: missing; meeting {meeting.id!r} requires every reason "
            f"and condition in {', '.join(meeting.require_languages)} as well"
        )


def check_layers(texts: Mapping[str, Mapping[str, object]], *, allowed: tuple[str, ...]) -> None:
    """Refuse a field a change may not set in another language, and text that could break
    a message header there, naming ``texts.LANG.FIELD``."""
    for lang, layer in texts.items():
        for name, value in layer.items():
            if name not in allowed:
                raise InvalidChange(f"texts.{lang}.{name}: not part of this change")
            where = f"texts.{lang}.{name}"
            values = value.values() if isinstance(value, Mapping) else (value,)
            for one in values:
                for item in one if isinstance(one, tuple | list) else (one,):
                    problem = text_problem(str(item), multiline=name == "description")
                    if problem is not None:
                        raise InvalidChange(f"{where}: {problem}")


def _check_texts(fields: Mapping[str, object], variants: Variants | None = None) -> None:
    """Refuse text that could break a message header (see `notifier.domain.text`), in
    plain values and in every variant."""
    for name, audience, text in variant_texts(variants or {}):
        problem = text_problem(text, multiline=name == "description")
        if problem is not None:
            raise InvalidChange(f"{name}.{audience}: {problem}")
    for name, value in fields.items():
        values = value if isinstance(value, tuple | list) else (value,)
        for item in values:
            if isinstance(item, str):
                problem = text_problem(item, multiline=name == "description")
                if problem is not None:
                    raise InvalidChange(f"{name}: {problem}")


def apply_change(meeting: Meeting, change: StatusChange, *, now: datetime) -> Transition:
    """Apply `change` to `meeting` at `now`, or raise `InvalidChange` / `TransitionError`.

    Promises: the returned meeting has ``sequence + 1``; the entry carries that sequence,
    the old and new status and start time; a reschedule carries a new, later-than-now
    `starts_at` (unless forced); `force` skips only the transition table and the
    not-in-the-past check, never the data checks.
    """
    _require_aware(now, "now")
    _check_texts({"reason": change.reason, "conditions": change.conditions or ()}, change.variants)
    stray = set(change.variants) - set(CHANGE_TIERED)
    if stray:
        raise InvalidChange(f"{', '.join(sorted(stray))}: not part of a status change")
    check_layers(change.texts, allowed=CHANGE_FIELDS)
    _require_languages(meeting, change)
    if change.meeting_id != meeting.id:
        raise InvalidChange(f"change for {change.meeting_id!r} applied to {meeting.id!r}")
    allowed = TRANSITIONS[meeting.status]
    if change.status not in allowed and not change.force:
        raise TransitionError(
            meeting.id,
            meeting.status.value,
            change.status.value,
            [s.value for s in allowed_transitions(meeting.status)],
        )

    given = change.starts_at
    if change.starts_local is not None:
        # As written: resolved on the meeting's own clocks (gaps, folds, offsets checked).
        given = change.starts_local.resolve(meeting.timezone)
    starts_at = meeting.starts_at
    if given is not None:
        _require_aware(given, "starts_at")
        # Kept in the meeting's own zone, whatever offset the caller wrote it in.
        starts_at = given.astimezone(ZoneInfo(meeting.timezone))
    if change.status is S.RESCHEDULED:
        if given is None:
            raise InvalidChange(f"rescheduling {meeting.id!r} needs the new starts_at")
        if same_instant(given, meeting.starts_at):
            raise InvalidChange(
                f"rescheduling {meeting.id!r} needs a starts_at other than the current "
                f"{meeting.starts_at.isoformat()}"
            )
        if given <= now and not change.force:
            raise InvalidChange(
                f"cannot reschedule {meeting.id!r} to {given.isoformat()}: "
                "that is in the past (--force overrides)"
            )

    ends_at = meeting.ends_at
    if ends_at is not None and not same_instant(starts_at, meeting.starts_at):
        ends_at = ends_at + (starts_at - meeting.starts_at)

    variants = dict(meeting.variants)
    variants.pop("reason", None)
    if "reason" in change.variants:
        variants["reason"] = change.variants["reason"]
    if change.conditions is not None or "conditions" in change.variants:
        conditions = change.conditions or ()
        variants.pop("conditions", None)
        if "conditions" in change.variants:
            variants["conditions"] = change.variants["conditions"]
    elif change.status is S.CLEARED:
        conditions = ()
        variants.pop("conditions", None)
    else:
        conditions = meeting.conditions

    sequence = meeting.sequence + 1
    moved = not same_instant(starts_at, meeting.starts_at)
    cleared, cleared_tiers = (
        _lifted(meeting, conditions, variants) if change.status is S.CLEARED else ((), None)
    )
    texts, entry_texts = _change_texts(meeting, change)
    entry_variants: dict[str, Mapping[str, Value]] = {}
    if "reason" in change.variants:
        entry_variants["reason"] = change.variants["reason"]
    if cleared_tiers:
        entry_variants["cleared"] = cleared_tiers
    after = meeting.replace(
        status=change.status,
        reason=change.reason,
        starts_at=starts_at,
        ends_at=ends_at,
        conditions=conditions,
        sequence=sequence,
        variants=variants,
        texts=texts,
    )
    entry = HistoryEntry(
        meeting_id=meeting.id,
        sequence=sequence,
        at=now,
        kind=kind_of_status(change.status),
        from_status=meeting.status,
        to_status=change.status,
        reason=change.reason,
        previous_starts_at=meeting.starts_at if moved else None,
        starts_at=starts_at,
        event_id=change.event_id,
        source=change.source,
        forced=change.force and change.status not in allowed,
        cleared=cleared,
        variants=entry_variants,
        texts=entry_texts,
    )
    return Transition(meeting=after, entry=entry)


def _change_texts(meeting: Meeting, change: StatusChange) -> tuple[dict[str, Any], dict[str, Any]]:
    """The meeting's texts after `change`, and the entry's (its reason, and what it
    cleared, per language). A change's reason is its own: a language it gives none in
    falls back. Conditions set in the fallback language and not in a language drop that
    language's; a clearance empties them in every language."""
    given = change.texts
    resets = change.conditions is not None or "conditions" in change.variants
    drop: tuple[str, ...] = (
        ("reason", "conditions") if resets or change.status is S.CLEARED else ("reason",)
    )
    texts = merged(meeting.texts, {lang: dict(layer) for lang, layer in given.items()}, drop=drop)
    if change.status is S.CLEARED:
        for layer in texts.values():
            layer.pop("conditions", None)
        texts = {lang: layer for lang, layer in texts.items() if layer}
    entry: dict[str, dict[str, Any]] = {}
    for lang, layer in given.items():
        if "reason" in layer:
            entry.setdefault(lang, {})["reason"] = layer["reason"]
    if change.status is S.CLEARED:
        for lang, layer in meeting.texts.items():
            if "conditions" in layer:
                entry.setdefault(lang, {})["cleared"] = layer["conditions"]
    return texts, entry


def _lifted(
    meeting: Meeting, after: tuple[str, ...], after_variants: Mapping[str, Mapping[str, Value]]
) -> tuple[tuple[str, ...], dict[str, Value] | None]:
    """What a clearance lifted: the conditions pending before it that are not pending
    after it, plain and per audience (each audience's variant before, less what that
    audience still reads as pending)."""
    plain = tuple(c for c in meeting.conditions if c not in after)
    before_tiers = meeting.variants.get("conditions")
    if not before_tiers:
        return plain, None
    after_tiers = after_variants.get("conditions")
    tiers: dict[str, Value] = {}
    for audience, value in before_tiers.items():
        still = after_tiers.get(audience, ()) if after_tiers else after
        tiers[audience] = tuple(c for c in value if c not in still)
    return plain, tiers


#: Meeting fields a `meeting.updated` change may set (never status or sequence).
DETAIL_FIELDS = frozenset(
    {
        "title",
        "description",
        "location",
        "participants",
        "timezone",
        "tags",
        "conditions",
        "ends_at",
        "audience",
        "texts",
    }
)


def update_details(
    meeting: Meeting,
    details: Mapping[str, object],
    *,
    now: datetime,
    reason: str = "",
    source: Source = Source.API,
    event_id: str | None = None,
) -> Transition | None:
    """Change descriptive fields of `meeting` as a ``meeting.updated`` entry.

    A tiered field (`notifier.domain.audiences.TIERED`) may be given plain or as a table
    of variants by audience; the other replaces it whole. Returns None when nothing
    differs. Status and start time change only through `apply_change`, so that every move
    of the meeting is a status change subscribers see.
    """
    _require_aware(now, "now")
    unknown = set(details) - DETAIL_FIELDS
    if unknown:
        raise InvalidChange(f"cannot update {', '.join(sorted(unknown))} of a meeting this way")
    if "texts" in details:
        # The details in other languages replace those there; each language's reason
        # (a status change's) stays.
        wanted = freeze_texts(details["texts"])  # type: ignore[arg-type]
        kept = {
            lang: {k: v for k, v in layer.items() if k in CHANGE_FIELDS}
            for lang, layer in meeting.texts.items()
        }
        check_layers(wanted, allowed=TEXT_FIELDS)
        details = {**details, "texts": merged(kept, wanted)}
    plain: dict[str, object] = {}
    given: dict[str, Mapping[str, Value] | None] = {}
    for name, value in details.items():
        if name in TIERED:
            plain[name], given[name] = split(name, value)
        else:
            plain[name] = value
    _check_texts({**plain, "reason": reason}, {k: v for k, v in given.items() if v})
    changed = {
        k: v
        for k, v in plain.items()
        if getattr(meeting, k) != v
        or (k in given and dict(meeting.variants.get(k) or {}) != dict(given[k] or {}))
    }
    if not changed:
        return None
    variants = dict(meeting.variants)
    for name in changed:
        if name in given:
            variants.pop(name, None)
            tiers = given[name]
            if tiers:
                variants[name] = tiers
    ends_at = changed.get("ends_at", meeting.ends_at)
    if isinstance(ends_at, datetime):
        _require_aware(ends_at, "ends_at")
        if ends_at <= meeting.starts_at:
            raise InvalidChange("ends_at must be after starts_at")
    sequence = meeting.sequence + 1
    after = meeting.replace(**changed, sequence=sequence, variants=variants)
    entry = HistoryEntry(
        meeting_id=meeting.id,
        sequence=sequence,
        at=now,
        kind=EventKind.UPDATED,
        from_status=meeting.status,
        to_status=meeting.status,
        reason=reason or "updated " + ", ".join(sorted(changed)),
        starts_at=meeting.starts_at,
        event_id=event_id,
        source=source,
    )
    return Transition(meeting=after, entry=entry)


def clock_rules_changed(
    meeting: Meeting,
    *,
    stored_starts_at: datetime,
    wall: Wall,
    now: datetime,
    tzdata: str,
) -> Transition | None:
    """What a change of the clock rules of `meeting`'s zone does to it, or None.

    `meeting` is as read under the rules in force (a wall-anchored meeting's instant is
    derived from its local time); `stored_starts_at` and `wall` are what was stored, and
    told to readers, under the rules of then. A wall-anchored meeting whose instant moved
    keeps its local time at the new instant; an instant-anchored one whose local reading
    moved keeps its instant. Either is a ``meeting.updated`` entry from `Source.TZDATA`
    that says what the rules did (`ClockChange`), so readers hear of it once."""
    local, _fold, offset = reading(meeting.starts_at, meeting.timezone)
    if meeting.anchor is Anchor.WALL:
        if same_instant(meeting.starts_at, stored_starts_at):
            return None
        previous: datetime | None = stored_starts_at.astimezone(ZoneInfo(meeting.timezone))
    else:
        if local == wall.starts and offset == wall.offset:
            return None
        previous = None
    after = meeting.replace(sequence=meeting.sequence + 1)
    entry = HistoryEntry(
        meeting_id=meeting.id,
        sequence=after.sequence,
        at=now,
        kind=EventKind.UPDATED,
        from_status=meeting.status,
        to_status=meeting.status,
        previous_starts_at=previous,
        starts_at=meeting.starts_at,
        source=Source.TZDATA,
        clock=ClockChange(
            zone=meeting.timezone,
            anchor=meeting.anchor,
            local_before=wall.starts,
            local_after=local,
            offset_before=wall.offset,
            offset_after=offset,
            tzdata_before=wall.tzdata,
            tzdata_after=tzdata,
        ),
    )
    return Transition(meeting=after, entry=entry)
