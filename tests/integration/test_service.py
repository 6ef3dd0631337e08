"""Status changes and config reconciliation against a real store, on both backends."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from notifier import service
from notifier.domain.errors import (
    ConfigError,
    Conflict,
    InvalidChange,
    TransitionError,
    UnknownMeeting,
)
from notifier.domain.models import (
    EventKind,
    Meeting,
    MeetingStatus,
    Source,
    StatusChange,
    Subscriber,
)
from notifier.locate import cite
from notifier.settings import Settings, load_settings
from notifier.store import Store

S = MeetingStatus
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "notifier.toml"
TALKS = "moscow-tskhinvali-talks"

#: Lines of the shipped config file the tests edit.
SEED_REASON = (
    'reason = { public = "postponed", press = "postponed; a new date will be announced", '
    'participants = "medical reasons" }'
)
SEED_CONDITIONS = (
    'conditions = { participants = ["health clearance"] }   # the public and the press see none'
)
SEED_VISIT = (
    '  reason = { public = "a delegation visited", participants = "a delegation visited; '
    'a second health assessment was requested" }'
)


async def seeded(store: Store, meeting: Meeting, now: datetime) -> Meeting:
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now)
    return meeting


async def snapshot(store: Store, meeting_id: str) -> tuple[object, ...]:
    async with store.read() as tx:
        record = await tx.meeting_record(meeting_id)
        return (record, await tx.history(meeting_id), await tx.counts())


# -- apply_status_change ----------------------------------------------------------------------


async def test_a_change_updates_the_meeting_and_appends_history_together(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    meeting = await seeded(store, meeting_factory(id="talks", status=S.POSTPONED), now)
    result = await service.apply_status_change(
        store,
        StatusChange(meeting_id="talks", status=S.CLEARED, reason="negative", event_id="ev-1"),
        now=now,
    )
    assert not result.duplicate
    assert result.meeting.sequence == meeting.sequence + 1
    async with store.read() as tx:
        assert await tx.meeting("talks") == result.meeting
        (entry,) = await tx.history("talks")
        assert entry == result.entry
        assert entry.at == now
        assert await tx.processed_event("ev-1") == (result.meeting, result.entry.sequence)


async def test_a_repeated_event_id_changes_nothing_and_returns_the_first_result(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    await seeded(store, meeting_factory(id="talks", status=S.CLEARED), now)
    first = await service.apply_status_change(
        store,
        StatusChange(
            meeting_id="talks",
            status=S.RESCHEDULED,
            starts_at=now + timedelta(days=5),
            event_id="push-1",
        ),
        now=now,
    )
    # The meeting moves on in between; the repeat must still answer with the first result.
    await service.apply_status_change(
        store, StatusChange(meeting_id="talks", status=S.CONFIRMED), now=now
    )
    before = await snapshot(store, "talks")
    repeat = await service.apply_status_change(
        store,
        StatusChange(
            meeting_id="talks",
            status=S.RESCHEDULED,
            starts_at=now + timedelta(days=9),
            event_id="push-1",
        ),
        now=now + timedelta(minutes=1),
    )
    assert repeat.duplicate
    assert repeat.meeting == first.meeting
    assert repeat.entry.sequence == first.entry.sequence
    assert await snapshot(store, "talks") == before


async def test_an_event_id_cannot_be_reused_for_another_meeting(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    await seeded(store, meeting_factory(id="a"), now)
    await seeded(store, meeting_factory(id="b"), now)
    await service.apply_status_change(
        store, StatusChange(meeting_id="a", status=S.CONFIRMED, event_id="x"), now=now
    )
    with pytest.raises(Conflict, match="already used for meeting 'a'"):
        await service.apply_status_change(
            store, StatusChange(meeting_id="b", status=S.CONFIRMED, event_id="x"), now=now
        )


async def test_racing_copies_of_one_event_apply_once(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    await seeded(store, meeting_factory(id="talks", status=S.POSTPONED), now)
    change = StatusChange(meeting_id="talks", status=S.CLEARED, event_id="same")
    results = await asyncio.gather(
        *(service.apply_status_change(store, change, now=now) for _ in range(5))
    )
    assert sorted(r.duplicate for r in results) == [False, True, True, True, True]
    async with store.read() as tx:
        assert len(await tx.history("talks")) == 1
        assert (await tx.meeting("talks")).sequence == 1  # type: ignore[union-attr]


async def test_concurrent_different_changes_each_get_their_own_sequence(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    await seeded(store, meeting_factory(id="talks", status=S.POSTPONED), now)
    changes = [
        StatusChange(meeting_id="talks", status=S.POSTPONED, reason=f"still unwell {i}")
        for i in range(4)
    ]
    await asyncio.gather(*(service.apply_status_change(store, c, now=now) for c in changes))
    async with store.read() as tx:
        history = await tx.history("talks")
    assert [e.sequence for e in history] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (StatusChange(meeting_id="nope", status=S.CLEARED), UnknownMeeting),
        (StatusChange(meeting_id="talks", status=S.IN_PROGRESS), TransitionError),
        (StatusChange(meeting_id="talks", status=S.RESCHEDULED), InvalidChange),
    ],
)
async def test_a_refused_change_leaves_the_store_untouched(
    store: Store,
    meeting_factory: Callable[..., Meeting],
    now: datetime,
    change: StatusChange,
    error: type[Exception],
) -> None:
    await seeded(store, meeting_factory(id="talks", status=S.CANCELLED), now)
    before = await snapshot(store, "talks")
    with pytest.raises(error):
        await service.apply_status_change(store, change, now=now)
    assert await snapshot(store, "talks") == before


# -- reconcile --------------------------------------------------------------------------------


def settings_from(tmp_path: Path, text: str, database_url: str) -> Settings:
    path = tmp_path / "notifier.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, database_url=database_url)


async def test_the_seed_scenario_is_created_with_its_history(
    store: Store, database_url: str, now: datetime
) -> None:
    settings = load_settings(SHIPPED, database_url=database_url)
    report = await service.reconcile(store, settings, now=now)
    assert f"meeting {TALKS}" in report.created
    async with store.read() as tx:
        meeting = await tx.meeting(TALKS)
        history = await tx.history(TALKS, zone="Europe/Moscow")
        subscribers = await tx.subscribers()
    assert meeting is not None
    assert meeting.status is S.POSTPONED
    assert meeting.source is Source.FILE
    assert meeting.sequence == len(history) - 1
    assert [e.kind for e in history] == [
        EventKind.SCHEDULED,
        EventKind.POSTPONED,
        EventKind.UPDATED,
    ]
    assert history[2].at.day == 22
    # The entry keeps every variant; each audience reads its own.
    assert history[2].reason == ""
    assert history[2].variants["reason"]["public"] == "a delegation visited"
    assert "health assessment" in str(history[2].variants["reason"]["participants"])
    assert meeting.variants["reason"]["participants"] == "medical reasons"
    assert {s.id: s.audience for s in subscribers} == {
        "press-desk": "press",
        "wire-service": "press",
        "ossetian-delegation": "participants",
        "foreign-correspondent": "public",
        "duty-officer-chat": "participants",
    }
    assert len(subscribers) == len(settings.subscribers)
    # A second pass over the same file does nothing at all.
    again = await service.reconcile(store, settings, now=now + timedelta(hours=1))
    assert not again


async def test_replicas_reconciling_the_same_file_at_once_take_turns(
    store: Store, database_url: str, now: datetime
) -> None:
    settings = load_settings(SHIPPED, database_url=database_url)
    others = [await Store.open(database_url) for _ in range(3)]
    try:
        reports = await asyncio.gather(
            *(service.reconcile(s, settings, now=now) for s in [store, *others])
        )
    finally:
        for other in others:
            await other.close()
    # One of them loaded the file; the others found it loaded.
    assert sorted(bool(r.created) for r in reports) == [False, False, False, True]
    async with store.read() as tx:
        assert len(await tx.subscribers()) == len(settings.subscribers)


async def test_changes_made_since_survive_a_reload_of_an_unedited_file(
    store: Store, database_url: str, now: datetime
) -> None:
    settings = load_settings(SHIPPED, database_url=database_url)
    await service.reconcile(store, settings, now=now)
    await service.apply_status_change(
        store, StatusChange(meeting_id=TALKS, status=S.CLEARED, source=Source.CLI), now=now
    )
    await service.reconcile(store, settings, now=now)
    async with store.read() as tx:
        assert (await tx.meeting(TALKS)).status is S.CLEARED  # type: ignore[union-attr]


async def test_editing_the_file_applies_details_and_status_through_the_machine(
    store: Store, database_url: str, tmp_path: Path, now: datetime
) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    await service.reconcile(store, settings_from(tmp_path, text, database_url), now=now)
    edited = text.replace('location = "Moscow, Kremlin"', 'location = "Moscow, Novo-Ogaryovo"')
    edited = edited.replace(
        f'status = "postponed"\n{SEED_REASON}\n{SEED_CONDITIONS}',
        'status = "cleared"\nreason = "second assessment negative"\nconditions = []',
    )
    edited = edited.replace(
        SEED_VISIT,
        f"{SEED_VISIT}\n"
        '  [[meetings.history]]\n  at = "2026-02-24T10:00:00+03:00"\n  status = "cleared"',
    )
    report = await service.reconcile(store, settings_from(tmp_path, edited, database_url), now=now)
    assert [c.entry.to_status for c in report.changes] == [S.CLEARED]
    async with store.read() as tx:
        meeting = await tx.meeting(TALKS)
        history = await tx.history(TALKS)
    assert meeting is not None
    assert meeting.location == "Moscow, Novo-Ogaryovo"
    assert meeting.status is S.CLEARED
    assert meeting.conditions == ()
    assert [e.kind for e in history[-2:]] == [EventKind.UPDATED, EventKind.CLEARED]
    assert all(e.source is Source.FILE for e in history)


async def test_an_impossible_status_in_the_file_is_refused_and_nothing_changes(
    store: Store, database_url: str, tmp_path: Path, now: datetime
) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    await service.reconcile(store, settings_from(tmp_path, text, database_url), now=now)
    await service.apply_status_change(
        store, StatusChange(meeting_id=TALKS, status=S.CANCELLED), now=now
    )
    before = await snapshot(store, TALKS)
    edited = (
        text.replace('location = "Moscow, Kremlin"', 'location = "Sochi"')
        .replace(
            f'status = "postponed"\n{SEED_REASON}',
            'status = "confirmed"\nreason = "back on"',
        )
        .replace(
            SEED_VISIT,
            '  reason = "visit"\n  [[meetings.history]]\n  at = "2026-02-24T10:00:00+03:00"\n'
            '  status = "confirmed"',
        )
    )
    settings = settings_from(tmp_path, edited, database_url)
    with pytest.raises(ConfigError) as raised:
        await service.reconcile(store, settings, now=now)
    # The service names the place in the file's structure; the caller cites the line.
    assert raised.value.loc == ("meetings", 0, "status")
    cited = cite(raised.value, settings.config_path)
    assert re.fullmatch(r".*notifier.toml:\d+: meetings\[0\]\.status: .*cancelled.*", str(cited))
    line = settings.config_path.read_text().splitlines()[cited.line - 1]
    assert line.strip().startswith("status")
    assert await snapshot(store, TALKS) == before


async def test_records_the_file_drops_are_retired_and_come_back_with_their_history(
    store: Store, database_url: str, tmp_path: Path, now: datetime
) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    full = settings_from(tmp_path, text, database_url)
    await service.reconcile(store, full, now=now)
    head = text[: text.index("[[meetings]]")]
    empty = settings_from(tmp_path, head, database_url)
    report = await service.reconcile(store, empty, now=now)
    assert f"meeting {TALKS}" in report.retired
    assert "subscriber press-desk" in report.retired
    async with store.read() as tx:
        assert await tx.meeting(TALKS) is None
        assert await tx.subscribers() == []
        assert len(await tx.history(TALKS)) == 3  # history is never deleted
    await service.reconcile(store, settings_from(tmp_path, text, database_url), now=now)
    async with store.read() as tx:
        assert await tx.meeting(TALKS) is not None
        assert len(await tx.subscribers()) == len(full.subscribers)


async def test_the_file_cannot_take_over_a_record_made_through_the_api(
    store: Store,
    database_url: str,
    subscriber_factory: Callable[..., Subscriber],
    now: datetime,
) -> None:
    async with store.write() as tx:
        await tx.save_subscriber(subscriber_factory(id="press-desk", source=Source.API), now=now)
    settings = load_settings(SHIPPED, database_url=database_url)
    with pytest.raises(ConfigError, match=r"subscribers\[0\]\.id: .*created through the api"):
        await service.reconcile(store, settings, now=now)
    async with store.read() as tx:
        assert await tx.meeting(TALKS) is None  # the whole reconciliation rolled back
