"""Meetings change: created (one, or many for a feed), details updated, status changed, retired.

Each public function is one transaction (its ``_in`` variant runs inside the caller's): it
validates with the pure domain, then writes the meeting, its history, its event id, its
outbox rows and its reminders together, or nothing at all."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from notifier.domain.audiences import (
    TIERED,
    freeze,
)
from notifier.domain.errors import (
    Conflict,
    InvalidChange,
    UnknownMeeting,
)
from notifier.domain.machine import ON_SCHEDULE, Transition, apply_change, update_details
from notifier.domain.models import (
    HistoryEntry,
    Meeting,
    Source,
    StatusChange,
    kind_of_status,
)
from notifier.domain.outbox import (
    Delivery,
    coalesce,
    plan_change_deliveries,
)
from notifier.domain.planning import Planning
from notifier.domain.reminders import Reminder, plan_reminders
from notifier.service.common import check_owner, live_meeting, write_with_retry
from notifier.service.reminders import replan
from notifier.store.port import StorePort, TransactionPort

# One logger for the package, named as the module was: log lines read as they did.
log = logging.getLogger("notifier.service")


@dataclass(frozen=True, kw_only=True)
class ChangeResult:
    """The meeting after a change, the history entry it made, and whether it was a repeat."""

    meeting: Meeting
    entry: HistoryEntry
    #: True when the event id was seen before: nothing changed, this is the first result.
    duplicate: bool = False
    #: How many deliveries the change put in the outbox.
    deliveries: int = 0


def check_required(plan: Planning, meeting: Meeting) -> None:
    """The languages a meeting requires are the installation's, other than the fallback."""
    languages = plan.languages
    for lang in meeting.require_languages:
        if lang == languages.base:
            others = ", ".join(languages.order[1:]) or "none"
            raise InvalidChange(
                f"require_languages: {lang} is the fallback language and always present; "
                f"list only the others ({others})"
            )
    languages.check({lang: {} for lang in meeting.require_languages}, where="require_languages")


def check_texts(plan: Planning, texts: Mapping[str, Any]) -> None:
    """Refuse (`InvalidChange`, naming ``texts.LANG...``) a language that is not one of the
    installation's, and an audience in a language's variants that is not one of its."""
    plan.languages.check(texts)
    for lang, layer in texts.items():
        tiers = {
            f"texts.{lang}.{name}": value
            for name, value in layer.items()
            if isinstance(value, Mapping)
        }
        plan.audiences.check(variants=tiers)


async def apply_status_change(
    store: StorePort, change: StatusChange, *, now: datetime
) -> ChangeResult:
    """Apply `change` at `now` in one transaction, or raise and change nothing.

    Raises `UnknownMeeting`, `TransitionError` or `InvalidChange`. A change whose
    `event_id` was already applied returns that first result with ``duplicate=True``, even
    when two copies race (the loser retries and finds the winner's record).
    """
    return await write_with_retry(
        store,
        lambda tx, plan: apply_change_in(tx, plan, change, now=now),
        meeting_id=change.meeting_id,
    )


async def apply_change_in(
    tx: TransactionPort, plan: Planning, change: StatusChange, *, now: datetime
) -> ChangeResult:
    """`apply_status_change` inside the caller's transaction (a feed applies many at once)."""
    # Lock the meeting first: a concurrent copy of the same event then waits here and, once
    # the first commits, finds its event id below instead of applying the change twice.
    record = await tx.meeting_record(change.meeting_id, for_update=True)
    if change.event_id:
        seen = await tx.processed_event(change.event_id)
        if seen is not None:
            meeting, sequence = seen
            if meeting.id != change.meeting_id:
                raise Conflict(
                    f"event id {change.event_id!r} was already used for meeting {meeting.id!r}"
                )
            entry = await tx.history_entry(meeting.id, sequence, zone=meeting.timezone)
            return ChangeResult(meeting=meeting, entry=entry, duplicate=True)
    if record is None or record.retired_at is not None:
        raise UnknownMeeting(change.meeting_id)
    plan.audiences.check(variants=change.variants)
    check_texts(plan, change.texts)
    transition = apply_change(record.meeting, change, now=now)
    queued = await _write(tx, plan, record.meeting, transition, now=now)
    log.info(
        "%s: %s -> %s (sequence %d)",
        change.meeting_id,
        record.meeting.status.value,
        transition.meeting.status.value,
        transition.meeting.sequence,
        extra={
            "action": "status_change",
            "meeting": change.meeting_id,
            "status": transition.meeting.status.value,
            "sequence": transition.meeting.sequence,
        },
    )
    return ChangeResult(meeting=transition.meeting, entry=transition.entry, deliveries=queued)


async def _write(
    tx: TransactionPort, plan: Planning, before: Meeting, transition: Transition, *, now: datetime
) -> int:
    """Write the meeting, its history entry, its event id and its outbox rows together.

    Returns how many deliveries were queued.
    """
    await tx.update_meeting(transition.meeting, expected_sequence=before.sequence, now=now)
    await tx.append_history(transition.entry)
    if transition.entry.event_id:
        await tx.record_event(
            transition.entry.event_id,
            result=transition.meeting,
            sequence=transition.entry.sequence,
            now=now,
        )
    # A change to many readers plans the first `fanout_chunk` here and leaves the rest to
    # expanders (`expand_fanout`), a chunk per transaction: its first deliveries go out
    # while the rest are planned, and no transaction holds every reader in memory. A
    # meeting that coalesces changes plans them all here (folding needs every reader's
    # waiting deliveries at once).
    chunk = plan.fanout_chunk if not transition.meeting.coalesce and plan.fanout_chunk > 0 else None
    subscribers = await tx.subscribers(
        meeting_id=transition.meeting.id, limit=chunk + 1 if chunk else None
    )
    rest = chunk is not None and len(subscribers) > chunk
    if rest:
        subscribers = subscribers[:chunk]
    planned = plan_change_deliveries(
        transition.meeting,
        transition.entry,
        subscribers,
        now=now,
        audiences=plan.audiences,
        installation=plan.installation,
        languages=plan.languages,
    )
    if transition.meeting.coalesce:
        planned, merged = coalesce(planned, await tx.waiting_changes(transition.meeting.id))
        await tx.mark_merged(merged)
    queued = await tx.enqueue(planned, now=now)
    if rest:
        await tx.add_fanout(transition.meeting, after=subscribers[-1].id, now=now)
    await replan(tx, plan, transition.meeting, subscribers, now=now)
    return queued


async def create_meeting(
    store: StorePort, meeting: Meeting, *, now: datetime, event_id: str | None = None
) -> ChangeResult:
    """Store a new meeting and announce it, in one transaction.

    Its first history entry is the kind of its status (usually ``meeting.scheduled``);
    matching subscribers are notified and reminders planned. Raises `Conflict` if the id
    is taken; with an `event_id` already applied, returns that first result instead.
    """
    async with store.write() as tx:
        return await create_meeting_in(tx, store.planning, meeting, now=now, event_id=event_id)


async def create_meeting_in(
    tx: TransactionPort,
    plan: Planning,
    meeting: Meeting,
    *,
    now: datetime,
    event_id: str | None = None,
) -> ChangeResult:
    """`create_meeting` inside the caller's transaction."""
    if event_id:
        seen = await tx.processed_event(event_id)
        if seen is not None:
            first, sequence = seen
            entry = await tx.history_entry(first.id, sequence, zone=first.timezone)
            return ChangeResult(meeting=first, entry=entry, duplicate=True)
    plan.audiences.check(meeting.audience, meeting.variants)
    check_texts(plan, meeting.texts)
    check_required(plan, meeting)
    meeting = meeting.replace(sequence=0)
    await tx.insert_meeting(meeting, now=now)
    entry = _creation(meeting, at=now, source=meeting.source, event_id=event_id)
    await tx.append_history(entry)
    if event_id:
        await tx.record_event(event_id, result=meeting, sequence=0, now=now)
    subscribers = await tx.subscribers(meeting_id=meeting.id)
    planned = plan_change_deliveries(
        meeting,
        entry,
        subscribers,
        now=now,
        audiences=plan.audiences,
        installation=plan.installation,
        languages=plan.languages,
    )
    queued = await tx.enqueue(planned, now=now)
    await replan(tx, plan, meeting, subscribers, now=now)
    return ChangeResult(meeting=meeting, entry=entry, deliveries=queued)


async def create_meetings_in(
    tx: TransactionPort, plan: Planning, new: Sequence[tuple[Meeting, str]], *, now: datetime
) -> int:
    """Store and announce many new meetings (a feed's first read) in a few statements.

    The same as `create_meeting_in` for each, with subscribers read once: their history
    entries, event ids, deliveries and reminders are written together. A meeting whose
    event id was applied already is skipped; returns how many were created. The caller
    has checked that no id is taken.
    """
    if not new:
        return 0
    done = await tx.processed_event_ids([event_id for _, event_id in new])
    fresh = [(m.replace(sequence=0), e) for m, e in new if e not in done]
    if not fresh:
        return 0
    for meeting, _ in fresh:
        plan.audiences.check(meeting.audience, meeting.variants)
        check_texts(plan, meeting.texts)
        check_required(plan, meeting)
    everyone = await tx.subscribers()
    await tx.insert_meetings([m for m, _ in fresh], now=now)
    entries = [_creation(m, at=now, source=m.source, event_id=e) for m, e in fresh]
    await tx.append_histories(entries)
    await tx.record_events([(e, m, 0) for m, e in fresh], now=now)
    planned: list[Delivery] = []
    reminders: list[Reminder] = []
    for (meeting, _event), entry in zip(fresh, entries, strict=True):
        # The subscribers `tx.subscribers(meeting_id=...)` would return for this meeting.
        readers = [s for s in everyone if not s.meetings or meeting.id in s.meetings]
        planned.extend(
            plan_change_deliveries(
                meeting,
                entry,
                readers,
                now=now,
                audiences=plan.audiences,
                installation=plan.installation,
                languages=plan.languages,
            )
        )
        if meeting.status in ON_SCHEDULE:
            reminders.extend(plan_reminders(meeting, readers, now=now, audiences=plan.audiences))
    await tx.enqueue(planned, now=now)
    await tx.add_reminders(reminders)
    return len(fresh)


async def update_meeting_details(
    store: StorePort,
    meeting_id: str,
    details: dict[str, object],
    *,
    now: datetime,
    source: Source,
    event_id: str | None = None,
) -> ChangeResult | None:
    """Change descriptive fields as a ``meeting.updated`` change; None if nothing differs
    (or if `event_id` was already applied, even by a copy racing this one)."""
    return await write_with_retry(
        store,
        lambda tx, plan: update_details_in(
            tx, plan, meeting_id, details, now=now, source=source, event_id=event_id
        ),
        meeting_id=meeting_id,
    )


async def update_details_in(
    tx: TransactionPort,
    plan: Planning,
    meeting_id: str,
    details: dict[str, object],
    *,
    now: datetime,
    source: Source,
    event_id: str | None = None,
) -> ChangeResult | None:
    """`update_meeting_details` inside the caller's transaction."""
    if event_id and await tx.processed_event(event_id) is not None:
        return None
    record = await live_meeting(tx, meeting_id, for_update=True)
    check_owner("meeting", meeting_id, record.meeting.source, source, "edit")
    given = {k: v for k, v in details.items() if k in TIERED and isinstance(v, Mapping)}
    audience = details.get("audience")
    plan.audiences.check(audience if isinstance(audience, str) else None, freeze(given))
    texts = details.get("texts")
    if isinstance(texts, Mapping):
        check_texts(plan, texts)
    transition = update_details(record.meeting, details, now=now, source=source, event_id=event_id)
    if transition is None:
        return None
    queued = await _write(tx, plan, record.meeting, transition, now=now)
    return ChangeResult(meeting=transition.meeting, entry=transition.entry, deliveries=queued)


# -- retiring and saving: one rule for every face ------------------------------------------------


async def retire_meeting_in(tx: TransactionPort, meeting: Meeting, *, now: datetime) -> None:
    """Retire `meeting` (kept, with its history, but no longer listed or followed) and
    withdraw its pending reminders, whoever retires it: the API, the file or a feed."""
    await tx.set_meeting_bookkeeping(meeting.id, retired_at=now)
    await tx.replace_reminders(meeting, [], on_schedule=False)


async def retire_meeting(store: StorePort, meeting_id: str, *, now: datetime, by: Source) -> None:
    """Retire a meeting for `by` (`UnknownMeeting`; `Conflict` for a file's meeting)."""
    async with store.write() as tx:
        record = await live_meeting(tx, meeting_id, for_update=True)
        check_owner("meeting", meeting_id, record.meeting.source, by, "remove")
        await retire_meeting_in(tx, record.meeting, now=now)


def _creation(
    meeting: Meeting, *, at: datetime, source: Source, event_id: str | None = None
) -> HistoryEntry:
    """The first history entry of a meeting created with no past of its own."""
    return HistoryEntry(
        meeting_id=meeting.id,
        sequence=0,
        at=at,
        kind=kind_of_status(meeting.status),
        from_status=None,
        to_status=meeting.status,
        reason=meeting.reason,
        starts_at=meeting.starts_at,
        event_id=event_id,
        source=source,
        variants={"reason": meeting.variants["reason"]} if "reason" in meeting.variants else {},
    )
