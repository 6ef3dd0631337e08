"""What every face shows: a meeting with its history, a subscriber, a delivery with its
attempts, the sources report, the installation id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from notifier.configfile import SourceConfig
from notifier.domain.errors import (
    NotFound,
    UnknownDelivery,
    UnknownMeeting,
    UnknownSubscriber,
)
from notifier.domain.models import (
    HistoryEntry,
    Meeting,
    Subscriber,
)
from notifier.domain.outbox import Delivery, DeliveryFilter
from notifier.domain.reminders import ReminderState
from notifier.store.port import StorePort
from notifier.store.queries import Store
from notifier.store.records import (
    MeetingRecord,
    QueueStats,
    SourceState,
    StoredReminder,
    SubscriberRecord,
    Suppression,
)
from notifier.views import SourceProblem, SourceReport


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


async def on_its_day(store: StorePort, meeting_id: str, clock: time) -> datetime:
    """The wall-clock time `clock` on the day a meeting now starts, in the meeting's own
    zone: what "rescheduled to 21:00" means (``--starts-at 21:00``)."""
    meeting = await current_meeting(store, meeting_id)
    zone = ZoneInfo(meeting.timezone)
    day = meeting.starts_at.astimezone(zone).date()
    return datetime.combine(day, clock, tzinfo=zone)


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
            raise UnknownDelivery(delivery_id)
        return DeliveryDetail(delivery=found, attempts=await tx.attempts(delivery_id))


async def sent_message(store: StorePort, delivery_id: str) -> bytes:
    """The email a delivery's latest attempt put on the wire, byte for byte (signed, as
    the mail server received it); `UnknownDelivery`, or `NotFound` when none was sent."""
    async with store.read() as tx:
        found = await tx.delivery(delivery_id)
        if found is None:
            raise UnknownDelivery(delivery_id)
        message = await tx.sent_message(delivery_id)
    if message is None:
        why = (
            "it has not been tried yet"
            if found.channel.value == "email"
            else f"it is a {found.channel.value} delivery; only emails are kept"
        )
        raise NotFound(f"delivery {delivery_id} has no message on record: {why}")
    return message


# -- config file reconciliation ---------------------------------------------------------------


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


# -- Listings: what the CLI and the API list, read the same way -----------------------------


async def list_meetings(store: StorePort, *, include_retired: bool = False) -> list[MeetingRecord]:
    """Every meeting, soonest first (retired ones too with `include_retired`)."""
    async with store.read() as tx:
        return await tx.meeting_records(include_retired=include_retired)


async def list_subscribers(
    store: StorePort, *, include_retired: bool = False
) -> list[SubscriberRecord]:
    """Every subscriber with its endpoints, in id order (retired ones too on request)."""
    async with store.read() as tx:
        return await tx.subscriber_records(include_retired=include_retired)


async def list_deliveries(
    store: StorePort, *, status: DeliveryFilter | None = None, limit: int = 100
) -> list[Delivery]:
    """The outbox, newest first; `status` selects (``failed``: retrying or dead)."""
    async with store.read() as tx:
        return await tx.deliveries(status=status, limit=limit)


async def list_suppressions(store: StorePort) -> list[Suppression]:
    """Addresses that bounced for good: nothing is sent to them until cleared."""
    async with store.read() as tx:
        return await tx.suppressions()


async def queue_stats(store: StorePort, *, now: datetime) -> QueueStats:
    """Deliveries per status, and the age of the oldest one not sent yet."""
    async with store.read() as tx:
        return await tx.queue_stats(now=now)


@dataclass(frozen=True, kw_only=True)
class Leader:
    """Who holds the scheduler lease, and whether it is still live at the time asked."""

    holder: str
    term: int
    expires_at: datetime
    live: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "holder": self.holder,
            "term": self.term,
            "expires_at": self.expires_at.isoformat(),
            "live": self.live,
        }


async def leader(store: StorePort, *, lease_name: str, now: datetime) -> Leader | None:
    """The holder of the lease `lease_name` (the scheduler's), live while it has not run
    out at `now`; None when no replica ever held it."""
    async with store.read() as tx:
        lease = await tx.lease(lease_name)
    if lease is None:
        return None
    return Leader(
        holder=lease.holder,
        term=lease.term,
        expires_at=lease.expires_at,
        live=(lease.expires_at - now).total_seconds() > 0,
    )


async def schema_revision(store: Store) -> str | None:
    """The Alembic revision the store's database is at (None: not migrated)."""
    from notifier.store import migrate

    return await migrate.current_revision(store.engine)
