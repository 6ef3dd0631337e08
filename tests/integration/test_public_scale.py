"""The public pages and feeds cost the same at a handful of meetings and at many: bounded
entries, a fixed number of queries, and conditional GETs answered without building the
document. Counted in SQL statements and builds, on SQLite and PostgreSQL (no timings)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import feedparser
import httpx
import pytest
from icalendar import Calendar
from sqlalchemy import event

from notifier import service
from notifier.domain.models import Meeting, MeetingStatus, Source, StatusChange
from notifier.public import pages
from notifier.store import Store
from notifier.store.queries import Transaction
from tests.helpers.public import TALKS, form
from tests.integration.conftest import Clock


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SQL statements the store runs inside the block."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", note)


async def add_meetings(store: Store, clock: Clock, count: int, first: int = 0) -> None:
    meetings = [
        (
            Meeting(
                id=f"m-{n}",
                title=f"Meeting {n}",
                timezone="UTC",
                starts_at=clock() + timedelta(days=2, minutes=n),
                status=MeetingStatus.SCHEDULED,
                source=Source.API,
            ),
            f"scale-{n}",
        )
        for n in range(first, first + count)
    ]
    async with store.write() as tx:
        await service.create_meetings_in(tx, store.planning, meetings, now=clock())


async def measure(
    site: httpx.AsyncClient, store: Store, path: str, **headers: str
) -> tuple[httpx.Response, int]:
    with statements(store) as seen:
        answer = await site.get(path, headers=headers)
    return answer, len(seen)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each Atom or calendar document the pages build."""
    made: list[str] = []

    def counted(name: str) -> Callable[..., Any]:
        original = getattr(pages, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            made.append(name)
            return original(*args, **kwargs)

        return wrapper

    for name in ("_atom", "_ics"):
        monkeypatch.setattr(pages, name, counted(name))
    return made


async def test_the_feeds_and_index_cost_the_same_at_few_and_many_meetings(
    site: httpx.AsyncClient, store: Store, clock: Clock, builds: list[str]
) -> None:
    await add_meetings(store, clock, 5)
    few = {path: await measure(site, store, path) for path in ("/feed.atom", "/", "/calendar.ics")}
    await add_meetings(store, clock, 150, first=5)
    many = {path: await measure(site, store, path) for path in ("/feed.atom", "/", "/calendar.ics")}
    for path in few:
        assert few[path][0].status_code == many[path][0].status_code == 200
        # The same statements whatever the size of the store (old code: one per meeting).
        assert few[path][1] == many[path][1], path

    atom = feedparser.parse(many["/feed.atom"][0].content)
    assert not atom.bozo
    assert len(atom.entries) == 50  # public.feed_entries: the newest changes
    assert all("/meetings/m-" in e.link for e in atom.entries)
    index = many["/"][0].text
    assert index.count('href="/meetings/') == 50  # public.page_entries upcoming, none recent
    (calendar, _) = many["/calendar.ics"]
    assert len(Calendar.from_ical(calendar.content).walk("VEVENT")) == 156


async def test_a_conditional_get_of_a_feed_builds_nothing_and_runs_one_query(
    site: httpx.AsyncClient, store: Store, clock: Clock, builds: list[str]
) -> None:
    await add_meetings(store, clock, 150)
    for path in ("/feed.atom", "/calendar.ics"):
        first, _ = await measure(site, store, path)
        assert first.status_code == 200
        builds.clear()
        again, queries = await measure(
            site, store, path, **{"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304
        assert builds == []
        assert queries <= 3  # the stamp (and BEGIN / COMMIT where the driver says them)
        since, _ = await measure(
            site, store, path, **{"If-Modified-Since": first.headers["last-modified"]}
        )
        assert since.status_code == 304
    # A change moves the validator: the next conditional GET gets the new document.
    etag = (await site.get("/feed.atom")).headers["etag"]
    await service.apply_status_change(
        store,
        StatusChange(meeting_id="m-3", status=MeetingStatus.CANCELLED, reason="off"),
        now=clock() + timedelta(minutes=1),
    )
    changed = await site.get("/feed.atom", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert "Meeting 3: Cancelled" in feedparser.parse(changed.content).entries[0].title


async def test_a_subscribe_request_for_a_meeting_reads_that_meeting_not_every_one(
    site: httpx.AsyncClient, store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_meetings(store, clock, 150)
    csrf = await form(site, f"/meetings/{TALKS}")
    everything: list[str] = []
    original = Transaction.meeting_records

    async def counted(self: Transaction, **kwargs: Any) -> Any:
        everything.append("meeting_records")
        return await original(self, **kwargs)

    monkeypatch.setattr(Transaction, "meeting_records", counted)
    answer = await site.post(
        "/subscribe", data={"csrf": csrf, "email": "one@example.org", "meeting": TALKS}
    )
    assert answer.status_code == 202
    assert everything == []  # old code read all 151 meetings to check the one asked for
