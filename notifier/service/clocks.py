"""Clock rules: what a change of the tz database does to meetings still to come.

The daemon calls `apply_clock_rules` at start-up and daily. Every future meeting is read
with the rules this process runs on (`notifier.clockrules.tzdata_version`); where a
wall-anchored meeting's instant moved, or an instant-anchored one's local time did, the
change is applied like any other (`notifier.domain.machine.clock_rules_changed`): one
``meeting.updated`` entry from ``tzdata``, its deliveries to every reader, reminders
planned afresh at the new instants. `clock_drift` says the same without writing (for
`notifier check` and `/healthz`), and `rules_preview` what another zoneinfo folder (a
newer tzdata, before it is installed) would move.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from notifier.clockrules import folder_version, tzdata_version
from notifier.domain.clock import Anchor, Wall, same_instant
from notifier.domain.machine import Transition, clock_rules_changed
from notifier.domain.planning import Planning
from notifier.service.changes import _write
from notifier.service.common import write_with_retry
from notifier.store.port import StorePort, TransactionPort
from notifier.store.records import MeetingRecord

log = logging.getLogger("notifier.service")


@dataclass(frozen=True, kw_only=True)
class ClockMove:
    """One meeting that a change of clock rules moves (or moved)."""

    meeting_id: str
    zone: str
    anchor: Anchor
    #: The local start on the zone's clocks, before and after.
    local_before: datetime
    local_after: datetime
    #: The instant, before and after.
    before: datetime
    after: datetime
    tzdata_before: str
    tzdata_after: str

    def describe(self) -> str:
        """One line for an operator."""
        versions = f"tzdata {self.tzdata_before or '?'} -> {self.tzdata_after or '?'}"
        if self.anchor is Anchor.WALL:
            return (
                f"{self.meeting_id} (wall): {self.local_after:%Y-%m-%d %H:%M} {self.zone} "
                f"kept; UTC {self.before.astimezone(UTC):%Y-%m-%d %H:%M} -> "
                f"{self.after.astimezone(UTC):%Y-%m-%d %H:%M} ({versions})"
            )
        return (
            f"{self.meeting_id} (instant): {self.after.astimezone(UTC):%Y-%m-%d %H:%M} UTC "
            f"kept; {self.zone} {self.local_before:%H:%M} -> {self.local_after:%H:%M} "
            f"({versions})"
        )


def _future(record: MeetingRecord, now: datetime) -> bool:
    meeting = record.meeting
    return (
        record.retired_at is None
        and record.wall is not None
        and record.stored_starts_at is not None
        and not meeting.status.is_terminal
        and max(meeting.starts_at.astimezone(UTC), record.stored_starts_at.astimezone(UTC))
        > now.astimezone(UTC)
    )


def _transition(record: MeetingRecord, *, now: datetime, tzdata: str) -> Transition | None:
    assert record.wall is not None
    assert record.stored_starts_at is not None
    return clock_rules_changed(
        record.meeting,
        stored_starts_at=record.stored_starts_at,
        wall=record.wall,
        now=now,
        tzdata=tzdata,
    )


def _move(record: MeetingRecord, transition: Transition) -> ClockMove:
    clock = transition.entry.clock
    assert clock is not None
    assert record.stored_starts_at is not None
    return ClockMove(
        meeting_id=record.meeting.id,
        zone=clock.zone,
        anchor=clock.anchor,
        local_before=clock.local_before,
        local_after=clock.local_after,
        before=record.stored_starts_at,
        after=transition.meeting.starts_at,
        tzdata_before=clock.tzdata_before,
        tzdata_after=clock.tzdata_after,
    )


async def clock_drift(store: StorePort, *, now: datetime) -> list[ClockMove]:
    """The future meetings the rules in force would move that have not been moved yet
    (read only)."""
    tzdata = tzdata_version()
    async with store.read() as tx:
        records = await tx.meeting_records()
    moves = []
    for record in records:
        if not _future(record, now):
            continue
        transition = _transition(record, now=now, tzdata=tzdata)
        if transition is not None:
            moves.append(_move(record, transition))
    return moves


async def apply_clock_rules(store: StorePort, *, now: datetime) -> list[ClockMove]:
    """Act on every future meeting the rules in force moved: each in a transaction of its
    own (its readers notified, its reminders planned afresh), logged and returned."""
    moves: list[ClockMove] = []
    for found in await clock_drift(store, now=now):

        async def work(
            tx: TransactionPort, plan: Planning, meeting_id: str = found.meeting_id
        ) -> ClockMove | None:
            record = await tx.meeting_record(meeting_id, for_update=True)
            if record is None or not _future(record, now):
                return None
            transition = _transition(record, now=now, tzdata=tzdata_version())
            if transition is None:  # another replica got to it first
                return None
            await _write(tx, plan, record.meeting, transition, now=now)
            return _move(record, transition)

        move = await write_with_retry(store, work, meeting_id=found.meeting_id)
        if move is None:
            continue
        moves.append(move)
        log.warning(
            "time-zone rules of %s changed: %s",
            move.zone,
            move.describe(),
            extra={
                "action": "clock_rules_changed",
                "meeting": move.meeting_id,
                "zone": move.zone,
                "anchor": move.anchor.value,
                "tzdata": move.tzdata_after,
            },
        )
    return moves


async def rules_preview(store: StorePort, folder: Path, *, now: datetime) -> list[ClockMove]:
    """What the zone files of `folder` (a newer tzdata, before it is installed) would move:
    every future meeting whose instant (wall-anchored) or local time (instant-anchored)
    differs under those rules from what was stored. `ValueError` when the folder holds no
    zone a meeting uses."""
    version = folder_version(folder)
    async with store.read() as tx:
        records = [r for r in await tx.meeting_records() if _future(r, now)]
    zones: dict[str, ZoneInfo] = {}
    moves = []
    for record in records:
        meeting, wall = record.meeting, record.wall
        assert wall is not None
        assert record.stored_starts_at is not None
        tz = zones.get(meeting.timezone)
        if tz is None:
            path = folder / meeting.timezone
            if not path.is_file():
                raise ValueError(
                    f"{folder} has no zone {meeting.timezone!r} (meeting {meeting.id})"
                )
            with path.open("rb") as data:
                tz = zones.setdefault(meeting.timezone, ZoneInfo.from_file(data))
        stored = record.stored_starts_at
        if meeting.anchor is Anchor.WALL:
            after = _at(wall, tz)
            if same_instant(after, stored):
                continue
            local_after = wall.starts
        else:
            after = stored
            local_after = stored.astimezone(tz).replace(tzinfo=None, fold=0)
            if local_after == wall.starts:
                continue
        moves.append(
            ClockMove(
                meeting_id=meeting.id,
                zone=meeting.timezone,
                anchor=meeting.anchor,
                local_before=wall.starts,
                local_after=local_after,
                before=stored,
                after=after,
                tzdata_before=wall.tzdata,
                tzdata_after=version,
            )
        )
    return moves


def _at(wall: Wall, tz: ZoneInfo) -> datetime:
    """`wall`'s instant under the rules of `tz` (a zone read from a file)."""
    return wall.starts.replace(tzinfo=tz, fold=wall.fold).astimezone(UTC)


#: How often the daemon looks again (a tzdata update lands with the system's packages).
RECHECK_EVERY = timedelta(days=1)

__all__ = [
    "RECHECK_EVERY",
    "ClockMove",
    "apply_clock_rules",
    "clock_drift",
    "rules_preview",
]
