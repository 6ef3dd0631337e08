"""Rules that used to be written in several faces now have one home in `notifier.service`:
the API, the CLI and the config file agree, on both backends."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from notifier import service
from notifier.cli import cli
from notifier.domain.outbox import REPLAYABLE, DeliveryStatus
from notifier.settings import load_settings
from notifier.store import Store
from notifier.store.tables import deliveries
from tests.helpers.api import AUTH
from tests.integration.conftest import Clock, api_client

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "notifier.toml"
TALKS = "moscow-tskhinvali-talks"


async def pending_reminders(store: Store, meeting_id: str) -> list[str]:
    async with store.read() as tx:
        return [r.state for r in await tx.meeting_reminders(meeting_id) if r.state == "pending"]


async def test_retiring_from_the_api_and_from_the_file_withdraws_reminders_alike(
    store: Store, clock: Clock, database_url: str
) -> None:
    clock.now = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
    on_file = {
        "id": "file-talks",
        "title": "Talks",
        "timezone": "Europe/Moscow",
        "starts_at": "2026-03-02T19:00:00+03:00",
        "tags": ["bilateral"],
    }
    async with api_client(store, clock, database_url=database_url, meetings=[on_file]) as api:
        created = await api.post(
            "/v1/meetings",
            headers=AUTH,
            json={
                "id": "api-talks",
                "title": "Talks",
                "timezone": "Europe/Moscow",
                "starts_at": "2026-03-02T19:00:00+03:00",
                "tags": ["bilateral"],
            },
        )
        assert created.status_code == 201, created.text
        assert await pending_reminders(store, "api-talks")
        assert await pending_reminders(store, "file-talks")
        gone = await api.delete("/v1/meetings/api-talks", headers=AUTH)
        assert gone.status_code == 204
        refused = await api.delete("/v1/meetings/file-talks", headers=AUTH)
        assert refused.status_code == 409  # the file's meeting: retired through the file
        # Nor edited: the rule is the service's (update_meeting_details), the route only asks.
        edited = await api.patch("/v1/meetings/file-talks", headers=AUTH, json={"title": "X"})
        assert edited.status_code == 409
        assert "defined in the config file; edit it there" in edited.json()["detail"]
    async with store.read() as tx:
        kept = await tx.meeting_record("file-talks")
    assert kept is not None
    assert kept.meeting.title == "Talks"
    # The file no longer names the meeting: retired, and its reminders withdrawn the same way.
    settings = load_settings(CONFIG, database_url=database_url, meetings=[])
    report = await service.reconcile(store, settings, now=clock())
    assert report.retired == ["meeting file-talks"]
    assert await pending_reminders(store, "api-talks") == []
    assert await pending_reminders(store, "file-talks") == []


def run_cli(database_url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "NOTIFIER_DATABASE_URL": database_url}
    result = CliRunner().invoke(cli, [*args, "--config", str(CONFIG)], env=env)
    return result.exit_code, result.output


async def test_every_delivery_status_is_retried_alike_from_the_cli_and_the_api(
    store: Store, clock: Clock, database_url: str
) -> None:
    clock.now = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
    statuses = list(DeliveryStatus)
    async with api_client(store, clock, database_url=database_url) as api:
        for n, status in enumerate(["postponed", "cleared", "rescheduled"]):
            body = {"status": status, "reason": "r", "event_id": f"e{n}"}
            if status == "rescheduled":
                body["starts_at"] = "2026-03-02T21:00:00+03:00"
            pushed = await api.post(f"/v1/meetings/{TALKS}/status", headers=AUTH, json=body)
            assert pushed.status_code == 202, pushed.text
        async with store.read() as tx:
            ids = [d.id for d in await tx.deliveries(limit=100)]
        assert len(ids) >= 2 * len(statuses)
        by_api, by_cli = ids[: len(statuses)], ids[len(statuses) : 2 * len(statuses)]
        async with store.write() as tx:
            for status, first, second in zip(statuses, by_api, by_cli, strict=True):
                await tx.connection.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_([first, second]))
                    .values(status=status.value, attempts=3)
                )
        api_said = {}
        for status, delivery_id in zip(statuses, by_api, strict=True):
            answer = await api.post(f"/v1/deliveries/{delivery_id}/retry", headers=AUTH)
            api_said[status] = answer.status_code
    cli_said = {}
    for status, delivery_id in zip(statuses, by_cli, strict=True):
        code, _ = await asyncio.to_thread(run_cli, database_url, "deliveries", "retry", delivery_id)
        cli_said[status] = code
    async with store.read() as tx:
        after = {d.id: d for d in await tx.deliveries(limit=100)}
    for status, first, second in zip(statuses, by_api, by_cli, strict=True):
        replayable = status in REPLAYABLE
        assert api_said[status] == (202 if replayable else 409), status
        assert cli_said[status] == (0 if replayable else 1), status
        for delivery_id in (first, second):
            expected = DeliveryStatus.PENDING if replayable else status
            assert after[delivery_id].status is expected, (status, delivery_id)
            assert after[delivery_id].attempts == (0 if replayable else 3)
