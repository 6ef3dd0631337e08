"""The public face's limits under pressure, on SQLite and PostgreSQL: concurrent requests
for one address, forged forwarding headers, sub-addresses; every answer a page."""

from __future__ import annotations

import asyncio

import httpx

from tests.integration.peers import SmtpServer
from tests.integration.test_public import TALKS, form, links, site

__all__ = ["site"]  # the fixture, shared with test_public


async def test_concurrent_requests_for_one_new_address_send_at_most_the_daily_limit(
    site: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    csrf = await form(site, f"/meetings/{TALKS}")

    async def ask() -> httpx.Response:
        return await site.post(
            "/subscribe", data={"csrf": csrf, "email": "race@example.org", "meeting": TALKS}
        )

    # 31 at once for an address nobody has asked for yet: they race to create it.
    answers = await asyncio.gather(*(ask() for _ in range(31)))
    assert {a.status_code for a in answers} == {202}, [a.text[:200] for a in answers]
    assert all(a.headers["content-type"].startswith("text/html") for a in answers)
    assert all("Check your mail" in a.text for a in answers)
    assert len(links(smtp_server, "race@example.org")) == 3
    # Then more at once (within the per-client limit of the site): the limit holds.
    answers = await asyncio.gather(*(ask() for _ in range(15)))
    assert {a.status_code for a in answers} == {202}
    assert len(links(smtp_server, "race@example.org")) == 3
