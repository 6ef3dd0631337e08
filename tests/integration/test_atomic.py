"""A status change and its outbox rows commit together (checklist 14): a fault injected
between them, before the rows are written or after they are written but before the
commit, leaves neither the change nor any row; the same event id then applies once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from notifier import service
from notifier.domain.models import Meeting, MeetingStatus, StatusChange, Subscriber
from notifier.store import Store
from notifier.store.queries import Transaction


class Injected(RuntimeError):
    """The fault the test injects."""


async def state(store: Store) -> tuple[Any, ...]:
    async with store.read() as tx:
        record = await tx.meeting_record("talks")
        assert record is not None
        history = await tx.history("talks", zone="UTC")
        deliveries = await tx.deliveries(limit=1000)
        notices = await tx.notices(sorted({d.notice_id for d in deliveries}))
        seen = await tx.processed_event("evt-1")
    return (record.meeting.status, record.meeting.sequence, len(history), deliveries, notices, seen)


@pytest.mark.parametrize("when", ["before the outbox rows", "after the outbox rows"])
async def test_a_fault_between_a_change_and_its_outbox_rows_leaves_neither(
    store: Store,
    when: str,
    meeting_factory: Callable[..., Meeting],
    subscriber_factory: Callable[..., Subscriber],
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with store.write() as tx:
        await tx.insert_meeting(
            meeting_factory(id="talks", status=MeetingStatus.POSTPONED), now=now
        )
        for n in range(3):
            await tx.save_subscriber(
                subscriber_factory(id=f"r{n}", webhook=None, email=f"r{n}@example.org"), now=now
            )
    before = await state(store)
    real = Transaction.enqueue

    async def faulty(self: Transaction, *args: Any, **kwargs: Any) -> int:
        if when == "after the outbox rows":
            written = await real(self, *args, **kwargs)
            assert written == 3  # the rows are there, inside the transaction
        raise Injected(when)

    monkeypatch.setattr(Transaction, "enqueue", faulty)
    change = StatusChange(
        meeting_id="talks", status=MeetingStatus.CLEARED, reason="clearance", event_id="evt-1"
    )
    with pytest.raises(Injected):
        await service.apply_status_change(store, change, now=now)
    assert await state(store) == before
    assert before[3] == []
    assert before[5] is None

    monkeypatch.setattr(Transaction, "enqueue", real)
    result = await service.apply_status_change(store, change, now=now)
    assert result.deliveries == 3
    status, sequence, history, deliveries, notices, seen = await state(store)
    assert (status, sequence, history) == (MeetingStatus.CLEARED, before[1] + 1, before[2] + 1)
    assert len(deliveries) == 3
    assert len(notices) == 1
    assert seen is not None
    again = await service.apply_status_change(store, change, now=now)
    assert again.duplicate
    assert len((await state(store))[3]) == 3
