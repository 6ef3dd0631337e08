"""Deliveries sent again (one, or a replay in bulk) and old ones pruned."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from notifier.domain.errors import (
    Conflict,
    NotFound,
    UnknownDelivery,
)
from notifier.domain.outbox import (
    REPLAYABLE,
    Delivery,
    Replay,
)
from notifier.store.port import StorePort
from notifier.store.records import Pruned

# One logger for the package, named as the module was: log lines read as they did.
log = logging.getLogger("notifier.service")


async def retry_delivery(store: StorePort, delivery_id: str, *, now: datetime) -> Delivery:
    """Make one delivery due now with a fresh set of attempts (replay).

    Raises `NotFound` for an unknown id and `Conflict` for one that is sent, being sent
    or folded into another: those have nothing to retry.
    """
    async with store.write() as tx:
        found = await tx.delivery(delivery_id)
        if found is None:
            raise UnknownDelivery(delivery_id)
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


async def clear_suppression(store: StorePort, address: str) -> None:
    """Send to `address` again; `NotFound` when it is not suppressed."""
    if len(address) > 320:  # longer than any address: not one we suppressed
        raise NotFound("that address is not suppressed")
    async with store.write() as tx:
        cleared = await tx.unsuppress(address)
    if not cleared:
        raise NotFound(f"{address[:100]!r} is not suppressed")
