"""What the public face answers: pages for every form post (in the visitor's language),
private feeds that are private and stop with the subscription, cookies fit for https, and
a subscribe path that does the same work whether or not the address is subscribed."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from notifier.store import Store
from notifier.store.queries import Transaction
from notifier.tokens import link_token, unsubscribe_token
from tests.helpers.public import TALKS, form, links
from tests.integration.conftest import Clock, api_client, port_methods
from tests.integration.peers import SmtpServer


async def confirmed_reader(
    site: httpx.AsyncClient, smtp_server: SmtpServer, address: str, **choices: Any
) -> str:
    """Subscribe `address` (with the form's `choices`) and follow its link; the reader's
    manage token."""
    csrf = await form(site, f"/meetings/{TALKS}")
    answer = await site.post(
        "/subscribe", data={"csrf": csrf, "email": address, "meeting": TALKS, **choices}
    )
    assert answer.status_code == 202
    token = links(smtp_server, address)[-1].rsplit("/", 1)[1]
    done = await site.post(f"/subscribe/confirm/{token}", data={"csrf": csrf, "lang": "en"})
    assert done.status_code == 200
    manage = re.search(r'href="/manage/([^"]+)"', done.text)
    assert manage is not None
    return manage.group(1)


def assert_page(answer: httpx.Response, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text[:300]
    assert answer.headers["content-type"].startswith("text/html"), answer.text[:300]
    assert words in answer.text


async def test_every_answer_to_a_form_post_is_a_page_in_the_visitors_language(
    site: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    csrf = await form(site, f"/meetings/{TALKS}")
    too_long = await site.post(
        "/subscribe", data={"csrf": csrf, "email": "a" * 400 + "@example.org", "meeting": TALKS}
    )
    assert_page(too_long, 422, "This form could not be read")
    fields = [("csrf", csrf), ("email", "f@example.org"), ("meeting", TALKS)]
    fields += [(f"x{n}", "1") for n in range(1_100)]
    many = await site.post(
        "/subscribe",
        content=httpx.QueryParams(fields).__str__().encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_page(many, 400, "This form could not be read")
    russian = await site.post(
        "/subscribe",
        data={"csrf": csrf, "email": "a" * 400 + "@example.org", "meeting": TALKS},
        headers={"Accept-Language": "ru"},
    )
    assert_page(russian, 422, "Не удалось обработать форму")

    manage = await confirmed_reader(
        site, smtp_server, "kinds@example.org", kinds=["meeting.cleared"]
    )
    page = await site.get(f"/manage/{manage}")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    # Every kind unticked: a page saying what to do, not a problem document.
    none = await site.post(
        f"/manage/{manage}", data={"csrf": token.group(1), "action": "save", "kinds": []}
    )
    assert_page(none, 422, "Choose at least one kind of news")
    gone = await site.post("/manage/forged", data={"csrf": token.group(1), "action": "leave"})
    assert_page(gone, 404, "This link does not work")


async def test_a_private_calendar_is_private_and_stops_with_a_one_click_unsubscribe(
    site: httpx.AsyncClient,
) -> None:
    calendar = link_token("k", "calendar", "press-desk", "")
    own = await site.get(f"/calendar/{calendar}.ics")
    assert own.status_code == 200
    assert own.headers["cache-control"].startswith("private")
    unsubscribe = unsubscribe_token("k", "press-desk", "email", "press@example.org")
    assert (await site.post(f"/unsubscribe/{unsubscribe}")).status_code == 200
    assert (await site.get(f"/calendar/{calendar}.ics")).status_code == 404


async def test_over_https_the_csrf_cookie_is_secure_and_host_only(
    store: Store, database_url: str, clock: Clock
) -> None:
    async with api_client(
        store,
        clock,
        database_url=database_url,
        public={"enabled": True},
        public_url="https://status.example.org",
    ) as client:
        page = await client.get(f"/meetings/{TALKS}")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("__Host-notifier_csrf=")
    assert "Secure" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie
    async with api_client(
        store, clock, database_url=database_url, public={"enabled": True}
    ) as client:
        page = await client.get(f"/meetings/{TALKS}")
    assert page.headers["set-cookie"].startswith("notifier_csrf=")  # loopback http


@pytest.fixture
def port_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every storage port method called, in order."""
    calls: list[str] = []
    for name in port_methods():
        original = getattr(Transaction, name)

        async def noted(
            self: Transaction, *args: Any, __o: Any = original, __n: str = name, **kw: Any
        ) -> Any:
            calls.append(__n)
            return await __o(self, *args, **kw)

        monkeypatch.setattr(Transaction, name, noted)
    return calls


async def test_subscribing_a_new_and_a_subscribed_address_does_the_same_work(
    site: httpx.AsyncClient, smtp_server: SmtpServer, port_calls: list[str]
) -> None:
    await confirmed_reader(site, smtp_server, "known@example.org")
    csrf = await form(site, f"/meetings/{TALKS}")
    seen = {}
    for address in ("known@example.org", "new@example.org"):
        before = len(smtp_server.box.raw)
        port_calls.clear()
        answer = await site.post(
            "/subscribe", data={"csrf": csrf, "email": address, "meeting": TALKS}
        )
        assert_page(answer, 202, "Check your mail")
        assert len(smtp_server.box.raw) == before + 1  # one email either way
        seen[address] = list(port_calls)
    assert "save_subscriber" in seen["new@example.org"]
    assert seen["known@example.org"] == seen["new@example.org"]
