"""The HTTP API over ASGI (the real FastAPI app, no sockets), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from notifier.store import Store
from notifier.tokens import unsubscribe_token
from tests.helpers.api import AUTH, TALKS, assert_problem
from tests.integration.conftest import Clock, api_client

ROOT = Path(__file__).resolve().parents[2]


async def test_v1_needs_a_known_bearer_token(api: httpx.AsyncClient) -> None:
    assert_problem(await api.get("/v1/meetings"), 401, "Bearer")
    assert_problem(await api.get("/v1/meetings", headers={"Authorization": "Bearer nope"}), 401)
    assert_problem(await api.get("/v1/meetings", headers={"Authorization": "Basic x"}), 401)
    assert (await api.get("/v1/meetings", headers=AUTH)).status_code == 200


@pytest.mark.parametrize(
    "written",
    ["2026-03-02T21:00", "2026-03-02T21:00+03:00[Europe/Moscow]", "2026-03-02T18:00:00Z"],
)
async def test_a_new_start_may_be_written_on_the_meetings_clocks(
    api: httpx.AsyncClient, written: str
) -> None:
    moved = await api.post(
        f"/v1/meetings/{TALKS}/status",
        json={"status": "rescheduled", "starts_at": written},
        headers=AUTH,
    )
    assert moved.status_code == 202, moved.text
    meeting = moved.json()["meeting"]
    assert meeting["starts_at"] == "2026-03-02T21:00:00+03:00"
    assert meeting["anchor"] == "wall"


async def test_status_push_accepts_refuses_and_is_idempotent(api: httpx.AsyncClient) -> None:
    url = f"/v1/meetings/{TALKS}/status"
    first = await api.post(
        url,
        json={"status": "cleared", "reason": "negative"},
        headers=AUTH | {"Idempotency-Key": "k-1"},
    )
    assert first.status_code == 202
    body = first.json()
    assert body["meeting"]["status"] == "cleared"
    # Four readers by email and webhook (five deliveries) and the duty officer by chat.
    assert body["deliveries"] == 6
    again = await api.post(
        url,
        json={"status": "cleared", "reason": "negative"},
        headers=AUTH | {"Idempotency-Key": "k-1"},
    )
    assert again.status_code == 202
    assert again.json()["duplicate"] is True
    assert again.json()["meeting"] == body["meeting"]
    assert_problem(
        await api.post(url, json={"status": "concluded"}, headers=AUTH),
        409,
        "cannot go from cleared to concluded",
    )
    assert_problem(
        await api.post("/v1/meetings/nope/status", json={"status": "cleared"}, headers=AUTH),
        404,
        "unknown meeting",
    )
    for bad, field in (
        ({"status": "adjourned"}, "status"),
        ({"status": "rescheduled", "starts_at": "2026-03-02T21:00[Mars/Olympus]"}, "starts_at"),
        ({"status": "rescheduled", "starts_at": "21:00 tomorrow"}, "starts_at"),
        ({"status": "cleared", "extra": 1}, "extra"),
        ({"reason": "no status"}, "status"),
    ):
        assert (
            assert_problem(await api.post(url, json=bad, headers=AUTH), 422)["errors"][0]["field"]
            == field
        )
    # A written time is read on the meeting's own clocks: an offset they do not give is
    # refused with both named.
    wrong = {"status": "rescheduled", "starts_at": "2026-03-02T21:00+04:00[Europe/Moscow]"}
    problem = assert_problem(await api.post(url, json=wrong, headers=AUTH), 422)
    assert "+04:00 disagrees with Europe/Moscow's rules, which give +03:00" in str(problem)
    broken = await api.post(
        url, content=b"{not json", headers=AUTH | {"content-type": "application/json"}
    )
    assert_problem(broken, 422)
    history = (await api.get(f"/v1/meetings/{TALKS}/history", headers=AUTH)).json()
    assert [h["to"] for h in history][-1] == "cleared"
    assert len([h for h in history if h["to"] == "cleared"]) == 1


async def test_meetings_are_created_read_patched_and_retired(api: httpx.AsyncClient) -> None:
    new = {
        "id": "summit",
        "title": "Summit",
        "timezone": "Europe/Berlin",
        "starts_at": "2026-06-01T10:00:00+02:00",
        "tags": ["bilateral"],
    }
    created = await api.post("/v1/meetings", json=new, headers=AUTH)
    assert created.status_code == 201
    assert created.json()["status"] == "scheduled"
    assert_problem(await api.post("/v1/meetings", json=new, headers=AUTH), 409, "already exists")
    assert_problem(
        await api.post(
            "/v1/meetings", json=new | {"id": "x", "timezone": "Europe/Berlinn"}, headers=AUTH
        ),
        422,
        "unknown time zone 'Europe/Berlinn' (did you mean 'Europe/Berlin'?)",
    )
    patched = await api.patch("/v1/meetings/summit", json={"location": "Berlin"}, headers=AUTH)
    assert patched.json()["location"] == "Berlin"
    assert patched.json()["sequence"] == 1
    assert_problem(
        await api.patch(f"/v1/meetings/{TALKS}", json={"location": "Sochi"}, headers=AUTH),
        409,
        "config file",
    )
    assert (await api.delete("/v1/meetings/summit", headers=AUTH)).status_code == 204
    assert_problem(await api.get("/v1/meetings/summit", headers=AUTH), 404)


async def test_subscribers_live_beside_the_config_files(api: httpx.AsyncClient) -> None:
    body = {
        "id": "agency",
        "email": "desk@agency.example.org",
        "timezone": "Asia/Tokyo",
        "reminders": ["1h"],
        "tags": ["bilateral"],
    }
    assert (await api.post("/v1/subscribers", json=body, headers=AUTH)).status_code == 201
    listed = {s["id"]: s for s in (await api.get("/v1/subscribers", headers=AUTH)).json()}
    assert listed["agency"]["source"] == "api"
    assert listed["wire-service"]["webhook"]["secrets"] == 1  # never the secret itself
    patched = await api.patch("/v1/subscribers/agency", json={"locale": "ru"}, headers=AUTH)
    assert patched.json()["locale"] == "ru"
    assert patched.json()["reminders"] == ["1h"]
    assert_problem(
        await api.patch("/v1/subscribers/press-desk", json={"locale": "en"}, headers=AUTH),
        409,
        "config file",
    )
    assert_problem(await api.delete("/v1/subscribers/press-desk", headers=AUTH), 409)
    hook = {
        "id": "internal",
        "webhook": {
            "url": "http://10.0.0.5/hook",
            "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        },
    }
    assert_problem(await api.post("/v1/subscribers", json=hook, headers=AUTH), 422, "10.0.0.5")
    assert (await api.delete("/v1/subscribers/agency", headers=AUTH)).status_code == 204
    assert_problem(await api.get("/v1/subscribers/agency", headers=AUTH), 404)


async def test_deliveries_are_listed_and_replayed(api: httpx.AsyncClient) -> None:
    await api.post(f"/v1/meetings/{TALKS}/status", json={"status": "cleared"}, headers=AUTH)
    pending = (await api.get("/v1/deliveries?status=pending", headers=AUTH)).json()
    assert len(pending) == 6
    assert {d["channel"] for d in pending} == {"email", "webhook", "notify"}
    retried = await api.post(f"/v1/deliveries/{pending[0]['id']}/retry", headers=AUTH)
    assert retried.status_code == 202
    assert_problem(await api.post("/v1/deliveries/msg_nope/retry", headers=AUTH), 404)
    assert_problem(await api.get("/v1/deliveries?status=lost", headers=AUTH), 422)
    assert (await api.get("/v1/deliveries?status=failed", headers=AUTH)).json() == []


async def test_one_click_unsubscribe(api: httpx.AsyncClient, store: Store) -> None:
    token = unsubscribe_token("k", "press-desk", "email", "press@example.org")
    page = await api.get(f"/unsubscribe/{token}")
    assert page.status_code == 200
    # The reader is named by their address, masked; never by the internal id.
    assert "p***@example.org" in page.text
    assert "press-desk" not in page.text
    # A GET (a link scanner, a prefetch) only shows the page: the address stays subscribed.
    assert (await api.get(f"/unsubscribe/{token}")).status_code == 200
    async with store.read() as tx:
        kept = await tx.subscriber_record("press-desk")
    assert kept is not None
    assert kept.subscriber.email == "press@example.org"
    # The POST a mail client makes for one-click carries no cookie and no credentials.
    assert not api.cookies
    done = await api.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    async with store.read() as tx:
        assert (await tx.subscriber_record("press-desk")).subscriber.email is None  # type: ignore[union-attr]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert_problem(await api.post(f"/unsubscribe/{tampered}"), 404)
    garbage = await api.get("/unsubscribe/garbage")  # an email's link: a page, not JSON
    assert garbage.status_code == 404
    assert garbage.headers["content-type"].startswith("text/html")


async def test_the_unsubscribe_button_ends_on_a_page_in_the_readers_language(
    api: httpx.AsyncClient, store: Store
) -> None:
    token = unsubscribe_token("k", "press-desk", "email", "press@example.org")
    page = await api.get(f"/unsubscribe/{token}", headers={"Accept-Language": "ru"})
    assert page.status_code == 200
    assert 'lang="ru"' in page.text
    assert "Content-Security-Policy" in page.headers
    done = await api.post(
        f"/unsubscribe/{token}/page",
        data={"List-Unsubscribe": "One-Click", "from": "page", "lang": "ru"},
    )
    assert done.status_code == 200, done.text
    assert done.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in done.headers
    assert "Подписка отменена" in done.text
    assert "p***@example.org" in done.text
    async with store.read() as tx:
        assert (await tx.subscriber_record("press-desk")).subscriber.email is None  # type: ignore[union-attr]
    # Pressed twice (a back button, a double click): the same answer, nothing else changes.
    again = await api.post(f"/unsubscribe/{token}/page", data={"lang": "ru"})
    assert again.status_code == 200
    assert "Подписка отменена" in again.text


async def test_limits_on_body_size_and_rate(api: httpx.AsyncClient, store: Store) -> None:
    huge = {"status": "cleared", "reason": "x" * 5000}
    assert_problem(await api.post(f"/v1/meetings/{TALKS}/status", json=huge, headers=AUTH), 413)
    async with store.read() as tx:
        assert (await tx.meeting(TALKS)).status.value == "postponed"  # type: ignore[union-attr]


async def test_rate_limit_answers_429_with_retry_after(
    store: Store, database_url: str, clock: Clock
) -> None:
    limits = {"rate_per_minute": 3}
    async with api_client(store, clock, database_url=database_url, api=limits) as c:
        codes = [(await c.get("/v1/meetings", headers=AUTH)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = await c.get("/v1/meetings", headers=AUTH)
        assert_problem(limited, 429)
        assert int(limited.headers["Retry-After"]) >= 1


async def test_operations_endpoints(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json()["status"] == "ok"
    assert (await api.get("/readyz")).json()["status"] == "ready"
    await api.post(f"/v1/meetings/{TALKS}/status", json={"status": "cleared"}, headers=AUTH)
    text = (await api.get("/metrics")).text
    assert 'notifier_outbox_depth{status="pending"} 6.0' in text
    assert "notifier_event_loop_lag_seconds_bucket" in text
    spec = (await api.get("/openapi.json")).json()
    assert "/v1/meetings/{meeting_id}/status" in spec["paths"]


async def test_an_upstream_may_push_signed_instead_of_with_a_token(
    store: Store, database_url: str, clock: Clock
) -> None:
    import json
    import time

    from standardwebhooks.webhooks import Webhook

    secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    upstreams = [{"name": "protocol-office", "secrets": [secret]}]
    body = json.dumps({"meeting": TALKS, "status": "cleared", "reason": "assessment negative"})
    url = f"/v1/meetings/{TALKS}/status"

    def signed(msg_id: str, stamp: float, key: str = secret) -> dict[str, str]:
        signature = Webhook(key).sign(msg_id, datetime.fromtimestamp(stamp, UTC), body)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(stamp)),
            "webhook-signature": signature,
            "content-type": "application/json",
        }

    async with api_client(store, clock, database_url=database_url, upstreams=upstreams) as c:
        first = await c.post(url, content=body, headers=signed("msg_up_1", time.time()))
        assert first.status_code == 202, first.text
        replay = await c.post(url, content=body, headers=signed("msg_up_1", time.time()))
        assert replay.json()["duplicate"] is True
        assert_problem(
            await c.post(url, content=body, headers=signed("msg_up_2", time.time() - 600)),
            401,
            "5 minutes",
        )
        forged = signed("msg_up_3", time.time(), key="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        assert_problem(await c.post(url, content=body, headers=forged), 401, "no valid signature")
        # Signed pushes reach only the status endpoint; everything else needs a token.
        assert_problem(await c.get("/v1/meetings", headers=signed("msg_up_4", time.time())), 401)
    async with store.read() as tx:
        history = await tx.history(TALKS)
    assert [e.to_status.value for e in history].count("cleared") == 1
    assert history[-1].event_id == "upstream:protocol-office:msg_up_1"
