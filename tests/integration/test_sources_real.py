"""Real-world calendars through the poller, on a real local HTTP server, both backends:
recurring series, bad events, size caps, chunked application, one poll at a time."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from notifier import service
from notifier.domain.models import EventKind, Meeting, MeetingStatus, Source, Subscriber
from notifier.metrics import REGISTRY
from notifier.settings import SourceConfig
from notifier.sources.feed import meeting_id_for
from notifier.sources.ics import occurrence_key
from notifier.sources.poller import SourcePoller
from notifier.store import Store
from tests.integration.conftest import Clock, Feed, api_client

S = MeetingStatus
BERLIN = ZoneInfo("Europe/Berlin")
FIXTURES = Path(__file__).parent.parent / "fixtures" / "ics"
UID = "briefing@calendar.example.org"


def poller_for(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient, **kw: object
) -> SourcePoller:
    options: dict[str, object] = {"every": timedelta(seconds=60)}
    max_bytes = kw.pop("max_bytes", 20 * 1024 * 1024)
    options.update(kw)
    config = SourceConfig(kind="ics", url=feed.url(), **options)  # type: ignore[arg-type]
    return SourcePoller(store, config, client, clock=clock, max_bytes=max_bytes)  # type: ignore[arg-type]


def calendar(*events: str) -> bytes:
    body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    for event in events:
        body += "BEGIN:VEVENT\r\n" + event.strip().replace("\n", "\r\n") + "\r\nEND:VEVENT\r\n"
    return (body + "END:VCALENDAR\r\n").encode()


def series(
    *,
    summary: str = "Weekly briefing",
    exdates: tuple[str, ...] = (),
    moved: dict[str, str] | None = None,
    cancelled: tuple[str, ...] = (),
) -> bytes:
    """Thursdays at 10:00 Berlin from 2030-03-07, six times; overrides by original day."""
    master = f"""UID:{UID}
DTSTAMP:20300101T000000Z
DTSTART;TZID=Europe/Berlin:20300307T100000
DURATION:PT1H
RRULE:FREQ=WEEKLY;COUNT=6
SUMMARY:{summary}
SEQUENCE:0"""
    for day in exdates:
        master += f"\nEXDATE;TZID=Europe/Berlin:{day}T100000"
    events = [master]
    for day, start in (moved or {}).items():
        events.append(
            f"UID:{UID}\nDTSTAMP:20300101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:{day}T100000"
            f"\nDTSTART;TZID=Europe/Berlin:{start}\nDURATION:PT1H\nSUMMARY:Briefing, moved"
            "\nSEQUENCE:1"
        )
    for day in cancelled:
        events.append(
            f"UID:{UID}\nDTSTAMP:20300101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:{day}T100000"
            f"\nDTSTART;TZID=Europe/Berlin:{day}T100000\nSTATUS:CANCELLED\nSUMMARY:{summary}"
            "\nSEQUENCE:1"
        )
    return calendar(*events)


def occurrence(day: int, month: int = 3) -> str:
    return meeting_id_for(occurrence_key(UID, datetime(2030, month, day, 10, tzinfo=BERLIN)))


async def kinds(store: Store, meeting_id: str) -> list[EventKind]:
    async with store.read() as tx:
        return [e.kind for e in await tx.history(meeting_id)]


async def test_a_series_is_a_meeting_per_occurrence_and_each_edit_reaches_its_own(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient
) -> None:
    clock.now = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    async with store.write() as tx:
        await tx.save_subscriber(
            Subscriber(id="desk", email="desk@example.org", source=Source.API), now=clock()
        )
    poller = poller_for(store, feed, clock, client, horizon=timedelta(days=60))
    feed.etags = False
    feed.body = series()
    first = await poller.poll()
    assert (first.outcome, first.applied, first.followed) == ("changed", 6, 6)
    days = [(7, 3), (14, 3), (21, 3), (28, 3), (4, 4), (11, 4)]
    async with store.read() as tx:
        meetings = {(d, m): await tx.meeting(occurrence(d, m)) for d, m in days}
    # Independently: 10:00 Berlin is 09:00Z before 2030-03-31 and 08:00Z after.
    assert {k: (v.starts_at if v else None) for k, v in meetings.items()} == {
        (7, 3): datetime(2030, 3, 7, 9, tzinfo=UTC),
        (14, 3): datetime(2030, 3, 14, 9, tzinfo=UTC),
        (21, 3): datetime(2030, 3, 21, 9, tzinfo=UTC),
        (28, 3): datetime(2030, 3, 28, 9, tzinfo=UTC),
        (4, 4): datetime(2030, 4, 4, 8, tzinfo=UTC),
        (11, 4): datetime(2030, 4, 11, 8, tzinfo=UTC),
    }
    assert all(m is not None and m.timezone == "Europe/Berlin" for m in meetings.values())

    # One occurrence moved to the afternoon: that one is rescheduled, no other changes.
    feed.body = series(moved={"20300314": "20300314T150000"})
    moved = await poller.poll()
    assert moved.applied == 2  # its title, then its time
    assert await kinds(store, occurrence(14)) == [
        EventKind.CONFIRMED,
        EventKind.UPDATED,
        EventKind.RESCHEDULED,
    ]
    async with store.read() as tx:
        meeting = await tx.meeting(occurrence(14))
    assert meeting is not None
    assert meeting.starts_at == datetime(2030, 3, 14, 14, tzinfo=UTC)
    assert await kinds(store, occurrence(21)) == [EventKind.CONFIRMED]

    # An EXDATE cancels its occurrence; a cancelled override cancels its own.
    feed.body = series(
        moved={"20300314": "20300314T150000"}, exdates=("20300321",), cancelled=("20300404",)
    )
    gone = await poller.poll()
    assert gone.applied == 2
    assert (await kinds(store, occurrence(21)))[-1] is EventKind.CANCELLED
    assert (await kinds(store, occurrence(4, 4)))[-1] is EventKind.CANCELLED
    assert await kinds(store, occurrence(28)) == [EventKind.CONFIRMED]

    # The series renamed: every occurrence not overridden follows, the moved one does not.
    feed.body = series(
        summary="Weekly press briefing",
        moved={"20300314": "20300314T150000"},
        exdates=("20300321",),
        cancelled=("20300404",),
    )
    renamed = await poller.poll()
    assert renamed.applied == 4  # 7 and 28 March, 11 April, and the cancelled 4 April
    async with store.read() as tx:
        titles = {k: getattr(await tx.meeting(occurrence(*k)), "title", None) for k in days}
    assert titles[(7, 3)] == titles[(28, 3)] == titles[(11, 4)] == "Weekly press briefing"
    assert titles[(14, 3)] == "Briefing, moved"

    # Read again unchanged: nothing is applied twice.
    again = await poller.poll()
    assert (again.outcome, again.applied) == ("unchanged", 0)
    async with store.read() as tx:
        deliveries = await tx.deliveries(limit=1000)
    history = [await kinds(store, occurrence(*k)) for k in days]
    assert len(deliveries) == sum(len(h) for h in history)


async def test_one_bad_event_never_spoils_a_feed_and_each_reason_is_logged_once(
    store: Store,
    feed: Feed,
    clock: Clock,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock.now = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    poller = poller_for(store, feed, clock, client)
    feed.etags = False
    feed.body = (FIXTURES / "bad_events.ics").read_bytes()
    with caplog.at_level(logging.WARNING, logger="notifier.sources.poller"):
        result = await poller.poll()
    assert (result.outcome, result.applied, result.refused) == ("changed", 2, 7)
    async with store.read() as tx:
        assert await tx.meeting(meeting_id_for("good-1@cms.example")) is not None
        assert await tx.meeting(meeting_id_for("good-2@cms.example")) is not None
    logged = [r for r in caplog.records if r.getMessage().startswith("source ")]
    assert len(logged) == 7
    assert all("Traceback" not in r.getMessage() for r in logged)
    (report,) = await service.source_report(store, [poller.config])
    assert (report.followed, report.skipped, report.refused) == (2, 0, 7)
    assert "7 refused" in str(report.last_error)
    assert {p.event for p in report.problems} >= {"bad-start@cms.example"}
    assert (
        REGISTRY.get_sample_value(
            "notifier_source_events", {"source": feed.url(), "state": "refused"}
        )
        == 7
    )

    # A UID is the feed author's text: an escaped newline in it forges no log line.
    caplog.clear()
    forged = feed.body.replace(
        b"UID:bad-rrule@cms.example", b"UID:x\\n2030-01-01 ERROR forged line"
    )
    feed.body, original = forged, feed.body
    with caplog.at_level(logging.WARNING, logger="notifier.sources.poller"):
        await poller.poll()
    assert caplog.records
    assert all("\n" not in r.getMessage() for r in caplog.records)
    feed.body = original
    await poller.poll()

    # The same feed again: nothing new to say. One event's problem changes: one line.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="notifier.sources.poller"):
        assert (await poller.poll()).outcome == "unchanged"
        assert caplog.records == []
        feed.body = feed.body.replace(b"SEQUENCE:1.5", b"SEQUENCE:-2.5")
        await poller.poll()
    assert len(caplog.records) == 1
    assert "bad-sequence" in caplog.records[0].getMessage()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_feed_over_the_size_cap_is_refused_with_a_reason(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient, chunked: bool
) -> None:
    poller = poller_for(store, feed, clock, client, max_bytes=4096)
    feed.chunked = chunked
    feed.body = calendar(
        *[f"UID:e{i}\nDTSTAMP:20300101T000000Z\nDTSTART:20300302T190000Z" for i in range(100)]
    )
    result = await poller.poll()
    assert result.outcome == "failed"
    assert "feeds.max_bytes" in result.problems[0]
    async with store.read() as tx:
        (state,) = await tx.source_states()
    assert "feeds.max_bytes (4,096)" in state.last_error
    assert state.failures == 1


async def test_a_large_feed_is_applied_in_chunks_and_a_crash_resumes_where_it_stopped(
    store: Store,
    feed: Feed,
    clock: Clock,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock.now = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    async with store.write() as tx:
        await tx.save_subscriber(
            Subscriber(id="desk", email="desk@example.org", source=Source.API), now=clock()
        )
    events = [
        f"UID:e{i:04d}\nDTSTAMP:20300101T000000Z\nDTSTART:20300302T{i % 24:02d}0000Z\nSUMMARY:E{i}"
        for i in range(1200)
    ]
    feed.body = calendar(*events)
    poller = poller_for(store, feed, clock, client)
    real = service.create_meetings_in
    calls = 0

    async def crash_midway(*args: object, **kw: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the process died here")
        return await real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "create_meetings_in", crash_midway)
    with pytest.raises(RuntimeError):
        await poller.poll()
    async with store.read() as tx:
        state = await tx.source_state(feed.url())
        followed = await tx.source_items(feed.url())
        # The first chunks (200 events each), each committed whole with its progress.
        assert len(await tx.meeting_records()) == 200
    assert len(followed) == 200
    assert state.counts["done"] == 200
    (report,) = await service.source_report(store, [poller.config])
    assert report.applying == "200/1200"

    monkeypatch.setattr(service, "create_meetings_in", real)
    resumed = await poller.poll()
    assert (resumed.outcome, resumed.applied) == ("changed", 1000)
    async with store.read() as tx:
        records = await tx.meeting_records()
        deliveries = await tx.deliveries(limit=5000)
    assert len(records) == 1200
    assert len(deliveries) == 1200  # one announcement per meeting: none twice
    (report,) = await service.source_report(store, [poller.config])
    assert (report.followed, report.applying) == (1200, None)


async def test_one_source_is_never_polled_twice_at_once(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient
) -> None:
    poller = poller_for(store, feed, clock, client)
    feed.body = calendar("UID:a\nDTSTAMP:20300101T000000Z\nDTSTART:20300302T190000Z")
    feed.delay = 0.3
    first, second = await asyncio.gather(poller.poll(), poller.poll())
    assert sorted([first.outcome, second.outcome]) == ["busy", "changed"]
    assert len(feed.requests) == 1


async def test_creating_meetings_in_bulk_is_creating_them_one_by_one(
    store: Store, clock: Clock
) -> None:
    """The feed's bulk path notifies, plans reminders and records event ids exactly as
    creating each meeting alone does, whatever the readers' filters."""
    clock.now = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    readers = [
        Subscriber(
            id="all", email="a@example.org", reminders=(timedelta(hours=1),), source=Source.API
        ),
        Subscriber(
            id="picky", email="p@example.org", meetings=("one-1", "bulk-1"), source=Source.API
        ),
        Subscriber(id="tagged", email="t@example.org", tags=("summit",), source=Source.API),
        Subscriber(
            id="cancels", email="c@example.org", events=("meeting.cancelled",), source=Source.API
        ),
    ]
    async with store.write() as tx:
        for reader in readers:
            await tx.save_subscriber(reader, now=clock())

    def meetings(prefix: str) -> list[Meeting]:
        return [
            Meeting(
                id=f"{prefix}-{i}",
                title=f"M{i}",
                timezone="Europe/Berlin",
                starts_at=datetime(2030, 3, 2 + i, 9, tzinfo=UTC),
                status=status,
                tags=tags,
                source=Source.FEED,
            )
            for i, (status, tags) in enumerate(
                [(S.SCHEDULED, ()), (S.CONFIRMED, ("summit",)), (S.CANCELLED, ("summit",))]
            )
        ]

    async with store.write() as tx:
        for meeting in meetings("one"):
            await service.create_meeting_in(
                tx, store.planning, meeting, now=clock(), event_id=f"e-{meeting.id}"
            )
        created = await service.create_meetings_in(
            tx, store.planning, [(m, f"e-{m.id}") for m in meetings("bulk")], now=clock()
        )
        again = await service.create_meetings_in(
            tx, store.planning, [(m, f"e-{m.id}") for m in meetings("bulk")], now=clock()
        )
    assert (created, again) == (3, 0)

    async def effects(prefix: str) -> object:
        async with store.read() as tx:
            sent = sorted(
                (d.meeting_id.split("-")[1], d.subscriber_id, d.kind.value, d.channel.value)
                for d in await tx.deliveries(limit=1000)
                if d.meeting_id.startswith(prefix)
            )
            planned = [
                sorted(
                    (r.subscriber_id, r.due_at, r.state) for r in await tx.meeting_reminders(m.id)
                )
                for m in meetings(prefix)
            ]
            told = [await tx.processed_event(f"e-{m.id}") for m in meetings(prefix)]
            history = [[e.kind for e in await tx.history(m.id)] for m in meetings(prefix)]
        return sent, planned, [t[1] if t else None for t in told], history

    assert await effects("one") == await effects("bulk")
    assert (await effects("bulk"))[0]  # something was sent at all


async def test_the_api_lists_sources_with_counts_and_reasons(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient, database_url: str
) -> None:
    clock.now = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    sources = [{"kind": "ics", "url": feed.url()}, {"kind": "json", "url": "https://e.org/x"}]
    allowed = {"allow_cidrs": ["127.0.0.1/32"]}
    async with api_client(
        store, clock, database_url=database_url, sources=sources, feeds=allowed
    ) as api:
        config = SourceConfig(kind="ics", url=feed.url())  # type: ignore[arg-type]
        feed.body = (FIXTURES / "bad_events.ics").read_bytes()
        await SourcePoller(store, config, client, clock=clock).poll()
        unauthenticated = await api.get("/v1/sources")
        assert unauthenticated.status_code == 401
        answer = await api.get(
            "/v1/sources", params={"problems": 2}, headers={"authorization": "Bearer dev-token"}
        )
    assert answer.status_code == 200
    polled, never = answer.json()
    assert (polled["followed"], polled["refused"], len(polled["problems"])) == (2, 7, 2)
    assert polled["problems"][0] == {
        "event": "bad-start@cms.example",
        "reason": "DTSTART cannot be read: Wrong datetime format: 2030-03-02 19:00",
    }
    assert (never["url"], never["last_polled_at"], never["followed"]) == (
        "https://e.org/x",
        None,
        0,
    )


async def test_a_feed_that_speaks_for_the_press_reaches_no_public_reader(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        for audience in ("public", "press"):
            await tx.save_subscriber(
                Subscriber(id=audience, email=f"{audience}@example.org", audience=audience),
                now=clock(),
            )
    poller = poller_for(store, feed, clock, client, audience="press")
    feed.body = calendar(
        "UID:brief@x\nDTSTAMP:20300101T000000Z\nDTSTART:20300302T190000Z\n"
        "SUMMARY:Briefing\nLOCATION:Press room 2\nDESCRIPTION:Embargoed until noon"
    )
    assert (await poller.poll()).outcome == "changed"
    feed.body = feed.body.replace(b"Press room 2", b"Press room 5")
    assert (await poller.poll()).outcome == "changed"
    async with store.read() as tx:
        (record,) = await tx.meeting_records()
        queued = await tx.deliveries(limit=100)
    meeting = record.meeting
    # Known to the press and above; its text is the press's variant, never plain.
    assert meeting.audience == "press"
    assert (meeting.location, meeting.description) == ("", "")
    assert meeting.variants["location"] == {"press": "Press room 5"}
    assert meeting.variants["description"] == {"press": "Embargoed until noon"}
    assert {d.subscriber_id for d in queued} == {"press"}
    assert [d.kind.value for d in sorted(queued, key=lambda d: d.sequence)] == [
        "meeting.confirmed",  # an ICS event without STATUS is confirmed
        "meeting.updated",
    ]
