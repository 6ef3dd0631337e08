"""The storage port: what the application needs of a store, split by aggregate.

Only Protocols and the record types they speak in live here: the port imports no adapter.
`notifier.store.Transaction` (SQLAlchemy, SQLite and PostgreSQL) implements every part;
mypy checks that it does (`notifier.store.queries._implements`), and the contract suite
(tests/integration/test_store.py and the other storage suites, each run on both
backends) checks how. The application (`notifier.service`) is typed against
`TransactionPort` and `StorePort`, not the SQLAlchemy classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

from notifier.domain.models import HistoryEntry, Meeting, Source, Subscriber
from notifier.domain.outbox import (
    Attempt,
    Channel,
    Contact,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    FailureRun,
    Replay,
    RunChanges,
)
from notifier.domain.planning import Planning
from notifier.domain.reminders import Reminder, ReminderState
from notifier.store.records import (
    Counts,
    Fanout,
    Lease,
    MeetingRecord,
    Pruned,
    QueueStats,
    SourceState,
    Stamp,
    StoredReminder,
    SubscriberRecord,
    Suppression,
)


class Meetings(Protocol):
    """Meetings, their history and the event ids already applied."""

    async def meeting_record(
        self, meeting_id: str, *, for_update: bool = False
    ) -> MeetingRecord | None:
        """The stored meeting `meeting_id`, retired or not; `for_update` locks its row."""
        ...

    async def meeting_records_by_id(self, ids: Sequence[str]) -> dict[str, MeetingRecord]:
        """The stored meetings among `ids` (retired or not), by id, in one query."""
        ...

    async def meeting(self, meeting_id: str, *, for_update: bool = False) -> Meeting | None:
        """The meeting `meeting_id` unless it is unknown or retired."""
        ...

    async def meeting_records(self, *, include_retired: bool = False) -> list[MeetingRecord]:
        """Every meeting, soonest first."""
        ...

    async def insert_meeting(
        self, meeting: Meeting, *, now: datetime, file_state: str | None = None
    ) -> None:
        """Store a new meeting; `Conflict` if the id is taken."""
        ...

    async def insert_meetings(self, new: Sequence[Meeting], *, now: datetime) -> None:
        """Store many new meetings in one statement; the caller checked no id is taken (a clash
        raises `IntegrityError` and the transaction is void)."""
        ...

    async def update_meeting(
        self, meeting: Meeting, *, expected_sequence: int, now: datetime, **extra: Any
    ) -> None:
        """Write `meeting` over the stored one if that is still at `expected_sequence`."""
        ...

    async def set_meeting_bookkeeping(self, meeting_id: str, **values: Any) -> None:
        """Set ``file_state`` / ``retired_at`` without touching the meeting itself."""
        ...

    async def append_history(self, entry: HistoryEntry) -> None:
        """Append `entry` to its meeting's history (never updated, never deleted)."""
        ...

    async def append_histories(self, entries: Sequence[HistoryEntry]) -> None:
        """Append many entries in one statement."""
        ...

    async def history(self, meeting_id: str, *, zone: str = "UTC") -> list[HistoryEntry]:
        """The meeting's history, oldest first, times shown in `zone`."""
        ...

    async def visible_meetings(
        self,
        audience: str,
        *,
        limit: int,
        starting_from: datetime | None = None,
        starting_before: datetime | None = None,
        latest_first: bool = False,
    ) -> list[MeetingRecord]:
        """At most `limit` current meetings whose audience is `audience`, by start (soonest
        first, or latest first), within the given bounds of `starts_at`."""
        ...

    async def visible_changes(
        self, audience: str, *, limit: int
    ) -> list[tuple[MeetingRecord, HistoryEntry]]:
        """The newest `limit` history entries of current meetings whose audience is
        `audience`, newest first, each with its meeting."""
        ...

    async def visible_stamp(self, audience: str) -> Stamp:
        """The validator of what `audience` may see of the meetings (one query)."""
        ...

    async def history_entry(
        self, meeting_id: str, sequence: int, *, zone: str = "UTC"
    ) -> HistoryEntry:
        """One history entry, which must exist."""
        ...

    async def processed_event(self, event_id: str) -> tuple[Meeting, int] | None:
        """(meeting as the event left it, history sequence) of an applied event id, if any."""
        ...

    async def processed_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Which of `event_ids` were applied already."""
        ...

    async def record_events(
        self, applied: Sequence[tuple[str, Meeting, int]], *, now: datetime
    ) -> None:
        """`record_event` for many (event id, resulting meeting, sequence) in one statement."""
        ...

    async def record_event(
        self, event_id: str, *, result: Meeting, sequence: int, now: datetime
    ) -> None:
        """Remember that `event_id` produced history entry `sequence`, leaving `result`."""
        ...


class Subscribers(Protocol):
    """Subscribers and their endpoints."""

    async def subscriber_records(
        self,
        *,
        include_retired: bool = False,
        ids: Sequence[str] | None = None,
        meeting_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        source: Source | None = None,
    ) -> list[SubscriberRecord]:
        """Subscribers by id, with their endpoints; with `meeting_id`, only those who may follow
        that meeting (every meeting, or a list naming it: tags are left to match). `after`
        and `limit` page through them in id order; `source` keeps those that came one way."""
        ...

    async def subscriber_record(self, subscriber_id: str) -> SubscriberRecord | None:
        """The stored subscriber `subscriber_id`, retired or not."""
        ...

    async def subscribers(
        self, *, meeting_id: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[Subscriber]:
        """Every subscriber that is not retired (who may follow `meeting_id`, if given), in
        id order; `after` and `limit` page through them."""
        ...

    async def save_subscriber(
        self, subscriber: Subscriber, *, now: datetime, create: bool = False
    ) -> bool:
        """Insert or replace `subscriber` and its endpoints; True when anything changed."""
        ...

    async def add_subscribers(self, new: Sequence[Subscriber], *, now: datetime) -> int:
        """Insert many new subscribers at once (an import); `Conflict` if one exists."""
        ...

    async def retire_subscriber(self, subscriber_id: str, *, now: datetime) -> None:
        """Mark a subscriber retired: it matches nothing, and its pending reminders go."""
        ...

    async def await_confirmation(
        self, subscriber_id: str, *, token_hash: str, until: datetime
    ) -> None:
        """Make `token_hash` the one confirmation link of a subscriber, working `until`."""
        ...

    async def confirm_subscription(self, token_hash: str, *, now: datetime) -> str | None:
        """Follow a confirmation link; the subscriber's id, or None."""
        ...

    async def awaiting_confirmation(self, token_hash: str, *, now: datetime) -> str | None:
        """The subscriber a confirmation link would confirm now (changing nothing), or None
        for an unknown, used or expired link."""
        ...

    async def rotate_links(self, subscriber_id: str, *, salt: str) -> None:
        """Retire every manage and calendar link of a subscriber."""
        ...

    async def confirmations_sent(self, address_hash: str, *, since: datetime) -> int:
        """Confirmation emails to an address digest since then."""
        ...

    async def record_confirmation(self, address_hash: str, *, now: datetime) -> None:
        """Count one confirmation email."""
        ...

    async def prune_unconfirmed(self, *, before: datetime) -> int:
        """Delete self-service subscriptions never confirmed in time."""
        ...


class Outbox(Protocol):
    """Deliveries, attempts, failing endpoints, the suppression list."""

    async def enqueue(self, items: Sequence[Delivery], *, now: datetime) -> int:
        """Add deliveries to the outbox; one whose id is already there is left alone."""
        ...

    async def notify_outbox(self) -> None:
        """Tell every replica listening (`Store.listen_outbox`) that deliveries are due."""
        ...

    async def claim(
        self, *, worker: str, now: datetime, lease: timedelta, limit: int
    ) -> list[Delivery]:
        """Claim up to `limit` due deliveries for `worker` until ``now + lease``."""
        ...

    async def extend_claims(
        self, ids: Sequence[str], *, worker: str, lease: timedelta, now: datetime
    ) -> int:
        """Keep `worker`'s claims on `ids` (still sending) for another `lease`; how many."""
        ...

    async def record_attempts(self, attempts: Sequence[Attempt], *, worker: str) -> int:
        """Record attempts and move their deliveries on; returns how many were still ours."""
        ...

    async def release(self, ids: Sequence[str], *, worker: str) -> None:
        """Give claimed deliveries back untried (on shutdown), due at once."""
        ...

    async def prune(self, *, before: datetime, limit: int = 500) -> Pruned:
        """Delete up to `limit` of each kind of record that has served its time."""
        ...

    async def endpoint_health(
        self, outcomes: Sequence[tuple[str, bool, datetime]], *, disable_after: timedelta | None
    ) -> list[tuple[str, datetime]]:
        """`record_failure_runs`, then disable the endpoints the domain's rule picks
        (`endpoints_to_disable`); returns those (subscriber id, failing since)."""
        ...

    async def record_failure_runs(self, changes: RunChanges) -> list[FailureRun]:
        """Record what a batch of attempts did to webhook endpoints' runs of failures; the
        runs of the endpoints that failed in it and are not disabled."""
        ...

    async def enable_endpoint(self, subscriber_id: str, channel: Channel) -> bool:
        """Use a disabled endpoint again (its run of failures forgotten); False if none was
        disabled."""
        ...

    async def suppress(self, address: str, *, reason: str, now: datetime) -> None:
        """Put `address` on the suppression list (a hard bounce); a repeat keeps the first."""
        ...

    async def add_bounce(
        self,
        delivery_id: str,
        *,
        dsn_id: str,
        address: str,
        permanent: bool,
        status: str,
        reporting_mta: str,
        at: datetime,
        code: int | None,
        error: str,
    ) -> bool:
        """Record a DSN that came back for `delivery_id`: a bounce row and an attempt in
        its log (not counted); False, writing nothing, if this DSN was recorded before."""
        ...

    async def mark_bounced(self, delivery_id: str, *, error: str) -> bool:
        """A sent delivery bounced for good: dead, with `error`; False if it is not sent."""
        ...

    async def soft_bounces(self, delivery_id: str) -> int:
        """How many soft bounces came back for a delivery."""
        ...

    async def suppressed(self, addresses: Sequence[str]) -> set[str]:
        """Which of `addresses` (compared as `normal_address` writes them) are suppressed."""
        ...

    async def suppressions(self) -> list[Suppression]:
        """The suppression list, newest first."""
        ...

    async def unsuppress(self, address: str) -> bool:
        """Take `address` off the suppression list; False if it was not on it."""
        ...

    async def release_claims(self, worker: str, ids: Sequence[str] | None = None) -> int:
        """Hand back what `worker` still holds (a stop that could not finish it), or only
        `ids` of it: due now, its attempt count unchanged, for the next worker rather than
        after the lease."""
        ...

    async def recover_claims(self) -> int:
        """Return every claimed delivery to the queue (SQLite start-up: one process only)."""
        ...

    async def waiting_changes(
        self, meeting_id: str
    ) -> dict[tuple[str, Channel], list[tuple[Delivery, dict[str, Any]]]]:
        """Change deliveries of a meeting not yet attempted, with their payloads, by endpoint."""
        ...

    async def mark_merged(self, ids: Sequence[str]) -> None:
        """Mark deliveries folded into later ones (they will not be sent)."""
        ...

    async def notices(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The payloads of the notices `ids`."""
        ...

    async def contacts(self, ids: Sequence[str]) -> dict[str, Contact]:
        """How to reach each of the subscribers `ids` now: endpoints not disabled only."""
        ...

    async def endpoint_address(self, subscriber_id: str, channel: Channel) -> str | None:
        """The address (email or URL) of a subscriber's endpoint, disabled or not."""
        ...

    async def disable_endpoint(
        self, subscriber_id: str, channel: Channel, *, reason: str, now: datetime
    ) -> None:
        """Stop using a subscriber's endpoint (410 Gone, unsubscribed)."""
        ...

    async def deliveries(
        self, *, status: DeliveryStatus | DeliveryFilter | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Deliveries, newest first, optionally only those `status` selects."""
        ...

    async def delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery by id."""
        ...

    async def sent_message(self, delivery_id: str) -> bytes | None:
        """The email the latest attempt at a delivery put on the wire, exactly (None: no
        attempt sent one)."""
        ...

    async def attempts(self, delivery_id: str) -> list[dict[str, Any]]:
        """Every attempt at a delivery, oldest first."""
        ...

    async def retry_delivery(self, delivery_id: str, *, now: datetime) -> Delivery | None:
        """Make a delivery that is not sent or being sent due again now (replay)."""
        ...

    async def replay(self, selection: Replay, *, now: datetime, dry_run: bool = False) -> list[str]:
        """Make every delivery `selection` picks due now with fresh attempts; their ids."""
        ...

    async def queue_stats(self, *, now: datetime) -> QueueStats:
        """Deliveries per status, and the age in seconds of the oldest one not yet sent."""
        ...


class Fanouts(Protocol):
    """Changes to many readers, planned a chunk per transaction (`store.fanouts`)."""

    async def add_fanout(self, meeting: Meeting, *, after: str, now: datetime) -> None:
        """Leave the rest of `meeting`'s latest change (readers after `after`) to expanders."""
        ...

    async def claim_fanout(self, *, worker: str, now: datetime, lease: timedelta) -> Fanout | None:
        """The oldest fan-out no live expander holds, now held by `worker` for `lease`."""
        ...

    async def advance_fanout(
        self, fanout: Fanout, *, after: str | None, worker: str, lease: timedelta, now: datetime
    ) -> bool:
        """Readers up to `after` are planned (None: all, the row goes); False if not held."""
        ...

    async def release_fanout(self, fanout: Fanout, *, worker: str) -> None:
        """Give a claimed fan-out back (on shutdown)."""
        ...

    async def fanouts_pending(self) -> int:
        """How many changes still have readers to plan."""
        ...


class Reminders(Protocol):
    """Planned reminders."""

    async def replace_reminders(
        self, meeting: Meeting, planned: Sequence[Reminder], *, on_schedule: bool
    ) -> None:
        """Make `meeting`'s pending reminders the `planned` ones."""
        ...

    async def add_reminders(self, planned: Sequence[Reminder]) -> None:
        """Plan reminders for meetings that had none (new meetings), in one statement."""
        ...

    async def touch_reminders(self) -> None:
        """Tell schedulers (in any process) that pending reminders changed."""
        ...

    async def reminders_version(self) -> str:
        """Changes whenever pending reminders change; cheap to poll, reads only."""
        ...

    async def pending_reminders(
        self, *, before: datetime | None = None
    ) -> list[tuple[int, datetime]]:
        """(id, due instant) of pending reminders (due before `before`), soonest first."""
        ...

    async def reminder(
        self, reminder_id: int, *, for_update: bool = False
    ) -> StoredReminder | None:
        """One reminder, locked for the transaction with `for_update`."""
        ...

    async def reminders_by_id(
        self, ids: Sequence[int], *, for_update: bool = False
    ) -> dict[int, StoredReminder]:
        """Reminders by id, locked for the transaction with `for_update`."""
        ...

    async def meeting_reminders(self, meeting_id: str) -> list[StoredReminder]:
        """Every reminder of a meeting, in due order."""
        ...

    async def finish_reminders(
        self, outcomes: Sequence[tuple[int, ReminderState, bool]], *, at: datetime
    ) -> None:
        """Record (id, state, late) for many pending reminders in one statement."""
        ...


class Sources(Protocol):
    """Watched sources and what their events last said."""

    async def source_state(self, url: str) -> SourceState:
        """A watched source's health and last read (empty for one never read)."""
        ...

    async def save_source_state(self, url: str, kind: str, **values: Any) -> None:
        """Record a poll's outcome (or progress) for a watched source."""
        ...

    async def source_items(self, url: str) -> dict[str, dict[str, Any]]:
        """What each event of source `url` looked like when last read, by event key."""
        ...

    async def save_source_items(self, url: str, said: dict[str, dict[str, Any]]) -> None:
        """Remember what these events of source `url` said (insert or replace)."""
        ...

    async def forget_source_items(self, url: str, keys: Sequence[str]) -> None:
        """Forget events source `url` no longer has."""
        ...

    async def source_states(self) -> list[SourceState]:
        """Every watched source's health and last read, by URL."""
        ...


class Leases(Protocol):
    """Leases held by one replica at a time."""

    async def acquire_lease(
        self, name: str, holder: str, *, now: datetime, ttl: timedelta, force: bool = False
    ) -> Lease | None:
        """Take or renew the lease `name` for `holder` until `now + ttl`; None if it is held."""
        ...

    async def release_lease(self, lease: Lease, *, now: datetime) -> bool:
        """Let the lease go at once (a graceful stop), if `lease` still holds it."""
        ...

    async def check_fence(self, lease: Lease | None) -> None:
        """Raise `NotLeader` unless `lease` is still the current term of its lease."""
        ...

    async def lease(self, name: str) -> Lease | None:
        """The lease `name` as stored, if it was ever taken."""
        ...


class Meta(Protocol):
    """Installation-wide values and counts."""

    async def counts(self) -> Counts:
        """How many meetings, subscribers and pending reminders there are (not retired)."""
        ...

    async def set_meta(self, key: str, value: str) -> None:
        """Set the installation-wide value `key`."""
        ...

    async def meta_value(self, key: str, *, default: str) -> str:
        """The installation-wide value `key`, set to `default` the first time it is read."""
        ...

    async def serialize(self, name: str) -> None:
        """Wait until no other transaction holds `name`, then hold it until this one ends."""
        ...


class TransactionPort(
    Meetings, Subscribers, Outbox, Fanouts, Reminders, Sources, Leases, Meta, Protocol
):
    """Every query, inside one transaction (no settings: see `StorePort.planning`)."""


class StorePort(Protocol):
    """A store: transactions to read and to write, and what the service plans with."""

    @property
    def planning(self) -> Planning:
        """The audiences, fan-out chunk and installation id (set inside `write`)."""
        ...

    def read(self) -> AbstractAsyncContextManager[TransactionPort]:
        """"""
        ...

    def write(self) -> AbstractAsyncContextManager[TransactionPort]:
        """"""
        ...
