"""Migrations keep data: down to 0002, fill the old outbox shape, up again, on both backends."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import text

from notifier.store import Store, migrate


async def test_payloads_move_into_notices_and_back(store: Store, now: datetime) -> None:
    await migrate.downgrade(store.engine, "0002")
    assert await migrate.current_revision(store.engine) == "0002"
    stamp = now.replace(tzinfo=None) if store.backend == "sqlite" else now
    async with store.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO meetings (id, title, description, location, participants, timezone,"
                " starts_at, status, reason, conditions, tags, sequence, source, created_at,"
                " updated_at) VALUES ('m', 't', '', '', '[]', 'UTC', :t, 'scheduled', '', '[]',"
                " '[]', 0, 'api', :t, :t)"
            ),
            {"t": stamp},
        )
        await connection.execute(
            text(
                "INSERT INTO subscribers (id, name, timezone, locale, meetings, tags, events,"
                " reminders, active, source, created_at, updated_at) VALUES ('s', '', 'UTC',"
                " 'en', '[]', '[]', '[\"*\"]', '[]', true, 'api', :t, :t)"
            ),
            {"t": stamp},
        )
        await connection.execute(
            text(
                "INSERT INTO deliveries (id, meeting_id, subscriber_id, channel, kind, sequence,"
                " payload, status, attempts, next_attempt_at, created_at) VALUES ('msg_old',"
                " 'm', 's', 'webhook', 'meeting.cleared', 1, :p, 'dead', 3, :t, :t)"
            ),
            {"t": stamp, "p": '{"type": "meeting.cleared", "data": {"n": 1}}'},
        )
    await migrate.upgrade(store.engine)
    async with store.read() as tx:
        delivery = await tx.delivery("msg_old")
        assert delivery is not None
        assert delivery.attempts == 3
        said = await tx.notices([delivery.notice_id])
    assert said == {delivery.notice_id: {"type": "meeting.cleared", "data": {"n": 1}}}

    await migrate.downgrade(store.engine, "0002")
    async with store.engine.connect() as connection:
        payload = (
            await connection.execute(text("SELECT payload FROM deliveries WHERE id = 'msg_old'"))
        ).scalar_one()
    assert "meeting.cleared" in str(payload)
    await migrate.upgrade(store.engine)


async def test_what_a_feed_said_moves_into_rows_and_back(store: Store, now: datetime) -> None:
    await migrate.downgrade(store.engine, "0009")
    stamp = now.replace(tzinfo=None) if store.backend == "sqlite" else now
    said = {"sequence": 2, "status": "confirmed", "starts_at": "2030-03-02T16:00:00+00:00"}
    async with store.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO sources (url, kind, failures, last_ok_at, seen)"
                " VALUES ('https://cal.example.org/x.ics', 'ics', 0, :t, :s)"
            ),
            {"t": stamp, "s": json.dumps({"talks@x": said, "other@x": said})},
        )
    await migrate.upgrade(store.engine)
    async with store.read() as tx:
        items = await tx.source_items("https://cal.example.org/x.ics")
        state = await tx.source_state("https://cal.example.org/x.ics")
    assert items == {"talks@x": said, "other@x": said}
    # A `seen` column left behind would be an unknown field of the record: TypeError.
    assert state.kind == "ics"
    await migrate.downgrade(store.engine, "0009")
    async with store.engine.connect() as connection:
        seen = (await connection.execute(text("SELECT seen FROM sources"))).scalar_one()
    back = json.loads(seen) if isinstance(seen, str) else seen
    assert back == {"talks@x": said, "other@x": said}
    await migrate.upgrade(store.engine)


async def test_meetings_stored_as_instants_get_the_local_time_they_read_as(
    store: Store, now: datetime
) -> None:
    """Rows from before wall-clock times: each gets the local start it reads as under
    the rules in force at the upgrade, anchored to it, and reads back as the same instant."""
    await migrate.downgrade(store.engine, "0018")
    stamp = now.replace(tzinfo=None) if store.backend == "sqlite" else now
    # 16:00 UTC on 2 March 2026 is 19:00 in Moscow (UTC+3 all year).
    starts = datetime.fromisoformat("2026-03-02T16:00:00+00:00")
    async with store.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO meetings (id, title, participants, timezone, starts_at, status,"
                " conditions, tags, sequence, source, created_at, updated_at)"
                " VALUES ('talks', 'Talks', '[]', 'Europe/Moscow', :s, 'scheduled', '[]', '[]',"
                " 0, 'api', :t, :t)"
            ),
            {"s": starts.replace(tzinfo=None) if store.backend == "sqlite" else starts, "t": stamp},
        )
    await migrate.upgrade(store.engine)
    async with store.read() as tx:
        record = await tx.meeting_record("talks")
    assert record is not None
    assert record.wall is not None
    assert record.wall.starts == datetime.fromisoformat("2026-03-02T19:00:00")
    assert record.wall.offset.total_seconds() == 3 * 3600
    assert record.wall.tzdata  # the version the upgrade ran with
    assert record.meeting.anchor.value == "wall"
    assert record.meeting.starts_at == starts
