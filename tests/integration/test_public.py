"""The public face over the real app: pages, double opt-in, manage links, feeds, limits.

Run on SQLite and PostgreSQL with a real aiosmtpd server taking the confirmation emails.
Pages and feeds are checked for the seed's participants-only words (they are made from
the public view alone).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import feedparser
import httpx
from icalendar import Calendar

from notifier import service
from notifier.delivery import OutboxWorker
from notifier.domain.models import MeetingStatus, StatusChange
from notifier.domain.retry import RetryPolicy
from notifier.metrics import REGISTRY
from notifier.store import Store
from notifier.subscriptions import subscriber_id_for
from notifier.tokens import link_token
from tests.helpers.public import POSTMEN, TALKS, form, links
from tests.integration.conftest import Clock, api_client
from tests.integration.peers import SmtpServer
from tests.wire import decoded_parts

AUTH = {"Authorization": "Bearer dev-token"}
#: What only the participants may read in the seed: never on a page or in a feed.
PRIVATE = ("medical", "health", "new date will be announced", "медицинск", "новая дата")


async def test_pages_show_the_public_view_only_with_a_strict_policy(
    site: httpx.AsyncClient,
) -> None:
    index = await site.get("/", headers={"Accept-Language": "ru, en;q=0.5"})
    assert index.status_code == 200
    assert 'lang="ru"' in index.text
    assert "Переговоры президентов России и Южной Осетии" in index.text  # its Russian title
    english = await site.get("/", headers={"Accept-Language": "en"})
    assert "Talks between the presidents" in english.text
    page = await site.get(f"/meetings/{TALKS}?tz=America/New_York&lang=en")
    assert page.status_code == 200
    assert "Postponed" in page.text
    assert "11:00" in page.text  # 19:00 in Moscow is 11:00 in New York
    assert "America/New_York" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "<script>" not in page.text  # no inline script anywhere
    for word in PRIVATE:
        assert word not in page.text.lower(), word
    assert (await site.get("/meetings/nothing-here")).status_code == 404
    assert (await site.get("/meetings/../etc")).status_code == 404


async def test_non_public_meetings_are_not_found_and_retired_ones_are_gone(
    site: httpx.AsyncClient,
) -> None:
    created = await site.post(
        "/v1/meetings",
        json={
            "id": "briefing",
            "title": "Press briefing",
            "timezone": "UTC",
            "starts_at": "2026-03-05T10:00:00+00:00",
            "audience": "press",
        },
        headers=AUTH,
    )
    assert created.status_code == 201
    assert (await site.get("/meetings/briefing")).status_code == 404
    assert "Press briefing" not in (await site.get("/")).text
    retired = await site.post(
        "/v1/meetings",
        json={
            "id": "old-talks",
            "title": "Old talks",
            "timezone": "UTC",
            "starts_at": "2026-03-05T10:00:00+00:00",
        },
        headers=AUTH,
    )
    assert retired.status_code == 201
    assert (await site.get("/meetings/old-talks")).status_code == 200
    assert (await site.delete("/v1/meetings/old-talks", headers=AUTH)).status_code == 204
    # A public meeting retired is gone (410, a page that says so); a gated one is not
    # found: saying it is gone would tell the public it existed.
    gone = await site.get("/meetings/old-talks", headers={"accept-language": "ru"})
    assert gone.status_code == 410
    assert gone.headers["content-type"].startswith("text/html")
    assert "Встреча снята с публикации" in gone.text
    assert (await site.get("/meetings/old-talks/feed.atom")).status_code == 410
    hidden = await site.get("/meetings/briefing")
    assert hidden.status_code == 404
    assert "Page not found" in hidden.text
    assert "briefing" not in hidden.text.replace("/meetings/briefing", "")
    assert "Press briefing" not in (await site.get("/feed.atom")).text
    assert "Press briefing" not in (await site.get("/calendar.ics")).text


async def test_double_opt_in_sends_one_confirmation_then_news(
    site: httpx.AsyncClient, store: Store, clock: Clock, smtp_server: SmtpServer
) -> None:
    csrf = await form(site, f"/meetings/{TALKS}")
    answer = await site.post(
        "/subscribe",
        data={
            "csrf": csrf,
            "email": "reader@example.org",
            "meeting": TALKS,
            "timezone": "America/New_York",
            "locale": "en",
            "kinds": ["meeting.cleared", "meeting.rescheduled"],
        },
    )
    assert answer.status_code == 202
    assert "Check your mail" in answer.text
    (confirm_link,) = links(smtp_server, "reader@example.org")
    token = confirm_link.rsplit("/", 1)[1]
    # It names what was asked for and for which address (else it reads like phishing).
    ((_, raw),) = [m for m in smtp_server.box.raw if m[0] == ["reader@example.org"]]
    asked = decoded_parts(raw)["text/plain"]
    assert 'news about "Talks between the presidents of Russia and South Ossetia"' in asked
    assert "We received a request to send news about" in asked
    assert "to reader@example.org." in asked
    # Stored hashed: the token itself is nowhere in the database.
    async with store.read() as tx:
        record = await tx.subscriber_record(subscriber_id_for("reader@example.org"))
    assert record is not None
    assert not record.subscriber.active
    assert not record.subscriber.confirmed
    # Nothing is sent to an unconfirmed reader.
    await service.apply_status_change(
        store,
        StatusChange(meeting_id=TALKS, status=MeetingStatus.CLEARED, reason="cleared"),
        now=clock(),
    )
    async with store.read() as tx:
        queued = await tx.deliveries(limit=100)
    assert record.subscriber.id not in {d.subscriber_id for d in queued}

    # A GET of the link confirms nothing (mail scanners); the button does.
    shown = await site.get(confirm_link.replace("http://127.0.0.1:8080", ""))
    assert shown.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', shown.text).group(1)  # type: ignore[union-attr]
    async with store.read() as tx:
        assert not (await tx.subscriber_record(record.subscriber.id)).subscriber.active  # type: ignore[union-attr]
    done = await site.post(f"/subscribe/confirm/{token}", data={"csrf": csrf, "lang": "en"})
    assert done.status_code == 200
    assert "Subscription confirmed" in done.text
    again = await site.post(f"/subscribe/confirm/{token}", data={"csrf": csrf, "lang": "en"})
    assert again.status_code == 404  # one use

    result = await service.apply_status_change(
        store,
        StatusChange(
            meeting_id=TALKS,
            status=MeetingStatus.RESCHEDULED,
            starts_at=datetime(2026, 3, 2, 21, tzinfo=UTC),
            reason="moved",
        ),
        now=clock(),
    )
    async with store.read() as tx:
        queued = await tx.deliveries(limit=100)
    mine = [d for d in queued if d.subscriber_id == record.subscriber.id]
    assert [d.kind.value for d in mine] == ["meeting.rescheduled"]
    assert result.deliveries >= 1
    # The news arrives with the reader's own calendar link in its footer, and it works.
    worker = OutboxWorker(
        store, POSTMEN[id(store)], policy=RetryPolicy(jitter=0), clock=clock, rng=lambda: 0.5
    )
    while await worker.run_once():
        pass
    footer = [u for u in links(smtp_server, "reader@example.org") if "/calendar/" in u]
    assert len(footer) == 1
    # Its footer has the reader's manage page too (operators' readers have none).
    manages = [u for u in links(smtp_server, "reader@example.org") if "/manage/" in u]
    assert len(manages) == 1
    assert (await site.get(manages[0].replace("http://127.0.0.1:8080", ""))).status_code == 200
    others = [
        decoded_parts(raw) for rcpts, raw in smtp_server.box.raw if rcpts != ["reader@example.org"]
    ]
    assert others
    assert not any("/manage/" in text for parts in others for text in parts.values())
    own = await site.get(footer[0].replace("http://127.0.0.1:8080", ""))
    assert own.status_code == 200
    (event,) = Calendar.from_ical(own.content).walk("VEVENT")
    assert str(event["uid"]) == f"{TALKS}@example.org"

    # The manage page: GET shows, POST acts.
    manage = re.search(r'href="/manage/([^"]+)"', done.text).group(1)  # type: ignore[union-attr]
    page = await site.get(f"/manage/{manage}")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    calendar = re.search(r'id="private-calendar">([^<]+)<', page.text).group(1)  # type: ignore[union-attr]
    private = await site.get(calendar.replace("http://127.0.0.1:8080", ""))
    assert private.status_code == 200
    assert Calendar.from_ical(private.content).walk("VEVENT")
    saved = await site.post(
        f"/manage/{manage}",
        data={
            "csrf": csrf,
            "action": "save",
            "timezone": "Europe/Berlin",
            "locale": "ru",
            "kinds": ["meeting.cancelled"],
        },
    )
    assert saved.status_code == 303
    async with store.read() as tx:
        now_wants = (await tx.subscriber_record(record.subscriber.id)).subscriber  # type: ignore[union-attr]
    assert (now_wants.timezone, now_wants.locale, now_wants.events) == (
        "Europe/Berlin",
        "ru",
        ("meeting.cancelled",),
    )
    # New links: the old manage and calendar links stop working.
    rotated = await site.post(f"/manage/{manage}", data={"csrf": csrf, "action": "rotate"})
    assert rotated.status_code == 303
    assert (await site.get(f"/manage/{manage}")).status_code == 404
    assert (await site.get(calendar.replace("http://127.0.0.1:8080", ""))).status_code == 404
    fresh = rotated.headers["location"].split("?")[0]
    left = await site.post(fresh, data={"csrf": csrf, "action": "leave"})
    assert left.status_code == 200
    async with store.read() as tx:
        gone = await tx.subscriber_record(record.subscriber.id)
    assert gone is not None
    assert gone.retired_at is not None


async def test_forms_without_their_csrf_token_change_nothing(
    site: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    await form(site, f"/meetings/{TALKS}")
    forged = await site.post(
        "/subscribe", data={"csrf": "guess", "email": "x@example.org", "meeting": TALKS}
    )
    assert forged.status_code == 403
    assert smtp_server.box.raw == []


async def test_one_address_cannot_be_bombed(
    site: httpx.AsyncClient, smtp_server: SmtpServer, store: Store, clock: Clock
) -> None:
    csrf = await form(site, f"/meetings/{TALKS}")
    answers = []
    for _ in range(10):
        answer = await site.post(
            "/subscribe", data={"csrf": csrf, "email": "victim@example.org", "meeting": TALKS}
        )
        answers.append((answer.status_code, "Check your mail" in answer.text))
    # The same neutral answer every time; three emails at most in a day.
    assert set(answers) == {(202, True)}
    assert len(links(smtp_server, "victim@example.org")) == 3
    refused = REGISTRY.get_sample_value(
        "notifier_subscriptions_total", {"outcome": "refused_address_limit"}
    )
    assert refused is not None
    assert refused >= 7
    # The next day the address may be asked again (pruned counts are a day old).
    clock.now = clock.now + timedelta(days=1, minutes=1)
    await service.prune(store, retention=timedelta(0), now=clock())
    await site.post(
        "/subscribe", data={"csrf": csrf, "email": "victim@example.org", "meeting": TALKS}
    )
    assert len(links(smtp_server, "victim@example.org")) == 4


async def test_one_client_is_limited_per_hour(site: httpx.AsyncClient) -> None:
    csrf = await form(site, f"/meetings/{TALKS}")
    codes = []
    for number in range(55):
        answer = await site.post(
            "/subscribe",
            data={"csrf": csrf, "email": f"r{number}@example.org", "meeting": TALKS},
        )
        codes.append(answer.status_code)
    assert codes[:50] == [202] * 50
    assert set(codes[50:]) == {429}


async def test_unconfirmed_subscriptions_are_pruned_after_their_link_runs_out(
    site: httpx.AsyncClient, store: Store, clock: Clock
) -> None:
    csrf = await form(site, f"/meetings/{TALKS}")
    await site.post(
        "/subscribe", data={"csrf": csrf, "email": "late@example.org", "meeting": TALKS}
    )
    pruned = await service.prune(store, retention=timedelta(0), now=clock() + timedelta(hours=23))
    assert pruned.unconfirmed == 0
    pruned = await service.prune(store, retention=timedelta(0), now=clock() + timedelta(hours=25))
    assert pruned.unconfirmed == 1


async def test_feeds_parse_and_answer_conditional_gets(site: httpx.AsyncClient) -> None:
    atom = await site.get("/feed.atom")
    assert atom.status_code == 200
    parsed = feedparser.parse(atom.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert len(parsed.entries) == 3  # the seed's history
    assert len({e.id for e in parsed.entries}) == 3
    assert all(e.updated for e in parsed.entries)
    for word in PRIVATE:
        assert word not in atom.text.lower()
    again = await site.get("/feed.atom", headers={"If-None-Match": atom.headers["etag"]})
    assert again.status_code == 304
    since = await site.get(
        "/feed.atom", headers={"If-Modified-Since": atom.headers["last-modified"]}
    )
    assert since.status_code == 304

    ics = await site.get(f"/meetings/{TALKS}/calendar.ics")
    assert ics.status_code == 200
    calendar = Calendar.from_ical(ics.content)
    (event,) = calendar.walk("VEVENT")
    assert str(event["status"]) == "TENTATIVE"
    assert str(event["summary"]).startswith("Postponed: ")
    assert str(event["uid"]) == f"{TALKS}@example.org"
    assert b"REFRESH-INTERVAL;VALUE=DURATION:PT15M" in ics.content
    assert b"X-PUBLISHED-TTL:PT15M" in ics.content
    for word in PRIVATE:
        assert word not in ics.text.lower()
    assert (
        await site.get(
            f"/meetings/{TALKS}/calendar.ics", headers={"If-None-Match": ics.headers["etag"]}
        )
    ).status_code == 304


async def test_the_pages_are_off_unless_enabled(
    store: Store, database_url: str, clock: Clock
) -> None:
    async with api_client(
        store, clock, database_url=database_url, public={"enabled": False}
    ) as client:
        assert (await client.get("/")).status_code == 404
        assert (await client.get("/feed.atom")).status_code == 404
        docs = await client.get("/docs")
        assert docs.status_code == 200
        assert "cdn" not in docs.text.lower()
        assert (await client.get("/docs/assets/swagger-ui-bundle.js")).status_code == 200


async def test_a_bad_address_or_meeting_is_a_page_that_says_so(
    site: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    csrf = await form(site, f"/meetings/{TALKS}")
    bad = await site.post(
        "/subscribe", data={"csrf": csrf, "email": "not an address", "meeting": TALKS}
    )
    assert bad.status_code == 422
    assert "That is not an email address" in bad.text
    unknown = await site.post(
        "/subscribe", data={"csrf": csrf, "email": "a@example.org", "meeting": "nothing"}
    )
    assert unknown.status_code == 404
    assert "There is no such public meeting" in unknown.text
    assert unknown.headers["content-type"].startswith("text/html")
    assert smtp_server.box.raw == []


async def test_a_manage_link_opens_only_what_a_reader_set_up_themselves(
    site: httpx.AsyncClient,
) -> None:
    # A well-signed link for a subscriber the config file owns: still no manage page.
    forged = link_token("k", "manage", "press-desk", "")
    assert (await site.get(f"/manage/{forged}")).status_code == 404
    assert (await site.get("/manage/nonsense")).status_code == 404


async def test_an_atom_entry_keeps_what_its_change_said_and_the_feed_names_its_author(
    site: httpx.AsyncClient, store: Store, clock: Clock
) -> None:
    before = feedparser.parse((await site.get(f"/meetings/{TALKS}/feed.atom")).content)
    first = {e.id: e.summary for e in before.entries}
    # The talks move to the evening of 4 March: what earlier entries said must not change.
    evening = datetime(2026, 3, 4, 17, 30, tzinfo=UTC)  # 20:30 in Moscow
    await service.apply_status_change(
        store,
        StatusChange(
            meeting_id=TALKS,
            status=MeetingStatus.RESCHEDULED,
            reason="rescheduled",  # only the status word again: adds nothing, not repeated
            starts_at=evening,
        ),
        now=clock(),
    )
    after = await site.get(f"/meetings/{TALKS}/feed.atom")
    parsed = feedparser.parse(after.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.feed.author  # RFC 4287 4.1.1
    assert 'xml:lang="en"' in after.text
    assert {e.id: e.summary for e in parsed.entries if e.id in first} == first
    (newest,) = [e for e in parsed.entries if e.id not in first]
    assert newest.summary == "Rescheduled. Starts 4 March 2026, 20:30 MSK (Europe/Moscow)."
    for entry in parsed.entries:
        words = re.findall(r"[a-z]+", entry.summary.lower())
        status = words[0]
        assert words.count(status) == 1, entry.summary  # the status is said once


async def test_a_visitor_in_utc_gets_utc_preselected_in_the_subscribe_form(
    site: httpx.AsyncClient,
) -> None:
    # It was the one option never marked: the browser then chose the first, Africa/Abidjan.
    page = (await site.get(f"/meetings/{TALKS}?tz=UTC")).text
    field = re.search(r'<input list="tz-list" name="timezone" id="sub-tz" value="([^"]*)"', page)
    assert field is not None
    assert field.group(1) == "UTC"
    # The list offers UTC itself, first, and only current names (Europe/Kyiv, never Kiev).
    names = re.findall(r'<option value="([^"]+)">', page[page.index('<datalist id="tz-list">') :])
    assert names[0] == "UTC"
    assert "Europe/Kyiv" in names
    assert "Europe/Kiev" not in names
    assert page.count('<datalist id="tz-list">') == 1
