"""The `Subscribers` port: subscribers, their endpoints, and self-service confirmation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from notifier.domain.errors import Conflict
from notifier.domain.models import QuietHours, Source, Subscriber, WebhookEndpoint
from notifier.domain.outbox import Channel
from notifier.domain.reminders import Reminder, ReminderState
from notifier.store import Store
from notifier.store.records import SubscriberRecord
from tests.contract.conftest import Seed

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROTATED = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


async def record_of(store: Store, subscriber_id: str) -> SubscriberRecord:
    async with store.read() as tx:
        record = await tx.subscriber_record(subscriber_id)
    assert record is not None, f"{subscriber_id} is not stored"
    return record


def self_service(subscriber_id: str) -> Subscriber:
    """A subscription made on the public pages, inactive until confirmed."""
    return Subscriber(
        id=subscriber_id,
        email=f"{subscriber_id}@example.org",
        source=Source.PUBLIC,
        active=False,
        confirmed=False,
    )


async def test_a_subscriber_saved_is_read_back_equal_and_saving_it_again_changes_nothing(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    subscriber = subscriber_factory(
        id="wire",
        name="Wire",
        email="desk@example.org",
        webhook=WebhookEndpoint(url="https://hooks.example.org/n", secrets=(ROTATED, SECRET)),
        notify=("tgram://bot/chat", "ntfy://topic"),
        timezone="America/New_York",
        locale="ru",
        meetings=("talks",),
        tags=("bilateral",),
        events=("meeting.postponed", "meeting.reminder"),
        reminders=(timedelta(hours=24), timedelta(minutes=15)),
        quiet_hours=QuietHours.parse("22:00-07:00"),
        audience="press",
        source=Source.FILE,
    )
    async with store.write() as tx:
        assert await tx.save_subscriber(subscriber, now=now)
    later = now + timedelta(hours=1)
    async with store.write() as tx:
        assert not await tx.save_subscriber(subscriber, now=later)
    record = await record_of(store, "wire")
    assert record.subscriber == subscriber
    assert (record.created_at, record.updated_at, record.retired_at) == (now, now, None)


async def test_save_subscriber_reports_a_change_of_any_field_and_writes_it(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    subscriber = subscriber_factory(id="s")
    async with store.write() as tx:
        await tx.save_subscriber(subscriber, now=now)
    later = now + timedelta(hours=1)
    changes: list[dict[str, object]] = [
        {"name": "New name"},
        {"timezone": "Europe/Moscow"},
        {"meetings": ("talks",)},
        {"reminders": (timedelta(minutes=5),)},
        {"active": False},
        {"webhook": WebhookEndpoint(url="https://h.example.org", secrets=(SECRET,))},
        {"webhook": WebhookEndpoint(url="https://h.example.org", secrets=(ROTATED,))},
    ]
    for change in changes:
        subscriber = dataclasses.replace(subscriber, **change)  # type: ignore[arg-type]
        async with store.write() as tx:
            assert await tx.save_subscriber(subscriber, now=later), change
        record = await record_of(store, "s")
        assert record.subscriber == subscriber, change
    assert (record.created_at, record.updated_at) == (now, later)


async def test_save_subscriber_with_create_refuses_an_id_that_exists(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    first = subscriber_factory(id="s", name="First")
    async with store.write() as tx:
        assert await tx.save_subscriber(first, now=now, create=True)
    with pytest.raises(Conflict, match="already exists"):
        async with store.write() as tx:
            await tx.save_subscriber(
                subscriber_factory(id="s", name="Second"), now=now, create=True
            )
    assert (await record_of(store, "s")).subscriber == first


async def test_changing_endpoints_adds_and_removes_them(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    first = subscriber_factory(id="s", email="a@example.org")
    async with store.write() as tx:
        await tx.save_subscriber(first, now=now)
    second = subscriber_factory(
        id="s", email=None, webhook=WebhookEndpoint(url="https://h.example.org", secrets=(SECRET,))
    )
    async with store.write() as tx:
        assert await tx.save_subscriber(second, now=now)
    assert (await record_of(store, "s")).subscriber == second
    async with store.read() as tx:
        assert await tx.endpoint_address("s", Channel.EMAIL) is None


async def test_a_kept_endpoint_stays_disabled_across_saves_and_a_new_address_is_enabled(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    """An unsubscribe survives the subscriber being saved again unchanged (a config
    reload); a new address is a new endpoint, used again."""
    subscriber = subscriber_factory(id="s", email="old@example.org")
    async with store.write() as tx:
        await tx.save_subscriber(subscriber, now=now)
        await tx.disable_endpoint("s", Channel.EMAIL, reason="unsubscribed", now=now)
    async with store.write() as tx:
        await tx.save_subscriber(subscriber, now=now)
    assert (await record_of(store, "s")).subscriber.email is None
    async with store.read() as tx:
        assert await tx.endpoint_address("s", Channel.EMAIL) == "old@example.org"
    moved = subscriber_factory(id="s", email="new@example.org")
    async with store.write() as tx:
        assert await tx.save_subscriber(moved, now=now)
    assert (await record_of(store, "s")).subscriber.email == "new@example.org"


async def test_add_subscribers_stores_each_as_save_subscriber_would(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    """Each reads back equal, endpoints and all; an id already present fails the whole
    call (`Conflict`) and leaves nothing of it."""
    many = [
        subscriber_factory(
            id=f"bulk-{n:02d}",
            email=f"r{n}@example.org" if n % 2 else None,
            webhook=WebhookEndpoint(url=f"https://h.example.org/{n}", secrets=(SECRET,))
            if n % 3
            else None,
            notify=("ntfy://topic",) if n % 5 == 0 else (),
            meetings=("talks",),
            reminders=(timedelta(minutes=15),),
        )
        for n in range(1, 40)
    ]
    async with store.write() as tx:
        assert await tx.add_subscribers(many, now=now) == len(many)
        assert await tx.add_subscribers([], now=now) == 0
    async with store.read() as tx:
        records = await tx.subscriber_records(ids=[s.id for s in many])
    assert [r.subscriber for r in records] == many
    with pytest.raises(Conflict):
        async with store.write() as tx:
            await tx.add_subscribers([subscriber_factory(id="new"), many[0]], now=now)
    async with store.read() as tx:
        assert await tx.subscriber_record("new") is None


async def test_an_unknown_subscriber_reads_as_none(store: Store) -> None:
    async with store.read() as tx:
        assert await tx.subscriber_record("nobody") is None
        assert await tx.subscriber_records(ids=["nobody"]) == []
        assert await tx.subscribers() == []


async def test_a_retired_subscriber_is_inactive_and_listed_only_on_request(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    async with store.write() as tx:
        await tx.add_subscribers(
            [subscriber_factory(id="gone"), subscriber_factory(id="kept")], now=now
        )
        await tx.retire_subscriber("gone", now=now)
    async with store.read() as tx:
        assert [s.id for s in await tx.subscribers()] == ["kept"]
        assert [r.subscriber.id for r in await tx.subscriber_records()] == ["kept"]
        everyone = await tx.subscriber_records(include_retired=True)
        assert [r.subscriber.id for r in everyone] == ["gone", "kept"]
        gone = await tx.subscriber_record("gone")
    assert gone is not None
    assert gone.retired_at == now
    assert not gone.subscriber.active


async def test_saving_a_retired_subscriber_brings_it_back(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    subscriber = subscriber_factory(id="s")
    async with store.write() as tx:
        await tx.save_subscriber(subscriber, now=now)
        await tx.retire_subscriber("s", now=now)
    async with store.write() as tx:
        assert await tx.save_subscriber(subscriber, now=now)
    record = await record_of(store, "s")
    assert (record.retired_at, record.subscriber) == (None, subscriber)


async def test_retire_subscriber_withdraws_its_pending_reminders_only(
    store: Store, seed: Seed, now: datetime
) -> None:
    """Its pending reminders are withdrawn (and schedulers told), a fired one stays
    fired, and another reader's pending one stays pending."""
    await seed(subscribers=("gone", "kept"))
    due = now + timedelta(days=1)
    plan = [
        Reminder(meeting_id="m", subscriber_id=s, offset=o, due_at=due - o, sequence=0)
        for s in ("gone", "kept")
        for o in (timedelta(hours=1), timedelta(hours=2))
    ]
    async with store.write() as tx:
        await tx.add_reminders(plan)
    async with store.write() as tx:
        fired = next(r.id for r in await tx.meeting_reminders("m") if r.subscriber_id == "gone")
        await tx.finish_reminders([(fired, ReminderState.FIRED, False)], at=now)
        before = await tx.reminders_version()
    async with store.write() as tx:
        await tx.retire_subscriber("gone", now=now)
    async with store.read() as tx:
        states = sorted((r.subscriber_id, r.state.value) for r in await tx.meeting_reminders("m"))
        assert await tx.reminders_version() != before
    assert states == [
        ("gone", "fired"),
        ("gone", "withdrawn"),
        ("kept", "pending"),
        ("kept", "pending"),
    ]


async def test_a_meetings_readers_are_those_following_every_meeting_or_naming_it(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    """With `meeting_id`, a subscriber who follows every meeting or whose list names it
    (exactly: ``_`` and ``%`` are no wildcards, a longer id is no match); tags are left to
    the caller; retired ones never."""
    everyone = subscriber_factory(id="everyone")
    named = subscriber_factory(id="named", meetings=("talks_1", "summit"), tags=("x",))
    other = subscriber_factory(id="other", meetings=("talksx1", "talks%"))
    longer = subscriber_factory(id="longer", meetings=("summit-2",))
    retired = subscriber_factory(id="retired", meetings=("summit",))
    async with store.write() as tx:
        await tx.add_subscribers([everyone, named, other, longer, retired], now=now)
        await tx.retire_subscriber("retired", now=now)
    async with store.read() as tx:
        assert [s.id for s in await tx.subscribers(meeting_id="talks_1")] == ["everyone", "named"]
        assert [s.id for s in await tx.subscribers(meeting_id="summit")] == ["everyone", "named"]
        assert [s.id for s in await tx.subscribers(meeting_id="talks")] == ["everyone"]
        assert [s.id for s in await tx.subscribers(meeting_id="talks%")] == ["everyone", "other"]
        assert len(await tx.subscribers()) == 4
        readers = await tx.subscriber_records(meeting_id="summit", include_retired=True)
        assert [r.subscriber.id for r in readers] == ["everyone", "named", "retired"]
    async with store.write() as tx:  # following every meeting again
        await tx.save_subscriber(subscriber_factory(id="other"), now=now)
    async with store.read() as tx:
        assert [s.id for s in await tx.subscribers(meeting_id="talks")] == ["everyone", "other"]


async def test_subscribers_page_in_id_order_with_after_and_limit(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    """Pages never overlap nor skip, also with `meeting_id` and with retired ones among
    them (a fan-out's chunks)."""
    ids = [f"r{n:02d}" for n in range(10)]
    async with store.write() as tx:
        await tx.add_subscribers(
            [
                subscriber_factory(id=i, meetings=("other",) if n % 3 == 0 else ())
                for n, i in enumerate(reversed(ids))
            ],
            now=now,
        )
        await tx.retire_subscriber("r04", now=now)
    async with store.read() as tx:
        pages: list[list[str]] = []
        after: str | None = None
        while page := [
            s.id for s in await tx.subscribers(meeting_id="talks", after=after, limit=3)
        ]:
            pages.append(page)
            after = page[-1]
        everyone = [s.id for s in await tx.subscribers(meeting_id="talks")]
        records = await tx.subscriber_records(after="r05", limit=2, include_retired=True)
    assert [i for page in pages for i in page] == everyone
    assert all(len(page) <= 3 for page in pages)
    assert everyone == sorted(everyone)
    assert "r04" not in everyone
    assert [r.subscriber.id for r in records] == ["r06", "r07"]


async def test_subscriber_records_select_by_ids_and_by_source(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    async with store.write() as tx:
        await tx.add_subscribers(
            [
                subscriber_factory(id="a", source=Source.FILE),
                subscriber_factory(id="b", source=Source.API),
                subscriber_factory(id="c", source=Source.FILE),
            ],
            now=now,
        )
    async with store.read() as tx:
        by_ids = await tx.subscriber_records(ids=["c", "a", "unknown"])
        from_file = await tx.subscriber_records(source=Source.FILE)
        none = await tx.subscriber_records(ids=[])
    assert [r.subscriber.id for r in by_ids] == ["a", "c"]
    assert [r.subscriber.id for r in from_file] == ["a", "c"]
    assert none == []


async def test_a_subscriber_awaiting_confirmation_is_unconfirmed_until_the_link_is_followed(
    store: Store, now: datetime
) -> None:
    """Following the link (before it runs out) makes the subscriber active and confirmed
    and returns its id; the link then stops working."""
    async with store.write() as tx:
        await tx.save_subscriber(self_service("pub"), now=now)
        await tx.await_confirmation("pub", token_hash="h1", until=now + timedelta(days=1))
    waiting = await record_of(store, "pub")
    assert (waiting.subscriber.confirmed, waiting.subscriber.active) == (False, False)
    assert waiting.confirmed_at is None
    later = now + timedelta(hours=1)
    async with store.write() as tx:
        assert await tx.confirm_subscription("h1", now=later) == "pub"
    confirmed = await record_of(store, "pub")
    assert (confirmed.subscriber.confirmed, confirmed.subscriber.active) == (True, True)
    assert confirmed.confirmed_at == later
    async with store.write() as tx:
        assert await tx.confirm_subscription("h1", now=later) is None


async def test_a_confirmation_link_works_until_its_time_and_not_after(
    store: Store, now: datetime
) -> None:
    until = now + timedelta(days=1)
    async with store.write() as tx:
        await tx.add_subscribers([self_service("late"), self_service("just")], now=now)
        await tx.await_confirmation("late", token_hash="late", until=until)
        await tx.await_confirmation("just", token_hash="just", until=until)
    async with store.write() as tx:
        assert await tx.confirm_subscription("late", now=until + timedelta(seconds=1)) is None
        assert await tx.confirm_subscription("just", now=until) == "just"
        assert await tx.confirm_subscription("unknown", now=now) is None
    assert not (await record_of(store, "late")).subscriber.confirmed


async def test_a_new_confirmation_link_replaces_the_old_one(store: Store, now: datetime) -> None:
    until = now + timedelta(days=1)
    async with store.write() as tx:
        await tx.save_subscriber(self_service("pub"), now=now)
        await tx.await_confirmation("pub", token_hash="old", until=until)
        await tx.await_confirmation("pub", token_hash="new", until=until)
    async with store.write() as tx:
        assert await tx.confirm_subscription("old", now=now) is None
        assert await tx.confirm_subscription("new", now=now) == "pub"


async def test_a_retired_subscribers_confirmation_link_does_nothing(
    store: Store, now: datetime
) -> None:
    async with store.write() as tx:
        await tx.save_subscriber(self_service("pub"), now=now)
        await tx.await_confirmation("pub", token_hash="h", until=now + timedelta(days=1))
        await tx.retire_subscriber("pub", now=now)
    async with store.write() as tx:
        assert await tx.confirm_subscription("h", now=now) is None
    assert not (await record_of(store, "pub")).subscriber.active


async def test_a_confirmed_subscriber_made_to_await_confirmation_again_is_unconfirmed(
    store: Store, now: datetime
) -> None:
    """What a subscription asked for again after it was retired relies on: the earlier
    confirmation does not carry over to the new request."""
    async with store.write() as tx:
        await tx.save_subscriber(self_service("pub"), now=now)
        await tx.await_confirmation("pub", token_hash="first", until=now + timedelta(days=1))
        assert await tx.confirm_subscription("first", now=now) == "pub"
        await tx.retire_subscriber("pub", now=now)
        await tx.save_subscriber(self_service("pub"), now=now)
        await tx.await_confirmation("pub", token_hash="second", until=now + timedelta(days=1))
    again = await record_of(store, "pub")
    assert (again.retired_at, again.confirmed_at, again.subscriber.confirmed) == (None, None, False)


async def test_rotate_links_gives_the_subscriber_the_new_salt_and_no_one_else(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    async with store.write() as tx:
        await tx.add_subscribers([subscriber_factory(id="a"), subscriber_factory(id="b")], now=now)
        await tx.rotate_links("a", salt="0123456789abcdef")
    assert (await record_of(store, "a")).link_salt == "0123456789abcdef"
    assert (await record_of(store, "b")).link_salt == ""
    async with store.write() as tx:
        await tx.rotate_links("a", salt="fedcba9876543210")
        contacts = await tx.contacts(["a"])
    assert contacts["a"].link_salt == "fedcba9876543210"


async def test_confirmations_are_counted_per_address_since_the_instant_asked(
    store: Store, now: datetime
) -> None:
    hour = timedelta(hours=1)
    async with store.write() as tx:
        assert await tx.confirmations_sent("ann", since=now - 24 * hour) == 0
        for at in (now - 30 * hour, now - 2 * hour, now - hour, now):
            await tx.record_confirmation("ann", now=at)
        await tx.record_confirmation("bob", now=now)
    async with store.read() as tx:
        assert await tx.confirmations_sent("ann", since=now - 24 * hour) == 3
        assert await tx.confirmations_sent("ann", since=now - hour) == 2  # at `since` counts
        assert await tx.confirmations_sent("ann", since=now - 48 * hour) == 4
        assert await tx.confirmations_sent("bob", since=now - 24 * hour) == 1


async def test_prune_unconfirmed_deletes_only_self_service_requests_whose_link_ran_out(
    store: Store, subscriber_factory: Callable[..., Subscriber], seed: Seed, now: datetime
) -> None:
    """Gone with their endpoints and reminders: public, never confirmed, link run out
    before `before` (or never sent). Kept: confirmed ones, links still working, and
    subscribers from anywhere else. Returns how many went."""
    await seed(subscribers=())
    before = now + timedelta(days=2)
    async with store.write() as tx:
        await tx.add_subscribers(
            [
                self_service("ran-out"),
                self_service("no-link"),
                self_service("still-valid"),
                self_service("confirmed"),
                subscriber_factory(id="api", source=Source.API),
            ],
            now=now,
        )
        await tx.await_confirmation("ran-out", token_hash="a", until=before - timedelta(seconds=1))
        await tx.await_confirmation("still-valid", token_hash="b", until=before)
        await tx.await_confirmation("confirmed", token_hash="c", until=now + timedelta(hours=1))
        assert await tx.confirm_subscription("c", now=now) == "confirmed"
        await tx.add_reminders(
            [
                Reminder(
                    meeting_id="m",
                    subscriber_id="ran-out",
                    offset=timedelta(hours=1),
                    due_at=before,
                    sequence=0,
                )
            ]
        )
    async with store.write() as tx:
        assert await tx.prune_unconfirmed(before=before) == 2
    async with store.read() as tx:
        left = [r.subscriber.id for r in await tx.subscriber_records(include_retired=True)]
        assert await tx.endpoint_address("ran-out", Channel.EMAIL) is None
        assert await tx.meeting_reminders("m") == []
    assert left == ["api", "confirmed", "still-valid"]


async def test_prune_unconfirmed_forgets_confirmation_counts_a_day_older_than_before(
    store: Store, now: datetime
) -> None:
    async with store.write() as tx:
        await tx.record_confirmation("ann", now=now - timedelta(days=1, seconds=1))
        await tx.record_confirmation("ann", now=now - timedelta(days=1))
        await tx.record_confirmation("ann", now=now)
    async with store.write() as tx:
        assert await tx.prune_unconfirmed(before=now) == 0
    async with store.read() as tx:
        assert await tx.confirmations_sent("ann", since=now - timedelta(days=30)) == 2
