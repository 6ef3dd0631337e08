"""What goes into the outbox when a meeting changes: one delivery per subscriber channel.

What a change says is stored once, as a *notice* whose payload is the webhook body of the
contract (``{"type", "timestamp", "data"}``); every delivery of that change refers to it.
So what a webhook receives and what an email says are made from the same snapshot of the
meeting, taken when the change was accepted, and a fan-out to thousands stores it once.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from notifier.domain.audiences import PUBLIC, Audiences
from notifier.domain.durations import format_duration
from notifier.domain.errors import DeliveryError, InvalidChange
from notifier.domain.languages import Languages, field_languages
from notifier.domain.matching import match_subscribers, release_at
from notifier.domain.models import (
    EventKind,
    HistoryEntry,
    Meeting,
    Source,
    Subscriber,
    WebhookEndpoint,
)
from notifier.domain.outcomes import Outcome as Outcome  # re-exported: the outbox speaks it
from notifier.domain.retry import RetryPolicy
from notifier.domain.views import view_entry, view_meeting


class Channel(StrEnum):
    """How a delivery travels."""

    EMAIL = "email"
    WEBHOOK = "webhook"
    #: Chat and push services through Apprise URLs: one delivery per URL.
    NOTIFY = "notify"


class DeliveryStatus(StrEnum):
    """Where a delivery stands in the outbox."""

    #: Waiting for its first attempt (possibly held back by quiet hours).
    PENDING = "pending"
    #: Claimed by a worker, being sent; reclaimed if the worker's lease runs out.
    SENDING = "sending"
    #: Failed temporarily; waiting for `next_attempt_at`.
    RETRYING = "retrying"
    #: Accepted by the receiver.
    SENT = "sent"
    #: Failed permanently or ran out of attempts: dead-lettered, replayable.
    DEAD = "dead"
    #: Folded, before it was sent, into a later delivery that says everything (coalescing).
    MERGED = "merged"
    #: Not sent: the address is on the suppression list (it bounced).
    SUPPRESSED = "suppressed"


class DeliveryFilter(StrEnum):
    """What `deliveries --status` and ``GET /v1/deliveries?status=`` select."""

    PENDING = "pending"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    DEAD = "dead"
    MERGED = "merged"
    SUPPRESSED = "suppressed"
    #: Failed at least once and not sent: retrying or dead.
    FAILED = "failed"

    def statuses(self) -> list[DeliveryStatus]:
        """The delivery states this filter selects."""
        if self is DeliveryFilter.FAILED:
            return [DeliveryStatus.RETRYING, DeliveryStatus.DEAD]
        return [DeliveryStatus(self.value)]


#: What may be replayed: anything not sent, being sent or folded into another.
REPLAYABLE = (
    DeliveryStatus.DEAD,
    DeliveryStatus.RETRYING,
    DeliveryStatus.PENDING,
    DeliveryStatus.SUPPRESSED,
)


@dataclass(frozen=True, kw_only=True)
class Replay:
    """Which deliveries a bulk replay selects (`notifier deliveries retry --status`)."""

    status: DeliveryFilter = DeliveryFilter.DEAD
    #: Only deliveries created at or after this.
    since: datetime | None = None
    subscriber_id: str | None = None

    def statuses(self) -> list[DeliveryStatus]:
        """The replayable states the filter selects; `InvalidChange` if it selects none."""
        chosen = [s for s in self.status.statuses() if s in REPLAYABLE]
        if not chosen:
            raise InvalidChange(
                f"status: {self.status.value} deliveries cannot be replayed "
                "(use dead, failed, retrying or pending)"
            )
        return chosen


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One notification to one endpoint, as the outbox holds it."""

    #: The idempotency key: the webhook-id, and the local part of the email Message-ID.
    id: str
    meeting_id: str
    subscriber_id: str
    channel: Channel
    kind: EventKind
    sequence: int
    #: The notice this delivery carries (shared by every delivery of one change).
    notice_id: str
    next_attempt_at: datetime
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    last_error: str | None = None
    #: The notice's payload, when the delivery was just planned (not when read back).
    payload: dict[str, Any] | None = None
    #: For `Channel.NOTIFY`: which of the subscriber's URLs (`target_of`), never the URL.
    target: str | None = None


@dataclass(frozen=True, kw_only=True)
class Contact:
    """How to reach a subscriber, as the delivery worker needs it: no filters."""

    id: str
    name: str
    locale: str
    timezone: str
    active: bool
    email: str | None
    webhook: WebhookEndpoint | None
    #: Signs the reader's calendar and manage links (`notifier.tokens.link_token`).
    link_salt: str = ""
    #: The reader's Apprise URLs by `target_of`.
    notify: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Subscribed on the public pages: their emails carry their manage link.
    self_service: bool = False

    @classmethod
    def of(cls, subscriber: Subscriber) -> Contact:
        """How to reach `subscriber` as it stands."""
        return cls(
            id=subscriber.id,
            name=subscriber.name,
            locale=subscriber.locale,
            timezone=subscriber.timezone,
            active=subscriber.active,
            email=subscriber.email,
            webhook=subscriber.webhook,
            notify={target_of(url): url for url in subscriber.notify},
            self_service=subscriber.source is Source.PUBLIC,
        )


def notice_id(meeting_id: str, sequence: int, kind: EventKind, *extra: object) -> str:
    """The id of what a change (or a reminder offset) says, shared by its deliveries."""
    return "ntc_" + delivery_id(meeting_id, sequence, kind.value, *extra).removeprefix("msg_")


def delivery_id(*parts: object) -> str:
    """A stable id from what makes a delivery unique: the same inputs, the same id.

    Planning puts the installation id first, so a retry, a restart or another replica
    makes the same id, and another database (staging, a reset) never does.
    """
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return f"msg_{digest[:32]}"


def change_payload(
    meeting: Meeting,
    entry: HistoryEntry,
    *,
    audience: str | None = None,
    language: str | None = None,
    languages: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The contract body for a status change (or a details update), as the reader's
    `audience` may see it: pass the meeting and entry through `view_meeting` and
    `view_entry` first (`plan_change_deliveries` does)."""
    data: dict[str, Any] = {"audience": audience} if audience is not None else {}
    if language is not None:
        data |= {"language": language, "languages": dict(languages or {})}
    return {
        "type": entry.kind.value,
        "timestamp": entry.at.isoformat(),
        "data": {
            **data,
            "meeting": meeting.to_dict(),
            "change": {
                "from": entry.from_status.value if entry.from_status else None,
                "to": entry.to_status.value,
                "reason": entry.reason,
                "previous_starts_at": entry.previous_starts_at.isoformat()
                if entry.previous_starts_at
                else None,
                "starts_at": meeting.starts_at.isoformat(),
                "cleared": list(entry.cleared),
                "clock": entry.clock.to_dict() if entry.clock else None,
            },
            "sequence": meeting.sequence,
        },
    }


def reminder_payload(
    meeting: Meeting,
    offset: timedelta,
    *,
    at: datetime,
    late: bool = False,
    audience: str | None = None,
    language: str | None = None,
    languages: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The contract body for a reminder `offset` before the meeting (already in the view
    of the reader's `audience` and `language`).

    ``late`` is present, and true, only for a reminder sent after its instant because the
    daemon was down then.
    """
    data: dict[str, Any] = {
        **({"audience": audience} if audience is not None else {}),
        **(
            {"language": language, "languages": dict(languages or {})}
            if language is not None
            else {}
        ),
        "meeting": meeting.to_dict(),
        "offset": format_duration(offset),
        "sequence": meeting.sequence,
    }
    if late:
        data["late"] = True
    return {"type": EventKind.REMINDER.value, "timestamp": at.isoformat(), "data": data}


def target_of(url: str) -> str:
    """What names one of a reader's Apprise URLs in the outbox: a digest, never the URL
    (it holds the service's token)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def endpoints_of(subscriber: Subscriber) -> list[tuple[Channel, str | None]]:
    """Where a subscriber can be reached: each channel, and for chat each URL apart."""
    found: list[tuple[Channel, str | None]] = []
    if subscriber.email:
        found.append((Channel.EMAIL, None))
    if subscriber.webhook:
        found.append((Channel.WEBHOOK, None))
    found.extend((Channel.NOTIFY, target_of(url)) for url in subscriber.notify)
    return found


def _window_end(now: datetime, window: timedelta) -> datetime:
    """When a coalescing window opened `now` closes; the calendar's end for a window that
    would run past it (the schema lets one run to 999,999 weeks)."""
    try:
        return now + window
    except OverflowError:
        return datetime.max.replace(tzinfo=now.tzinfo)


def plan_change_deliveries(
    meeting: Meeting,
    entry: HistoryEntry,
    subscribers: list[Subscriber],
    *,
    now: datetime,
    audiences: Audiences,
    installation: str,
    languages: Languages | None = None,
) -> list[Delivery]:
    """The deliveries that announce `entry` (which left the meeting as `meeting`).

    One per matching subscriber and channel; each is due at `now`, or at the end of the
    subscriber's quiet hours for a kind that is not urgent. Readers of one audience and
    language share one notice, made from their view: nothing above their audience is
    ever in it, and its text is in their language where the meeting has it.
    """
    langs = languages or Languages()
    held = _window_end(now, meeting.coalesce) if meeting.coalesce else None
    notices: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    # A meeting with no text in other languages says the same to every language.
    multilingual = bool(meeting.texts or entry.texts)

    def notice_of(audience: str, locale: str) -> tuple[str, dict[str, Any]]:
        lang = langs.of(locale) if multilingual else langs.base
        if (audience, lang) not in notices:
            shown = view_meeting(meeting, audience, audiences, lang)
            said = view_entry(entry, audience, audiences, lang)
            marks = field_languages(shown, meeting.texts.get(lang, {}), lang, langs.base)
            marks |= field_languages(said, entry.texts.get(lang, {}), lang, langs.base)
            notices[(audience, lang)] = (
                change_notice_id(
                    meeting.id, entry, audience, language=None if lang == langs.base else lang
                ),
                change_payload(shown, said, audience=audience, language=lang, languages=marks),
            )
        return notices[(audience, lang)]

    planned = []
    for subscriber in match_subscribers(subscribers, meeting, entry.kind, audiences):
        notice, payload = notice_of(subscriber.audience, subscriber.locale)
        for channel, target in endpoints_of(subscriber):
            planned.append(
                Delivery(
                    id=delivery_id(
                        installation,
                        meeting.id,
                        entry.sequence,
                        entry.kind.value,
                        subscriber.id,
                        channel,
                        *((target,) if target else ()),
                    ),
                    target=target,
                    meeting_id=meeting.id,
                    subscriber_id=subscriber.id,
                    channel=channel,
                    kind=entry.kind,
                    sequence=entry.sequence,
                    notice_id=notice,
                    payload=payload,
                    next_attempt_at=max(release_at(subscriber, entry.kind, now=now), held or now),
                )
            )
    return planned


def change_notice_id(
    meeting_id: str, entry: HistoryEntry, audience: str, *, language: str | None = None
) -> str:
    """The id of what `entry` said to readers of `audience` (and of `language`, other
    than the fallback), stored once for them all."""
    extra = (f"language={language}",) if language else ()
    return notice_id(meeting_id, entry.sequence, entry.kind, *_audience_part(audience), *extra)


def _audience_part(audience: str) -> tuple[str, ...]:
    """What a notice id adds for an audience: nothing for the public (whose notices keep
    the ids they had before audiences), the name for any other."""
    return () if audience == PUBLIC else (f"audience={audience}",)


def plan_reminder_deliveries(
    meeting: Meeting,
    subscriber: Subscriber,
    offset: timedelta,
    *,
    now: datetime,
    audiences: Audiences,
    installation: str,
    late: bool = False,
    languages: Languages | None = None,
) -> list[Delivery]:
    """The deliveries of one reminder to one subscriber, on each of its channels.

    `now` is the reminder's own instant: every reader of the same offset, audience and
    language shares one notice, and quiet hours are judged at that instant.
    """
    langs = languages or Languages()
    audience = subscriber.audience
    lang = langs.of(subscriber.locale) if meeting.texts else langs.base
    shown = view_meeting(meeting, audience, audiences, lang)
    marks = field_languages(shown, meeting.texts.get(lang, {}), lang, langs.base)
    payload = reminder_payload(
        shown, offset, at=now, late=late, audience=audience, language=lang, languages=marks
    )
    notice = notice_id(
        meeting.id,
        meeting.sequence,
        EventKind.REMINDER,
        int(offset.total_seconds()),
        late,
        *_audience_part(audience),
        *((f"language={lang}",) if lang != langs.base else ()),
    )
    return [
        Delivery(
            id=delivery_id(
                installation,
                meeting.id,
                meeting.sequence,
                "reminder",
                int(offset.total_seconds()),
                subscriber.id,
                channel,
                *((target,) if target else ()),
            ),
            target=target,
            meeting_id=meeting.id,
            subscriber_id=subscriber.id,
            channel=channel,
            kind=EventKind.REMINDER,
            sequence=meeting.sequence,
            notice_id=notice,
            payload=payload,
            next_attempt_at=release_at(subscriber, EventKind.REMINDER, now=now),
        )
        for channel, target in endpoints_of(subscriber)
    ]


def pack_message(message: bytes) -> str:
    """An email as its attempt keeps it: zlib (a message is mostly repeated markup), then
    base64; a third of its size or less."""
    return base64.b64encode(zlib.compress(message, 6)).decode("ascii")


def unpack_message(packed: str | None) -> bytes | None:
    """The email `pack_message` packed (None stays None)."""
    return None if packed is None else zlib.decompress(base64.b64decode(packed))


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One try at a delivery, as recorded for ever, and what the outbox does next."""

    delivery_id: str
    at: datetime
    duration_ms: int
    outcome: Outcome
    code: int | None = None
    error: str | None = None
    #: The delivery's state after this attempt.
    status: DeliveryStatus = DeliveryStatus.SENT
    next_attempt_at: datetime | None = None
    #: The endpoint said it is gone (HTTP 410): disable it.
    gone: bool = False
    #: Whether it uses up one of the delivery's attempts (a paused channel's does not).
    counted: bool = True
    #: An address the mail server refused for good: put it on the suppression list.
    suppress: str | None = None
    #: An email attempt: the message as it went on the wire (signed), kept with it,
    #: packed (`pack_message`: zlib, then base64).
    message: str | None = None


@dataclass(frozen=True, kw_only=True)
class AttemptResult:
    """What one send came to, as `after_attempt` takes it: the outcome and what the peer
    said (its code, the error, how long it asked us to wait, whether it is gone), and an
    address the mail server refused for good."""

    outcome: Outcome
    code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    gone: bool = False
    suppress: str | None = None

    @classmethod
    def sent(cls, code: int | None = None) -> AttemptResult:
        return cls(outcome=Outcome.SENT, code=code)

    @classmethod
    def failed(cls, error: DeliveryError, *, address: str | None = None) -> AttemptResult:
        """The result of a send that raised `error` (each error class names its outcome);
        `address` is suppressed when the error is a bounce."""
        return cls(
            outcome=error.outcome,
            code=error.code,
            error=error.message,
            retry_after=error.retry_after,
            gone=error.gone,
            suppress=address if error.bounce else None,
        )


#: How long a paused channel's delivery waits when the channel gave no time of its own.
PAUSE = 5.0


def after_attempt(
    delivery: Delivery,
    result: AttemptResult,
    *,
    at: datetime,
    duration_ms: int,
    policy: RetryPolicy,
    random: float,
) -> Attempt:
    """Decide a delivery's next state from one attempt's result.

    Sent stays sent; a permanent failure is dead at once; a temporary one is retried at
    the policy's next instant (honouring Retry-After), or dead once attempts run out. A
    paused channel's attempt is not counted: the delivery waits for the channel (for
    `retry_after` seconds) and can never die of it. A suppressed address's delivery is
    recorded as suppressed, not sent.
    """
    outcome = result.outcome
    attempt = functools.partial(
        Attempt,
        delivery_id=delivery.id,
        at=at,
        duration_ms=duration_ms,
        outcome=outcome,
        code=result.code,
    )
    if outcome is Outcome.SENT:
        return attempt()
    if outcome in (Outcome.PAUSED, Outcome.SUPPRESSED):
        paused = outcome is Outcome.PAUSED
        return attempt(
            error=result.error,
            status=DeliveryStatus.RETRYING if paused else DeliveryStatus.SUPPRESSED,
            next_attempt_at=at + timedelta(seconds=result.retry_after or PAUSE) if paused else None,
            counted=False,
        )
    status = DeliveryStatus.DEAD
    next_at = None
    if outcome is Outcome.TEMPORARY:
        next_at = policy.next_attempt(
            attempts=delivery.attempts + 1, now=at, random=random, retry_after=result.retry_after
        )
        if next_at is not None:
            status = DeliveryStatus.RETRYING
    return attempt(
        error=result.error,
        status=status,
        next_attempt_at=next_at,
        gone=result.gone,
        suppress=result.suppress,
    )


def coalesce(
    planned: list[Delivery],
    waiting: dict[tuple[str, Channel], list[tuple[Delivery, dict[str, Any]]]],
) -> tuple[list[Delivery], list[str]]:
    """Fold deliveries still waiting in a coalescing window into the new ones.

    `waiting` holds, per (subscriber, channel), the not-yet-attempted change deliveries of
    the same meeting with their payloads. Each new delivery then carries the latest state
    and, in ``data.changes``, every change since the first one waiting, oldest first; it is
    due when the first one was, so the window is counted from the first change. Returns the
    new deliveries and the ids of those folded into them.
    """
    merged: list[str] = []
    result: list[Delivery] = []
    for delivery in planned:
        audience = (delivery.payload or {}).get("data", {}).get("audience")
        # Only what was written for the same audience folds in: a reader moved to a lower
        # audience in the window must not get an earlier, higher view.
        earlier = sorted(
            (
                pair
                for pair in waiting.get((delivery.subscriber_id, delivery.channel), [])
                if pair[1].get("data", {}).get("audience") == audience
            ),
            key=lambda pair: pair[0].sequence,
        )
        if not earlier or delivery.payload is None:
            result.append(delivery)
            continue
        changes: list[Any] = []
        for old, payload in earlier:
            changes.extend(payload["data"].get("changes") or [payload["data"]["change"]])
            merged.append(old.id)
        changes.append(delivery.payload["data"]["change"])
        payload = {**delivery.payload, "data": {**delivery.payload["data"], "changes": changes}}
        result.append(
            dataclasses.replace(
                delivery,
                payload=payload,
                notice_id=notice_id(
                    delivery.meeting_id,
                    delivery.sequence,
                    delivery.kind,
                    *sorted(old.notice_id for old, _ in earlier),
                ),
                next_attempt_at=min(old.next_attempt_at for old, _ in earlier),
            )
        )
    return result, merged


# -- Webhook endpoints that fail every attempt --------------------------------------------
#
# An endpoint's *run of failures* begins at a failure when none is running and ends at its
# next success. The store records runs (`failing_since`); the rule below decides which of
# them have lasted long enough (`webhooks.disable_after`) to stop using the endpoint.


@dataclass(frozen=True, kw_only=True)
class RunChanges:
    """What one batch of webhook attempts does to their endpoints' runs of failures."""

    #: Endpoints (subscriber ids, sorted) a success reached in the batch: their run ends,
    #: whatever the order of the batch's attempts.
    ended: tuple[str, ...]
    #: Every other endpoint that failed in the batch, with its latest failure: a run
    #: begins then unless one is running already.
    failed: dict[str, datetime]


@dataclass(frozen=True, kw_only=True)
class FailureRun:
    """A webhook endpoint that has failed every attempt since `since`, last at `latest`."""

    subscriber_id: str
    since: datetime
    latest: datetime


def run_changes(outcomes: Iterable[tuple[str, bool, datetime]]) -> RunChanges:
    """Fold a batch of webhook outcomes, (subscriber id, succeeded, when) each, into what
    it does to runs of failures: one success in the batch ends the endpoint's run (even
    before a later failure of the same batch); an endpoint that only failed is reported
    with its latest failure."""
    given = list(outcomes)
    ended = {sid for sid, good, _ in given if good}
    failed: dict[str, datetime] = {}
    for sid, good, at in given:
        if not good and sid not in ended:
            failed[sid] = max(at, failed.get(sid, at))
    return RunChanges(ended=tuple(sorted(ended)), failed=failed)


def endpoints_to_disable(
    runs: Iterable[FailureRun], disable_after: timedelta | None
) -> list[FailureRun]:
    """The runs, in the order given, that had lasted `disable_after` or more at their
    latest failure (the instant of the attempt, not of the clock that reads it): those
    endpoints are to be disabled. With `disable_after` None, zero or negative, none are."""
    if disable_after is None or disable_after <= timedelta(0):
        return []
    return [run for run in runs if run.latest - run.since >= disable_after]
