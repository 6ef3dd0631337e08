"""The API as an attacker tries it: header-bound text, signed pushes, client mistakes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from notifier.store import Store
from notifier.tokens import unsubscribe_token
from tests.helpers.api import AUTH, TALKS, assert_problem
from tests.integration.conftest import Clock, api_client

HOSTILE = [
    "Talks\r\nBcc: x@evil.example",
    "Talks\nX: y",
    "nul\x00",
    "nel\x85X: y",
    "ls\u2028X: y",
    "=?UTF-8?Q?=0D=0ABcc:_x@evil.example?=",
]


@pytest.mark.parametrize("text", HOSTILE)
async def test_header_bound_text_from_an_operator_is_a_422_naming_the_field(
    api: httpx.AsyncClient, text: str
) -> None:
    meeting = {
        "id": "hostile",
        "title": text,
        "timezone": "UTC",
        "starts_at": "2026-12-01T10:00:00+00:00",
    }
    body = assert_problem(await api.post("/v1/meetings", json=meeting, headers=AUTH), 422)
    assert "title" in body["detail"]
    for field in ("location", "reason"):
        good = dict(meeting, title="fine", **{field: text})
        body = assert_problem(await api.post("/v1/meetings", json=good, headers=AUTH), 422)
        assert field in body["detail"]
    good = dict(meeting, title="fine", participants=["A", text])
    body = assert_problem(await api.post("/v1/meetings", json=good, headers=AUTH), 422)
    assert "participants" in body["detail"]
    push = {"status": "cleared", "reason": text}
    body = assert_problem(
        await api.post(f"/v1/meetings/{TALKS}/status", json=push, headers=AUTH), 422
    )
    assert "reason" in body["detail"]
    push = {"status": "cleared", "conditions": [text]}
    body = assert_problem(
        await api.post(f"/v1/meetings/{TALKS}/status", json=push, headers=AUTH), 422
    )
    assert "conditions" in body["detail"]
    reader = {"id": "r", "email": "r@example.org", "name": text}
    body = assert_problem(await api.post("/v1/subscribers", json=reader, headers=AUTH), 422)
    assert "name" in body["detail"]
    # Nothing was accepted on the way.
    assert (await api.get("/v1/meetings/hostile", headers=AUTH)).status_code == 404
    history = (await api.get(f"/v1/meetings/{TALKS}/history", headers=AUTH)).json()
    assert history[-1]["to"] != "cleared" if "to" in history[-1] else True


async def test_a_description_keeps_its_paragraphs_but_no_other_control_character(
    api: httpx.AsyncClient,
) -> None:
    meeting = {
        "id": "paragraphs",
        "title": "Talks",
        "timezone": "UTC",
        "starts_at": "2026-12-01T10:00:00+00:00",
        "description": "First paragraph.\n\nSecond,\twith a tab.",
    }
    assert (await api.post("/v1/meetings", json=meeting, headers=AUTH)).status_code == 201
    body = assert_problem(
        await api.patch("/v1/meetings/paragraphs", json={"description": "bell\x07"}, headers=AUTH),
        422,
    )
    assert "description" in body["detail"]


# -- signed pushes -----------------------------------------------------------------------------

UPSTREAM_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


@pytest.fixture
async def signed_api(
    store: Store, database_url: str, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(
        store,
        clock,
        database_url=database_url,
        upstreams=[{"name": "protocol-office", "secrets": [UPSTREAM_SECRET]}],
        api={"rate_per_minute": 6},
    ) as client:
        yield client


def signed(body: bytes, msg_id: str, stamp: float | None = None) -> dict[str, str]:
    when = datetime.fromtimestamp(stamp if stamp is not None else time.time(), UTC)
    signature = Webhook(UPSTREAM_SECRET).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


async def history_of(client: httpx.AsyncClient, meeting: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/meetings/{meeting}/history", headers=AUTH)
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_a_signed_push_replayed_at_another_meetings_url_changes_nothing(
    signed_api: httpx.AsyncClient,
) -> None:
    other = {
        "id": "other-talks",
        "title": "Other talks",
        "timezone": "UTC",
        "starts_at": "2026-12-01T10:00:00+00:00",
    }
    assert (await signed_api.post("/v1/meetings", json=other, headers=AUTH)).status_code == 201
    body = json.dumps({"meeting": TALKS, "status": "cancelled", "reason": "called off"}).encode()
    headers = signed(body, "msg_bind_1")
    before = await history_of(signed_api, "other-talks")
    replayed = await signed_api.post(
        "/v1/meetings/other-talks/status", content=body, headers=headers
    )
    assert_problem(replayed, 422, "meeting: the body is for 'moscow-tskhinvali-talks'")
    assert await history_of(signed_api, "other-talks") == before
    # A signed body that names no meeting is refused: nothing would bind it.
    unbound = json.dumps({"status": "cancelled"}).encode()
    assert_problem(
        await signed_api.post(
            "/v1/meetings/other-talks/status", content=unbound, headers=signed(unbound, "msg_2")
        ),
        422,
        "must name its meeting",
    )
    assert await history_of(signed_api, "other-talks") == before
    accepted = await signed_api.post(f"/v1/meetings/{TALKS}/status", content=body, headers=headers)
    assert accepted.status_code == 202, accepted.text


async def test_nothing_unsigned_makes_a_captured_push_new(signed_api: httpx.AsyncClient) -> None:
    body = json.dumps({"meeting": TALKS, "status": "cleared", "reason": "negative"}).encode()
    headers = signed(body, "msg_once")
    url = f"/v1/meetings/{TALKS}/status"
    first = await signed_api.post(url, content=body, headers=headers)
    assert first.status_code == 202
    assert first.json()["duplicate"] is False
    for extra_headers, query in (
        ({"Idempotency-Key": "fresh-key"}, ""),
        ({}, "?event_id=fresh"),
        ({"Idempotency-Key": "other"}, "?x=1"),
    ):
        again = await signed_api.post(url + query, content=body, headers=headers | extra_headers)
        assert again.status_code == 202, again.text
        assert again.json()["duplicate"] is True
    changes = [h for h in await history_of(signed_api, TALKS) if h.get("to") == "cleared"]
    assert len(changes) == 1


async def test_signed_pushes_are_rate_limited_per_upstream(signed_api: httpx.AsyncClient) -> None:
    answers = []
    for number in range(8):
        body = json.dumps({"meeting": TALKS, "status": "postponed", "reason": "r"}).encode()
        response = await signed_api.post(
            f"/v1/meetings/{TALKS}/status", content=body, headers=signed(body, f"msg_r{number}")
        )
        answers.append(response.status_code)
    assert 429 in answers
    limited = answers.index(429)
    assert all(code != 429 for code in answers[:limited])
    assert limited <= 6


# -- client mistakes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/subscribers/press-desk-api", {"reminders": "soon"}, "reminders"),
        ("/v1/subscribers/press-desk-api", {"reminders": ["1 hour"]}, "reminders.0"),
        ("/v1/subscribers/press-desk-api", {"timezone": "Mars/Olympus"}, "timezone"),
        ("/v1/subscribers/press-desk-api", {"email": "not-an-address"}, "email"),
        ("/v1/subscribers/press-desk-api", {"webhook": {"url": "x"}}, "webhook"),
        ("/v1/subscribers/press-desk-api", {"events": ["meeting.nope"]}, "events.0"),
        ("/v1/subscribers/press-desk-api", {"quiet_hours": "25:00-07:00"}, "quiet_hours"),
        ("/v1/subscribers/press-desk-api", {"unknown": 1}, "unknown"),
        ("/v1/meetings/api-talks", {"title": ""}, "title"),
        ("/v1/meetings/api-talks", {"ends_at": "yesterday"}, "ends_at"),
        ("/v1/meetings/api-talks", {"tags": "x"}, "tags"),
        ("/v1/meetings/api-talks", {"status": "cancelled"}, "status"),
    ],
)
async def test_every_field_error_in_a_patch_is_a_422_naming_the_field(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], field: str
) -> None:
    reader = {"id": "press-desk-api", "email": "desk@example.org"}
    assert (await api.post("/v1/subscribers", json=reader, headers=AUTH)).status_code == 201
    meeting = {
        "id": "api-talks",
        "title": "Talks",
        "timezone": "UTC",
        "starts_at": "2026-12-01T10:00:00+00:00",
    }
    assert (await api.post("/v1/meetings", json=meeting, headers=AUTH)).status_code == 201
    problem = assert_problem(await api.patch(path, json=body, headers=AUTH), 422)
    assert problem["detail"].startswith(field), problem


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/meetings",
            {"id": "race", "title": "T", "timezone": "UTC", "starts_at": "2026-12-01T10:00Z"},
        ),
        ("/v1/subscribers", {"id": "race", "email": "race@example.org"}),
    ],
)
async def test_two_concurrent_creates_of_one_id_give_one_201_and_one_409(
    api: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    for _ in range(3):
        body = dict(body, id=f"race-{_}")
        answers = await asyncio.gather(*(api.post(path, json=body, headers=AUTH) for _ in range(2)))
        assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/meetings/%00",
        "/v1/meetings/a%00b/history",
        "/v1/subscribers/%C3%A9",
        "/v1/meetings/" + "a" * 300,
    ],
)
async def test_an_id_that_cannot_name_a_record_is_a_404(api: httpx.AsyncClient, path: str) -> None:
    assert_problem(await api.get(path, headers=AUTH), 404)
    status = path.removesuffix("/history") + "/status"
    if path.startswith("/v1/meetings/"):
        assert_problem(await api.post(status, json={"status": "cleared"}, headers=AUTH), 404)
    assert_problem(await api.post("/v1/deliveries/%00/retry", headers=AUTH), 404)


async def test_a_malformed_json_body_is_a_documented_4xx(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    documented = spec["paths"]["/v1/meetings/{meeting_id}/status"]["post"]["responses"]
    assert {"400", "422"} <= set(documented)
    for raw in (b"{", b'{"status": "cleared"', b"\xff\xfe", b"\x8fIP\xfaz;", b"[]", b"null"):
        response = await api.post(
            f"/v1/meetings/{TALKS}/status",
            content=raw,
            headers=AUTH | {"content-type": "application/json"},
        )
        assert response.status_code in (400, 422), response.text
        assert_problem(response, response.status_code)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:169.254.169.254]/latest",
        "http://[64:ff9b::a9fe:a9fe]/latest",
        "http://[2002:a9fe:a9fe::1]/latest",
        "http://[fec0::1]/hook",
        "http://[::127.0.0.2]/hook",
        "http://no-such-host.invalid/hook",
    ],
)
async def test_a_webhook_target_is_judged_by_where_it_really_leads_when_saved(
    api: httpx.AsyncClient, url: str
) -> None:
    reader = {
        "id": "sneaky",
        "webhook": {"url": url, "secrets": ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]},
    }
    body = assert_problem(await api.post("/v1/subscribers", json=reader, headers=AUTH), 422)
    assert body["detail"].startswith("webhook.url: ")
    assert (await api.get("/v1/subscribers/sneaky", headers=AUTH)).status_code == 404


# -- unsubscribe links ---------------------------------------------------------------------


async def test_an_old_emails_link_does_not_unsubscribe_a_new_address(
    api: httpx.AsyncClient, store: Store
) -> None:
    reader = {"id": "agency", "email": "old-desk@agency.example.org"}
    assert (await api.post("/v1/subscribers", json=reader, headers=AUTH)).status_code == 201
    old = unsubscribe_token("k", "agency", "email", "old-desk@agency.example.org")
    patched = await api.patch(
        "/v1/subscribers/agency", json={"email": "new-desk@agency.example.org"}, headers=AUTH
    )
    assert patched.status_code == 200, patched.text
    assert_problem(await api.post(f"/unsubscribe/{old}"), 404, "no longer receives")
    page = await api.get(f"/unsubscribe/{old}")  # the email's link: an HTML page
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    async with store.read() as tx:
        contact = (await tx.contacts(["agency"]))["agency"]
    assert contact.email == "new-desk@agency.example.org"
    new = unsubscribe_token("k", "agency", "email", "new-desk@agency.example.org")
    assert (await api.post(f"/unsubscribe/{new}")).status_code == 200
    async with store.read() as tx:
        assert (await tx.contacts(["agency"]))["agency"].email is None


async def test_get_never_unsubscribes(api: httpx.AsyncClient, store: Store) -> None:
    token = unsubscribe_token("k", "press-desk", "email", "press@example.org")
    for _ in range(3):  # a mail scanner, a link preview, the reader
        page = await api.get(f"/unsubscribe/{token}")
        assert page.status_code == 200
        assert '<form method="post"' in page.text
        assert "p***@example.org" in page.text
        assert "press-desk" not in page.text
    head = await api.head(f"/unsubscribe/{token}")
    assert head.status_code in (200, 405)
    async with store.read() as tx:
        assert (await tx.contacts(["press-desk"]))["press-desk"].email == "press@example.org"
    pushed = await api.post(
        f"/v1/meetings/{TALKS}/status", json={"status": "cleared"}, headers=AUTH
    )
    assert pushed.status_code == 202
    async with store.read() as tx:
        queued = await tx.deliveries(limit=100)
    assert any(d.subscriber_id == "press-desk" and d.channel.value == "email" for d in queued)


async def test_the_confirmation_form_posts_under_a_public_url_with_a_path_prefix(
    store: Store, database_url: str, clock: Clock
) -> None:
    token = unsubscribe_token("k", "press-desk", "email", "press@example.org")
    prefixed = "https://news.example.org/notify/"
    async with api_client(store, clock, database_url=database_url, public_url=prefixed) as c:
        page = await c.get(f"/unsubscribe/{token}")
    assert page.status_code == 200
    assert f'action="https://news.example.org/notify/unsubscribe/{token}/page"' in page.text


async def test_the_longest_duration_the_schema_permits_is_stored_not_a_500(
    api: httpx.AsyncClient, store: Store
) -> None:
    # 14,209 weeks overflowed PostgreSQL's 32-bit column (a 500, found by schemathesis):
    # what the schema permits, the server accepts and keeps.
    meeting = {
        "id": "long-window",
        "title": "Long window",
        "timezone": "UTC",
        "starts_at": "2030-01-01T10:00:00Z",
        "coalesce": "999999w",
    }
    created = await api.post("/v1/meetings", json=meeting, headers=AUTH)
    assert created.status_code == 201, created.text
    async with store.read() as tx:
        kept = await tx.meeting("long-window")
    assert kept is not None
    assert kept.coalesce == timedelta(weeks=999999)
    # A change to it is held to the calendar's end, not a 500.
    held = await api.post(
        "/v1/meetings/long-window/status", json={"status": "confirmed"}, headers=AUTH
    )
    assert held.status_code == 202, held.text
    reader = {"id": "far-ahead", "email": "far@example.org", "reminders": ["999999w"]}
    assert (await api.post("/v1/subscribers", json=reader, headers=AUTH)).status_code == 201
