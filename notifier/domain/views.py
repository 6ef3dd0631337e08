"""What a reader of one audience may see of a meeting and its history: each tiered field
replaced by the reader's variant (`Audiences.pick`), no variants left.

Above both the audiences (the order, the variants) and the models (meetings, history), so
neither imports the other for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from notifier.domain.audiences import Audiences
from notifier.domain.models import HistoryEntry, Meeting


def view_meeting(meeting: Meeting, reader: str, audiences: Audiences) -> Meeting:
    """What a reader of audience `reader` may see of `meeting`: each tiered field replaced
    by the reader's variant, and no variants left. (Whether they may know of the meeting
    at all is `Audiences.may_know`.)"""
    if not meeting.variants:
        return meeting
    seen: dict[str, object] = {
        field: audiences.pick(tiers, reader, field) for field, tiers in meeting.variants.items()
    }
    return dataclasses.replace(meeting, **seen, variants={})  # type: ignore[arg-type]


def view_entry(entry: HistoryEntry, reader: str, audiences: Audiences) -> HistoryEntry:
    """A history entry as a reader of audience `reader` may see it."""
    if not entry.variants:
        return entry
    seen: dict[str, object] = {
        field: audiences.pick(tiers, reader, field) for field, tiers in entry.variants.items()
    }
    return dataclasses.replace(entry, **seen, variants={})  # type: ignore[arg-type]


def view_history(
    history: Sequence[HistoryEntry], reader: str, audiences: Audiences
) -> list[HistoryEntry]:
    """A whole history as a reader may see it."""
    return [view_entry(entry, reader, audiences) for entry in history]
