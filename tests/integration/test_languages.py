"""A meeting's own text per language, through the real API and outbox to the wire.

The seed carries the talks in English (the fallback) and Russian. Readers in each
language, of the public and of the participants, by email and by webhook: each gets the
text of their language, per audience within it; a field with no text in a language comes
in the fallback's, and says so (the webhook body's ``data.languages``, ``lang`` in the
email's HTML and on the public page). Unknown languages are refused like unknown
audiences; a meeting that requires a language refuses a change without it. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from notifier.delivery import OutboxWorker
from notifier.store import Store
from tests.helpers.outbox import run_until_idle
from tests.integration.conftest import ROTATED, Clock, api_client
from tests.integration.peers import Receiver, SmtpServer
from tests.wire import decoded_parts

MakeWorker = Callable[..., Awaitable[OutboxWorker]]
TALKS = "moscow-tskhinvali-talks"
AUTH = {"Authorization": "Bearer dev-token"}
TITLE_RU = "Переговоры президентов России и Южной Осетии"
TITLE_EN = "Talks between the presidents of Russia and South Ossetia"


def readers(receiver: Receiver) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for audience in ("public", "participants"):
        for locale in ("en", "ru"):
            common = {"audience": audience, "locale": locale, "tags": ["bilateral"]}
            name = f"{audience}-{locale}"
            found.append({"id": f"{name}-mail", "email": f"{name}@example.org", **common})
            found.append(
                {
                    "id": f"{name}-hook",
                    "webhook": {"url": receiver.url(f"/{name}"), "secrets": [ROTATED]},
                    **common,
                }
            )
    return found


def _bodies(receiver: Receiver, name: str, kind: str) -> list[dict[str, object]]:
    return [
        json.loads(h.body)["data"]
        for h in receiver.verified(f"/{name}")
        if json.loads(h.body)["type"] == kind
    ]


async def test_each_reader_gets_their_language_per_audience_and_the_fallback_marked(
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
        answer = await client.post(
            f"/v1/meetings/{TALKS}/status",
            json={
                "status": "cleared",
                "reason": {"public": "cleared", "participants": "the clearance came in"},
                "texts": {
                    "ru": {
                        "reason": {
                            "public": "препятствия устранены",
                            "participants": "заключение получено",
                        }
                    }
                },
            },
            headers=AUTH,
        )
        assert answer.status_code == 202, answer.text
        # A meeting with a field in one language only: its Russian readers get the
        # English location, marked.
        created = await client.post(
            "/v1/meetings",
            json={
                "id": "briefing",
                "title": "Press briefing",
                "location": "Press centre, hall 2",
                "timezone": "Europe/Moscow",
                "starts_at": "2026-03-01T12:00",
                "tags": ["bilateral"],
                "texts": {"ru": {"title": "Брифинг для прессы"}},
            },
            headers=AUTH,
        )
        assert created.status_code == 201, created.text
        page_ru = (await client.get("/meetings/briefing?lang=ru")).text
        page_en = (await client.get("/meetings/briefing?lang=en")).text
        talks_ru = (await client.get(f"/meetings/{TALKS}?lang=ru")).text
        ics_ru = (await client.get(f"/meetings/{TALKS}/calendar.ics?lang=ru")).text
    worker = await make_worker()
    await run_until_idle(worker)

    # Webhooks: the reader's language, per audience within it, each field's language said.
    (ru_public,) = _bodies(receiver, "public-ru", "meeting.cleared")
    assert ru_public["language"] == "ru"
    assert ru_public["meeting"]["title"] == TITLE_RU  # type: ignore[index]
    assert ru_public["change"]["reason"] == "препятствия устранены"  # type: ignore[index]
    assert ru_public["languages"]["title"] == "ru"  # type: ignore[index]
    (ru_part,) = _bodies(receiver, "participants-ru", "meeting.cleared")
    assert ru_part["change"]["reason"] == "заключение получено"  # type: ignore[index]
    (en_part,) = _bodies(receiver, "participants-en", "meeting.cleared")
    assert en_part["language"] == "en"
    assert en_part["meeting"]["title"] == TITLE_EN  # type: ignore[index]
    assert en_part["change"]["reason"] == "the clearance came in"  # type: ignore[index]
    (briefing_ru,) = _bodies(receiver, "public-ru", "meeting.scheduled")
    assert briefing_ru["meeting"]["title"] == "Брифинг для прессы"  # type: ignore[index]
    assert briefing_ru["meeting"]["location"] == "Press centre, hall 2"  # type: ignore[index]
    assert briefing_ru["languages"] == {"title": "ru", "location": "en"}

    # Email: Russian words to the Russian reader, the English fallback marked in HTML.
    mails = {rcpts[0]: raw for rcpts, raw in smtp_server.box.raw}
    parts = [
        decoded_parts(raw) for rcpt, raw in smtp_server.box.raw if rcpt == ["public-ru@example.org"]
    ]
    briefing_parts = [p for p in parts if any("Брифинг" in v for v in p.values())]
    assert briefing_parts, sorted(mails)
    html = next(v for k, v in briefing_parts[0].items() if "html" in k)
    ru_raw = [raw for rcpt, raw in smtp_server.box.raw if rcpt == ["public-ru@example.org"]]
    assert all(b"\r\nContent-Language: ru\r\n" in raw for raw in ru_raw)
    en_raw = [raw for rcpt, raw in smtp_server.box.raw if rcpt == ["public-en@example.org"]]
    assert all(b"\r\nContent-Language: en\r\n" in raw for raw in en_raw)
    assert 'lang="en">Press centre, hall 2' in html
    assert '<h1 class="ink"' in html
    assert 'lang="en">Брифинг' not in html
    text_en = [
        v
        for rcpt, raw in smtp_server.box.raw
        if rcpt == ["public-en@example.org"]
        for k, v in decoded_parts(raw).items()
        if "plain" in k
    ]
    assert not any("Брифинг" in t or TITLE_RU in t for t in text_en)

    # The public page: the page's language, the fallback's field marked.
    assert '<h1 id="title">Брифинг для прессы</h1>' in page_ru
    assert '<dd lang="en">Press centre, hall 2</dd>' in page_ru
    assert '<h1 id="title">Press briefing</h1>' in page_en
    assert TITLE_RU in talks_ru
    assert "SUMMARY;LANGUAGE=ru:" in ics_ru.replace("\r\n ", "")


async def test_unknown_and_required_languages_are_refused_naming_the_field(
    store: Store, database_url: str, clock: Clock
) -> None:
    clock.now = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
    async with api_client(store, clock, database_url=database_url) as client:
        unknown = await client.post(
            f"/v1/meetings/{TALKS}/status",
            json={"status": "cleared", "texts": {"fr": {"reason": "levée"}}},
            headers=AUTH,
        )
        assert unknown.status_code == 422
        assert "texts.fr: unknown language 'fr'; languages are en, ru" in unknown.text
        fallback = await client.post(
            f"/v1/meetings/{TALKS}/status",
            json={"status": "cleared", "texts": {"en": {"reason": "x"}}},
            headers=AUTH,
        )
        assert fallback.status_code == 422
        assert "texts.en: en is the fallback language" in fallback.text
        audience = await client.post(
            f"/v1/meetings/{TALKS}/status",
            json={"status": "cleared", "texts": {"ru": {"reason": {"pubic": "x"}}}},
            headers=AUTH,
        )
        assert audience.status_code == 422
        assert "texts.ru.reason.pubic: unknown audience 'pubic'" in audience.text
        created = await client.post(
            "/v1/meetings",
            json={
                "id": "bilingual",
                "title": "Bilingual",
                "timezone": "Europe/Moscow",
                "starts_at": "2026-03-01T12:00",
                "texts": {"ru": {"title": "Двуязычная"}},
                "require_languages": ["ru"],
            },
            headers=AUTH,
        )
        assert created.status_code == 201, created.text
        missing = await client.post(
            "/v1/meetings/bilingual/status",
            json={"status": "postponed", "reason": "weather"},
            headers=AUTH,
        )
        assert missing.status_code == 422
        assert "texts.ru.reason: missing; meeting 'bilingual' requires every reason" in missing.text
        given = await client.post(
            "/v1/meetings/bilingual/status",
            json={
                "status": "postponed",
                "reason": "weather",
                "texts": {"ru": {"reason": "погода"}},
            },
            headers=AUTH,
        )
        assert given.status_code == 202, given.text
        history = (await client.get("/v1/meetings/bilingual/history", headers=AUTH)).json()
        assert history[-1]["texts"] == {"ru": {"reason": "погода"}}
    async with store.read() as tx:
        meeting = await tx.meeting(TALKS)
    assert meeting is not None
    assert meeting.status.value == "postponed"  # nothing refused was applied
    assert meeting.texts["ru"]["title"] == TITLE_RU


async def test_a_feed_entry_in_another_language_than_the_feed_says_so(
    store: Store, database_url: str, clock: Clock
) -> None:
    clock.now = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
    async with api_client(store, clock, database_url=database_url) as client:
        created = await client.post(
            "/v1/meetings",
            json={
                "id": "english-only",
                "title": "Press briefing",
                "timezone": "Europe/Moscow",
                "starts_at": "2026-03-01T12:00",
            },
            headers=AUTH,
        )
        assert created.status_code == 201, created.text
        feed = (await client.get("/feed.atom?lang=ru")).text
        one = (await client.get("/meetings/english-only/feed.atom?lang=ru")).text
    assert 'xml:lang="ru"' in feed
    entries = feed.split("<entry")[1:]
    briefing = [e for e in entries if "english-only" in e]
    talks = [e for e in entries if TALKS in e]
    assert briefing
    assert all(e.startswith(' xml:lang="en"') for e in briefing)
    assert talks
    assert not any("xml:lang" in e.split(">")[0] for e in talks)  # in Russian: the feed's
    assert '<entry xml:lang="en">' in one
