"""Subscribers and their endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Row,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from notifier.domain.errors import Conflict
from notifier.domain.models import (
    Source,
    Subscriber,
    WebhookEndpoint,
)
from notifier.store.records import _PENDING, _WITHDRAWN, SubscriberRecord, _quiet
from notifier.store.reminders import ReminderQueries
from notifier.store.tables import (
    confirmations,
    reminders,
    subscriber_endpoints,
    subscribers,
)


class SubscriberQueries(ReminderQueries):
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
        """Subscribers by id, with their endpoints; with `meeting_id`, only those who may
        follow that meeting (every meeting, or a list naming it: tags are left to match).
        `after` and `limit` page through them in id order (a fan-out's chunks); `source`
        keeps those that came one way (the config file's, when it is reconciled)."""
        query = select(subscribers).order_by(subscribers.c.id)
        if source is not None:
            query = query.where(subscribers.c.source == source.value)
        if after is not None:
            query = query.where(subscribers.c.id > after)
        if limit is not None:
            query = query.limit(limit)
        if not include_retired:
            query = query.where(subscribers.c.retired_at.is_(None))
        if ids is not None:
            query = query.where(self.one_of(subscribers.c.id, ids, name="wanted"))
        if meeting_id is not None:
            query = query.where(
                or_(
                    subscribers.c.meeting_filter.is_(None),
                    subscribers.c.meeting_filter.contains(f",{meeting_id},", autoescape=True),
                )
            )
        rows = (await self.connection.execute(query)).all()
        if not rows:
            return []
        endpoint_rows = (
            await self.connection.execute(
                select(subscriber_endpoints).where(
                    self.one_of(subscriber_endpoints.c.subscriber_id, [r.id for r in rows])
                )
            )
        ).all()
        endpoints: dict[str, dict[str, Row[Any]]] = {}
        for endpoint in endpoint_rows:
            endpoints.setdefault(endpoint.subscriber_id, {})[endpoint.channel] = endpoint
        records = []
        fields = rows[0]._fields
        # Each row read once as a dict: a Row's fields by name cost ~1 us each, and a fan-out
        # reads thousands of rows.
        for row in rows:
            r = dict(zip(fields, row, strict=True))
            own = endpoints.get(r["id"], {})
            email = own.get("email")
            hook = own.get("webhook")
            chat = own.get("notify")
            subscriber = Subscriber(
                id=r["id"],
                name=r["name"],
                email=email.address if email is not None and email.disabled_at is None else None,
                webhook=WebhookEndpoint(url=hook.address, secrets=tuple(hook.secrets))
                if hook is not None and hook.disabled_at is None
                else None,
                timezone=r["timezone"],
                locale=r["locale"],
                meetings=tuple(r["meetings"]),
                tags=tuple(r["tags"]),
                events=tuple(r["events"]),
                reminders=tuple(timedelta(seconds=s) for s in r["reminders"]),
                quiet_hours=_quiet(r["quiet_hours"]),
                active=bool(r["active"]) and r["retired_at"] is None,
                source=_SOURCES[r["source"]],
                audience=r["audience"],
                confirmed=r["source"] != Source.PUBLIC.value or r["confirmed_at"] is not None,
                notify=tuple(chat.secrets) if chat is not None and chat.disabled_at is None else (),
            )
            records.append(
                SubscriberRecord(
                    subscriber=subscriber,
                    created_at=r["created_at"],
                    updated_at=r["updated_at"],
                    retired_at=r["retired_at"],
                    confirmed_at=r["confirmed_at"],
                    link_salt=r["link_salt"],
                )
            )
        return records

    async def subscriber_record(self, subscriber_id: str) -> SubscriberRecord | None:
        """The stored subscriber `subscriber_id`, retired or not."""
        found = await self.subscriber_records(include_retired=True, ids=[subscriber_id])
        return found[0] if found else None

    async def subscribers(
        self, *, meeting_id: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[Subscriber]:
        """Every subscriber that is not retired (who may follow `meeting_id`, if given), in
        id order; `after` and `limit` page through them."""
        records = await self.subscriber_records(meeting_id=meeting_id, after=after, limit=limit)
        return [record.subscriber for record in records]

    async def save_subscriber(
        self, subscriber: Subscriber, *, now: datetime, create: bool = False
    ) -> bool:
        """Insert or replace `subscriber` and its endpoints; True when anything changed.

        Endpoints the subscriber no longer has are removed; one it keeps keeps its
        `disabled_at` (an unsubscribe survives a config reload). With `create`, an id that
        exists already (or is inserted meanwhile by another transaction) is a `Conflict`.
        """
        values = _subscriber_row(subscriber)
        existing = (
            await self.connection.execute(
                select(subscribers).where(subscribers.c.id == subscriber.id)
            )
        ).first()
        changed = False
        if existing is not None and create:
            raise Conflict(f"subscriber {subscriber.id!r} already exists")
        if existing is None:
            try:
                await self.connection.execute(
                    insert(subscribers).values(
                        id=subscriber.id, **values, created_at=now, updated_at=now
                    )
                )
            except IntegrityError:  # a concurrent create won (PostgreSQL: unique violation)
                raise Conflict(f"subscriber {subscriber.id!r} already exists") from None
            changed = True
        elif any(getattr(existing, k) != v for k, v in values.items()) or existing.retired_at:
            await self.connection.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber.id)
                .values(**values, updated_at=now, retired_at=None)
            )
            changed = True

        wanted = _endpoint_rows(subscriber)
        rows = (
            await self.connection.execute(
                select(subscriber_endpoints).where(
                    subscriber_endpoints.c.subscriber_id == subscriber.id
                )
            )
        ).all()
        have = {row.channel: row for row in rows}
        for channel, old in have.items():
            if channel not in wanted:
                await self.connection.execute(
                    subscriber_endpoints.delete().where(subscriber_endpoints.c.id == old.id)
                )
                changed = True
        for channel, (address, secrets) in wanted.items():
            row = have.get(channel)
            if row is None:
                await self.connection.execute(
                    insert(subscriber_endpoints).values(
                        subscriber_id=subscriber.id,
                        channel=channel,
                        address=address,
                        secrets=secrets,
                    )
                )
                changed = True
            elif row.address != address or list(row.secrets) != secrets:
                # A new address is a new endpoint: an old refusal does not carry over.
                moved = row.address != address
                await self.connection.execute(
                    update(subscriber_endpoints)
                    .where(subscriber_endpoints.c.id == row.id)
                    .values(
                        address=address,
                        secrets=secrets,
                        **({"disabled_at": None, "disabled_reason": None} if moved else {}),
                    )
                )
                changed = True
        return changed

    async def add_subscribers(self, new: Sequence[Subscriber], *, now: datetime) -> int:
        """Insert many new subscribers at once (an import): two multi-row statements, not
        a read and a write per subscriber as `save_subscriber` does. An id already
        present fails the whole call (`Conflict`), leaving the transaction to roll back.
        Returns how many were added."""
        if not new:
            return 0
        try:
            await self.connection.execute(
                insert(subscribers),
                [
                    {"id": s.id, **_subscriber_row(s), "created_at": now, "updated_at": now}
                    for s in new
                ],
            )
        except IntegrityError:
            raise Conflict("some of these subscribers exist already") from None
        endpoints = [
            {"subscriber_id": s.id, "channel": channel, "address": address, "secrets": secrets}
            for s in new
            for channel, (address, secrets) in _endpoint_rows(s).items()
        ]
        if endpoints:
            await self.connection.execute(insert(subscriber_endpoints), endpoints)
        return len(new)

    # -- self-service ---------------------------------------------------------------------

    async def await_confirmation(
        self, subscriber_id: str, *, token_hash: str, until: datetime
    ) -> None:
        """Make `token_hash` the one confirmation link of a subscriber, working `until`."""
        await self.connection.execute(
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(confirm_hash=token_hash, confirm_until=until, confirmed_at=None)
        )

    async def awaiting_confirmation(self, token_hash: str, *, now: datetime) -> str | None:
        """The subscriber a confirmation link would confirm now, changing nothing (the page
        a GET of the link shows names it); None for an unknown, used or expired link."""
        row = (
            await self.connection.execute(
                select(subscribers.c.id).where(
                    subscribers.c.confirm_hash == token_hash,
                    subscribers.c.confirm_until >= now,
                    subscribers.c.retired_at.is_(None),
                )
            )
        ).first()
        return None if row is None else str(row.id)

    async def confirm_subscription(self, token_hash: str, *, now: datetime) -> str | None:
        """Follow a confirmation link: the subscriber it names becomes active and confirmed
        (the link stops working). None for an unknown, used or expired link."""
        found = await self.awaiting_confirmation(token_hash, now=now)
        if found is None:
            return None
        await self.connection.execute(
            update(subscribers)
            .where(subscribers.c.id == found)
            .values(
                confirmed_at=now,
                active=True,
                confirm_hash=None,
                confirm_until=None,
                updated_at=now,
            )
        )
        return found

    async def rotate_links(self, subscriber_id: str, *, salt: str) -> None:
        """Retire every manage and calendar link of a subscriber (new ones use `salt`)."""
        await self.connection.execute(
            update(subscribers).where(subscribers.c.id == subscriber_id).values(link_salt=salt)
        )

    async def confirmations_sent(self, address_hash: str, *, since: datetime) -> int:
        """How many confirmation emails went to the address with this digest since then."""
        found = await self.connection.execute(
            select(func.count())
            .select_from(confirmations)
            .where(confirmations.c.address_hash == address_hash, confirmations.c.sent_at >= since)
        )
        return int(found.scalar_one())

    async def record_confirmation(self, address_hash: str, *, now: datetime) -> None:
        """Count one confirmation email to the address with this digest."""
        await self.connection.execute(
            insert(confirmations).values(address_hash=address_hash, sent_at=now)
        )

    async def prune_unconfirmed(self, *, before: datetime) -> int:
        """Delete self-service subscriptions never confirmed whose link ran out before
        `before`, and confirmation counts a day older; returns subscribers deleted."""
        gone = list(
            (
                await self.connection.execute(
                    select(subscribers.c.id).where(
                        subscribers.c.source == Source.PUBLIC.value,
                        subscribers.c.confirmed_at.is_(None),
                        or_(
                            subscribers.c.confirm_until.is_(None),
                            subscribers.c.confirm_until < before,
                        ),
                    )
                )
            ).scalars()
        )
        if gone:
            await self.connection.execute(
                delete(subscriber_endpoints).where(subscriber_endpoints.c.subscriber_id.in_(gone))
            )
            await self.connection.execute(
                delete(reminders).where(reminders.c.subscriber_id.in_(gone))
            )
            await self.connection.execute(delete(subscribers).where(subscribers.c.id.in_(gone)))
        # Counts are kept a day: what the per-address daily limit looks at.
        await self.connection.execute(
            delete(confirmations).where(confirmations.c.sent_at < before - timedelta(days=1))
        )
        return len(gone)

    async def retire_subscriber(self, subscriber_id: str, *, now: datetime) -> None:
        """Mark a subscriber retired: it matches nothing, and its pending reminders go."""
        await self.connection.execute(
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(retired_at=now, updated_at=now)
        )
        withdrawn = await self.connection.execute(
            update(reminders)
            .where(
                reminders.c.subscriber_id == subscriber_id,
                reminders.c.state == _PENDING,
            )
            .values(state=_WITHDRAWN)
        )
        if withdrawn.rowcount:
            await self.touch_reminders()


_SOURCES = {source.value: source for source in Source}


def _subscriber_row(subscriber: Subscriber) -> dict[str, Any]:
    """The `subscribers` columns of `subscriber`, as `save_subscriber` and
    `add_subscribers` write them."""
    return {
        "name": subscriber.name,
        "timezone": subscriber.timezone,
        "locale": subscriber.locale,
        "meetings": list(subscriber.meetings),
        "meeting_filter": ",".join(("", *subscriber.meetings, "")) if subscriber.meetings else None,
        "tags": list(subscriber.tags),
        "events": list(subscriber.events),
        "reminders": [int(r.total_seconds()) for r in subscriber.reminders],
        "quiet_hours": str(subscriber.quiet_hours) if subscriber.quiet_hours else None,
        "active": subscriber.active,
        "source": subscriber.source.value,
        "audience": subscriber.audience,
    }


def _endpoint_rows(subscriber: Subscriber) -> dict[str, tuple[str, list[str]]]:
    """The endpoints `subscriber` wants: channel -> (address, secrets)."""
    wanted: dict[str, tuple[str, list[str]]] = {}
    if subscriber.email:
        wanted["email"] = (subscriber.email, [])
    if subscriber.webhook:
        wanted["webhook"] = (subscriber.webhook.url, list(subscriber.webhook.secrets))
    if subscriber.notify:
        wanted["notify"] = ("", list(subscriber.notify))
    return wanted
