"""Subscribers saved and retired, and their reminders planned again."""

from __future__ import annotations

from datetime import datetime

from notifier.domain.errors import (
    UnknownSubscriber,
)
from notifier.domain.models import (
    Source,
    Subscriber,
)
from notifier.service.common import check_owner
from notifier.service.reminders import replan_all
from notifier.store.port import StorePort


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
