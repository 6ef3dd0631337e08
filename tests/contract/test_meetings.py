"""The `Meetings` port: meetings, their history and the event ids already applied."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import IntegrityError

from notifier.domain.errors import Conflict
from notifier.domain.models import EventKind, HistoryEntry, Meeting, MeetingStatus, Source
from notifier.store import Store
from notifier.store.records import Stamp

MOSCOW = ZoneInfo("Europe/Moscow")


def entry(meeting: Meeting, sequence: int, at: datetime, **overrides: object) -> HistoryEntry:
    """A history entry of `meeting` (a reschedule by an hour per sequence)."""
    values: dict[str, object] = {
        "meeting_id": meeting.id,
        "sequence": sequence,
        "at": at,
        "kind": EventKind.RESCHEDULED,
        "from_status": MeetingStatus.CLEARED,
        "to_status": MeetingStatus.RESCHEDULED,
        "reason": f"move {sequence}",
        "previous_starts_at": meeting.starts_at,
        "starts_at": meeting.starts_at + timedelta(hours=sequence),
        "event_id": f"{meeting.id}-e{sequence}",
        "source": Source.CLI,
    }
    values.update(overrides)
    return HistoryEntry(**values)  # type: ignore[arg-type]


async def test_a_meeting_inserted_is_read_back_equal_in_its_own_zone(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    """Every field comes back as written, instants in the meeting's own zone, with the
    bookkeeping the insert set (`file_state`, `created_at`, `updated_at`)."""
    meeting = meeting_factory(
        id="talks",
        starts_at=datetime(2026, 3, 2, 19, 0, tzinfo=MOSCOW),
        ends_at=datetime(2026, 3, 2, 23, 0, tzinfo=MOSCOW),
        participants=("A", "B"),
        conditions=("health clearance",),
        tags=("bilateral", "moscow"),
        description="Торговля, инвестиции",
        location="Kremlin",
        reason="asked by both",
        sequence=2,
        status=MeetingStatus.POSTPONED,
        source=Source.FILE,
        coalesce=timedelta(minutes=2),
        audience="press",
        variants={"reason": {"press": "medical reasons"}},
    )
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now, file_state="x")
    async with store.read() as tx:
        record = await tx.meeting_record("talks")
    assert record is not None
    assert record.meeting == meeting
    assert record.meeting.starts_at.tzinfo == MOSCOW
    assert record.meeting.starts_at.hour == 19
    assert (record.file_state, record.created_at, record.updated_at) == ("x", now, now)
    assert record.retired_at is None


async def test_an_unknown_meeting_reads_as_none(store: Store) -> None:
    async with store.read() as tx:
        assert await tx.meeting_record("nothing") is None
        assert await tx.meeting("nothing") is None
        assert await tx.meeting_records_by_id(["nothing"]) == {}


async def test_insert_meeting_with_a_taken_id_raises_conflict_and_keeps_the_first(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    first = meeting_factory(id="talks", title="First")
    async with store.write() as tx:
        await tx.insert_meeting(first, now=now)
    with pytest.raises(Conflict, match="already exists"):
        async with store.write() as tx:
            await tx.insert_meeting(meeting_factory(id="talks", title="Second"), now=now)
    async with store.read() as tx:
        assert await tx.meeting("talks") == first


async def test_insert_meetings_stores_each_as_insert_meeting_would(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    """Many new meetings in one call read back equal (more than one chunk of ids is
    asked for at once); a clash with a stored id raises IntegrityError."""
    many = [meeting_factory(id=f"m{n:03d}", tags=(f"t{n}",)) for n in range(520)]
    async with store.write() as tx:
        await tx.insert_meetings(many, now=now)
    async with store.read() as tx:
        found = await tx.meeting_records_by_id([m.id for m in many] + ["unknown"])
    assert sorted(found) == [m.id for m in many]
    assert all(found[m.id].meeting == m for m in many)
    assert all(found[m.id].created_at == now for m in many)
    with pytest.raises(IntegrityError):
        async with store.write() as tx:
            await tx.insert_meetings([meeting_factory(id="fresh"), many[0]], now=now)
    async with store.read() as tx:
        assert await tx.meeting_record("fresh") is None


async def test_update_meeting_at_the_expected_sequence_writes_it_and_its_bookkeeping(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    """The stored meeting becomes the one given; `updated_at` moves, `created_at` stays,
    and `extra` sets the bookkeeping columns in the same write."""
    meeting = meeting_factory(id="talks", sequence=3)
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now, file_state="before")
    later = now + timedelta(hours=1)
    moved = meeting.replace(
        sequence=4, status=MeetingStatus.POSTPONED, reason="ill", tags=("other",)
    )
    async with store.write() as tx:
        await tx.update_meeting(moved, expected_sequence=3, now=later, file_state="after")
    async with store.read() as tx:
        record = await tx.meeting_record("talks")
    assert record is not None
    assert record.meeting == moved
    assert (record.created_at, record.updated_at, record.file_state) == (now, later, "after")


async def test_update_meeting_with_a_stale_expected_sequence_raises_conflict_and_changes_nothing(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    meeting = meeting_factory(id="talks", sequence=3)
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now)
    with pytest.raises(Conflict, match="changed by someone else"):
        async with store.write() as tx:
            await tx.update_meeting(
                meeting.replace(sequence=5, title="Lost"), expected_sequence=4, now=now
            )
    with pytest.raises(Conflict):
        async with store.write() as tx:
            await tx.update_meeting(meeting_factory(id="unknown"), expected_sequence=0, now=now)
    async with store.read() as tx:
        record = await tx.meeting_record("talks")
        assert await tx.meeting_record("unknown") is None
    assert record is not None
    assert (record.meeting, record.updated_at) == (meeting, now)


async def test_set_meeting_bookkeeping_sets_file_state_and_retired_at_only(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    meeting = meeting_factory(id="talks")
    other = meeting_factory(id="other")
    async with store.write() as tx:
        await tx.insert_meetings([meeting, other], now=now)
    retired = now + timedelta(days=1)
    async with store.write() as tx:
        await tx.set_meeting_bookkeeping("talks", file_state="edited", retired_at=retired)
    async with store.read() as tx:
        record = await tx.meeting_record("talks")
        untouched = await tx.meeting_record("other")
    assert record is not None
    assert untouched is not None
    assert record.meeting == meeting
    assert (record.file_state, record.retired_at) == ("edited", retired)
    assert (untouched.file_state, untouched.retired_at) == (None, None)


async def test_a_retired_meeting_is_hidden_from_meeting_and_listed_only_on_request(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    gone, kept = meeting_factory(id="gone"), meeting_factory(id="kept")
    async with store.write() as tx:
        await tx.insert_meetings([gone, kept], now=now)
        await tx.set_meeting_bookkeeping("gone", retired_at=now)
    async with store.read() as tx:
        assert await tx.meeting("gone") is None
        assert await tx.meeting("kept") == kept
        record = await tx.meeting_record("gone")
        assert record is not None
        assert (record.meeting, record.retired_at) == (gone, now)
        assert [r.meeting.id for r in await tx.meeting_records()] == ["kept"]
        every = await tx.meeting_records(include_retired=True)
        assert sorted(r.meeting.id for r in every) == ["gone", "kept"]
        assert set(await tx.meeting_records_by_id(["gone", "kept"])) == {"gone", "kept"}


async def test_meeting_records_come_soonest_first(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    """By start, whatever the zone each is written in, whatever the order of inserts."""
    base = datetime(2026, 3, 2, 12, 0, tzinfo=ZoneInfo("UTC"))
    late = meeting_factory(id="a-late", starts_at=base + timedelta(days=2))
    # 14:00 in Moscow is 11:00 UTC: before `base` though its wall clock is later.
    early = meeting_factory(
        id="b-early", timezone="Europe/Moscow", starts_at=datetime(2026, 3, 2, 14, 0, tzinfo=MOSCOW)
    )
    middle = meeting_factory(id="c-middle", starts_at=base)
    async with store.write() as tx:
        await tx.insert_meetings([late, early, middle], now=now)
    async with store.read() as tx:
        ids = [r.meeting.id for r in await tx.meeting_records()]
    assert ids == ["b-early", "c-middle", "a-late"]


async def test_history_comes_back_oldest_first_in_the_asked_zone(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    """Entries appended one by one (out of order) or many at once read back equal, by
    sequence, only the meeting's own, every instant shown in `zone`."""
    meeting, other = meeting_factory(id="talks"), meeting_factory(id="other")
    one_by_one = [entry(meeting, s, now + timedelta(minutes=s)) for s in (2, 0, 1)]
    at_once = [
        entry(
            meeting,
            s,
            now + timedelta(minutes=s),
            forced=True,
            event_id=None,
            variants={"reason": {"press": "secret"}},
        )
        for s in (3, 4)
    ]
    async with store.write() as tx:
        await tx.insert_meetings([meeting, other], now=now)
        for e in one_by_one:
            await tx.append_history(e)
        await tx.append_histories(at_once)
        await tx.append_histories([entry(other, 0, now)])
    async with store.read() as tx:
        history = await tx.history("talks", zone="America/New_York")
        assert await tx.history("nothing") == []
    assert [e.sequence for e in history] == [0, 1, 2, 3, 4]
    assert history == sorted(one_by_one + at_once, key=lambda e: e.sequence)
    assert all(e.at.tzinfo == ZoneInfo("America/New_York") for e in history)
    assert all(
        e.starts_at is not None and e.starts_at.tzinfo == ZoneInfo("America/New_York")
        for e in history
    )


async def test_history_entry_reads_one_entry_in_the_asked_zone(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    meeting = meeting_factory(id="talks")
    entries = [entry(meeting, s, now + timedelta(minutes=s)) for s in range(3)]
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now)
        await tx.append_histories(entries)
    async with store.read() as tx:
        found = await tx.history_entry("talks", 1, zone="Europe/Moscow")
    assert found == entries[1]
    assert found.at.tzinfo == MOSCOW


async def test_a_second_entry_at_the_same_sequence_is_refused(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    """History is never overwritten: appending at a sequence already taken fails."""
    meeting = meeting_factory(id="talks")
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now)
        await tx.append_history(entry(meeting, 0, now))
    with pytest.raises(IntegrityError):
        async with store.write() as tx:
            await tx.append_history(entry(meeting, 0, now, reason="rewritten"))
    async with store.read() as tx:
        assert [e.reason for e in await tx.history("talks")] == ["move 0"]


async def test_visible_meetings_are_the_audiences_current_ones_within_bounds_and_limit(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    """Only current meetings of exactly that audience; `starting_from` inclusive,
    `starting_before` exclusive; soonest first or latest first; at most `limit`."""
    day = timedelta(days=1)
    start = datetime(2026, 3, 1, 12, 0, tzinfo=ZoneInfo("UTC"))
    shown = [meeting_factory(id=f"p{n}", starts_at=start + n * day) for n in range(5)]
    hidden = [
        meeting_factory(id="press", starts_at=start, audience="press"),
        meeting_factory(id="retired", starts_at=start + day),
    ]
    async with store.write() as tx:
        await tx.insert_meetings(shown + hidden, now=now)
        await tx.set_meeting_bookkeeping("retired", retired_at=now)
    async with store.read() as tx:

        async def ids(**bounds: object) -> list[str]:
            found = await tx.visible_meetings("public", **bounds)  # type: ignore[arg-type]
            return [r.meeting.id for r in found]

        assert await ids(limit=10) == ["p0", "p1", "p2", "p3", "p4"]
        assert await ids(limit=2) == ["p0", "p1"]
        assert await ids(limit=2, latest_first=True) == ["p4", "p3"]
        assert await ids(limit=10, starting_from=start + day) == ["p1", "p2", "p3", "p4"]
        assert await ids(limit=10, starting_before=start + 2 * day) == ["p0", "p1"]
        assert await ids(
            limit=10, starting_from=start + day, starting_before=start + 3 * day, latest_first=True
        ) == ["p2", "p1"]
        press = await tx.visible_meetings("press", limit=10)
        assert [r.meeting for r in press] == [hidden[0]]


async def test_visible_changes_are_the_newest_entries_of_the_audiences_current_meetings(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    public, press, retired = (
        meeting_factory(id="public"),
        meeting_factory(id="press", audience="press"),
        meeting_factory(id="retired"),
    )
    minute = timedelta(minutes=1)
    async with store.write() as tx:
        await tx.insert_meetings([public, press, retired], now=now)
        await tx.append_histories(
            [
                entry(public, 0, now),
                entry(press, 0, now + minute),
                entry(public, 1, now + 2 * minute),
                entry(retired, 0, now + 3 * minute),
                entry(public, 2, now + 4 * minute),
            ]
        )
        await tx.set_meeting_bookkeeping("retired", retired_at=now)
    async with store.read() as tx:
        changes = await tx.visible_changes("public", limit=2)
        everything = await tx.visible_changes("public", limit=10)
        of_press = await tx.visible_changes("press", limit=10)
    assert [(r.meeting.id, e.sequence) for r, e in changes] == [("public", 2), ("public", 1)]
    assert [(r.meeting.id, e.sequence) for r, e in everything] == [
        ("public", 2),
        ("public", 1),
        ("public", 0),
    ]
    assert everything[0][0].meeting == public
    assert everything[0][1] == entry(public, 2, now + 4 * minute)
    assert [(r.meeting, e.sequence) for r, e in of_press] == [(press, 0)]


async def test_visible_stamp_moves_with_what_the_audience_may_see_and_only_that(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    """An insert, an update, a history entry or a retirement of one of its meetings
    changes the audience's stamp; a change to another audience's meeting does not."""

    async def stamp(audience: str = "public") -> Stamp:
        async with store.read() as tx:
            return await tx.visible_stamp(audience)

    assert await stamp() == Stamp(meetings=0, updated_at=None, latest_change=0)
    meeting = meeting_factory(id="talks")
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now)
    inserted = await stamp()
    assert inserted == Stamp(meetings=1, updated_at=now, latest_change=0)

    async with store.write() as tx:
        await tx.insert_meeting(meeting_factory(id="press", audience="press"), now=now)
        await tx.append_history(entry(meeting_factory(id="press"), 0, now))
    assert await stamp() == inserted

    later = now + timedelta(minutes=5)
    async with store.write() as tx:
        await tx.update_meeting(meeting.replace(sequence=1), expected_sequence=0, now=later)
    updated = await stamp()
    assert updated.updated_at == later

    async with store.write() as tx:
        await tx.append_history(entry(meeting, 1, later))
    changed = await stamp()
    assert changed.latest_change > updated.latest_change

    async with store.write() as tx:
        await tx.set_meeting_bookkeeping("talks", retired_at=later)
    assert (await stamp()).meetings == 0
    assert (await stamp("press")).meetings == 1


async def test_an_event_recorded_is_found_with_the_meeting_it_left_and_its_sequence(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    meeting = meeting_factory(
        id="talks",
        sequence=3,
        starts_at=datetime(2026, 3, 2, 19, 0, tzinfo=MOSCOW),
        status=MeetingStatus.POSTPONED,
        reason="ill",
    )
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now)
        await tx.record_event("evt-1", result=meeting, sequence=3, now=now)
    async with store.read() as tx:
        assert await tx.processed_event("evt-1") == (meeting, 3)
        assert await tx.processed_event("evt-2") is None
        assert await tx.processed_event_ids(["evt-1", "evt-2"]) == {"evt-1"}


async def test_an_event_id_is_recorded_once(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    """A second record of the same event id fails, and the first one stands."""
    meeting = meeting_factory(id="talks")
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now)
        await tx.record_event("evt-1", result=meeting, sequence=0, now=now)
    with pytest.raises(IntegrityError):
        async with store.write() as tx:
            await tx.record_event("evt-1", result=meeting.replace(sequence=1), sequence=1, now=now)
    async with store.read() as tx:
        assert await tx.processed_event("evt-1") == (meeting, 0)


async def test_record_events_records_many_as_record_event_would(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    """Each event of a batch is found afterwards with its own result; asking for more
    ids than one chunk holds finds exactly the recorded ones."""
    meetings = [meeting_factory(id=f"m{n}", sequence=n) for n in range(3)]
    async with store.write() as tx:
        await tx.insert_meetings(meetings, now=now)
        await tx.record_events(
            [(f"evt-{n}", m, m.sequence) for n, m in enumerate(meetings)], now=now
        )
    asked = [f"evt-{n}" for n in range(600)]
    async with store.read() as tx:
        assert await tx.processed_event_ids(asked) == {"evt-0", "evt-1", "evt-2"}
        assert await tx.processed_event_ids([]) == set()
        for n, m in enumerate(meetings):
            assert await tx.processed_event(f"evt-{n}") == (m, n)


async def test_meeting_record_for_update_holds_the_row_until_the_transaction_ends(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    """A second writer reading the meeting `for_update` waits for the first to commit,
    then sees what it wrote (so a repeated event is not applied twice); a retired meeting
    stays hidden from `meeting` with `for_update` too."""
    meeting = meeting_factory(id="talks")
    async with store.write() as tx:
        await tx.insert_meetings([meeting, meeting_factory(id="gone")], now=now)
        await tx.set_meeting_bookkeeping("gone", retired_at=now)
    order: list[str] = []
    first_holds, first_may_go = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with store.write() as tx:
            record = await tx.meeting_record("talks", for_update=True)
            assert record is not None
            assert record.meeting == meeting
            assert await tx.meeting("gone", for_update=True) is None
            first_holds.set()
            await first_may_go.wait()
            await tx.update_meeting(meeting.replace(sequence=1), expected_sequence=0, now=now)
            order.append("first wrote")

    async def second() -> None:
        await first_holds.wait()
        async with store.write() as tx:
            seen = await tx.meeting("talks", for_update=True)
            order.append(f"second read sequence {seen.sequence if seen else None}")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await first_holds.wait()
    await asyncio.sleep(0.2)  # time enough for a second reader that did not wait
    assert order == []
    first_may_go.set()
    await asyncio.gather(*tasks)
    assert order == ["first wrote", "second read sequence 1"]
