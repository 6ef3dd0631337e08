"""Watched feeds served by a real local HTTP server, changed between polls, both backends."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import httpx

from notifier import service
from notifier.domain.models import EventKind, MeetingStatus, Source, Subscriber
from notifier.metrics import REGISTRY
from notifier.settings import SourceConfig
from notifier.sources.poller import SourcePoller, backoff
from notifier.store import Store
from tests.integration.conftest import Clock, Feed

S = MeetingStatus


def ics(*events: str) -> bytes:
    body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    for event in events:
        body += "BEGIN:VEVENT\r\n" + event.strip().replace("\n", "\r\n") + "\r\nEND:VEVENT\r\n"
    return (body + "END:VCALENDAR\r\n").encode()


def talks(
    start: str, *, status: str = "CONFIRMED", sequence: int = 0, summary: str = "Talks"
) -> str:
    return f"""UID:talks-2030@calendar.example.org
DTSTAMP:20300101T000000Z
DTSTART;TZID=Europe/Moscow:{start}
SUMMARY:{summary}
LOCATION:Moscow
STATUS:{status}
SEQUENCE:{sequence}"""


async def history(store: Store, meeting_id: str) -> list[EventKind]:
    async with store.read() as tx:
        return [e.kind for e in await tx.history(meeting_id)]


def poller_for(
    store: Store,
    feed: Feed,
    clock: Clock,
    client: httpx.AsyncClient,
    kind: str = "ics",
    **kw: object,
) -> SourcePoller:
    config = SourceConfig(kind=kind, url=feed.url(), every=timedelta(seconds=60), **kw)  # type: ignore[arg-type]
    return SourcePoller(store, config, client, clock=clock)


async def test_an_ics_feed_drives_a_meeting_and_rereading_it_sends_nothing_twice(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient
) -> None:
    clock.now = datetime(2030, 2, 1, 9, 0, tzinfo=UTC)
    async with store.write() as tx:
        await tx.save_subscriber(
            Subscriber(id="desk", email="desk@example.org", source=Source.API), now=clock()
        )
    poller = poller_for(store, feed, clock, client)
    feed.body = ics(talks("20300302T190000", status="TENTATIVE"))
    first = await poller.poll()
    assert (first.outcome, first.applied) == ("changed", 1)
    meeting_id = (
        "talks-2030-calendar.example.org-"
        + hashlib.sha256(b"talks-2030@calendar.example.org").hexdigest()[:8]
    )
    async with store.read() as tx:
        meeting = await tx.meeting(meeting_id)
    assert meeting is not None
    assert meeting.status is S.SCHEDULED
    assert meeting.source is Source.FEED
    assert meeting.starts_at == datetime(2030, 3, 2, 16, 0, tzinfo=UTC)
    assert meeting.timezone == "Europe/Moscow"

    # Same document: the server answers 304 to the conditional GET.
    assert (await poller.poll()).outcome == "not-modified"
    assert feed.requests[-1].get("If-None-Match")

    # Confirmed, then moved to the evening with a new SEQUENCE.
    feed.body = ics(talks("20300302T190000", status="CONFIRMED", sequence=1))
    assert (await poller.poll()).applied == 1
    feed.body = ics(talks("20300302T210000", status="CONFIRMED", sequence=2, summary="Talks!"))
    assert (await poller.poll()).applied == 2  # details, then the move
    # An older revision served by a lagging mirror is ignored.
    feed.body = ics(talks("20300302T180000", status="CONFIRMED", sequence=1))
    assert (await poller.poll()).outcome == "unchanged"
    # The same content again, this time without ETags: nothing is applied twice.
    feed.etags = False
    feed.body = ics(talks("20300302T210000", status="CONFIRMED", sequence=2, summary="Talks!"))
    assert (await poller.poll()).outcome == "unchanged"
    feed.body = ics(talks("20300302T210000", status="CANCELLED", sequence=3, summary="Talks!"))
    assert (await poller.poll()).applied == 1

    assert await history(store, meeting_id) == [
        EventKind.SCHEDULED,
        EventKind.CONFIRMED,
        EventKind.UPDATED,
        EventKind.RESCHEDULED,
        EventKind.CANCELLED,
    ]
    async with store.read() as tx:
        kinds = sorted(d.kind.value for d in await tx.deliveries(limit=100))
    assert kinds == sorted(k.value for k in await history(store, meeting_id))


async def test_a_failing_source_backs_off_and_records_its_health(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient
) -> None:
    poller = poller_for(store, feed, clock, client)
    feed.status = 503
    errors = (
        REGISTRY.get_sample_value("notifier_source_poll_errors_total", {"source": feed.url()})
        or 0.0
    )
    result = await poller.poll()
    assert (
        REGISTRY.get_sample_value("notifier_source_poll_errors_total", {"source": feed.url()})
        == errors + 1
    )
    assert result.outcome == "failed"
    assert "HTTP 503" in result.problems[0]
    assert (await poller.poll()).outcome == "waiting"
    clock.advance(backoff(timedelta(seconds=60), 1))
    feed.status = 200
    feed.body = b"this is not a calendar"
    assert (await poller.poll()).outcome == "failed"
    async with store.read() as tx:
        (state,) = await tx.source_states()
    assert state.failures == 2
    assert state.next_poll_at == clock() + timedelta(minutes=4)
    assert "not an iCalendar document" in state.last_error
    clock.advance(timedelta(minutes=4))
    feed.body = ics()
    assert (await poller.poll()).outcome == "unchanged"
    async with store.read() as tx:
        (state,) = await tx.source_states()
    assert state.failures == 0
    assert state.last_ok_at == clock()


async def test_a_json_feed_with_a_field_mapping_changes_status(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient
) -> None:
    clock.now = datetime(2030, 2, 1, 9, 0, tzinfo=UTC)
    feed.content_type = "application/json"
    document = {
        "data": {
            "events": [
                {
                    "uid": "summit",
                    "name": "Summit",
                    "state": {"code": "postponed"},
                    "start": "2030-03-02T19:00:00+03:00",
                    "why": "medical reasons",
                }
            ]
        }
    }
    fields = {
        "items": "data.events",
        "id": "uid",
        "title": "name",
        "status": "state.code",
        "starts_at": "start",
        "reason": "why",
    }
    poller = poller_for(store, feed, clock, client, kind="json", fields=fields)
    feed.body = json.dumps(document).encode()
    assert (await poller.poll()).applied == 1
    document["data"]["events"][0]["state"] = {"code": "cleared"}  # type: ignore[index]
    document["data"]["events"][0]["why"] = "second assessment negative"  # type: ignore[index]
    feed.body = json.dumps(document).encode()
    assert (await poller.poll()).applied == 1
    # A transition the state machine refuses is reported, not applied.
    document["data"]["events"][0]["state"] = {"code": "concluded"}  # type: ignore[index]
    feed.body = json.dumps(document).encode()
    refused = await poller.poll()
    assert refused.outcome == "unchanged"
    assert "cannot go from cleared to concluded" in refused.problems[0]
    async with store.read() as tx:
        meeting = await tx.meeting("summit")
    assert meeting is not None
    assert meeting.status is S.CLEARED
    assert meeting.reason == "second assessment negative"


async def test_a_refused_event_stays_reported_until_the_content_changes(
    store: Store, feed: Feed, clock: Clock, client: httpx.AsyncClient
) -> None:
    clock.now = datetime(2030, 2, 1, 9, 0, tzinfo=UTC)
    poller = poller_for(store, feed, clock, client)
    broken = (
        "UID:broken@x\nDTSTAMP:20300101T000000Z\nDTSTART;TZID=Mars Standard Time:20300302T190000"
    )
    feed.body = ics(talks("20300302T190000"), broken)

    async def last_error() -> str | None:
        (report,) = await service.source_report(store, [poller.config])
        assert report.refused == (1 if report.last_error else 0)
        return report.last_error

    assert (await poller.poll()).outcome == "changed"
    said = await last_error()
    assert said is not None
    assert "1 refused; broken@x: TZID 'Mars Standard Time'" in said
    # Unchanged (304): the event is still refused and the sources table still says so.
    assert (await poller.poll()).outcome == "not-modified"
    assert await last_error() == said
    # A failed poll says why it failed; the next 304 tells of the content's refusal again.
    feed.status = 503
    assert (await poller.poll()).outcome == "failed"
    assert await last_error() == "HTTP 503"
    clock.advance(timedelta(minutes=10))
    feed.status = 200
    assert (await poller.poll()).outcome == "not-modified"
    assert await last_error() == said
    # The feed fixed: the next read clears it.
    feed.body = ics(talks("20300302T190000"))
    assert (await poller.poll()).outcome == "unchanged"
    assert await last_error() is None
