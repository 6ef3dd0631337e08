"""What every use case shares: who may change a record, how often a write is retried."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

from notifier.domain.errors import Conflict, UnknownMeeting, UnknownSubscriber
from notifier.domain.models import (
    Source,
)
from notifier.domain.planning import Planning
from notifier.store.engine import is_outage, outage_reason, redact
from notifier.store.port import StorePort, TransactionPort
from notifier.store.records import MeetingRecord, SubscriberRecord

__all__ = [
    "check_owner",
    "is_outage",
    "live_meeting",
    "live_subscriber",
    "outage_reason",
    "redact",
    "write_with_retry",
]

T = TypeVar("T")
# One logger for the package, named as the module was: log lines read as they did.
log = logging.getLogger("notifier.service")

#: How often a change is retried when another writer got to the same meeting first.
_ATTEMPTS = 3


def check_owner(what: str, record_id: str, owner: Source, by: Source, verb: str) -> None:
    """A record the config file defines is changed only through the file (`Conflict`)."""
    if owner is Source.FILE and by is not Source.FILE:
        raise Conflict(f"{what} {record_id!r} is defined in the config file; {verb} it there")


async def live_meeting(
    tx: TransactionPort, meeting_id: str, *, for_update: bool = False
) -> MeetingRecord:
    """The stored meeting `meeting_id` that is not retired; `UnknownMeeting` otherwise (a
    retired meeting is as unknown to every use case as one never made)."""
    record = await tx.meeting_record(meeting_id, for_update=for_update)
    if record is None or record.retired_at is not None:
        raise UnknownMeeting(meeting_id)
    return record


async def live_subscriber(tx: TransactionPort, subscriber_id: str) -> SubscriberRecord:
    """The stored subscriber `subscriber_id` that is not retired; `UnknownSubscriber`
    otherwise."""
    record = await tx.subscriber_record(subscriber_id)
    if record is None or record.retired_at is not None:
        raise UnknownSubscriber(subscriber_id)
    return record


async def write_with_retry(
    store: StorePort,
    work: Callable[[TransactionPort, Planning], Awaitable[T]],
    *,
    meeting_id: str,
) -> T:
    """`work` in a write transaction of its own, given what the store plans with
    (`StorePort.planning`), tried again (up to `_ATTEMPTS` times in all) when another
    writer got to the same meeting first: a unique key taken under us (two copies of one
    event id racing) or a `Conflict`. The retry finds what the winner
    wrote (its event id: a duplicate), so a race never fails a change that would succeed
    alone."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            async with store.write() as tx:
                return await work(tx, store.planning)
        except (IntegrityError, Conflict):
            if attempt == _ATTEMPTS:
                raise
            log.info(
                "concurrent change to %s, retrying",
                meeting_id,
                extra={"action": "change_retry", "meeting": meeting_id},
            )
    raise AssertionError("unreachable")
