"""The seed meeting and its readers, a change, and the outbox run until idle: what the
delivery suites share."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from notifier import service
from notifier.delivery import OutboxWorker
from notifier.domain.models import (
    Meeting,
    MeetingStatus,
    Source,
    StatusChange,
    Subscriber,
    WebhookEndpoint,
)
from notifier.domain.outbox import Delivery
from notifier.store import Store
from tests.integration.conftest import ROTATED, SECRET, Clock
from tests.integration.peers import Receiver

S = MeetingStatus


MOSCOW = ZoneInfo("Europe/Moscow")


def talks(now: datetime, **overrides: object) -> Meeting:
    values: dict[str, object] = {
        "id": "talks",
        "title": "Talks between the presidents",
        "timezone": "Europe/Moscow",
        "starts_at": datetime(2026, 3, 2, 19, 0, tzinfo=MOSCOW),
        "status": S.POSTPONED,
        "reason": "medical reasons",
        "tags": ("bilateral",),
        "location": "Moscow",
        "sequence": 2,
    }
    values.update(overrides)
    return Meeting(**values)  # type: ignore[arg-type]


async def seed(store: Store, now: datetime, *subscribers: Subscriber, **meeting: object) -> None:
    async with store.write() as tx:
        await tx.insert_meeting(talks(now, **meeting), now=now)
        for subscriber in subscribers:
            await tx.save_subscriber(subscriber, now=now)


async def change(
    store: Store, clock: Clock, status: MeetingStatus, **kw: object
) -> service.ChangeResult:
    return await service.apply_status_change(
        store,
        StatusChange(meeting_id="talks", status=status, **kw),
        now=clock(),  # type: ignore[arg-type]
    )


async def run_until_idle(worker: OutboxWorker) -> int:
    total = 0
    while handled := await worker.run_once():
        total += handled
    return total


async def outbox(store: Store) -> dict[tuple[str, str], Delivery]:
    async with store.read() as tx:
        found = await tx.deliveries(limit=10_000)
    return {(d.subscriber_id, d.channel.value): d for d in found}


def hook(id: str, receiver: Receiver, path: str, **kw: object) -> Subscriber:
    return Subscriber(
        id=id,
        webhook=WebhookEndpoint(url=receiver.url(path), secrets=(ROTATED, SECRET)),
        source=Source.API,
        **kw,  # type: ignore[arg-type]
    )


def mail(id: str, address: str, **kw: object) -> Subscriber:
    return Subscriber(id=id, email=address, source=Source.API, **kw)  # type: ignore[arg-type]
