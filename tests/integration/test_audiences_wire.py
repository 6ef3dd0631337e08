"""Audiences on the wire: what a participants-only text says never reaches a lower reader.

The seed scenario through the real API (status pushes in the object form, a details
change, reminders), sent by the real outbox to aiosmtpd and a webhook receiver. Every
participants-only text carries a unique marker; every byte each lower-audience reader
receives (the raw SMTP DATA, every decoded MIME part including the calendar, the raw
webhook body) is searched for them, and for the seed's own medical wording. The
participants get them all, which proves the search can find them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx

from notifier import service
from notifier.delivery import OutboxWorker
from notifier.settings import Settings, load_settings
from notifier.store import Store
from tests.helpers.outbox import run_until_idle
from tests.integration.conftest import ROOT, ROTATED, Clock, api_client
from tests.integration.peers import Receiver, SmtpServer
from tests.wire import decoded_parts

MakeWorker = Callable[..., Awaitable[OutboxWorker]]
TALKS = "moscow-tskhinvali-talks"
AUTH = {"Authorization": "Bearer dev-token"}
AUDIENCES = ("public", "press", "participants")
#: Only the participants may read these (the seed's own words, and the test's markers).
SECRET_WORDS = ("medical", "health", "Zq7PartA", "Zq7PartB", "Zq7PartC", "Zq7PartD", "Zq7PartE")
MARKERS = SECRET_WORDS[2:]


def readers(receiver: Receiver) -> list[dict[str, object]]:
    """For each audience, one reader by email and one by webhook (reminders an hour ahead)."""
    found: list[dict[str, object]] = []
    for audience in AUDIENCES:
        common = {"audience": audience, "reminders": ["1h"], "tags": ["bilateral"]}
        found.append({"id": f"{audience}-mail", "email": f"{audience}@example.org", **common})
        found.append(
            {
                "id": f"{audience}-hook",
                "webhook": {"url": receiver.url(f"/{audience}"), "secrets": [ROTATED]},
                **common,
            }
        )
    return found


def settings(database_url: str, receiver: Receiver, **overrides: object) -> Settings:
    """The shipped config (the seed meeting), with this test's readers."""
    return load_settings(
        ROOT / "config" / "notifier.toml",
        database_url=database_url,
        subscribers=readers(receiver),
        **overrides,
    )


async def _push(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    answer = await client.post(f"/v1/meetings/{TALKS}/status", json=body, headers=AUTH)
    assert answer.status_code == 202, answer.text


def _received(smtp_server: SmtpServer, receiver: Receiver) -> dict[str, list[str]]:
    """Per audience, every message it received as text: the raw bytes, and each decoded
    part beside them (a base64 or quoted-printable body hides nothing from the search)."""
    got: dict[str, list[str]] = {a: [] for a in AUDIENCES}
    for rcpts, raw in smtp_server.box.raw:
        (rcpt,) = rcpts
        audience = rcpt.split("@")[0]
        got[audience].append(raw.decode("utf-8", "replace"))
        got[audience].extend(decoded_parts(raw).values())
    for hit in receiver.hits:
        got[hit.path.strip("/")].append(hit.body.decode("utf-8", "replace"))
    return got


async def test_participants_only_text_never_reaches_a_lower_reader(
    store: Store,
    database_url: str,
    clock: Clock,
    smtp_server: SmtpServer,
    receiver: Receiver,
    make_worker: MakeWorker,
) -> None:
    clock.now = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
    async with api_client(
        store, clock, database_url=database_url, subscribers=readers(receiver)
    ) as client:
        await _push(
            client,
            {
                "status": "cleared",
                "reason": {"public": "cleared", "participants": "Zq7PartA health clearance"},
                "event_id": "clearance-1",
            },
        )
        # The seed meeting is the file's: its details change by editing the file.
        edited = settings(database_url, receiver).meetings[0].model_dump(mode="json")
        edited["location"] = {"public": "Moscow", "participants": "Zq7PartB Kremlin, medical wing"}
        edited["description"] = {"press": "Talks in Moscow.", "participants": "Zq7PartC notes"}
        await service.reconcile(
            store, settings(database_url, receiver, meetings=[edited]), now=clock()
        )
        shown = await client.get(f"/v1/meetings/{TALKS}", headers=AUTH)
        # Operators' reads show every variant.
        assert shown.json()["location"]["participants"].startswith("Zq7PartB")
        await _push(
            client,
            {
                "status": "rescheduled",
                "starts_at": "2026-03-02T21:00:00+03:00",
                "reason": {
                    "public": "moved to the evening",
                    "press": "moved to 21:00 Moscow time",
                    "participants": "Zq7PartD doctors allow the evening only",
                },
                "conditions": {"participants": ["Zq7PartE rest before the talks"]},
                "event_id": "evening-1",
            },
        )
    worker = await make_worker()
    await run_until_idle(worker)
    # The reminders an hour before 21:00 Moscow time, fired at their instant.
    async with store.read() as tx:
        due = [r for r in await tx.meeting_reminders(TALKS) if r.state == "pending"]
    assert {r.subscriber_id for r in due} == {
        f"{a}-{c}" for a in AUDIENCES for c in ("mail", "hook")
    }
    fired = await service.fire_reminders(
        store, [r.id for r in due], now=due[0].due_at, grace=timedelta(minutes=5)
    )
    assert set(fired.values()) == {service.ReminderOutcome.FIRED}
    clock.now = due[0].due_at
    await run_until_idle(worker)

    got = _received(smtp_server, receiver)
    # Each reader got the clearance, the details change, the move and the reminder.
    assert len([r for r in smtp_server.box.raw if r[0] == ["public@example.org"]]) == 4
    assert len(receiver.verified("/public")) == 4
    for audience in ("public", "press"):
        leaked = [w for w in SECRET_WORDS for text in got[audience] if w in text]
        assert not leaked, f"{audience} readers received {sorted(set(leaked))}"
    participants = "\n".join(got["participants"])
    assert all(marker in participants for marker in MARKERS)
    # The press reads its own variant, the public its own, in the same change.
    assert any("moved to 21:00 Moscow time" in text for text in got["press"])
    assert not any("moved to 21:00 Moscow time" in text for text in got["public"])
    assert any("moved to the evening" in text for text in got["public"])
    # Webhook bodies name the reader's audience; their fields are plain strings.
    for audience in AUDIENCES:
        for hit in receiver.verified(f"/{audience}"):
            body = json.loads(hit.body)
            assert body["data"]["audience"] == audience
            meeting = body["data"]["meeting"]
            assert all(isinstance(meeting[f], str) for f in ("reason", "location", "description"))
            assert all(isinstance(meeting[f], list) for f in ("participants", "conditions"))
    # The clearance says what it lifted, to those who knew it was pending, and only them.
    lifted = {
        audience: [
            json.loads(hit.body)["data"]["change"]["cleared"]
            for hit in receiver.verified(f"/{audience}")
            if json.loads(hit.body)["type"] == "meeting.cleared"
        ]
        for audience in AUDIENCES
    }
    assert lifted == {"public": [[]], "press": [[]], "participants": [["health clearance"]]}
    assert any("Condition met: health clearance" in text for text in got["participants"])
    async with store.read() as tx:
        (entry,) = [e for e in await tx.history(TALKS) if e.kind.value == "meeting.cleared"]
    assert entry.variants["cleared"] == {"participants": ("health clearance",)}


async def test_a_press_meeting_reaches_no_public_reader_at_all(
    store: Store,
    database_url: str,
    clock: Clock,
    smtp_server: SmtpServer,
    receiver: Receiver,
    make_worker: MakeWorker,
) -> None:
    clock.now = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
    async with api_client(
        store, clock, database_url=database_url, subscribers=readers(receiver)
    ) as client:
        created = await client.post(
            "/v1/meetings",
            json={
                "id": "background-briefing",
                "title": "Zq7Brief background briefing",
                "timezone": "Europe/Moscow",
                "starts_at": "2026-03-03T12:00:00+03:00",
                "tags": ["bilateral"],
                "audience": "press",
                "reason": {"press": "arranged", "participants": "Zq7PartA"},
            },
            headers=AUTH,
        )
        assert created.status_code == 201, created.text
        answer = await client.post(
            "/v1/meetings/background-briefing/status",
            json={"status": "postponed", "reason": "Zq7Brief later"},
            headers=AUTH,
        )
        assert answer.status_code == 202, answer.text
    worker = await make_worker()
    await run_until_idle(worker)
    async with store.read() as tx:
        due = await tx.meeting_reminders("background-briefing")
    assert {r.subscriber_id.split("-")[0] for r in due} <= {"press", "participants"}

    got = _received(smtp_server, receiver)
    assert got["public"] == []  # not one byte: no alert, no reminder
    assert receiver.hits
    assert not any(h.path == "/public" for h in receiver.hits)
    assert any("Zq7Brief" in text for text in got["press"])
    assert not any("Zq7PartA" in text for text in got["press"])
    assert any("Zq7PartA" in text for text in got["participants"])


async def test_an_unknown_audience_is_refused_naming_the_field(
    store: Store, database_url: str, clock: Clock, receiver: Receiver
) -> None:
    clock.now = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
    async with api_client(store, clock, database_url=database_url) as client:
        answer = await client.post(
            f"/v1/meetings/{TALKS}/status",
            json={"status": "cleared", "reason": {"pubic": "typo"}},
            headers=AUTH,
        )
        assert answer.status_code == 422
        assert "reason.pubic: unknown audience 'pubic'" in answer.text
        answer = await client.post(
            "/v1/subscribers",
            json={"id": "x", "email": "x@example.org", "audience": "board"},
            headers=AUTH,
        )
        assert answer.status_code == 422
        assert "audience: unknown audience 'board'" in answer.text
        async with store.read() as tx:
            assert await tx.subscriber_record("x") is None
            meeting = await tx.meeting(TALKS)
        assert meeting is not None
        assert meeting.status.value == "postponed"
