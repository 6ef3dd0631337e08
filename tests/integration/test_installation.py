"""Delivery ids: stable within one installation (retries, restarts, replicas), different
across installations (two databases with the same config never send the same id)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from notifier import service
from notifier.delivery import OutboxWorker
from notifier.domain.models import MeetingStatus as S
from notifier.store import Store
from tests.helpers.outbox import change, hook, mail, run_until_idle, seed
from tests.integration.conftest import Clock
from tests.integration.peers import Receiver, SmtpServer

MakeWorker = Callable[..., Awaitable[OutboxWorker]]
EVENING = timedelta(days=6, hours=9)


async def announce(store: Store, clock: Clock, receiver: Receiver) -> set[str]:
    """The seed's meeting and two readers, then the same three changes; the ids queued."""
    await seed(store, clock(), hook("wire", receiver, "/wire"), mail("press", "press@example.org"))
    await change(store, clock, S.CLEARED, reason="clearance")
    await change(store, clock, S.RESCHEDULED, reason="evening", starts_at=clock() + EVENING)
    async with store.read() as tx:
        return {delivery.id for delivery in await tx.deliveries(limit=100)}


async def test_two_databases_with_the_same_config_send_different_ids_and_say_them_on_the_wire(
    store: Store,
    tmp_path: Path,
    clock: Clock,
    receiver: Receiver,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
) -> None:
    other = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'staging.db'}")
    try:
        assert store.installation
        assert other.installation
        assert store.installation != other.installation
        ours, theirs = (
            await announce(store, clock, receiver),
            await announce(other, clock, receiver),
        )
    finally:
        await other.close()
    assert len(ours) == len(theirs) == 4
    assert not ours & theirs
    # What receivers see is that id: the raw webhook-id header and the Message-ID's left part.
    await run_until_idle(await make_worker())
    hooks = {hit.headers["webhook-id"] for hit in receiver.verified("/wire")}
    raw = b"".join(content for _, content in smtp_server.box.raw)
    mailed = {i for i in ours if f"Message-ID: <{i}@".encode() in raw}
    assert hooks | mailed == ours
    assert len(hooks) == len(mailed) == 2


async def test_ids_stay_the_same_for_another_replica_or_a_restart_of_one_installation(
    store: Store, database_url: str
) -> None:
    replica = await Store.open(database_url)
    try:
        assert replica.installation == store.installation
        again = await service.installation(replica)
        assert again == store.installation
        renewed = await service.installation(replica, renew=True)
    finally:
        await replica.close()
    assert renewed != store.installation
    # The stored id is the one every later store of this database plans with.
    reopened = await Store.open(database_url)
    try:
        assert reopened.installation == renewed
    finally:
        await reopened.close()
