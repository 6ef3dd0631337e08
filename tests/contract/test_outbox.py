"""The `Outbox` port: queueing, claiming and recording deliveries, handing claims back,
pruning, failing endpoints, bounces and the suppression list, replay.

Claims run out by the database's clock on PostgreSQL (replicas' clocks differ) and by the
`now` given on SQLite: a claim meant to have run out is taken with a lease of a
millisecond, a moment is let pass, and the next claim is made a second later.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from notifier.domain.models import EventKind, Source, Subscriber, WebhookEndpoint
from notifier.domain.outbox import (
    Attempt,
    Channel,
    Contact,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    Outcome,
    Replay,
    run_changes,
    target_of,
)
from notifier.store import Store
from notifier.store.records import Pruned, Suppression
from tests.contract.conftest import Seed

Make = Callable[..., Delivery]
S = DeliveryStatus
#: A lease no test outlives.
LEASE = timedelta(minutes=5)
#: A lease that has run out by the next claim (see the module docstring).
BRIEF = timedelta(milliseconds=1)
HOOK = "https://hooks.example.org/n"


async def enqueue(store: Store, *items: Delivery, now: datetime) -> int:
    async with store.write() as tx:
        return await tx.enqueue(items, now=now)


async def claim(
    store: Store, worker: str, *, now: datetime, lease: timedelta = LEASE, limit: int = 100
) -> list[str]:
    """The ids `worker` claims, in the order the claim gives them."""
    async with store.write() as tx:
        return [d.id for d in await tx.claim(worker=worker, now=now, lease=lease, limit=limit)]


async def run_out() -> None:
    """Let a `BRIEF` lease run out by PostgreSQL's clock too."""
    await asyncio.sleep(0.01)


async def get(store: Store, delivery_id: str) -> Delivery:
    async with store.read() as tx:
        found = await tx.delivery(delivery_id)
    assert found is not None, f"{delivery_id} is not in the outbox"
    return found


def attempt(
    delivery_id: str, *, at: datetime, status: DeliveryStatus = S.SENT, **kw: object
) -> Attempt:
    outcome = {S.SENT: Outcome.SENT, S.RETRYING: Outcome.TEMPORARY, S.DEAD: Outcome.PERMANENT}
    values: dict[str, object] = {"outcome": outcome[status], "duration_ms": 12}
    values.update(kw)
    return Attempt(delivery_id=delivery_id, at=at, status=status, **values)  # type: ignore[arg-type]


def readers(count: int) -> tuple[str, ...]:
    return tuple(f"s{n}" for n in range(1, count + 1))


# -- queueing -------------------------------------------------------------------------------


async def test_a_delivery_enqueued_is_read_back_equal_with_its_notice(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """Read back without its payload (that is the notice's), which `notices` gives."""
    await seed(subscribers=readers(2))
    email = delivery_factory(sequence=3, kind=EventKind.RESCHEDULED)
    chat = delivery_factory(
        subscriber_id="s2",
        channel=Channel.NOTIFY,
        target="abc",
        next_attempt_at=now + timedelta(hours=1),
    )
    assert await enqueue(store, email, chat, now=now) == 2
    assert await get(store, email.id) == dataclasses.replace(email, payload=None)
    assert await get(store, chat.id) == dataclasses.replace(chat, payload=None)
    async with store.read() as tx:
        assert await tx.notices([email.notice_id, chat.notice_id, "ntc_unknown"]) == {
            email.notice_id: email.payload,
            chat.notice_id: chat.payload,
        }
        assert await tx.delivery("msg_unknown") is None


async def test_enqueue_leaves_a_delivery_already_there_alone(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """The same id again adds nothing (the count says so) and keeps the first row; a
    notice shared by many deliveries is stored once, as first given."""
    await seed(subscribers=readers(3))
    first = delivery_factory(notice_id="ntc_shared", payload={"said": "first"})
    assert await enqueue(store, first, now=now) == 1
    again = dataclasses.replace(first, sequence=9, next_attempt_at=now + timedelta(days=1))
    sharing = delivery_factory(subscriber_id="s2", notice_id="ntc_shared", payload={"said": "x"})
    assert await enqueue(store, again, sharing, now=now) == 1
    assert await enqueue(store, now=now) == 0
    assert await get(store, first.id) == dataclasses.replace(first, payload=None)
    async with store.read() as tx:
        assert await tx.notices(["ntc_shared"]) == {"ntc_shared": {"said": "first"}}


async def test_notify_outbox_reaches_listeners_when_its_transaction_commits_only(
    store: Store,
) -> None:
    if store.backend != "postgresql":
        pytest.skip("SQLite has one process: its own worker is woken directly")
    heard = asyncio.Event()
    stop = asyncio.Event()
    listening = asyncio.create_task(store.listen_outbox(heard.set, stop, check=0.1))
    try:
        await asyncio.wait_for(heard.wait(), 5)  # the call made once it listens
        heard.clear()

        class RolledBack(Exception):
            pass

        async def rolled_back() -> None:
            async with store.write() as tx:
                await tx.notify_outbox()
                raise RolledBack

        with pytest.raises(RolledBack):
            await rolled_back()
        await asyncio.sleep(0.3)
        assert not heard.is_set()
        async with store.write() as tx:
            await tx.notify_outbox()
        await asyncio.wait_for(heard.wait(), 5)
    finally:
        stop.set()
        await listening


# -- claiming -------------------------------------------------------------------------------


async def test_claim_takes_due_deliveries_soonest_first_up_to_the_limit(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """Each claimed one is `sending`; one not due yet waits for its instant."""
    await seed(subscribers=readers(4))
    minute = timedelta(minutes=1)
    later = delivery_factory(subscriber_id="s1", next_attempt_at=now)
    soonest = delivery_factory(subscriber_id="s2", next_attempt_at=now - 2 * minute)
    middle = delivery_factory(subscriber_id="s3", next_attempt_at=now - minute)
    future = delivery_factory(subscriber_id="s4", next_attempt_at=now + minute)
    await enqueue(store, later, soonest, middle, future, now=now - 3 * minute)
    assert await claim(store, "w", now=now, limit=2) == [soonest.id, middle.id]
    assert (await get(store, soonest.id)).status is S.SENDING
    assert await claim(store, "w", now=now) == [later.id]
    assert await claim(store, "w", now=now) == []
    assert await claim(store, "w", now=now + minute) == [future.id]


async def test_claim_takes_pending_and_retrying_deliveries_and_nothing_finished(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    statuses = [S.PENDING, S.RETRYING, S.SENT, S.DEAD, S.MERGED, S.SUPPRESSED]
    await seed(subscribers=readers(len(statuses)))
    items = [
        delivery_factory(subscriber_id=f"s{n}", status=status, attempts=int(status is S.RETRYING))
        for n, status in enumerate(statuses, start=1)
    ]
    await enqueue(store, *items, now=now)
    claimed = await claim(store, "w", now=now)
    assert sorted(claimed) == sorted(d.id for d in items[:2])
    retrying = await get(store, items[1].id)
    assert (retrying.status, retrying.attempts) == (S.SENDING, 1)


async def test_a_claimed_delivery_is_invisible_to_another_claim_until_its_lease_ends(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    await seed(subscribers=readers(2))
    held = delivery_factory(subscriber_id="s1", next_attempt_at=now - timedelta(minutes=1))
    brief = delivery_factory(subscriber_id="s2")
    await enqueue(store, held, brief, now=now)
    assert await claim(store, "w1", now=now, limit=1) == [held.id]
    assert await claim(store, "w1", now=now, lease=BRIEF) == [brief.id]
    await run_out()
    later = now + timedelta(seconds=1)
    # `held` is still w1's; `brief` ran out (its worker died, say) and is taken over.
    assert await claim(store, "w2", now=later) == [brief.id]
    assert await claim(store, "w3", now=later) == []


async def test_claim_never_hands_the_same_delivery_to_two_workers(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """Workers claiming at once share the due deliveries out: each goes to exactly one."""
    await seed(subscribers=readers(30))
    items = [delivery_factory(subscriber_id=s) for s in readers(30)]
    await enqueue(store, *items, now=now)
    claims = await asyncio.gather(*(claim(store, f"w{n}", now=now, limit=9) for n in range(5)))
    everything = [i for ids in claims for i in ids]
    assert Counter(everything).most_common(1)[0][1] == 1
    assert sorted(everything) == sorted(d.id for d in items)


async def test_a_later_message_to_an_endpoint_waits_for_an_earlier_one_of_its_meeting(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """Never overtaken: a later sequence waits while an earlier one of the same meeting
    to the same endpoint is still to go (retrying, then sending); another meeting's, or
    another channel's, is not held back by it."""
    await seed(meetings=("m", "m2"))
    earlier = delivery_factory(sequence=1, status=S.RETRYING, next_attempt_at=now + LEASE)
    later = delivery_factory(sequence=2)
    other_meeting = delivery_factory(meeting_id="m2", sequence=5)
    other_channel = delivery_factory(sequence=2, channel=Channel.WEBHOOK)
    await enqueue(store, earlier, later, other_meeting, other_channel, now=now)
    assert sorted(await claim(store, "w", now=now)) == sorted([other_meeting.id, other_channel.id])
    async with store.write() as tx:
        sent = [attempt(d.id, at=now) for d in (other_meeting, other_channel)]
        assert await tx.record_attempts(sent, worker="w") == 2
    assert await claim(store, "w", now=now) == []
    assert await claim(store, "w", now=now + LEASE) == [earlier.id]
    assert await claim(store, "w", now=now + LEASE) == []
    async with store.write() as tx:
        await tx.record_attempts([attempt(earlier.id, at=now + LEASE)], worker="w")
    assert await claim(store, "w", now=now + LEASE) == [later.id]


async def test_due_together_a_lanes_earliest_sequence_is_claimed_first(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """Even when the later message has been due longer: a claim of one takes the
    earlier sequence, and the later one follows it."""
    await seed()
    second = delivery_factory(sequence=2, next_attempt_at=now - timedelta(minutes=1))
    first = delivery_factory(sequence=1, next_attempt_at=now)
    await enqueue(store, second, first, now=now)
    assert await claim(store, "w", now=now, limit=1) == [first.id]
    async with store.write() as tx:
        await tx.record_attempts([attempt(first.id, at=now)], worker="w")
    assert await claim(store, "w", now=now, limit=1) == [second.id]


async def test_an_endpoint_with_a_delivery_in_flight_is_given_no_second_one(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """While one delivery to an endpoint is sending under a live claim, no other to that
    endpoint (of any meeting) is claimed; another endpoint of the reader is."""
    await seed(meetings=("m", "m2"))
    sending = delivery_factory()
    await enqueue(store, sending, now=now)
    assert await claim(store, "w1", now=now) == [sending.id]
    same_endpoint = delivery_factory(meeting_id="m2")
    webhook = delivery_factory(meeting_id="m2", channel=Channel.WEBHOOK)
    await enqueue(store, same_endpoint, webhook, now=now)
    assert await claim(store, "w2", now=now) == [webhook.id]
    async with store.write() as tx:
        await tx.record_attempts([attempt(sending.id, at=now)], worker="w1")
    assert await claim(store, "w2", now=now) == [same_endpoint.id]


async def test_extend_claims_keeps_a_workers_claims_past_their_first_lease(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """Only `worker`'s own claims are kept (the count says how many); the others run out."""
    await seed(subscribers=readers(2))
    kept, lapsed = delivery_factory(subscriber_id="s1"), delivery_factory(subscriber_id="s2")
    await enqueue(store, kept, lapsed, now=now)
    await claim(store, "w1", now=now, lease=BRIEF)
    async with store.write() as tx:
        assert await tx.extend_claims([lapsed.id], worker="w2", lease=LEASE, now=now) == 0
        assert (
            await tx.extend_claims([kept.id, "msg_unknown"], worker="w1", lease=LEASE, now=now) == 1
        )
        assert await tx.extend_claims([], worker="w1", lease=LEASE, now=now) == 0
    await run_out()
    assert await claim(store, "w2", now=now + timedelta(seconds=1)) == [lapsed.id]


async def test_record_attempts_moves_the_holders_deliveries_on_and_logs_each_attempt(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """Sent, retrying (due again at its next instant) or dead, each with one more attempt
    and the attempt's error; the log keeps every attempt, oldest first."""
    await seed(subscribers=readers(3))
    sent, retried, dead = (delivery_factory(subscriber_id=s) for s in readers(3))
    await enqueue(store, sent, retried, dead, now=now)
    await claim(store, "w", now=now)
    at = now + timedelta(seconds=2)
    again = now + timedelta(minutes=10)
    async with store.write() as tx:
        moved = await tx.record_attempts(
            [
                attempt(sent.id, at=at, code=250),
                attempt(retried.id, at=at, status=S.RETRYING, error="busy", next_attempt_at=again),
                attempt(dead.id, at=at, status=S.DEAD, code=550, error="no such user"),
            ],
            worker="w",
        )
        assert await tx.record_attempts([], worker="w") == 0
    assert moved == 3
    found = {d: await get(store, d) for d in (sent.id, retried.id, dead.id)}
    assert [(d.status, d.attempts, d.last_error) for d in found.values()] == [
        (S.SENT, 1, None),
        (S.RETRYING, 1, "busy"),
        (S.DEAD, 1, "no such user"),
    ]
    assert found[retried.id].next_attempt_at == again
    async with store.read() as tx:
        assert await tx.attempts(dead.id) == [
            {
                "at": at.isoformat(),
                "duration_ms": 12,
                "outcome": "permanent",
                "code": 550,
                "error": "no such user",
            }
        ]
    assert await claim(store, "w", now=again - timedelta(seconds=1)) == []
    assert await claim(store, "w", now=again) == [retried.id]
    async with store.write() as tx:
        later = again + timedelta(seconds=1)
        await tx.record_attempts([attempt(retried.id, at=later)], worker="w")
        log = await tx.attempts(retried.id)
    assert [a["outcome"] for a in log] == ["temporary", "sent"]
    assert (await get(store, retried.id)).attempts == 2


async def test_an_attempt_by_a_worker_whose_claim_was_taken_over_moves_nothing(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """Its attempt is logged, but the delivery keeps the new holder's state."""
    await seed()
    item = delivery_factory()
    await enqueue(store, item, now=now)
    await claim(store, "old", now=now, lease=BRIEF)
    await run_out()
    assert await claim(store, "new", now=now + timedelta(seconds=1)) == [item.id]
    async with store.write() as tx:
        assert await tx.record_attempts([attempt(item.id, at=now)], worker="old") == 0
    found = await get(store, item.id)
    assert (found.status, found.attempts) == (S.SENDING, 0)
    async with store.read() as tx:
        assert len(await tx.attempts(item.id)) == 1
    async with store.write() as tx:
        assert await tx.record_attempts([attempt(item.id, at=now)], worker="new") == 1
    assert (await get(store, item.id)).status is S.SENT


async def test_an_attempt_not_counted_leaves_the_attempts_as_they_were(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """A paused channel's attempt: the delivery waits, its attempts unchanged."""
    await seed()
    item = delivery_factory()
    await enqueue(store, item, now=now)
    await claim(store, "w", now=now)
    wait = now + timedelta(seconds=5)
    paused = attempt(
        item.id,
        at=now,
        status=S.RETRYING,
        outcome=Outcome.PAUSED,
        counted=False,
        next_attempt_at=wait,
    )
    async with store.write() as tx:
        assert await tx.record_attempts([paused], worker="w") == 1
    found = await get(store, item.id)
    assert (found.status, found.attempts, found.next_attempt_at) == (S.RETRYING, 0, wait)


# -- handing claims back ----------------------------------------------------------------------


async def test_release_gives_a_workers_own_claims_back_untried_and_due_at_once(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """Pending again if never tried, retrying if tried before; another worker's claims
    named in the call stay with it."""
    await seed(subscribers=readers(3))
    minute = timedelta(minutes=1)
    fresh = delivery_factory(subscriber_id="s1", next_attempt_at=now - 2 * minute)
    tried = delivery_factory(
        subscriber_id="s2", status=S.RETRYING, attempts=2, next_attempt_at=now - minute
    )
    others = delivery_factory(subscriber_id="s3")
    await enqueue(store, fresh, tried, others, now=now)
    await claim(store, "w1", now=now, limit=2)
    await claim(store, "w2", now=now)
    async with store.write() as tx:
        await tx.release([fresh.id, tried.id, others.id], worker="w1")
        await tx.release([], worker="w1")
    found = [await get(store, d.id) for d in (fresh, tried, others)]
    assert [(d.status, d.attempts) for d in found] == [
        (S.PENDING, 0),
        (S.RETRYING, 2),
        (S.SENDING, 0),
    ]
    assert sorted(await claim(store, "w3", now=now)) == sorted([fresh.id, tried.id])


async def test_release_claims_hands_back_all_or_the_named_claims_of_one_worker(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    await seed(subscribers=readers(4))
    items = [delivery_factory(subscriber_id=s, attempts=1, status=S.RETRYING) for s in readers(4)]
    await enqueue(store, *items, now=now)
    mine = await claim(store, "w1", now=now, limit=3)
    theirs = await claim(store, "w2", now=now)
    async with store.write() as tx:
        assert await tx.release_claims("w1", [mine[0], theirs[0]]) == 1
        assert await tx.release_claims("w1", []) == 0
        assert await tx.release_claims("w1") == 2
        assert await tx.release_claims("w1") == 0
    statuses = {d.id: (await get(store, d.id)).status for d in items}
    assert statuses == {**dict.fromkeys(mine, S.RETRYING), theirs[0]: S.SENDING}
    assert [(await get(store, i)).attempts for i in mine] == [1, 1, 1]
    assert sorted(await claim(store, "w3", now=now)) == sorted(mine)


async def test_recover_claims_returns_every_claim_to_the_queue(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    await seed(subscribers=readers(3))
    items = [delivery_factory(subscriber_id=s) for s in readers(3)]
    await enqueue(store, *items, now=now)
    await claim(store, "w1", now=now, limit=1)
    await claim(store, "w2", now=now, limit=1)
    async with store.write() as tx:
        assert await tx.recover_claims() == 2
        assert await tx.recover_claims() == 0
    assert sorted(await claim(store, "w3", now=now)) == sorted(d.id for d in items)


# -- pruning --------------------------------------------------------------------------------


async def test_prune_removes_only_finished_rows_before_the_cutoff(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """Gone: sent and merged deliveries finished before `before` with their attempts and
    notices, attempts and event ids older than it. Kept: anything after it, deliveries
    still to go or dead (their old attempts go), notices still referred to, history."""
    await seed(subscribers=readers(6))
    old, cutoff = now - timedelta(days=40), now - timedelta(days=30)
    old_sent, old_dead = delivery_factory(subscriber_id="s1"), delivery_factory(subscriber_id="s2")
    old_merged = delivery_factory(subscriber_id="s3", status=S.MERGED)
    old_pending = delivery_factory(subscriber_id="s4", next_attempt_at=now + timedelta(days=1))
    await enqueue(store, old_sent, old_dead, old_merged, old_pending, now=old)
    await claim(store, "w", now=old)
    recent_sent = delivery_factory(subscriber_id="s5", status=S.SENT)
    recent_retry = delivery_factory(subscriber_id="s6")
    await enqueue(store, recent_sent, recent_retry, now=now)
    await claim(store, "w", now=now)
    async with store.write() as tx:
        await tx.record_attempts(
            [attempt(old_sent.id, at=old), attempt(old_dead.id, at=old, status=S.DEAD)],
            worker="w",
        )
        await tx.record_attempts(
            [attempt(recent_retry.id, at=now, status=S.RETRYING, next_attempt_at=now)],
            worker="w",
        )
        meeting = await tx.meeting("m")
        assert meeting is not None
        await tx.record_events([("old-1", meeting, 0), ("old-2", meeting, 0)], now=old)
        await tx.record_event("recent-event", result=meeting, sequence=0, now=now)
    async with store.write() as tx:
        pruned = await tx.prune(before=cutoff)
    assert pruned == Pruned(deliveries=2, attempts=2, events=2, notices=2)
    async with store.read() as tx:
        left = sorted(d.id for d in await tx.deliveries())
        assert await tx.attempts(old_dead.id) == []
        assert len(await tx.attempts(recent_retry.id)) == 1
        assert await tx.processed_event_ids(["old-1", "old-2", "recent-event"]) == {"recent-event"}
        notices = await tx.notices([d.notice_id for d in (old_sent, old_merged, old_dead)])
        assert list(notices) == [old_dead.notice_id]
        assert await tx.meeting("m") is not None
    assert left == sorted(d.id for d in (old_dead, old_pending, recent_sent, recent_retry))


async def test_prune_deletes_at_most_limit_of_each_kind_at_a_time(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    await seed(subscribers=readers(3))
    old = now - timedelta(days=40)
    await enqueue(
        store, *(delivery_factory(subscriber_id=s, status=S.SENT) for s in readers(3)), now=old
    )
    async with store.write() as tx:
        assert (await tx.prune(before=now, limit=2)).deliveries == 2
    async with store.write() as tx:
        assert (await tx.prune(before=now, limit=2)).deliveries == 1
    async with store.write() as tx:
        assert not await tx.prune(before=now, limit=2)


# -- endpoints ------------------------------------------------------------------------------


async def hooks(store: Store, now: datetime, *ids: str) -> None:
    async with store.write() as tx:
        await tx.add_subscribers(
            [
                Subscriber(
                    id=i,
                    email=f"{i}@example.org",
                    webhook=WebhookEndpoint(url=f"{HOOK}/{i}", secrets=("whsec_x",)),
                )
                for i in ids
            ],
            now=now,
        )


async def test_a_run_of_failures_begins_at_the_first_failure_and_ends_at_a_success(
    store: Store, now: datetime
) -> None:
    """`record_failure_runs` returns the runs of the endpoints that failed in the batch,
    each since its first failure; a success ends the run, the next failure begins one."""
    await hooks(store, now, "a", "b")
    hour = timedelta(hours=1)
    async with store.write() as tx:
        runs = await tx.record_failure_runs(run_changes([("a", False, now), ("b", False, now)]))
        assert sorted((r.subscriber_id, r.since, r.latest) for r in runs) == [
            ("a", now, now),
            ("b", now, now),
        ]
    async with store.write() as tx:
        runs = await tx.record_failure_runs(
            run_changes([("a", False, now + hour), ("b", True, now + hour)])
        )
        assert [(r.subscriber_id, r.since, r.latest) for r in runs] == [("a", now, now + hour)]
    async with store.write() as tx:
        runs = await tx.record_failure_runs(run_changes([("b", False, now + 2 * hour)]))
        assert [(r.subscriber_id, r.since) for r in runs] == [("b", now + 2 * hour)]
        assert await tx.record_failure_runs(run_changes([])) == []


async def test_endpoint_health_disables_a_webhook_failing_for_disable_after_and_says_so(
    store: Store, now: datetime
) -> None:
    """Disabled: gone from the subscriber and its contact, its address still known;
    the reader's other endpoints stay. No `disable_after`: none is disabled."""
    await hooks(store, now, "a", "b")
    days = timedelta(days=3)
    async with store.write() as tx:
        outcomes = [("a", False, now), ("b", False, now)]
        assert await tx.endpoint_health(outcomes, disable_after=days) == []
    async with store.write() as tx:
        assert await tx.endpoint_health([("b", False, now + days)], disable_after=None) == []
        disabled = await tx.endpoint_health(
            [("a", False, now + days - timedelta(seconds=1)), ("b", False, now + days)],
            disable_after=days,
        )
        assert disabled == [("b", now)]
        contacts = await tx.contacts(["a", "b"])
        assert await tx.endpoint_address("b", Channel.WEBHOOK) == f"{HOOK}/b"
        record = await tx.subscriber_record("b")
    assert record is not None
    assert (record.subscriber.webhook, record.subscriber.email) == (None, "b@example.org")
    assert (contacts["b"].webhook, contacts["b"].email) == (None, "b@example.org")
    assert contacts["a"].webhook is not None


async def test_an_endpoint_disabled_is_used_again_once_enabled_with_its_failures_forgotten(
    store: Store, now: datetime
) -> None:
    await hooks(store, now, "a")
    async with store.write() as tx:
        assert not await tx.enable_endpoint("a", Channel.WEBHOOK)  # never disabled
        await tx.record_failure_runs(run_changes([("a", False, now)]))
        await tx.disable_endpoint("a", Channel.WEBHOOK, reason="410 Gone", now=now)
    async with store.write() as tx:
        assert await tx.enable_endpoint("a", Channel.WEBHOOK)
        assert not await tx.enable_endpoint("a", Channel.WEBHOOK)
        contact = (await tx.contacts(["a"]))["a"]
        later = now + timedelta(days=1)
        runs = await tx.record_failure_runs(run_changes([("a", False, later)]))
    assert contact.webhook == WebhookEndpoint(url=f"{HOOK}/a", secrets=("whsec_x",))
    assert [r.since for r in runs] == [later]


async def test_disable_endpoint_stops_one_channel_of_a_subscriber(
    store: Store, now: datetime
) -> None:
    await hooks(store, now, "a", "b")
    async with store.write() as tx:
        await tx.disable_endpoint("a", Channel.EMAIL, reason="unsubscribed", now=now)
        contacts = await tx.contacts(["a", "b"])
        assert await tx.endpoint_address("a", Channel.EMAIL) == "a@example.org"
        assert await tx.endpoint_address("a", Channel.NOTIFY) is None
    assert (contacts["a"].email, contacts["a"].webhook is not None) == (None, True)
    assert contacts["b"].email == "b@example.org"


async def test_contacts_say_how_to_reach_each_subscriber_now(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    chat = "tgram://bot/chat"
    reader = subscriber_factory(
        id="reader",
        name="Reader",
        email="r@example.org",
        webhook=WebhookEndpoint(url=HOOK, secrets=("whsec_a", "whsec_b")),
        notify=(chat,),
        locale="ru",
        timezone="Europe/Moscow",
    )
    public = subscriber_factory(id="public", source=Source.PUBLIC, email="p@example.org")
    async with store.write() as tx:
        await tx.add_subscribers([reader, public, subscriber_factory(id="gone")], now=now)
        await tx.retire_subscriber("gone", now=now)
        await tx.rotate_links("reader", salt="salt")
        contacts = await tx.contacts(["reader", "public", "gone", "unknown"])
    assert contacts["reader"] == Contact(
        id="reader",
        name="Reader",
        locale="ru",
        timezone="Europe/Moscow",
        active=True,
        email="r@example.org",
        webhook=WebhookEndpoint(url=HOOK, secrets=("whsec_a", "whsec_b")),
        link_salt="salt",
        notify={target_of(chat): chat},
        self_service=False,
    )
    assert contacts["public"].self_service
    assert not contacts["gone"].active
    assert "unknown" not in contacts


# -- the suppression list and bounces --------------------------------------------------------


async def test_suppressed_addresses_are_matched_as_normal_address_writes_them(
    store: Store, now: datetime
) -> None:
    """Case and surrounding whitespace do not matter; the answer is in normal form."""
    async with store.write() as tx:
        await tx.suppress("  Ann@Example.ORG ", reason="550 no such user", now=now)
        found = await tx.suppressed(["ann@example.org", "ANN@EXAMPLE.ORG", "bob@example.org"])
        assert await tx.suppressed([]) == set()
        assert await tx.suppressed(["ann+tag@example.org"]) == set()
    assert found == {"ann@example.org"}


async def test_a_repeated_suppression_keeps_the_first_and_the_list_is_newest_first(
    store: Store, now: datetime
) -> None:
    later = now + timedelta(hours=1)
    async with store.write() as tx:
        await tx.suppress("ann@example.org", reason="first", now=now)
        await tx.suppress("ANN@example.org", reason="second", now=later)
        await tx.suppress("bob@example.org", reason="bob", now=later)
        listed = await tx.suppressions()
    assert listed == [
        Suppression(address="bob@example.org", reason="bob", since=later),
        Suppression(address="ann@example.org", reason="first", since=now),
    ]


async def test_unsuppress_takes_an_address_off_the_list_however_it_is_written(
    store: Store, now: datetime
) -> None:
    async with store.write() as tx:
        await tx.suppress("ann@example.org", reason="550", now=now)
        assert await tx.unsuppress(" ANN@example.org")
        assert not await tx.unsuppress("ann@example.org")
        assert await tx.suppressed(["ann@example.org"]) == set()
        assert await tx.suppressions() == []


async def test_a_bounce_is_recorded_once_per_dsn_and_address_as_an_uncounted_attempt(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    await seed()
    item = delivery_factory(status=S.SENT, attempts=1)
    await enqueue(store, item, now=now)

    async def bounce(dsn: str, address: str, *, permanent: bool) -> bool:
        async with store.write() as tx:
            return await tx.add_bounce(
                item.id,
                dsn_id=dsn,
                address=address,
                permanent=permanent,
                status="4.2.2" if not permanent else "5.1.1",
                reporting_mta="mx.example.org",
                at=now,
                code=452 if not permanent else 550,
                error="mailbox full" if not permanent else "no such user",
            )

    assert await bounce("dsn-1", "ann@example.org", permanent=False)
    assert not await bounce("dsn-1", "ANN@example.org", permanent=False)  # the same again
    assert await bounce("dsn-2", "ann@example.org", permanent=False)
    assert await bounce("dsn-3", "ann@example.org", permanent=True)
    async with store.read() as tx:
        assert await tx.soft_bounces(item.id) == 2
        assert await tx.soft_bounces("msg_other") == 0
        log = await tx.attempts(item.id)
    assert [(a["outcome"], a["code"], a["duration_ms"]) for a in log] == [
        ("temporary", 452, 0),
        ("temporary", 452, 0),
        ("permanent", 550, 0),
    ]
    assert (await get(store, item.id)).attempts == 1


async def test_mark_bounced_makes_a_sent_delivery_dead_and_only_a_sent_one(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    await seed(subscribers=readers(2))
    sent = delivery_factory(subscriber_id="s1", status=S.SENT)
    waiting = delivery_factory(subscriber_id="s2")
    await enqueue(store, sent, waiting, now=now)
    async with store.write() as tx:
        assert await tx.mark_bounced(sent.id, error="550 no such user")
        assert not await tx.mark_bounced(sent.id, error="again")
        assert not await tx.mark_bounced(waiting.id, error="not sent")
    found = await get(store, sent.id)
    assert (found.status, found.last_error) == (S.DEAD, "550 no such user")
    assert (await get(store, waiting.id)).status is S.PENDING


# -- coalescing -----------------------------------------------------------------------------


async def test_waiting_changes_are_a_meetings_untried_change_deliveries_by_endpoint(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    await seed(meetings=("m", "m2"), subscribers=readers(2))
    email = delivery_factory(sequence=1)
    email_later = delivery_factory(sequence=2)
    hook = delivery_factory(subscriber_id="s2", channel=Channel.WEBHOOK)
    excluded = [
        delivery_factory(kind=EventKind.REMINDER),
        delivery_factory(status=S.RETRYING, attempts=1),
        delivery_factory(status=S.SENT),
        delivery_factory(meeting_id="m2"),
    ]
    await enqueue(store, email, email_later, hook, *excluded, now=now)
    async with store.read() as tx:
        waiting = await tx.waiting_changes("m")
    assert set(waiting) == {("s1", Channel.EMAIL), ("s2", Channel.WEBHOOK)}
    assert sorted(waiting[("s1", Channel.EMAIL)], key=lambda pair: pair[0].sequence) == [
        (dataclasses.replace(email, payload=None), email.payload),
        (dataclasses.replace(email_later, payload=None), email_later.payload),
    ]
    assert waiting[("s2", Channel.WEBHOOK)] == [
        (dataclasses.replace(hook, payload=None), hook.payload)
    ]


async def test_merged_deliveries_are_never_sent_and_only_pending_ones_merge(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    await seed(subscribers=readers(2))
    sending = delivery_factory(subscriber_id="s1")
    await enqueue(store, sending, now=now)
    assert await claim(store, "w", now=now) == [sending.id]
    folded = delivery_factory(subscriber_id="s2")
    await enqueue(store, folded, now=now)
    async with store.write() as tx:
        await tx.mark_merged([folded.id, sending.id])
        await tx.mark_merged([])
    assert (await get(store, folded.id)).status is S.MERGED
    assert (await get(store, sending.id)).status is S.SENDING
    async with store.write() as tx:
        await tx.recover_claims()
    assert await claim(store, "w", now=now) == [sending.id]


# -- reading and replaying ------------------------------------------------------------------


async def test_deliveries_list_newest_first_with_the_status_asked_for(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    await seed(subscribers=readers(4))
    minute = timedelta(minutes=1)
    oldest = delivery_factory(subscriber_id="s1", status=S.DEAD)
    middle = delivery_factory(subscriber_id="s2", status=S.RETRYING, attempts=1)
    newest = delivery_factory(subscriber_id="s3", status=S.SENT)
    await enqueue(store, oldest, now=now - 2 * minute)
    await enqueue(store, middle, now=now - minute)
    await enqueue(store, newest, now=now)
    async with store.read() as tx:

        async def ids(**kw: object) -> list[str]:
            return [d.id for d in await tx.deliveries(**kw)]  # type: ignore[arg-type]

        assert await ids() == [newest.id, middle.id, oldest.id]
        assert await ids(limit=2) == [newest.id, middle.id]
        assert await ids(status=S.DEAD) == [oldest.id]
        assert await ids(status=DeliveryFilter.FAILED) == [middle.id, oldest.id]
        assert await ids(status=DeliveryFilter.SENT) == [newest.id]
        assert await ids(status=S.PENDING) == []


async def test_retry_delivery_makes_a_delivery_not_sent_due_now_with_fresh_attempts(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    """Dead (or suppressed, retrying, pending): pending now, attempts and error cleared.
    Sent or being sent: left as it is. Unknown: None."""
    await seed(subscribers=readers(3))
    dead = delivery_factory(
        subscriber_id="s1", status=S.DEAD, attempts=8, last_error="gave up", next_attempt_at=now
    )
    sent = delivery_factory(subscriber_id="s2", status=S.SENT, attempts=1)
    sending = delivery_factory(subscriber_id="s3")
    await enqueue(store, dead, sent, sending, now=now)
    await claim(store, "w", now=now)
    later = now + timedelta(days=1)
    async with store.write() as tx:
        again = await tx.retry_delivery(dead.id, now=later)
        kept = await tx.retry_delivery(sent.id, now=later)
        still = await tx.retry_delivery(sending.id, now=later)
        assert await tx.retry_delivery("msg_unknown", now=later) is None
    assert again is not None
    assert (again.status, again.attempts, again.last_error, again.next_attempt_at) == (
        S.PENDING,
        0,
        None,
        later,
    )
    assert kept is not None
    assert (kept.status, kept.attempts) == (S.SENT, 1)
    assert still is not None
    assert still.status is S.SENDING


async def test_replay_makes_what_the_selection_picks_due_now_and_a_dry_run_changes_nothing(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    await seed(subscribers=readers(2))
    day = timedelta(days=1)
    dead = dict(status=S.DEAD, attempts=8, last_error="gave up")
    old = delivery_factory(subscriber_id="s1", **dead)
    new = delivery_factory(subscriber_id="s1", **dead)
    theirs = delivery_factory(subscriber_id="s2", **dead)
    retrying = delivery_factory(subscriber_id="s2", status=S.RETRYING, attempts=2)
    sent = delivery_factory(subscriber_id="s2", status=S.SENT)
    await enqueue(store, old, now=now - 2 * day)
    await enqueue(store, new, theirs, retrying, sent, now=now - day)
    later = now + day
    async with store.write() as tx:
        picked = await tx.replay(Replay(), now=later, dry_run=True)
    assert picked[0] == old.id  # oldest first
    assert sorted(picked) == sorted([old.id, new.id, theirs.id])
    assert (await get(store, old.id)).status is S.DEAD
    async with store.write() as tx:
        chosen = Replay(since=now - day, subscriber_id="s1")
        assert await tx.replay(chosen, now=later) == [new.id]
        failed = await tx.replay(
            Replay(status=DeliveryFilter.FAILED, subscriber_id="s2"), now=later
        )
    assert sorted(failed) == sorted([theirs.id, retrying.id])
    replayed = [await get(store, i) for i in (new.id, theirs.id, retrying.id)]
    assert all(
        (d.status, d.attempts, d.last_error, d.next_attempt_at) == (S.PENDING, 0, None, later)
        for d in replayed
    )
    assert (await get(store, old.id)).status is S.DEAD
    assert (await get(store, sent.id)).status is S.SENT


async def test_queue_stats_count_every_status_and_age_the_oldest_not_yet_sent(
    store: Store, seed: Seed, delivery_factory: Make, now: datetime
) -> None:
    async with store.read() as tx:
        empty = await tx.queue_stats(now=now)
    assert empty.per_status == dict.fromkeys(S, 0)
    assert empty.oldest_pending_seconds == 0.0
    await seed(subscribers=readers(4))
    await enqueue(
        store, delivery_factory(subscriber_id="s1", status=S.SENT), now=now - timedelta(hours=2)
    )
    await enqueue(store, delivery_factory(subscriber_id="s2"), now=now - timedelta(minutes=30))
    await enqueue(
        store,
        delivery_factory(subscriber_id="s3", status=S.RETRYING),
        delivery_factory(subscriber_id="s4", status=S.DEAD),
        now=now,
    )
    async with store.read() as tx:
        stats = await tx.queue_stats(now=now)
    assert stats.per_status == {
        **dict.fromkeys(S, 0),
        S.SENT: 1,
        S.PENDING: 1,
        S.RETRYING: 1,
        S.DEAD: 1,
    }
    assert stats.oldest_pending_seconds == 30 * 60
