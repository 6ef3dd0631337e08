"""What the contract suite adds to the shared fixtures: rows the outbox, reminders and
fan-outs refer to (a meeting and its readers), and deliveries to queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import pytest

from notifier.domain.models import EventKind, Meeting, Subscriber
from notifier.domain.outbox import Channel, Delivery
from notifier.store import Store

#: Seeds meetings and subscribers by id (`seed(meetings=..., subscribers=...)`).
Seed = Callable[..., Awaitable[None]]


@pytest.fixture
def seed(
    store: Store,
    now: datetime,
    meeting_factory: Callable[..., Meeting],
    subscriber_factory: Callable[..., Subscriber],
) -> Seed:
    """Store meetings and email subscribers with the given ids (what deliveries and
    reminders must refer to), in one transaction."""

    async def run(
        *, meetings: Sequence[str] = ("m",), subscribers: Sequence[str] = ("s1",)
    ) -> None:
        async with store.write() as tx:
            await tx.insert_meetings([meeting_factory(id=m) for m in meetings], now=now)
            await tx.add_subscribers([subscriber_factory(id=s) for s in subscribers], now=now)

    return run


@pytest.fixture
def delivery_factory(now: datetime) -> Callable[..., Delivery]:
    """Build a `Delivery` of meeting ``m`` to ``s1`` by email, due `now`, with a notice of
    its own; keyword arguments override the defaults."""
    counter = iter(range(1, 1_000_000))

    def make(**overrides: Any) -> Delivery:
        number = next(counter)
        values: dict[str, Any] = {
            "id": f"msg_{number:04d}",
            "meeting_id": "m",
            "subscriber_id": "s1",
            "channel": Channel.EMAIL,
            "kind": EventKind.POSTPONED,
            "sequence": 1,
            "notice_id": f"ntc_{number:04d}",
            "payload": {"type": "meeting.postponed", "number": number},
            "next_attempt_at": now,
        }
        values.update(overrides)
        return Delivery(**values)

    return make
