"""The application's use cases, each rule written once for every face (API, CLI, daemon).

Meetings (create, create in bulk for a feed, change details, status change, retire),
subscribers (save, retire) and who may change a record (`check_owner`), reminders (plan,
fire), config-file reconciliation, deliveries (retry, replay, prune), the preview of a
message, and the sources report. A public function is one transaction (its ``_in``
variant runs inside the caller's): it validates with the pure domain, then writes the
meeting, its history, its event id, its outbox rows and its reminders together, or
nothing at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.exc import IntegrityError

from notifier.configfile import MeetingConfig, SourceConfig
from notifier.delivery import Postman
from notifier.domain.audiences import (
    CHANGE_TIERED,
    TIERED,
    freeze,
    split,
    view_history,
    view_meeting,
)
from notifier.domain.errors import (
    ConfigError,
    Conflict,
    InvalidChange,
    NotFound,
    UnknownMeeting,
    UnknownSubscriber,
)
from notifier.domain.machine import ON_SCHEDULE, Transition, apply_change, update_details
from notifier.domain.matching import subscriber_matches
from notifier.domain.models import (
    EventKind,
    HistoryEntry,
    Meeting,
    Source,
    StatusChange,
    Subscriber,
    kind_of_status,
)
from notifier.domain.outbox import (
    REPLAYABLE,
    Channel,
    Delivery,
    Replay,
    coalesce,
    plan_change_deliveries,
    plan_reminder_deliveries,
)
from notifier.domain.reminders import Reminder, ReminderState, plan_reminders
from notifier.dsn import Failure, Report, Unreadable
from notifier.locate import format_loc
from notifier.rendering import preview_notice
from notifier.settings import Settings
from notifier.store.port import StorePort, TransactionPort
from notifier.store.queries import Store
from notifier.store.records import Pruned, SourceState, StoredReminder
from notifier.tokens import bounce_token_delivery, bounce_token_valid
from notifier.views import SourceProblem, SourceReport

log = logging.getLogger(__name__)

#: How often a change is retried when another writer got to the same meeting first.
_ATTEMPTS = 3


@dataclass(frozen=True, kw_only=True)
class ChangeResult:
    """The meeting after a change, the history entry it made, and whether it was a repeat."""

    meeting: Meeting
    entry: HistoryEntry
    #: True when the event id was seen before: nothing changed, this is the first result.
    duplicate: bool = False
    #: How many deliveries the change put in the outbox.
    deliveries: int = 0


async def apply_status_change(
    store: StorePort, change: StatusChange, *, now: datetime
) -> ChangeResult:
    """Apply `change` at `now` in one transaction, or raise and change nothing.

    Raises `UnknownMeeting`, `TransitionError` or `InvalidChange`. A change whose
    `event_id` was already applied returns that first result with ``duplicate=True``, even
    when two copies race (the loser retries and finds the winner's record).
    """
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            async with store.write() as tx:
                return await apply_change_in(tx, change, now=now)
        except (IntegrityError, Conflict):
            if attempt == _ATTEMPTS:
                raise
            log.info(
                "concurrent change to %s, retrying",
                change.meeting_id,
                extra={"action": "change_retry", "meeting": change.meeting_id},
            )
    raise AssertionError("unreachable")


async def apply_change_in(
    tx: TransactionPort, change: StatusChange, *, now: datetime
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
    tx.audiences.check(variants=change.variants)
    transition = apply_change(record.meeting, change, now=now)
    queued = await _write(tx, record.meeting, transition, now=now)
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
    tx: TransactionPort, before: Meeting, transition: Transition, *, now: datetime
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
    chunk = tx.fanout_chunk if not transition.meeting.coalesce and tx.fanout_chunk > 0 else None
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
        audiences=tx.audiences,
        installation=tx.installation,
    )
    if transition.meeting.coalesce:
        planned, merged = coalesce(planned, await tx.waiting_changes(transition.meeting.id))
        await tx.mark_merged(merged)
    queued = await tx.enqueue(planned, now=now)
    if rest:
        await tx.add_fanout(transition.meeting, after=subscribers[-1].id, now=now)
    await replan(tx, transition.meeting, subscribers, now=now)
    return queued


class _LostFanout(Exception):
    """Another expander took the fan-out over (this one's lease ran out): roll back."""


async def expand_fanout(
    store: StorePort,
    *,
    worker: str,
    clock: Callable[[], datetime],
    lease: timedelta = timedelta(seconds=15),
    on_chunk: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> int | None:
    """Plan the rest of one change to many readers, a chunk per transaction.

    Claims the oldest fan-out no live expander holds (None when there is none), then plans
    its readers in id order, `fanout_chunk` at a time, exactly as the change's own
    transaction planned its first chunk (the meeting as the change left it, the same
    instant), and calls `on_chunk` with each chunk's count once committed, so workers
    start on it at once. Reminders of a chunk's readers are planned too, unless the
    meeting has moved on since (the newer change planned them). Returns the deliveries
    queued. A chunk committed twice (this expander died before it knew) queues nothing
    new: delivery ids are stable. When `stop` is set (the daemon is stopping) the fan-out
    is handed back after the chunk in hand, for another expander to go on at once.
    """
    # Looked at after every change: a read first, so that the common case (nothing to
    # plan) does not queue a write behind the change itself on SQLite.
    async with store.read() as tx:
        if not await tx.fanouts_pending():
            return None
    async with store.write() as tx:
        fanout = await tx.claim_fanout(worker=worker, now=clock(), lease=lease)
    if fanout is None:
        return None
    meeting = fanout.meeting
    entry: HistoryEntry | None = None
    queued = 0
    while True:
        try:
            async with store.write() as tx:
                if entry is None:
                    entry = await tx.history_entry(
                        meeting.id, fanout.sequence, zone=meeting.timezone
                    )
                chunk = max(tx.fanout_chunk, 1)
                readers = await tx.subscribers(
                    meeting_id=meeting.id, after=fanout.after, limit=chunk + 1
                )
                more = len(readers) > chunk
                readers = readers[:chunk]
                planned = plan_change_deliveries(
                    meeting,
                    entry,
                    readers,
                    now=fanout.planned_at,
                    audiences=tx.audiences,
                    installation=tx.installation,
                )
                added = await tx.enqueue(planned, now=clock())
                current = await tx.meeting_record(meeting.id)
                if current is not None and current.meeting.sequence == fanout.sequence:
                    await replan(tx, current.meeting, readers, now=clock())
                after = readers[-1].id if more and readers else None
                if not await tx.advance_fanout(
                    fanout, after=after, worker=worker, lease=lease, now=clock()
                ):
                    raise _LostFanout
        except _LostFanout:
            log.warning(
                "fan-out of %s (sequence %d) was taken over by another expander",
                meeting.id,
                fanout.sequence,
                extra={"action": "fanout_lost", "meeting": meeting.id},
            )
            return queued
        queued += added
        if on_chunk is not None:
            on_chunk(added)
        if after is None:
            log.info(
                "%s: sequence %d planned for every reader (%d deliveries after the first chunk)",
                meeting.id,
                fanout.sequence,
                queued,
                extra={"action": "fanout_done", "meeting": meeting.id, "deliveries": queued},
            )
            return queued
        fanout = dataclasses.replace(fanout, after=after)
        if stop is not None and stop.is_set():
            async with store.write() as tx:
                await tx.release_fanout(fanout, worker=worker)
            return queued


async def replan(
    tx: TransactionPort, meeting: Meeting, subscribers: list[Subscriber], *, now: datetime
) -> None:
    """Plan `meeting`'s reminders afresh, in the transaction that changed it (or its readers)."""
    await tx.replace_reminders(
        meeting,
        plan_reminders(meeting, subscribers, now=now, audiences=tx.audiences),
        on_schedule=meeting.status in ON_SCHEDULE,
    )


class ReminderOutcome(StrEnum):
    """What became of a reminder when its instant came."""

    #: Sent on time.
    FIRED = "fired"
    #: Sent after its instant (the daemon was down then), within the grace period.
    LATE = "late"
    #: Its instant passed longer ago than the grace period: recorded, not sent.
    MISSED = "missed"
    #: Superseded: the meeting moved, was postponed or cancelled, or the reader left.
    WITHDRAWN = "withdrawn"
    #: Already handled (by another scheduler, or before a restart).
    GONE = "gone"
    #: Its instant has not come: left pending (a timer that rang early).
    EARLY = "early"


async def fire_reminder(
    store: StorePort, reminder_id: int, *, now: datetime, grace: timedelta
) -> ReminderOutcome:
    """Fire one reminder if it is still due (see `fire_reminders`)."""
    return (await fire_reminders(store, [reminder_id], now=now, grace=grace))[reminder_id]


async def fire_reminders(
    store: StorePort, reminder_ids: list[int], *, now: datetime, grace: timedelta
) -> dict[int, ReminderOutcome]:
    """Fire reminders that are still due: queue their deliveries and mark them, together.

    A reminder fires only for the meeting sequence it was planned for, while the meeting is
    on schedule and the subscriber still wants that reminder; otherwise it is withdrawn. One
    whose instant passed more than `grace` ago is recorded as missed. Reminders that come
    due together are fired in one transaction with a handful of statements, so a crash at
    any point neither loses nor doubles any of them, and a burst stays cheap.
    """
    outcomes: dict[int, ReminderOutcome] = {}
    async with store.write() as tx:
        found = await tx.reminders_by_id(reminder_ids, for_update=True)
        meetings = {
            meeting_id: await tx.meeting(meeting_id)
            for meeting_id in sorted({r.meeting_id for r in found.values()})
        }
        readers = {
            record.subscriber.id: record.subscriber
            for record in await tx.subscriber_records(
                ids=sorted({r.subscriber_id for r in found.values()})
            )
        }
        planned: list[Delivery] = []
        finished: list[tuple[int, ReminderState, bool]] = []
        for reminder_id in reminder_ids:
            reminder = found.get(reminder_id)
            if reminder is None or reminder.state is not ReminderState.PENDING:
                outcomes[reminder_id] = ReminderOutcome.GONE
                continue
            meeting = meetings.get(reminder.meeting_id)
            subscriber = readers.get(reminder.subscriber_id)
            if (
                meeting is None
                or subscriber is None
                or meeting.sequence != reminder.sequence
                or meeting.status not in ON_SCHEDULE
                or reminder.offset not in subscriber.reminders
                or not subscriber_matches(subscriber, meeting, EventKind.REMINDER, tx.audiences)
            ):
                finished.append((reminder_id, ReminderState.WITHDRAWN, False))
                outcomes[reminder_id] = ReminderOutcome.WITHDRAWN
                continue
            lateness = now - reminder.due_at
            if lateness < -EARLY_TOLERANCE:
                outcomes[reminder_id] = ReminderOutcome.EARLY
                continue
            if lateness > grace:
                finished.append((reminder_id, ReminderState.MISSED, False))
                log.warning(
                    "reminder %d (%s, %s before %s) missed by %s",
                    reminder_id,
                    reminder.subscriber_id,
                    reminder.offset,
                    reminder.meeting_id,
                    lateness,
                    extra={"action": "reminder_missed", "reminder": reminder_id},
                )
                outcomes[reminder_id] = ReminderOutcome.MISSED
                continue
            late = lateness > LATE_AFTER
            planned += plan_reminder_deliveries(
                meeting,
                subscriber,
                reminder.offset,
                now=reminder.due_at,
                late=late,
                audiences=tx.audiences,
                installation=tx.installation,
            )
            finished.append((reminder_id, ReminderState.FIRED, late))
            outcomes[reminder_id] = ReminderOutcome.LATE if late else ReminderOutcome.FIRED
        await tx.enqueue(planned, now=now)
        await tx.finish_reminders(finished, at=now)
    return outcomes


#: A reminder fired more than this after its instant is marked late.
LATE_AFTER = timedelta(seconds=30)
#: Timers may ring this much before their instant (clock granularity) and still fire.
EARLY_TOLERANCE = timedelta(seconds=1)


async def create_meeting(
    store: StorePort, meeting: Meeting, *, now: datetime, event_id: str | None = None
) -> ChangeResult:
    """Store a new meeting and announce it, in one transaction.

    Its first history entry is the kind of its status (usually ``meeting.scheduled``);
    matching subscribers are notified and reminders planned. Raises `Conflict` if the id
    is taken; with an `event_id` already applied, returns that first result instead.
    """
    async with store.write() as tx:
        return await create_meeting_in(tx, meeting, now=now, event_id=event_id)


async def create_meeting_in(
    tx: TransactionPort, meeting: Meeting, *, now: datetime, event_id: str | None = None
) -> ChangeResult:
    """`create_meeting` inside the caller's transaction."""
    if event_id:
        seen = await tx.processed_event(event_id)
        if seen is not None:
            first, sequence = seen
            entry = await tx.history_entry(first.id, sequence, zone=first.timezone)
            return ChangeResult(meeting=first, entry=entry, duplicate=True)
    tx.audiences.check(meeting.audience, meeting.variants)
    meeting = meeting.replace(sequence=0)
    await tx.insert_meeting(meeting, now=now)
    entry = _creation(meeting, at=now, source=meeting.source, event_id=event_id)
    await tx.append_history(entry)
    if event_id:
        await tx.record_event(event_id, result=meeting, sequence=0, now=now)
    subscribers = await tx.subscribers(meeting_id=meeting.id)
    planned = plan_change_deliveries(
        meeting, entry, subscribers, now=now, audiences=tx.audiences, installation=tx.installation
    )
    queued = await tx.enqueue(planned, now=now)
    await replan(tx, meeting, subscribers, now=now)
    return ChangeResult(meeting=meeting, entry=entry, deliveries=queued)


async def create_meetings_in(
    tx: TransactionPort, new: Sequence[tuple[Meeting, str]], *, now: datetime
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
        tx.audiences.check(meeting.audience, meeting.variants)
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
                audiences=tx.audiences,
                installation=tx.installation,
            )
        )
        if meeting.status in ON_SCHEDULE:
            reminders.extend(plan_reminders(meeting, readers, now=now, audiences=tx.audiences))
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
    """Change descriptive fields as a ``meeting.updated`` change; None if nothing differs."""
    async with store.write() as tx:
        return await update_details_in(
            tx, meeting_id, details, now=now, source=source, event_id=event_id
        )


async def update_details_in(
    tx: TransactionPort,
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
    record = await tx.meeting_record(meeting_id, for_update=True)
    if record is None or record.retired_at is not None:
        raise UnknownMeeting(meeting_id)
    given = {k: v for k, v in details.items() if k in TIERED and isinstance(v, Mapping)}
    audience = details.get("audience")
    tx.audiences.check(audience if isinstance(audience, str) else None, freeze(given))
    transition = update_details(record.meeting, details, now=now, source=source, event_id=event_id)
    if transition is None:
        return None
    queued = await _write(tx, record.meeting, transition, now=now)
    return ChangeResult(meeting=transition.meeting, entry=transition.entry, deliveries=queued)


# -- retiring and saving: one rule for every face ------------------------------------------------


def check_owner(what: str, record_id: str, owner: Source, by: Source, verb: str) -> None:
    """A record the config file defines is changed only through the file (`Conflict`)."""
    if owner is Source.FILE and by is not Source.FILE:
        raise Conflict(f"{what} {record_id!r} is defined in the config file; {verb} it there")


async def retire_meeting_in(tx: TransactionPort, meeting: Meeting, *, now: datetime) -> None:
    """Retire `meeting` (kept, with its history, but no longer listed or followed) and
    withdraw its pending reminders, whoever retires it: the API, the file or a feed."""
    await tx.set_meeting_bookkeeping(meeting.id, retired_at=now)
    await tx.replace_reminders(meeting, [], on_schedule=False)


async def retire_meeting(store: StorePort, meeting_id: str, *, now: datetime, by: Source) -> None:
    """Retire a meeting for `by` (`UnknownMeeting`; `Conflict` for a file's meeting)."""
    async with store.write() as tx:
        record = await tx.meeting_record(meeting_id, for_update=True)
        if record is None or record.retired_at is not None:
            raise UnknownMeeting(meeting_id)
        check_owner("meeting", meeting_id, record.meeting.source, by, "remove")
        await retire_meeting_in(tx, record.meeting, now=now)


async def replan_all(tx: TransactionPort, *, now: datetime) -> None:
    """Plan every meeting's reminders afresh for the current subscribers (after who is
    subscribed, or to what, changed)."""
    meetings = [record.meeting for record in await tx.meeting_records()]
    # A page of readers at a time (`fanout_chunk`), so 100,000 readers are never all in
    # memory; each page adds its readers' reminders (the first also withdraws stale ones).
    page = max(tx.fanout_chunk, 500)
    after: str | None = None
    while True:
        readers = await tx.subscribers(after=after, limit=page)
        for meeting in meetings:
            await replan(tx, meeting, readers, now=now)
        if len(readers) < page:
            return
        after = readers[-1].id


async def save_subscriber(
    store: StorePort, subscriber: Subscriber, *, now: datetime, create: bool = False
) -> Subscriber:
    """Create or replace a subscriber and re-plan reminders (`Conflict`: the id is taken
    when creating, or the file defines it)."""
    async with store.write() as tx:
        tx.audiences.check(subscriber.audience)
        if not create:
            current = await tx.subscriber_record(subscriber.id)
            if current is not None:
                check_owner(
                    "subscriber",
                    subscriber.id,
                    current.subscriber.source,
                    subscriber.source,
                    "edit",
                )
        await tx.save_subscriber(subscriber, now=now, create=create)
        await replan_all(tx, now=now)
    return subscriber


async def retire_subscriber(
    store: StorePort, subscriber_id: str, *, now: datetime, by: Source
) -> None:
    """Retire a subscriber (matches nothing; its pending reminders are withdrawn)."""
    async with store.write() as tx:
        record = await tx.subscriber_record(subscriber_id)
        if record is None or record.retired_at is not None:
            raise UnknownSubscriber(subscriber_id)
        check_owner("subscriber", subscriber_id, record.subscriber.source, by, "remove")
        await tx.retire_subscriber(subscriber_id, now=now)


# -- reads: what every face shows, read the same way ------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MeetingDetail:
    """A meeting with its history and its reminders still to come or done."""

    meeting: Meeting
    retired: bool
    history: list[HistoryEntry]
    #: Withdrawn reminders are left out: they will never fire.
    reminders: list[StoredReminder]


async def meeting_detail(store: StorePort, meeting_id: str) -> MeetingDetail:
    """One meeting, retired or not, with its history (in its own zone) and reminders;
    `UnknownMeeting` if there is none."""
    async with store.read() as tx:
        record = await tx.meeting_record(meeting_id)
        if record is None:
            raise UnknownMeeting(meeting_id)
        history = await tx.history(meeting_id, zone=record.meeting.timezone)
        reminders = await tx.meeting_reminders(meeting_id)
    return MeetingDetail(
        meeting=record.meeting,
        retired=record.retired_at is not None,
        history=history,
        reminders=[r for r in reminders if r.state is not ReminderState.WITHDRAWN],
    )


async def current_meeting(store: StorePort, meeting_id: str) -> Meeting:
    """A meeting not retired; `UnknownMeeting` otherwise."""
    async with store.read() as tx:
        meeting = await tx.meeting(meeting_id)
    if meeting is None:
        raise UnknownMeeting(meeting_id)
    return meeting


async def subscriber_detail(
    store: StorePort, subscriber_id: str, *, retired_too: bool = False
) -> Subscriber:
    """One subscriber (a retired one only with `retired_too`); `UnknownSubscriber` if none."""
    async with store.read() as tx:
        record = await tx.subscriber_record(subscriber_id)
    if record is None or (record.retired_at is not None and not retired_too):
        raise UnknownSubscriber(subscriber_id)
    return record.subscriber


@dataclass(frozen=True, kw_only=True)
class DeliveryDetail:
    """A delivery and every attempt at it, oldest first."""

    delivery: Delivery
    attempts: list[dict[str, object]]


async def delivery_detail(store: StorePort, delivery_id: str) -> DeliveryDetail:
    """One delivery with its attempts; `NotFound` if there is none."""
    async with store.read() as tx:
        found = await tx.delivery(delivery_id)
        if found is None:
            raise NotFound(f"unknown delivery {delivery_id[:100]!r}")
        return DeliveryDetail(delivery=found, attempts=await tx.attempts(delivery_id))


# -- config file reconciliation ---------------------------------------------------------------


@dataclass(kw_only=True)
class ReconcileReport:
    """What one reconciliation of the config file did."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    changes: list[ChangeResult] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.created or self.updated or self.retired or self.changes)

    def summary(self, *, named: int = 10) -> str:
        """One line for the log: what was created, updated, retired (the first `named` of
        each by name, then how many more: a file of 10,000 readers is one short line)."""

        def listed(ids: list[str]) -> str:
            more = len(ids) - named
            shown = ", ".join(ids[:named])
            return f"{shown} and {more:,} more ({len(ids):,} in all)" if more > 0 else shown

        parts = [
            f"{name} {listed(ids)}"
            for name, ids in (
                ("created", self.created),
                ("updated", self.updated),
                ("retired", self.retired),
            )
            if ids
        ]
        return "; ".join(parts) or "nothing to do"


def file_state(config: MeetingConfig) -> str:
    """The status part of a file meeting, to notice when the file's author changes it."""
    return json.dumps(
        {
            "status": config.status.value,
            "reason": config.reason,
            "starts_at": config.starts_at.isoformat(),
            "conditions": config.conditions,
        },
        sort_keys=True,
    )


def _at(message: str, loc: tuple[str | int, ...]) -> ConfigError:
    """A config-file error at `loc`; the caller, which knows the file, cites its line."""
    return ConfigError(message, field=format_loc(loc), loc=loc)


async def reconcile(store: StorePort, settings: Settings, *, now: datetime) -> ReconcileReport:
    """Make the store agree with the meetings and subscribers of the config file.

    In one transaction: file records are created, updated, or retired when the file no
    longer names them (history is kept; a named-again record comes back). A meeting's
    status or time in the file is applied, through the state machine, only when the
    file's author edited it since the last reconciliation, so changes made since through
    the CLI or API stand. Records created through the API are never touched; a file
    record with the same id is a `ConfigError`. On any error nothing changes.
    """
    report = ReconcileReport()
    async with store.write() as tx:
        await tx.serialize("reconcile")
        for index, config in enumerate(settings.meetings):
            await _reconcile_meeting(tx, config, index, report, now=now)
        named = {m.id for m in settings.meetings}
        for record in await tx.meeting_records():
            meeting = record.meeting
            if meeting.source is Source.FILE and meeting.id not in named:
                await retire_meeting_in(tx, meeting, now=now)
                report.retired.append(f"meeting {meeting.id}")

        # One read of the stored subscribers the file names; only those the file changes
        # are written, so a file of thousands that did not change costs two queries, not
        # thousands, and readers who came another way (100,000 by self-service) are not
        # read at all.
        stored = {
            r.subscriber.id: r
            for r in await tx.subscriber_records(
                include_retired=True, ids=[s.id for s in settings.subscribers]
            )
        }
        for index, subscriber_config in enumerate(settings.subscribers):
            subscriber = subscriber_config.to_domain(source=Source.FILE)
            existing = stored.get(subscriber.id)
            if existing is not None and existing.subscriber.source is not Source.FILE:
                raise _at(
                    f"subscriber {subscriber.id!r} was created through the "
                    f"{existing.subscriber.source.value}; the config file cannot take it over",
                    ("subscribers", index, "id"),
                )
            if existing is not None and existing.subscriber == subscriber:
                continue
            if await tx.save_subscriber(subscriber, now=now):
                label = f"subscriber {subscriber.id}"
                (report.created if existing is None else report.updated).append(label)
        named = {s.id for s in settings.subscribers}
        for subscriber_record in await tx.subscriber_records(source=Source.FILE):
            subscriber = subscriber_record.subscriber
            if subscriber.id not in named:
                await tx.retire_subscriber(subscriber.id, now=now)
                report.retired.append(f"subscriber {subscriber.id}")
        if report.created or report.updated or report.retired:
            # Who is subscribed, or to what, may have changed: every plan is redone.
            await replan_all(tx, now=now)
    if report:
        log.info("config reconciled: %s", report.summary(), extra={"action": "reconcile"})
    return report


async def _reconcile_meeting(
    tx: TransactionPort,
    config: MeetingConfig,
    index: int,
    report: ReconcileReport,
    *,
    now: datetime,
) -> None:
    wanted = config.to_domain(source=Source.FILE)
    state = file_state(config)
    record = await tx.meeting_record(config.id, for_update=True)
    if record is None:
        await tx.insert_meeting(wanted, now=now, file_state=state)
        for entry in _initial_history(config, wanted, now=now):
            await tx.append_history(entry)
        report.created.append(f"meeting {config.id}")
        return
    current = record.meeting
    if current.source is not Source.FILE:
        raise _at(
            f"meeting {config.id!r} was created through the {current.source.value}; "
            "the config file cannot take it over",
            ("meetings", index, "id"),
        )
    touched = False
    details = update_details(
        current,
        {
            "title": wanted.title,
            "description": _as_given(wanted, "description"),
            "location": _as_given(wanted, "location"),
            "participants": _as_given(wanted, "participants"),
            "timezone": wanted.timezone,
            "tags": wanted.tags,
            "audience": wanted.audience,
        },
        now=now,
        source=Source.FILE,
    )
    if details is not None:
        await _write(tx, current, details, now=now)
        current = details.meeting
        touched = True
    if record.file_state != state:
        if (
            wanted.status is not current.status
            or wanted.starts_at != current.starts_at
            or _as_given(wanted, "reason") != _as_given(current, "reason")
        ):
            change = StatusChange(
                meeting_id=current.id,
                status=wanted.status,
                reason=wanted.reason,
                starts_at=wanted.starts_at if wanted.starts_at != current.starts_at else None,
                conditions=wanted.conditions,
                source=Source.FILE,
                variants={k: v for k, v in wanted.variants.items() if k in CHANGE_TIERED},
            )
            try:
                transition = apply_change(current, change, now=now)
            except InvalidChange as exc:
                raise _at(exc.message, ("meetings", index, "status")) from None
            queued = await _write(tx, current, transition, now=now)
            report.changes.append(
                ChangeResult(meeting=transition.meeting, entry=transition.entry, deliveries=queued)
            )
        await tx.set_meeting_bookkeeping(current.id, file_state=state)
        touched = True
    if record.retired_at is not None:
        await tx.set_meeting_bookkeeping(current.id, retired_at=None)
        touched = True
    if current.coalesce != wanted.coalesce:
        window = wanted.coalesce
        await tx.set_meeting_bookkeeping(
            current.id, coalesce_seconds=int(window.total_seconds()) if window else None
        )
        touched = True
    if touched:
        report.updated.append(f"meeting {config.id}")


def _as_given(meeting: Meeting, name: str) -> object:
    """A tiered field as written: its variants, or its plain value."""
    return meeting.variants.get(name) or getattr(meeting, name)


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


def _initial_history(
    config: MeetingConfig, meeting: Meeting, *, now: datetime
) -> list[HistoryEntry]:
    if not config.history:
        return [_creation(meeting, at=now, source=Source.FILE)]
    entries = []
    status = None
    for sequence, item in enumerate(config.history):
        to_status = item.status or status
        assert to_status is not None  # MeetingConfig checks the first entry has a status
        reason, tiers = split("reason", item.reason)
        assert isinstance(reason, str)
        entries.append(
            HistoryEntry(
                meeting_id=meeting.id,
                sequence=sequence,
                at=item.at,
                kind=kind_of_status(to_status) if item.status else EventKind.UPDATED,
                from_status=status,
                to_status=to_status,
                reason=reason,
                starts_at=meeting.starts_at,
                source=Source.FILE,
                variants={"reason": tiers} if tiers is not None else {},
            )
        )
        status = to_status
    return entries


async def retry_delivery(store: StorePort, delivery_id: str, *, now: datetime) -> Delivery:
    """Make one delivery due now with a fresh set of attempts (replay).

    Raises `NotFound` for an unknown id and `Conflict` for one that is sent, being sent
    or folded into another: those have nothing to retry.
    """
    async with store.write() as tx:
        found = await tx.delivery(delivery_id)
        if found is None:
            raise NotFound(f"unknown delivery {delivery_id!r}")
        if found.status not in REPLAYABLE:
            raise Conflict(f"delivery {delivery_id} is {found.status.value}: nothing to retry")
        retried = await tx.retry_delivery(delivery_id, now=now)
    assert retried is not None
    return retried


async def replay(
    store: StorePort, selection: Replay, *, now: datetime, dry_run: bool = False
) -> list[str]:
    """Replay every delivery `selection` picks, each with a fresh set of attempts; their ids.

    With `dry_run` nothing changes: the ids are what would be replayed.
    """
    async with store.write() as tx:
        ids = await tx.replay(selection, now=now, dry_run=dry_run)
    log.info(
        "%s %d deliveries (%s)",
        "would replay" if dry_run else "replayed",
        len(ids),
        selection.status.value,
        extra={"action": "replay", "count": len(ids), "dry_run": dry_run},
    )
    return ids


async def prune(
    store: StorePort, *, retention: timedelta, now: datetime, batch: int = 500
) -> Pruned:
    """Delete what is older than `retention` (see `Transaction.prune`), in small batches,
    each its own short transaction so that nothing waits long behind it. Returns counts.
    A zero `retention` keeps everything."""
    async with store.write() as tx:
        # Self-service subscriptions whose link ran out unfollowed go whatever the
        # retention: they were never more than a request.
        total = Pruned(unconfirmed=await tx.prune_unconfirmed(before=now))
    if retention <= timedelta(0):
        return total
    while True:
        async with store.write() as tx:
            done = await tx.prune(before=now - retention, limit=batch)
        total += done
        if not done:
            break
    if total:
        log.info(
            "pruned records older than %s: %s",
            retention,
            ", ".join(f"{count} {key}" for key, count in total.as_dict().items()),
            extra={"action": "prune", **total.as_dict()},
        )
    return total


# -- watched sources --------------------------------------------------------------------------


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


async def source_report(
    store: StorePort, configured: list[SourceConfig], *, problems: int = 100
) -> list[SourceReport]:
    """Each configured source's health and what its last read followed, skipped and refused
    (with up to `problems` reasons); a source never polled shows as such."""
    async with store.read() as tx:
        rows = {row.url: row for row in await tx.source_states()}
    report: list[SourceReport] = []
    for config in configured:
        url = str(config.url)
        row = rows.get(url) or SourceState(url=url)
        counts = row.counts
        done, to_apply = counts.get("done", 0), counts.get("to_apply", 0)
        report.append(
            SourceReport(
                url=url,
                kind=config.kind,
                every_seconds=config.every.total_seconds(),
                last_polled_at=_iso(row.last_polled_at),
                last_ok_at=_iso(row.last_ok_at),
                next_poll_at=_iso(row.next_poll_at),
                failures=row.failures,
                followed=counts.get("followed", 0),
                skipped=counts.get("skipped", 0),
                refused=counts.get("refused", 0),
                applied=counts.get("applied", 0),
                applying=f"{done}/{to_apply}" if done < to_apply else None,
                last_error=row.last_error,
                problems=[
                    SourceProblem(event=key, reason=reason)
                    for key, reason in list(row.problems.items())[:problems]
                ],
            )
        )
    return report


# -- installation -----------------------------------------------------------------------------


async def installation(store: Store, *, renew: bool = False) -> str:
    """This database's installation id, the first part of every delivery id; `renew` makes a
    new one (deliveries planned from then on get ids no other database has sent)."""
    return await store.load_installation(renew=renew)


# -- preview ----------------------------------------------------------------------------------


async def preview(
    store: StorePort,
    postman: Postman,
    kind: EventKind,
    meeting_id: str,
    subscriber_id: str,
    *,
    channel: Channel | None,
    part: str | None,
    now: datetime,
    audience: str | None = None,
) -> str:
    """The exact message a subscriber would get for `kind` about a meeting now (`notifier
    render`): the latest change of that kind, or the meeting's state told as that kind, on
    `channel` (default: email if the subscriber has an address, else the webhook), in the
    view of the subscriber's audience (or `audience`, to see what another would read).
    `InvalidChange` when that audience may not know of the meeting at all."""
    async with store.read() as tx:
        audiences = tx.audiences
        record = await tx.meeting_record(meeting_id)
        if record is None:
            raise UnknownMeeting(meeting_id)
        subscriber_record = await tx.subscriber_record(subscriber_id)
        if subscriber_record is None:
            raise UnknownSubscriber(subscriber_id)
        history = await tx.history(meeting_id, zone=record.meeting.timezone)
    subscriber = subscriber_record.subscriber
    if audience is not None:
        audiences.check(audience)
        subscriber = dataclasses.replace(subscriber, audience=audience)
    reader = subscriber.audience
    if not audiences.may_know(reader, record.meeting.audience):
        raise InvalidChange(
            f"a reader of audience {reader!r} hears nothing of meeting {meeting_id!r} "
            f"(known to {record.meeting.audience!r} and above)"
        )
    notice = preview_notice(
        kind,
        view_meeting(record.meeting, reader, audiences),
        view_history(history, reader, audiences),
        subscriber,
        now=now,
        audience=reader,
    )
    chosen = channel or (
        Channel.EMAIL
        if subscriber.email
        else Channel.WEBHOOK
        if subscriber.webhook
        else Channel.NOTIFY
    )
    return postman.preview(notice, subscriber, channel=chosen, part=part, now=now)


# -- bounces that arrive later ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BounceResult:
    """What one DSN did to one delivery."""

    #: ``hard`` (suppressed, delivery dead), ``soft`` (counted), ``repeat`` (this DSN was
    #: recorded before) or ``refused`` (forged, unknown or unreadable: nothing changed).
    outcome: str
    reason: str
    delivery_id: str | None = None
    address: str | None = None
    #: Soft bounces recorded for the delivery so far (this one included).
    soft_bounces: int = 0


_SMTP_CODE = re.compile(r"^\s*([245]\d\d)[\s-]")


def _bounce_text(failure: Failure, report: Report, *, now: datetime) -> tuple[str, int | None]:
    """``bounced later: 5.1.1 user unknown (DSN from mx.example.org at ...)``, and the
    SMTP code the remote server gave, if it gave one."""
    words = failure.diagnostic
    match = _SMTP_CODE.match(words)
    code = int(match.group(1)) if match else None
    if match:
        words = words[match.end() :].strip()
    if failure.status:
        words = words.removeprefix(failure.status).strip()
    when = (report.dated or now).isoformat()
    lead = "bounced later" if failure.permanent else "delayed later"
    said = " ".join(part for part in (failure.status, words) if part) or "no reason given"
    return f"{lead}: {said} (DSN from {report.reporting_mta} at {when})", code


def _refused(reason: str, *, delivery_id: str | None = None) -> BounceResult:
    log.warning(
        "DSN ignored: %s",
        reason,
        extra={"action": "bounce_refused", "delivery": delivery_id},
    )
    return BounceResult(outcome="refused", reason=reason, delivery_id=delivery_id)


async def record_bounce(
    store: StorePort,
    report: Report | Unreadable,
    *,
    token: str | None,
    key: str,
    now: datetime,
) -> BounceResult:
    """Apply a DSN that arrived at the return path of `token` (None: at the bare bounce
    address). The token must name a delivery that exists and be signed with `key` for an
    address the DSN says failed; anything else changes nothing and is logged once, with
    the reason. A hard bounce suppresses the address and marks the delivery dead with
    what the DSN said; a soft one (4.x.x, or a delay) is counted against the delivery and
    suppresses nothing, however many come. The same DSN twice counts once."""
    if token is None:
        return _refused("no return-path token in the recipient")
    delivery_id = bounce_token_delivery(token)
    if delivery_id is None:
        return _refused("malformed return-path token")
    if isinstance(report, Unreadable):
        return _refused(f"unreadable DSN: {report.reason}", delivery_id=delivery_id)
    if not report.failures:
        return _refused(
            "no failed recipient recognised (not a delivery status notification?)",
            delivery_id=delivery_id,
        )
    async with store.write() as tx:
        delivery = await tx.delivery(delivery_id)
        if delivery is None or delivery.channel is not Channel.EMAIL:
            return _refused(f"unknown delivery {delivery_id}", delivery_id=delivery_id)
        failure = next(
            (f for f in report.failures if bounce_token_valid(key, token, f.address)), None
        )
        if failure is None:
            current = await tx.endpoint_address(delivery.subscriber_id, Channel.EMAIL)
            named = ", ".join(f.address for f in report.failures[:3])
            if current is not None and bounce_token_valid(key, token, current):
                return _refused(
                    f"token for another address: the DSN names {named}, delivery "
                    f"{delivery_id} went elsewhere",
                    delivery_id=delivery_id,
                )
            return _refused(
                f"bad signature: the token is not signed for {named}", delivery_id=delivery_id
            )
        text, code = _bounce_text(failure, report, now=now)
        added = await tx.add_bounce(
            delivery_id,
            dsn_id=report.dsn_id,
            address=failure.address,
            permanent=failure.permanent,
            status=failure.status,
            reporting_mta=report.reporting_mta,
            at=now,
            code=code,
            error=text,
        )
        if not added:
            return BounceResult(
                outcome="repeat",
                reason="this DSN was recorded before",
                delivery_id=delivery_id,
                address=failure.address,
            )
        if failure.permanent:
            await tx.suppress(failure.address, reason=text, now=now)
            await tx.mark_bounced(delivery_id, error=text)
            soft = 0
        else:
            soft = await tx.soft_bounces(delivery_id)
    log.info(
        "delivery %s %s",
        delivery_id,
        text,
        extra={
            "action": "bounce_hard" if failure.permanent else "bounce_soft",
            "delivery": delivery_id,
            "status": failure.status,
        },
    )
    return BounceResult(
        outcome="hard" if failure.permanent else "soft",
        reason=text,
        delivery_id=delivery_id,
        address=failure.address,
        soft_bounces=soft,
    )
