"""What a reader of one audience may see of a meeting and its history: each tiered field
replaced by the reader's variant (`Audiences.pick`), no variants left.

Above both the audiences (the order, the variants) and the models (meetings, history), so
neither imports the other for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TypeVar

from notifier.domain.audiences import Audiences
from notifier.domain.languages import layer_fields
from notifier.domain.models import HistoryEntry, Meeting

Layered = TypeVar("Layered", Meeting, HistoryEntry)


def in_language(record: Layered, language: str | None) -> Layered:
    """A meeting (or history entry) with its text in `language` where it has it (the
    fallback language's elsewhere), and no other language left."""
    if not record.texts:
        return record
    layer = record.texts.get(language or "", {})
    plain, tiers = layer_fields(layer)
    variants = {k: v for k, v in record.variants.items() if k not in layer}
    return dataclasses.replace(
        record,
        **plain,  # type: ignore[arg-type]
        variants={**variants, **tiers},
        texts={},
    )


def view_meeting(
    meeting: Meeting, reader: str, audiences: Audiences, language: str | None = None
) -> Meeting:
    """What a reader of audience `reader` (and of `language`) may see of `meeting`: its
    text in their language where it has it, each tiered field replaced by the reader's
    variant, and no variants left. (Whether they may know of the meeting at all is
    `Audiences.may_know`.)"""
    meeting = in_language(meeting, language)
    if not meeting.variants:
        return meeting
    seen: dict[str, object] = {
        field: audiences.pick(tiers, reader, field) for field, tiers in meeting.variants.items()
    }
    return dataclasses.replace(meeting, **seen, variants={})  # type: ignore[arg-type]


def view_entry(
    entry: HistoryEntry, reader: str, audiences: Audiences, language: str | None = None
) -> HistoryEntry:
    """A history entry as a reader of audience `reader` (and of `language`) may see it."""
    entry = in_language(entry, language)
    if not entry.variants:
        return entry
    seen: dict[str, object] = {
        field: audiences.pick(tiers, reader, field) for field, tiers in entry.variants.items()
    }
    return dataclasses.replace(entry, **seen, variants={})  # type: ignore[arg-type]


def view_history(
    history: Sequence[HistoryEntry],
    reader: str,
    audiences: Audiences,
    language: str | None = None,
) -> list[HistoryEntry]:
    """A whole history as a reader may see it."""
    return [view_entry(entry, reader, audiences, language) for entry in history]
