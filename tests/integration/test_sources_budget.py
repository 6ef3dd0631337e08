"""A feed's parse within its time and memory budget (`feeds.parse_timeout`,
`feeds.parse_memory_mib`), through the poller, feeds on real local HTTP servers, both
backends: the hostile feed alone is refused with its reason, the others are applied."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiohttp import web
from pydantic import ValidationError

from notifier import service
from notifier.settings import FeedSettings, SourceConfig
from notifier.sources.parsers import Parsers
from notifier.sources.poller import SourcePoller
from notifier.store import Store
from tests.integration.conftest import Clock, Feed, api_client

#: The whole of a poll bounded by a hostile parse: its budget (2 s here) and then some.
PATIENCE = 30


def calendar(*events: str) -> bytes:
    body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    for event in events:
        body += "BEGIN:VEVENT\r\n" + event.strip().replace("\n", "\r\n") + "\r\nEND:VEVENT\r\n"
    return (body + "END:VCALENDAR\r\n").encode()


def event(uid: str, start: str = "20300302T190000Z") -> str:
    return f"UID:{uid}\nDTSTAMP:20300101T000000Z\nDTSTART:{start}\nSUMMARY:{uid}"


#: Day 100 of the year is never in January: dateutil looks for the first occurrence of
#: this rule until the year 9999 (about 5 s a series on this machine; no reason is given
#: per event, so the time budget is what bounds it).
SLOW = event("slow") + "\nRRULE:FREQ=DAILY;BYMONTH=1;BYYEARDAY=100"


@asynccontextmanager
async def served() -> AsyncIterator[Feed]:
    """Another feed server like the `feed` fixture's, on a free loopback port."""
    document = Feed()
    app = web.Application()
    app.router.add_get("/feed", document.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    document.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield document
    finally:
        await runner.cleanup()


@asynccontextmanager
async def parsers_of(**feeds: object) -> AsyncIterator[Parsers]:
    """Parser processes as the daemon makes them from the `[feeds]` settings given."""
    settings = FeedSettings.model_validate(feeds)
    parsers = Parsers(
        timeout=settings.parse_timeout.total_seconds(),
        memory_mib=settings.parse_memory_mib,
        size=settings.parsers,
    )
    try:
        yield parsers
    finally:
        parsers.stop()


def poller(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient, parsers: Parsers
) -> SourcePoller:
    config = SourceConfig(kind="ics", url=feed.url(), every=timedelta(seconds=60))  # type: ignore[arg-type]
    return SourcePoller(store, config, client, clock=clock, parsers=parsers)


async def test_a_feed_over_its_time_budget_is_refused_alone_and_the_others_are_applied(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient, database_url: str
) -> None:
    clock.now = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    async with served() as normal_feed, parsers_of(parse_timeout="2s") as parsers:
        feed.body = calendar(*[SLOW.replace("UID:slow", f"UID:slow-{n}") for n in range(4)])
        normal_feed.body = calendar(event("talks"))
        hostile, normal = (poller(store, f, clock, client, parsers) for f in (feed, normal_feed))
        refused, applied = await asyncio.wait_for(
            asyncio.gather(hostile.poll(), normal.poll()), PATIENCE
        )
        assert (applied.outcome, applied.applied) == ("changed", 1)
        assert refused.outcome == "failed"
        reason = "parsing took longer than 2 s (feeds.parse_timeout); feed refused"
        assert refused.problems == [reason]

        # The killed parser was replaced: the next feed is parsed as if nothing happened.
        normal_feed.body = calendar(event("talks"), event("summit", "20300303T190000Z"))
        again = await asyncio.wait_for(normal.poll(), PATIENCE)
        assert (again.outcome, again.applied) == ("changed", 1)

        sources = [{"kind": "ics", "url": f.url()} for f in (feed, normal_feed)]
        async with api_client(
            store,
            clock,
            database_url=database_url,
            sources=sources,
            feeds={"allow_cidrs": ["127.0.0.1/32"]},
        ) as api:
            answer = await api.get("/v1/sources", headers={"authorization": "Bearer dev-token"})
    assert answer.status_code == 200
    shown = {row["url"]: row for row in answer.json()}
    assert (shown[feed.url()]["last_error"], shown[feed.url()]["failures"]) == (reason, 1)
    assert shown[normal_feed.url()]["last_error"] is None
    assert shown[normal_feed.url()]["followed"] == 2


async def test_a_feed_over_its_memory_budget_is_refused_and_the_parser_replaced(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient
) -> None:
    clock.now = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    async with served() as normal_feed, parsers_of(parse_memory_mib=64) as parsers:
        # 60,000 small events (6.6 MB): a few hundred MiB once read into components.
        feed.body = calendar(*[event(f"e{n}") for n in range(60_000)])
        normal_feed.body = calendar(event("talks"))
        hostile, normal = (poller(store, f, clock, client, parsers) for f in (feed, normal_feed))
        refused = await asyncio.wait_for(hostile.poll(), PATIENCE)
        assert refused.outcome == "failed"
        reason = "the parser needed more than 64 MiB (feeds.parse_memory_mib) for this feed"
        assert refused.problems == [f"{reason}; feed refused"]
        applied = await asyncio.wait_for(normal.poll(), PATIENCE)
        assert (applied.outcome, applied.applied) == ("changed", 1)
    hostile_report, normal_report = await service.source_report(
        store, [hostile.config, normal.config]
    )
    assert hostile_report.last_error == f"{reason}; feed refused"
    assert hostile_report.followed == 0
    assert (normal_report.followed, normal_report.last_error) == (1, None)


def test_the_parse_budget_has_safe_defaults_and_bounds() -> None:
    defaults = FeedSettings()
    assert (defaults.parse_timeout, defaults.parse_memory_mib, defaults.parsers) == (
        timedelta(seconds=60),
        1024,
        2,
    )
    for wrong in ({"parse_timeout": "0s"}, {"parse_timeout": "2h"}, {"parse_memory_mib": 8}):
        with pytest.raises(ValidationError):
            FeedSettings.model_validate(wrong)
