"""The outbox: queueing, claiming, recording attempts, replay, failing endpoints, the
suppression list, pruning."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from notifier.domain.models import (
    EventKind,
    WebhookEndpoint,
)
from notifier.domain.outbox import (
    REPLAYABLE,
    Attempt,
    Channel,
    Contact,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    FailureRun,
    Replay,
    RunChanges,
    endpoints_to_disable,
    run_changes,
    target_of,
    unpack_message,
)
from notifier.domain.recipients import normal_address
from notifier.store.base import QueriesBase
from notifier.store.records import (
    _REPLAYED,
    DELIVERY_COLUMNS,
    OUTBOX_CHANNEL,
    Pruned,
    QueueStats,
    Suppression,
    _claimed,
    _delivery,
    case_pending,
)
from notifier.store.tables import (
    UTCDateTime,
    bounces,
    deliveries,
    delivery_attempts,
    notices,
    processed_events,
    subscriber_endpoints,
    subscribers,
    suppressions,
)

#: The rows `record_attempts` passes as JSON: an attempt, and a delivery's next state.
_ATTEMPT_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("delivery_id", String(200)),
    ("at", UTCDateTime()),
    ("duration_ms", Integer()),
    ("outcome", String(10)),
    ("code", Integer()),
    ("error", Text()),
    ("message", Text()),
)
_MOVE_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("id", String(200)),
    ("status", String(10)),
    ("counted", Integer()),
    ("error", Text()),
    ("sent_at", UTCDateTime()),
    ("next", UTCDateTime()),
)


class OutboxQueries(QueriesBase):
    """Queueing, claiming and recording deliveries; failing endpoints; suppressions."""

    async def enqueue(self, items: Sequence[Delivery], *, now: datetime) -> int:
        """Add deliveries to the outbox; one whose id is already there is left alone.

        Returns how many were new. Run it in the transaction that made the change, so a
        change and its notifications are committed together or not at all.
        """
        if not items:
            return 0
        dialect = self.dialect
        said: dict[str, dict[str, Any]] = {}
        for d in items:
            # A delivery read back from the store refers to a notice already there.
            if d.payload is not None:
                said.setdefault(d.notice_id, d.payload)
        if said:
            await self.connection.execute(
                dialect.insert(notices).on_conflict_do_nothing(index_elements=["id"]),
                [{"id": key, "payload": body, "created_at": now} for key, body in said.items()],
            )
        rows = [
            {
                "id": d.id,
                "meeting_id": d.meeting_id,
                "subscriber_id": d.subscriber_id,
                "channel": d.channel.value,
                "kind": d.kind.value,
                "sequence": d.sequence,
                "notice_id": d.notice_id,
                "status": d.status.value,
                "attempts": d.attempts,
                "next_attempt_at": d.next_attempt_at,
                "created_at": now,
                "target": d.target,
            }
            for d in items
        ]
        statement = (
            dialect.insert(deliveries)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(deliveries.c.id)
        )
        # Batched into multi-row INSERTs by SQLAlchemy; RETURNING counts what was new.
        result = await self.connection.execute(statement, rows)
        added = len(result.all())
        if added:
            await self.notify_outbox()
        return added

    async def notify_outbox(self) -> None:
        """Tell every replica listening (`Store.listen_outbox`) that deliveries are due.

        On PostgreSQL a NOTIFY, delivered when this transaction commits and never if it
        rolls back; SQLite has one process, whose own worker is woken directly.
        """
        if self.postgres:
            await self.connection.execute(select(func.pg_notify(OUTBOX_CHANNEL, "")))

    async def claim(
        self, *, worker: str, now: datetime, lease: timedelta, limit: int
    ) -> list[Delivery]:
        """Claim up to `limit` due deliveries for `worker` until ``now + lease``.

        Due: pending or retrying with `next_attempt_at` reached, or sending under a lease
        that ran out (its worker died). On PostgreSQL rows other workers are claiming are
        skipped (``FOR UPDATE SKIP LOCKED``); SQLite holds the write lock throughout.
        """
        due = or_(
            and_(
                deliveries.c.status.in_(
                    [DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value]
                ),
                deliveries.c.next_attempt_at <= now,
            ),
            and_(
                deliveries.c.status == DeliveryStatus.SENDING.value,
                deliveries.c.claimed_until < self._clock(now),
            ),
        )
        chosen = (
            select(deliveries.c.id)
            .where(due, ~self._held_back(now))
            .order_by(deliveries.c.next_attempt_at, deliveries.c.sequence, deliveries.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = (
            await self.connection.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(chosen.scalar_subquery()))
                .values(
                    status=DeliveryStatus.SENDING.value,
                    claimed_by=worker,
                    claimed_until=self._clock(now) + lease,
                )
                .returning(*(deliveries.c[name] for name in DELIVERY_COLUMNS))
            )
        ).all()
        return [_claimed(row) for row in rows]

    def _held_back(self, now: datetime) -> Any:
        """Whether a delivery must wait for another to the same reader and channel: an
        earlier message of the same meeting still to go (retrying, in flight, or due and
        not certain to be claimed with it), so a later one never overtakes it; or any
        delivery to that endpoint in flight under a live claim, so an endpoint that hangs
        holds one sender, not one per message."""
        other = deliveries.alias("other")
        this = deliveries.c
        # Written as literals, not parameters: SQLite uses the partial index
        # `ix_deliveries_lane` only when the query's terms match its WHERE as written
        # (with parameters it scanned every delivery for each candidate: 10,000 pending
        # rows made each claim seconds long).
        unfinished: list[ColumnElement[Any]] = [
            literal_column(f"'{status.value}'")
            for status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.RETRYING)
        ]
        earlier = or_(
            other.c.sequence < this.sequence,
            and_(other.c.sequence == this.sequence, other.c.created_at < this.created_at),
        )
        return (
            select(other.c.id)
            .where(
                other.c.subscriber_id == this.subscriber_id,
                other.c.channel == this.channel,
                other.c.status.in_(unfinished),
                other.c.id != this.id,
                func.coalesce(other.c.target, "") == func.coalesce(this.target, ""),
                or_(
                    and_(
                        other.c.status == DeliveryStatus.SENDING.value,
                        other.c.claimed_until >= self._clock(now),
                    ),
                    and_(
                        other.c.meeting_id == this.meeting_id,
                        earlier,
                        or_(
                            other.c.status != DeliveryStatus.PENDING.value,
                            # Due, and after this one in the claim's order: a limit could
                            # take this one without it. (Due and before it, it is claimed
                            # with it and goes first in their lane.)
                            and_(
                                other.c.next_attempt_at <= now,
                                other.c.next_attempt_at > this.next_attempt_at,
                            ),
                        ),
                    ),
                ),
            )
            .exists()
        )

    def _clock(self, now: datetime) -> Any:
        """The instant claims are judged by: PostgreSQL's own clock, so that replicas whose
        clocks differ agree on when a claim has run out; on SQLite (one process) `now`."""
        if self.postgres:
            return func.now()
        return now

    async def extend_claims(
        self, ids: Sequence[str], *, worker: str, lease: timedelta, now: datetime
    ) -> int:
        """Keep `worker`'s claims on `ids` (still sending) for another `lease`; how many."""
        if not ids:
            return 0
        result = await self.connection.execute(
            update(deliveries)
            .where(
                deliveries.c.id.in_(list(ids)),
                deliveries.c.claimed_by == worker,
                deliveries.c.status == DeliveryStatus.SENDING.value,
            )
            .values(claimed_until=self._clock(now) + lease)
        )
        return int(result.rowcount or 0)

    async def record_attempts(self, attempts: Sequence[Attempt], *, worker: str) -> int:
        """Record attempts and move their deliveries on; returns how many were still ours.

        A delivery whose lease another worker has taken meanwhile keeps that worker's
        state; its attempt is still recorded. Two statements whatever the batch's size:
        the attempts and the deliveries' new states travel as one JSON parameter each
        (`json_rows`), so a flush of hundreds costs what a flush of one does in Python.
        """
        if not attempts:
            return 0
        tried = self.json_rows("attempts", _ATTEMPT_COLUMNS)
        await self.connection.execute(
            insert(delivery_attempts).from_select(
                [key for key, _ in _ATTEMPT_COLUMNS],
                select(*(tried.c[key] for key, _ in _ATTEMPT_COLUMNS)),
            ),
            {
                "attempts": self.json_param(
                    [
                        {
                            "delivery_id": a.delivery_id,
                            "at": a.at,
                            "duration_ms": a.duration_ms,
                            "outcome": a.outcome.value,
                            "code": a.code,
                            "error": a.error,
                            "message": a.message,
                        }
                        for a in attempts
                    ]
                )
            },
        )
        moved = self.json_rows("moves", _MOVE_COLUMNS)
        result = await self.connection.execute(
            update(deliveries)
            .where(
                deliveries.c.id == moved.c.id,
                deliveries.c.claimed_by == bindparam("worker"),
                self.unindexed(deliveries.c.status) == DeliveryStatus.SENDING.value,
            )
            .values(
                status=moved.c.status,
                attempts=deliveries.c.attempts + moved.c.counted,
                claimed_by=None,
                claimed_until=None,
                last_error=moved.c.error,
                sent_at=func.coalesce(moved.c.sent_at, deliveries.c.sent_at),
                next_attempt_at=func.coalesce(moved.c.next, deliveries.c.next_attempt_at),
            )
            .returning(deliveries.c.id),
            {
                "worker": worker,
                "moves": self.json_param(
                    [
                        {
                            "id": a.delivery_id,
                            "status": a.status.value,
                            "counted": 1 if a.counted else 0,
                            "error": a.error,
                            "sent_at": a.at if a.status is DeliveryStatus.SENT else None,
                            "next": a.next_attempt_at,
                        }
                        for a in attempts
                    ]
                ),
            },
        )
        return len(result.all())

    async def release(self, ids: Sequence[str], *, worker: str) -> None:
        """Give claimed deliveries back untried (on shutdown), due at once."""
        if ids:
            await self.connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.id.in_(list(ids)),
                    deliveries.c.claimed_by == worker,
                    deliveries.c.status == DeliveryStatus.SENDING.value,
                )
                .values(
                    status=case_pending(deliveries.c.attempts),
                    claimed_by=None,
                    claimed_until=None,
                )
            )

    async def prune(self, *, before: datetime, limit: int = 500) -> Pruned:
        """Delete up to `limit` of each kind of record that has served its time.

        Sent and merged deliveries older than `before` (with their attempts), attempts
        older than `before`, processed event ids older than `before`, and notices older
        than `before` that no delivery refers to any more. History, meetings, subscribers,
        and deliveries still pending, retrying or dead are kept.
        """
        finished = [DeliveryStatus.SENT.value, DeliveryStatus.MERGED.value]
        old_deliveries = list(
            (
                await self.connection.execute(
                    select(deliveries.c.id)
                    .where(
                        deliveries.c.status.in_(finished),
                        func.coalesce(deliveries.c.sent_at, deliveries.c.created_at) < before,
                    )
                    .limit(limit)
                )
            ).scalars()
        )
        attempts_gone = 0
        if old_deliveries:
            gone = await self.connection.execute(
                delete(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(old_deliveries))
            )
            attempts_gone += max(gone.rowcount or 0, 0)
            await self.connection.execute(
                delete(bounces).where(bounces.c.delivery_id.in_(old_deliveries))
            )
            await self.connection.execute(
                delete(deliveries).where(deliveries.c.id.in_(old_deliveries))
            )
        attempts_gone += await self._delete_oldest(
            delivery_attempts.c.id, delivery_attempts.c.at < before, limit=limit
        )
        old_events = await self._delete_oldest(
            processed_events.c.event_id, processed_events.c.at < before, limit=limit
        )
        unused = ~exists(select(deliveries.c.id).where(deliveries.c.notice_id == notices.c.id))
        old_notices = await self._delete_oldest(
            notices.c.id, and_(notices.c.created_at < before, unused), limit=limit
        )
        return Pruned(
            deliveries=len(old_deliveries),
            attempts=attempts_gone,
            events=old_events,
            notices=old_notices,
        )

    async def endpoint_health(
        self,
        outcomes: Sequence[tuple[str, bool, datetime]],
        *,
        disable_after: timedelta | None,
    ) -> list[tuple[str, datetime]]:
        """Record webhook endpoints' runs of failures and disable those the domain's rule
        (`endpoints_to_disable`) picks; returns those (subscriber id, failing since).

        `outcomes` are (subscriber id, succeeded, when) for webhook attempts.
        """
        runs = await self.record_failure_runs(run_changes(outcomes))
        disabled = endpoints_to_disable(runs, disable_after)
        for run in disabled:
            await self.disable_endpoint(
                run.subscriber_id,
                Channel.WEBHOOK,
                reason=f"failed every attempt since {run.since.isoformat()}",
                now=run.latest,
            )
        return [(run.subscriber_id, run.since) for run in disabled]

    async def record_failure_runs(self, changes: RunChanges) -> list[FailureRun]:
        """Record what a batch of attempts did to webhook endpoints' runs of failures (those
        `changes.ended` end; for those `changes.failed` one begins at the latest failure if
        none is running), and read back the runs of the failed endpoints not disabled."""
        if changes.ended:
            await self.connection.execute(
                update(subscriber_endpoints)
                .where(
                    self.one_of(subscriber_endpoints.c.subscriber_id, list(changes.ended)),
                    subscriber_endpoints.c.channel == Channel.WEBHOOK.value,
                    subscriber_endpoints.c.failing_since.is_not(None),
                )
                .values(failing_since=None)
            )
        latest = changes.failed
        if not latest:
            return []
        await self.connection.execute(
            update(subscriber_endpoints)
            .where(
                subscriber_endpoints.c.subscriber_id == bindparam("b_sid"),
                subscriber_endpoints.c.channel == Channel.WEBHOOK.value,
                subscriber_endpoints.c.failing_since.is_(None),
            )
            .values(failing_since=bindparam("b_at", type_=UTCDateTime)),
            [{"b_sid": sid, "b_at": at} for sid, at in latest.items()],
        )
        rows = (
            await self.connection.execute(
                select(
                    subscriber_endpoints.c.subscriber_id, subscriber_endpoints.c.failing_since
                ).where(
                    subscriber_endpoints.c.subscriber_id.in_(sorted(latest)),
                    subscriber_endpoints.c.channel == Channel.WEBHOOK.value,
                    subscriber_endpoints.c.disabled_at.is_(None),
                    subscriber_endpoints.c.failing_since.is_not(None),
                )
            )
        ).all()
        return [
            FailureRun(
                subscriber_id=row.subscriber_id,
                since=row.failing_since,
                latest=latest[row.subscriber_id],
            )
            for row in rows
        ]

    async def _delete_oldest(self, key: Any, condition: ColumnElement[bool], *, limit: int) -> int:
        """Delete up to `limit` rows of `key`'s table that meet `condition`; how many."""
        keys = list(
            (await self.connection.execute(select(key).where(condition).limit(limit))).scalars()
        )
        if keys:
            await self.connection.execute(delete(key.table).where(key.in_(keys)))
        return len(keys)

    async def enable_endpoint(self, subscriber_id: str, channel: Channel) -> bool:
        """Use a disabled endpoint again (its run of failures forgotten); False if none was
        disabled."""
        result = await self.connection.execute(
            update(subscriber_endpoints)
            .where(
                subscriber_endpoints.c.subscriber_id == subscriber_id,
                subscriber_endpoints.c.channel == channel.value,
                subscriber_endpoints.c.disabled_at.is_not(None),
            )
            .values(disabled_at=None, disabled_reason=None, failing_since=None)
        )
        return bool(result.rowcount)

    async def suppress(self, address: str, *, reason: str, now: datetime) -> None:
        """Put `address` on the suppression list (a hard bounce); a repeat keeps the first."""
        dialect = self.dialect
        await self.connection.execute(
            dialect.insert(suppressions)
            .values(address=normal_address(address), reason=reason[:500], created_at=now)
            .on_conflict_do_nothing()
        )

    async def suppressed(self, addresses: Sequence[str]) -> set[str]:
        """Which of `addresses` (compared as `normal_address` writes them) are suppressed."""
        wanted = sorted({normal_address(a) for a in addresses})
        if not wanted:
            return set()
        return set(
            (
                await self.connection.execute(
                    select(suppressions.c.address).where(suppressions.c.address.in_(wanted))
                )
            ).scalars()
        )

    async def suppressions(self) -> list[Suppression]:
        """The suppression list, newest first."""
        rows = await self.connection.execute(
            select(suppressions).order_by(suppressions.c.created_at.desc())
        )
        return [Suppression(address=r.address, reason=r.reason, since=r.created_at) for r in rows]

    async def unsuppress(self, address: str) -> bool:
        """Take `address` off the suppression list; False if it was not on it."""
        result = await self.connection.execute(
            delete(suppressions).where(suppressions.c.address == normal_address(address))
        )
        return bool(result.rowcount)

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
        """Record that a DSN came back for `delivery_id` (which must exist): a bounce row,
        and an attempt in the delivery's log (outcome permanent or temporary, not counted
        against its attempts). False, and nothing written, when this DSN was recorded for
        this delivery and address before."""
        added = (
            await self.connection.execute(
                self.dialect.insert(bounces)
                .values(
                    delivery_id=delivery_id,
                    dsn_id=dsn_id,
                    address=normal_address(address)[:320],
                    at=at,
                    permanent=permanent,
                    status=status[:20],
                    reporting_mta=reporting_mta[:253],
                )
                .on_conflict_do_nothing()
                .returning(bounces.c.id)
            )
        ).first()
        if added is None:
            return False
        await self.connection.execute(
            insert(delivery_attempts).values(
                delivery_id=delivery_id,
                at=at,
                duration_ms=0,
                outcome="permanent" if permanent else "temporary",
                code=code,
                error=error,
            )
        )
        return True

    async def mark_bounced(self, delivery_id: str, *, error: str) -> bool:
        """A sent delivery bounced for good: dead, with `error` as its last error. False
        when it is not (or no longer) sent."""
        result = await self.connection.execute(
            update(deliveries)
            .where(
                deliveries.c.id == delivery_id,
                deliveries.c.status == DeliveryStatus.SENT.value,
            )
            .values(status=DeliveryStatus.DEAD.value, last_error=error)
        )
        return bool(result.rowcount)

    async def soft_bounces(self, delivery_id: str) -> int:
        """How many soft bounces (delays, temporary failures) came back for a delivery."""
        return int(
            (
                await self.connection.execute(
                    select(func.count())
                    .select_from(bounces)
                    .where(bounces.c.delivery_id == delivery_id, bounces.c.permanent.is_(False))
                )
            ).scalar_one()
        )

    async def release_claims(self, worker: str, ids: Sequence[str] | None = None) -> int:
        """Hand back what `worker` still holds (a stop that could not finish it), or only
        `ids` of it (not tried: an earlier message of theirs failed first): due now, its
        attempt count unchanged, for the next worker rather than after the lease."""
        if ids is not None and not ids:
            return 0
        chosen = [] if ids is None else [self.one_of(deliveries.c.id, ids)]
        result = await self.connection.execute(
            update(deliveries)
            .where(
                deliveries.c.status == DeliveryStatus.SENDING.value,
                deliveries.c.claimed_by == worker,
                *chosen,
            )
            .values(status=case_pending(deliveries.c.attempts), claimed_by=None, claimed_until=None)
        )
        released = int(result.rowcount or 0)
        if released:
            await self.notify_outbox()
        return released

    async def recover_claims(self) -> int:
        """Return every claimed delivery to the queue (SQLite start-up: one process only)."""
        result = await self.connection.execute(
            update(deliveries)
            .where(deliveries.c.status == DeliveryStatus.SENDING.value)
            .values(status=case_pending(deliveries.c.attempts), claimed_by=None, claimed_until=None)
        )
        return max(result.rowcount, 0)

    async def waiting_changes(
        self, meeting_id: str
    ) -> dict[tuple[str, Channel], list[tuple[Delivery, dict[str, Any]]]]:
        """Change deliveries of a meeting not yet attempted, with their payloads, by endpoint."""
        rows = (
            await self.connection.execute(
                select(deliveries, notices.c.payload.label("notice_payload"))
                .join(notices, notices.c.id == deliveries.c.notice_id)
                .where(
                    deliveries.c.meeting_id == meeting_id,
                    deliveries.c.status == DeliveryStatus.PENDING.value,
                    deliveries.c.attempts == 0,
                    deliveries.c.kind != EventKind.REMINDER.value,
                )
            )
        ).all()
        waiting: dict[tuple[str, Channel], list[tuple[Delivery, dict[str, Any]]]] = {}
        for row in rows:
            delivery = _delivery(row)
            waiting.setdefault((delivery.subscriber_id, delivery.channel), []).append(
                (delivery, row.notice_payload)
            )
        return waiting

    async def mark_merged(self, ids: Sequence[str]) -> None:
        """Mark deliveries folded into later ones (they will not be sent)."""
        if ids:
            await self.connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.id.in_(list(ids)),
                    deliveries.c.status == DeliveryStatus.PENDING.value,
                )
                .values(status=DeliveryStatus.MERGED.value)
            )

    async def notices(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The payloads of the notices `ids`."""
        rows = (
            await self.connection.execute(
                select(notices.c.id, notices.c.payload).where(notices.c.id.in_(list(ids)))
            )
        ).all()
        return {row.id: row.payload for row in rows}

    async def contacts(self, ids: Sequence[str]) -> dict[str, Contact]:
        """How to reach each of the subscribers `ids` now: endpoints not disabled only."""
        # One live endpoint per channel, each joined the same way.
        email, hook, chat = (
            subscriber_endpoints.alias(c.value)
            for c in (Channel.EMAIL, Channel.WEBHOOK, Channel.NOTIFY)
        )
        joined: Any = subscribers
        for alias, channel in (
            (email, Channel.EMAIL),
            (hook, Channel.WEBHOOK),
            (chat, Channel.NOTIFY),
        ):
            joined = joined.outerjoin(
                alias,
                and_(
                    alias.c.subscriber_id == subscribers.c.id,
                    alias.c.channel == channel.value,
                    alias.c.disabled_at.is_(None),
                ),
            )
        query = (
            select(
                subscribers.c.id,
                subscribers.c.name,
                subscribers.c.locale,
                subscribers.c.timezone,
                subscribers.c.active,
                subscribers.c.retired_at,
                subscribers.c.link_salt,
                subscribers.c.source,
                email.c.address.label("email"),
                hook.c.address.label("url"),
                hook.c.secrets.label("secrets"),
                chat.c.secrets.label("notify"),
            )
            .select_from(joined)
            .where(self.one_of(subscribers.c.id, ids))
        )
        found: dict[str, Contact] = {}
        # Rows unpacked by position (reading a Row's fields by name costs ~1 us each).
        for (
            id_,
            name,
            locale,
            timezone,
            active,
            retired_at,
            link_salt,
            source,
            email_address,
            url,
            secrets,
            notify,
        ) in (await self.connection.execute(query)).all():
            found[id_] = Contact(
                id=id_,
                name=name,
                locale=locale,
                timezone=timezone,
                active=bool(active) and retired_at is None,
                email=email_address,
                webhook=WebhookEndpoint(url=url, secrets=tuple(secrets)) if url else None,
                link_salt=link_salt,
                notify={target_of(u): u for u in notify} if notify else {},
                self_service=source == "public",
            )
        return found

    async def endpoint_address(self, subscriber_id: str, channel: Channel) -> str | None:
        """The address (email or URL) of a subscriber's endpoint, disabled or not."""
        return (
            await self.connection.execute(
                select(subscriber_endpoints.c.address).where(
                    subscriber_endpoints.c.subscriber_id == subscriber_id,
                    subscriber_endpoints.c.channel == channel.value,
                )
            )
        ).scalar_one_or_none()

    async def disable_endpoint(
        self, subscriber_id: str, channel: Channel, *, reason: str, now: datetime
    ) -> None:
        """Stop using a subscriber's endpoint (410 Gone, unsubscribed)."""
        await self.connection.execute(
            update(subscriber_endpoints)
            .where(
                subscriber_endpoints.c.subscriber_id == subscriber_id,
                subscriber_endpoints.c.channel == channel.value,
                subscriber_endpoints.c.disabled_at.is_(None),
            )
            .values(disabled_at=now, disabled_reason=reason)
        )

    async def deliveries(
        self, *, status: DeliveryStatus | DeliveryFilter | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Deliveries, newest first, optionally only those `status` selects."""
        query = (
            select(deliveries)
            .order_by(deliveries.c.created_at.desc(), deliveries.c.id)
            .limit(limit)
        )
        if status is not None:
            wanted = status.statuses() if isinstance(status, DeliveryFilter) else [status]
            query = query.where(deliveries.c.status.in_([s.value for s in wanted]))
        return [_delivery(row) for row in (await self.connection.execute(query)).all()]

    async def delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery by id."""
        row = (
            await self.connection.execute(select(deliveries).where(deliveries.c.id == delivery_id))
        ).first()
        return _delivery(row) if row else None

    async def sent_message(self, delivery_id: str) -> bytes | None:
        """The email the latest attempt at a delivery put on the wire, exactly; None when
        no attempt sent one (another channel, or never tried)."""
        packed = (
            await self.connection.execute(
                select(delivery_attempts.c.message)
                .where(
                    delivery_attempts.c.delivery_id == delivery_id,
                    delivery_attempts.c.message.is_not(None),
                )
                .order_by(delivery_attempts.c.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        return unpack_message(packed)

    async def attempts(self, delivery_id: str) -> list[dict[str, Any]]:
        """Every attempt at a delivery, oldest first."""
        rows = (
            await self.connection.execute(
                select(delivery_attempts)
                .where(delivery_attempts.c.delivery_id == delivery_id)
                .order_by(delivery_attempts.c.id)
            )
        ).all()
        return [
            {
                "at": row.at.isoformat(),
                "duration_ms": row.duration_ms,
                "outcome": row.outcome,
                "code": row.code,
                "error": row.error,
            }
            for row in rows
        ]

    async def retry_delivery(self, delivery_id: str, *, now: datetime) -> Delivery | None:
        """Make a delivery that is not sent or being sent due again now (replay)."""
        await self.connection.execute(
            update(deliveries)
            .where(
                deliveries.c.id == delivery_id,
                deliveries.c.status.in_([s.value for s in REPLAYABLE]),
            )
            .values(**_REPLAYED, next_attempt_at=now)
        )
        await self.notify_outbox()
        return await self.delivery(delivery_id)

    async def replay(self, selection: Replay, *, now: datetime, dry_run: bool = False) -> list[str]:
        """Make every delivery `selection` picks due now with fresh attempts; their ids.

        With `dry_run`, only says which it would pick.
        """
        where: list[ColumnElement[bool]] = [
            deliveries.c.status.in_([s.value for s in selection.statuses()])
        ]
        if selection.since is not None:
            where.append(deliveries.c.created_at >= selection.since)
        if selection.subscriber_id is not None:
            where.append(deliveries.c.subscriber_id == selection.subscriber_id)
        ids = list(
            (
                await self.connection.execute(
                    select(deliveries.c.id).where(*where).order_by(deliveries.c.created_at)
                )
            ).scalars()
        )
        if ids and not dry_run:
            for start in range(0, len(ids), 500):
                await self.connection.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_(ids[start : start + 500]), *where)
                    .values(**_REPLAYED, next_attempt_at=now)
                )
            await self.notify_outbox()
        return ids

    async def queue_stats(self, *, now: datetime) -> QueueStats:
        """Deliveries per status, and the age in seconds of the oldest one not yet sent."""
        rows = (
            await self.connection.execute(
                select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
            )
        ).all()
        per_status = {s: 0 for s in DeliveryStatus}
        per_status.update({DeliveryStatus(row[0]): int(row[1]) for row in rows})
        oldest = (
            await self.connection.execute(
                select(func.min(deliveries.c.created_at)).where(
                    deliveries.c.status.in_(
                        [
                            DeliveryStatus.PENDING.value,
                            DeliveryStatus.RETRYING.value,
                            DeliveryStatus.SENDING.value,
                        ]
                    )
                )
            )
        ).scalar_one()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return QueueStats(
            per_status=per_status,
            oldest_pending_seconds=(now - oldest).total_seconds() if oldest else 0.0,
        )
