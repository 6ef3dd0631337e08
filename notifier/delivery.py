"""Outbox workers: claim due deliveries, render, send, record every attempt.

A worker claims a batch, groups the emails of the batch by what they say and how they are
read (the same change, locale and time zone), renders and builds each group once, sends
everything concurrently, and records attempts as they end (a few transactions a second),
extending the claims of what is still in flight. An endpoint that times out gets nothing
more in the same batch. Delivery is at-least-once: a worker killed after sending but before
recording sends again once its lease runs out, with the same idempotency key (webhook-id,
Message-ID).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime, parseaddr
from typing import Any, Protocol
from urllib.parse import urlsplit

from notifier import mail, metrics
from notifier.calendar import build_ics, ics_method
from notifier.channels.chat import ChatChannel
from notifier.channels.email import EmailChannel
from notifier.channels.webhook import WebhookChannel
from notifier.domain.audiences import PUBLIC
from notifier.domain.errors import (
    ChannelUnavailable,
    DeliveryError,
    DeliveryTimeout,
    NotFound,
    PermanentDeliveryError,
    SuppressedAddress,
    TemporaryDeliveryError,
)
from notifier.domain.models import EventKind, Meeting, Subscriber
from notifier.domain.outbox import (
    PAUSE,
    Attempt,
    AttemptResult,
    Channel,
    Contact,
    Delivery,
    Outcome,
    after_attempt,
    pack_message,
)
from notifier.domain.recipients import normal_address
from notifier.domain.retry import RetryPolicy
from notifier.links import Links
from notifier.mail import (
    CALENDAR_PLACEHOLDER,
    MANAGE_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    PreparedEmail,
    prepare_email,
    sender_domain,
)
from notifier.rendering import Notice, RenderedChat, Renderer
from notifier.store import Store
from notifier.store.engine import is_outage
from notifier.tokens import bounce_token, return_path
from notifier.trouble import Trouble
from notifier.waiting import wait_any

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True, kw_only=True)
class Postman:
    """Turns deliveries into messages and hands them to the channels."""

    renderer: Renderer
    email: EmailChannel | None
    webhook: WebhookChannel | None
    sender: str
    public_url: str
    link_key: str
    chat: ChatChannel | None = None
    #: Whether chat messages link the meeting's public page (`[public] enabled`).
    pages: bool = False
    #: ``[bounces] address``: each email's envelope sender is its own signed return path
    #: ``local+TOKEN@domain`` under it (VERP), so a later DSN names its delivery. None:
    #: the envelope sender is the address of `sender`.
    bounce_address: str | None = None

    def envelope_sender(self, delivery_id: str, recipient: str) -> str:
        """The MAIL FROM of one delivery: its signed return path, or the plain sender."""
        plain = parseaddr(self.sender)[1]
        if self.bounce_address is None:
            return plain
        token = bounce_token(self.link_key, delivery_id, recipient)
        return plain if token is None else return_path(self.bounce_address, token)

    def page_of(self, meeting: Meeting) -> str:
        """The meeting's public page, for every message about it to link: only for a
        public meeting, and only when the public pages are served; else empty."""
        return self.links.meeting(meeting.id) if self.pages and meeting.audience == PUBLIC else ""

    def chat_message(
        self, notice: Notice, *, locale: str, timezone: str, now: datetime
    ) -> RenderedChat:
        """The chat message of `notice` for readers of one locale and zone."""
        page = self.page_of(notice.meeting)
        return self.renderer.render_chat(
            notice, locale=locale, timezone=timezone, page_url=page, now=now
        )

    async def tell_operator(self, address: str, *, subject: str, text: str, now: datetime) -> None:
        """Email the operator a plain-text notice (best effort: logged if it fails)."""
        try:
            await self.send_plain(address, subject=subject, text=text, now=now, tag="operator")
        except DeliveryError as exc:
            log.warning("could not email the operator: %s", exc.message)

    async def send_plain(
        self, address: str, *, subject: str, text: str, now: datetime, tag: str
    ) -> None:
        """Send one plain-text email now, outside the outbox (a confirmation link, an
        operator notice); raises `DeliveryError` when the mail server does not take it."""
        if self.email is None:
            raise DeliveryError("no mail server is configured")
        domain = sender_domain(self.sender)
        name, sender_address = parseaddr(self.sender)
        message = b"".join(
            [
                mail.mailbox(name, sender_address, "From"),
                mail.mailbox("", address, "To"),
                mail.unstructured("Subject", subject),
                mail.plain("Date", format_datetime(now)),
                mail.plain("Message-ID", mail.msg_id(f"{tag}.{uuid.uuid4().hex}", domain)),
                mail.plain("Auto-Submitted", "auto-generated"),
                mail.plain("MIME-Version", "1.0"),
                mail.plain("Content-Type", "text/plain; charset=utf-8"),
                mail.plain("Content-Transfer-Encoding", "quoted-printable"),
                mail.CRLF,
                mail.quoted_printable(text),
                mail.CRLF,
            ]
        )
        await self.email.send(message, sender=sender_address, recipient=address)

    @property
    def links(self) -> Links:
        """Every link a message carries (unsubscribe, manage, calendar, the meeting's page)."""
        return Links(self.public_url, self.link_key)

    def prepare(
        self, notice: Notice, *, locale: str, timezone: str, now: datetime
    ) -> PreparedEmail:
        """Render and build the shared part of an email for readers of one locale and zone."""
        rendered = self.renderer.render(
            notice,
            locale=locale,
            timezone=timezone,
            unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER,
            calendar_url=CALENDAR_PLACEHOLDER,
            manage_url=MANAGE_PLACEHOLDER,
            page_url=self.page_of(notice.meeting),
            now=now,
        )
        ics = None
        if notice.kind is not EventKind.REMINDER:
            ics = build_ics(
                notice.meeting,
                organizer=parseaddr(self.sender)[1] or self.sender,
                domain=sender_domain(self.sender),
                now=now,
                language=notice.body.get("data", {}).get("language"),
            )
        return prepare_email(
            rendered,
            sender=self.sender,
            meeting=notice.meeting,
            ics=ics,
            ics_method=ics_method(notice.meeting),
            now=now,
            language=notice.body.get("data", {}).get("language"),
        )

    def email_bytes(
        self, delivery: Delivery, subscriber: Contact, prepared: PreparedEmail
    ) -> bytes:
        """The full message for one delivery, from its group's shared build."""
        assert subscriber.email is not None
        return prepared.for_recipient(
            to=subscriber.email,
            name=subscriber.name,
            delivery_id=delivery.id,
            unsubscribe_url=self.links.unsubscribe(subscriber.id, Channel.EMAIL, subscriber.email),
            calendar_url=self.links.calendar(subscriber.id, subscriber.link_salt),
            manage_url=self.links.manage(subscriber.id, subscriber.link_salt)
            if subscriber.self_service
            else "",
        )

    def preview(
        self,
        notice: Notice,
        subscriber: Subscriber,
        *,
        channel: Channel,
        part: str | None,
        now: datetime,
    ) -> str:
        """The exact message `subscriber` would get for `notice` on `channel`: the webhook
        body, the whole email as sent (bytes, decoded), or one part of it (``subject``,
        ``text``, ``html``). Built by the same code as a real delivery."""
        if channel is Channel.WEBHOOK:
            if subscriber.webhook is None:
                raise NotFound(f"subscriber {subscriber.id!r} has no webhook")
            return json.dumps(notice.body, indent=2, ensure_ascii=False)
        if channel is Channel.NOTIFY:
            chat = self.chat_message(
                notice, locale=subscriber.locale, timezone=subscriber.timezone, now=now
            )
            return chat.markdown
        if subscriber.email is None:
            raise NotFound(f"subscriber {subscriber.id!r} has no email address")
        if part is not None:
            rendered = self.renderer.render(
                notice,
                locale=subscriber.locale,
                timezone=subscriber.timezone,
                unsubscribe_url=self.links.unsubscribe(
                    subscriber.id, Channel.EMAIL, subscriber.email
                ),
                calendar_url=self.links.calendar(subscriber.id, ""),
                page_url=self.page_of(notice.meeting),
                now=now,
            )
            return {"subject": rendered.subject, "text": rendered.text, "html": rendered.html}[part]
        prepared = self.prepare(
            notice, locale=subscriber.locale, timezone=subscriber.timezone, now=now
        )
        delivery = Delivery(
            id="msg_preview",
            meeting_id=notice.meeting.id,
            subscriber_id=subscriber.id,
            channel=Channel.EMAIL,
            kind=notice.kind,
            sequence=notice.meeting.sequence,
            notice_id="ntc_preview",
            next_attempt_at=now,
        )
        built = self.email_bytes(delivery, Contact.of(subscriber), prepared)
        return built.decode("utf-8", "replace")


@dataclass
class _Batch:
    """What a batch shares: its notices, the couriers' caches (each group rendered and
    each body encoded once), the endpoints that timed out and the suppressed addresses."""

    now: datetime
    notices: dict[str, Notice] = field(default_factory=dict)
    emails: dict[tuple[str, str, str], PreparedEmail] = field(default_factory=dict)
    chats: dict[tuple[str, str, str], RenderedChat] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)
    #: Endpoints that timed out in this batch: nothing more is sent to them in it.
    timed_out: set[str] = field(default_factory=set)
    #: Addresses on the suppression list (lower case), read once for the batch.
    suppressed: set[str] = field(default_factory=set)
    #: Each email delivery's message as it went on the wire (signed), for its attempt.
    wire: dict[str, bytes] = field(default_factory=dict)
    #: Email groups being rendered (in a thread), for the senders that need them meanwhile.
    preparing: dict[tuple[str, str, str], asyncio.Future[PreparedEmail]] = field(
        default_factory=dict
    )

    def notice(self, delivery: Delivery) -> Notice:
        notice = self.notices.get(delivery.notice_id)
        if notice is None:
            raise PermanentDeliveryError(f"notice {delivery.notice_id} is missing")
        return notice


class Courier(Protocol):
    """Sends one delivery of its channel (email, webhook, chat): the worker asks the
    courier of the delivery's channel and never which channel it is. What a courier builds
    once per batch (a rendered group, an encoded body) it keeps in the batch's caches.

    Returns the peer's code (HTTP status, SMTP 250) or None; raises a `DeliveryError`
    that says its own outcome."""

    async def deliver(
        self, delivery: Delivery, contact: Contact, notice: Notice, batch: _Batch
    ) -> int | None: ...


@dataclass(frozen=True)
class ChatCourier:
    """Chat and push messages through Apprise, rendered once per locale and zone."""

    postman: Postman

    async def deliver(
        self, delivery: Delivery, contact: Contact, notice: Notice, batch: _Batch
    ) -> int | None:
        url = contact.notify.get(delivery.target or "")
        if url is None or self.postman.chat is None:
            raise PermanentDeliveryError("notify URL removed, or chat is not configured")
        group = (delivery.notice_id, contact.locale, contact.timezone)
        if group not in batch.chats:
            batch.chats[group] = self.postman.chat_message(
                notice, locale=contact.locale, timezone=contact.timezone, now=batch.now
            )
        chat = batch.chats[group]
        await self.postman.chat.send(url, title=chat.title, markdown=chat.markdown, text=chat.text)
        return None


@dataclass(frozen=True)
class WebhookCourier:
    """Signed webhooks, the body encoded once per notice."""

    postman: Postman

    async def deliver(
        self, delivery: Delivery, contact: Contact, notice: Notice, batch: _Batch
    ) -> int | None:
        if contact.webhook is None or self.postman.webhook is None:
            raise PermanentDeliveryError("webhook endpoint removed or disabled")
        key = delivery.notice_id
        if key not in batch.bodies:
            batch.bodies[key] = notice.webhook_body()
        return await self.postman.webhook.send(
            contact.webhook.url,
            batch.bodies[key],
            msg_id=delivery.id,
            secrets=contact.webhook.secrets,
        )


@dataclass(frozen=True)
class EmailCourier:
    """Email, built once per notice, locale and zone, then each reader's copy; never to a
    suppressed address."""

    postman: Postman

    async def deliver(
        self, delivery: Delivery, contact: Contact, notice: Notice, batch: _Batch
    ) -> int | None:
        if contact.email is None or self.postman.email is None:
            raise PermanentDeliveryError("email address removed or unsubscribed")
        if normal_address(contact.email) in batch.suppressed:
            raise SuppressedAddress(
                f"{contact.email} is suppressed (it bounced); clear it with "
                "`notifier suppressions clear` to send again"
            )
        group = (delivery.notice_id, contact.locale, contact.timezone)
        if group not in batch.emails:
            # Rendering a group (three templates, the calendar part, quoted-printable) takes
            # tens of milliseconds: in a thread, so that no step of the loop holds it; the
            # other senders of the group wait for the same one.
            if group not in batch.preparing:
                batch.preparing[group] = asyncio.ensure_future(
                    asyncio.to_thread(
                        self.postman.prepare,
                        notice,
                        locale=contact.locale,
                        timezone=contact.timezone,
                        now=batch.now,
                    )
                )
            batch.emails[group] = await batch.preparing[group]
        message = self.postman.email.signed(
            self.postman.email_bytes(delivery, contact, batch.emails[group])
        )
        batch.wire[delivery.id] = message
        await self.postman.email.send(
            message,
            sender=self.postman.envelope_sender(delivery.id, contact.email),
            recipient=contact.email,
            signed=True,
        )
        return 250


def couriers(postman: Postman) -> dict[Channel, Courier]:
    """The courier of each channel the postman can send on."""
    return {
        Channel.EMAIL: EmailCourier(postman),
        Channel.WEBHOOK: WebhookCourier(postman),
        Channel.NOTIFY: ChatCourier(postman),
    }


class OutboxWorker:
    """One worker: a loop that claims, sends and records until told to stop."""

    def __init__(
        self,
        store: Store,
        postman: Postman,
        *,
        policy: RetryPolicy,
        clock: Clock,
        batch: int = 200,
        concurrency: int = 64,
        lease: timedelta = timedelta(minutes=2),
        poll: timedelta = timedelta(seconds=1),
        name: str | None = None,
        rng: Callable[[], float] = random.random,
        parallel: int = 2,
        disable_after: timedelta | None = None,
        operator_email: str | None = None,
    ) -> None:
        self.store = store
        self.postman = postman
        self.policy = policy
        self.clock = clock
        self.batch = batch
        self.lease = lease
        self.poll = poll
        self.name = name or f"worker-{uuid.uuid4().hex[:8]}"
        self.rng = rng
        self.parallel = parallel
        #: A webhook endpoint failing every attempt for this long is disabled (None: never).
        self.disable_after = disable_after
        self.operator_email = operator_email
        #: Deliveries in flight at once, across the `parallel` batches.
        self.concurrency = concurrency
        self._limit = asyncio.Semaphore(concurrency)
        #: Set to look for work at once (after a change was accepted) instead of polling.
        self.wake = asyncio.Event()
        self.last_loop_at: datetime | None = None
        #: The database away: said once when the first loop starts failing and once when
        #: the last works again (parallel loops recover one by one, each a `part`).
        self._trouble: Trouble[float] = Trouble(log)
        #: Batches still sending (their stragglers), each in its own task.
        self._batches: set[asyncio.Task[None]] = set()

    @property
    def postman(self) -> Postman:
        """Renders and sends; its couriers are made again when it is replaced."""
        return self._postman

    @postman.setter
    def postman(self, postman: Postman) -> None:
        self._postman = postman
        self.couriers = couriers(postman)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; batches already claimed are finished first.

        Several batches are in flight at once (`parallel`), so an endpoint that takes its
        full timeout holds up only its own batch.
        """
        log.info("%s started", self.name, extra={"action": "worker_start", "worker": self.name})
        try:
            await asyncio.gather(*(self._loop(stop, n) for n in range(self.parallel)))
            await self.settle()
        finally:
            # Cancelled (the drain's grace ran out): what is in flight stops with us, and
            # each batch records what it finished on the way out.
            for task in list(self._batches):
                task.cancel()
            await asyncio.gather(*list(self._batches), return_exceptions=True)
        log.info("%s stopped", self.name, extra={"action": "worker_stop", "worker": self.name})

    async def _loop(self, stop: asyncio.Event, number: int = 0) -> None:
        while not stop.is_set():
            self.last_loop_at = self.clock()
            # Cleared before the claim, not after: a change queued while this claim runs
            # must wake the next wait, not be lost with it.
            self.wake.clear()
            try:
                handled = await self._start_batch()
            except Exception as exc:  # a database hiccup must not kill the worker
                self._trouble.failed(
                    "%s: cannot work (%s: %s); retrying every %ss",
                    self.name,
                    type(exc).__name__,
                    str(exc).splitlines()[0][:300] if str(exc) else "",
                    self.poll.total_seconds(),
                    now=time.monotonic(),
                    part=number,
                    extra={"action": "worker_trouble"},
                    exc_info=not is_outage(exc),
                )
                handled = 0
            else:
                self._trouble.recovered(
                    "%s: working again after %.1fs",
                    self.name,
                    now=time.monotonic(),
                    part=number,
                    extra={"action": "worker_recovered"},
                )
            if handled == 0:
                await wait_any(stop, self.wake, timeout=self.poll.total_seconds())

    async def run_until_idle(self) -> int:
        """Send everything due now, `parallel` batches at a time; returns how many."""

        async def loop() -> int:
            total = 0
            while handled := await self.run_once():
                total += handled
            return total

        return sum(await asyncio.gather(*(loop() for _ in range(self.parallel))))

    async def run_once(self) -> int:
        """Claim one batch of due deliveries, send them, record the attempts. Returns count."""
        handled = await self._start_batch()
        await self.settle()
        return handled

    async def _start_batch(self) -> int:
        """Claim one batch of due deliveries and start sending it; returns the count once
        every lane of it has a sender (its stragglers go on, `settle` waits for them)."""
        now = self.clock()
        async with self.store.write() as tx:
            claimed = await tx.claim(worker=self.name, now=now, lease=self.lease, limit=self.batch)
        if not claimed:
            return 0
        async with self.store.read() as tx:
            subscribers = await tx.contacts(sorted({d.subscriber_id for d in claimed}))
            said = await tx.notices(sorted({d.notice_id for d in claimed}))
            suppressed = await tx.suppressed([c.email for c in subscribers.values() if c.email])
        batch = _Batch(
            now=now,
            notices={k: Notice.from_payload(v) for k, v in said.items()},
            suppressed=suppressed,
        )
        # One endpoint's deliveries go out one after another, oldest change first, so a
        # reader never gets "cleared" after "rescheduled"; different endpoints in parallel.
        lanes: dict[tuple[str, Channel], list[Delivery]] = {}
        for delivery in sorted(claimed, key=lambda d: (d.sequence, d.kind != EventKind.REMINDER)):
            lanes.setdefault((delivery.subscriber_id, delivery.channel), []).append(delivery)

        waiting = collections.deque(lanes.values())
        handed = asyncio.Event()

        async def send_batch() -> None:
            async with _Recorder(self, claimed) as recorder:

                async def sender() -> None:
                    # A sender holds one of the worker's `concurrency` slots for as long as
                    # lanes are waiting: a few coroutines for the batch, not one per delivery.
                    async with self._limit:
                        while waiting:
                            lane = waiting.popleft()
                            if not waiting:
                                handed.set()
                            # A message of a meeting that did not go holds back the later
                            # ones of that meeting in the lane: handed back untried, they
                            # wait behind it (the claim keeps them there), in order.
                            stalled: set[str] = set()
                            for delivery in lane:
                                if delivery.meeting_id in stalled:
                                    recorder.hand_back(delivery)
                                    continue
                                contact = subscribers.get(delivery.subscriber_id)
                                attempt = await self._deliver(delivery, contact, batch)
                                if attempt.outcome is not Outcome.SENT:
                                    stalled.add(delivery.meeting_id)
                                recorder.add(delivery, attempt)
                    # Nothing left for this sender: record what it sent now, not at the
                    # next tick, so readers' next messages (held behind these) can go.
                    recorder.full.set()

                try:
                    await asyncio.gather(
                        *(sender() for _ in range(min(self.concurrency, len(waiting))))
                    )
                finally:
                    handed.set()

        # The batch goes on in its own task; the loop claims the next one as soon as every
        # lane of this one has a sender, so an endpoint that takes its whole timeout holds
        # one sender, not the loop (it used to hold both loops, batch after batch).
        task = asyncio.create_task(send_batch(), name=f"{self.name}-batch")
        self._batches.add(task)
        task.add_done_callback(self._batch_ended)
        await handed.wait()
        if task.done():
            task.result()  # a failure of the batch itself is the loop's to report
        return len(claimed)

    def _batch_ended(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s: a batch ended with an error", self.name, exc_info=error)

    async def settle(self) -> None:
        """Wait until every batch still sending has ended (and recorded its attempts)."""
        while self._batches:
            await asyncio.gather(*list(self._batches), return_exceptions=True)

    async def endpoint_disabled(self, subscriber_id: str, since: datetime) -> None:
        """Tell the operator a webhook endpoint was disabled: a log line, the metric, and an
        email to `operator_email` when one is set."""
        metrics.ENDPOINTS_DISABLED.inc()
        message = (
            f"webhook endpoint of subscriber {subscriber_id} disabled: it failed every "
            f"attempt since {since.isoformat()}; re-enable it with "
            f"`notifier subscribers enable {subscriber_id}`"
        )
        log.warning(message, extra={"action": "endpoint_disabled", "subscriber": subscriber_id})
        if self.operator_email:
            await self.postman.tell_operator(
                self.operator_email,
                subject=f"notifier: webhook of {subscriber_id} disabled",
                text=message + "\n",
                now=self.clock(),
            )

    async def _deliver(
        self, delivery: Delivery, subscriber: Contact | None, batch: _Batch
    ) -> Attempt:
        attempt = await self._try(delivery, subscriber, batch)
        message = batch.wire.pop(delivery.id, None)
        if message is None:
            return attempt
        # Packed here, one delivery at a time, not all at once when the batch is recorded.
        return dataclasses.replace(attempt, message=pack_message(message))

    async def _try(self, delivery: Delivery, subscriber: Contact | None, batch: _Batch) -> Attempt:
        started = time.perf_counter()
        code: int | None = None
        try:
            code = await self._send(delivery, subscriber, batch)
        except DeliveryError as exc:
            if isinstance(exc, DeliveryTimeout):
                batch.timed_out.add(_endpoint(delivery, subscriber))
            address = subscriber.email if subscriber is not None else None
            return self._finish(delivery, exc, started, address=address)
        except Exception as exc:  # a bug in a template or channel: keep it, retry later
            log.exception("delivery %s failed unexpectedly", delivery.id)
            error = TemporaryDeliveryError(f"internal error: {type(exc).__name__}: {exc}")
            return self._finish(delivery, error, started)
        return self._finish(delivery, None, started, code=code)

    async def _send(
        self, delivery: Delivery, subscriber: Contact | None, batch: _Batch
    ) -> int | None:
        if subscriber is None or not subscriber.active:
            raise PermanentDeliveryError("subscriber removed or retired")
        if batch.timed_out and (endpoint := _endpoint(delivery, subscriber)) in batch.timed_out:
            # One hanging endpoint must not hold a batch for timeout x deliveries; what is
            # not tried waits without using up an attempt.
            raise ChannelUnavailable(
                f"not tried: {endpoint} timed out earlier in this batch",
                retry_after=self.policy.schedule[1].total_seconds()
                if len(self.policy.schedule) > 1
                else PAUSE,
            )
        courier = self.couriers.get(delivery.channel)
        if courier is None:
            raise PermanentDeliveryError(f"the {delivery.channel.value} channel is not configured")
        return await courier.deliver(delivery, subscriber, batch.notice(delivery), batch)

    def _finish(
        self,
        delivery: Delivery,
        error: DeliveryError | None,
        started: float,
        *,
        code: int | None = None,
        address: str | None = None,
    ) -> Attempt:
        elapsed = time.perf_counter() - started
        _latency(delivery.channel).observe(elapsed)
        result = (
            AttemptResult.sent(code)
            if error is None
            else AttemptResult.failed(error, address=address)
        )
        outcome = result.outcome
        _attempts(delivery.channel, outcome).inc()
        attempt = after_attempt(
            delivery,
            result,
            at=self.clock(),
            duration_ms=round(elapsed * 1000),
            policy=self.policy,
            random=self.rng(),
        )
        if error is not None:
            log.warning(
                "delivery %s to %s (%s) failed: %s; now %s",
                delivery.id,
                delivery.subscriber_id,
                delivery.channel.value,
                error.message,
                attempt.status.value,
                extra={
                    "action": "delivery_failed",
                    "delivery": delivery.id,
                    "outcome": outcome.value,
                    "code": error.code,
                },
            )
        return attempt


def _endpoint(delivery: Delivery, subscriber: Contact | None) -> str:
    """What a timeout is blamed on: the webhook URL, or the mail relay as a whole. (Not the
    webhook's host: many readers may share one receiver, and one slow path of it should
    not hold back the others.)"""
    if delivery.channel is Channel.WEBHOOK and subscriber is not None and subscriber.webhook:
        parts = urlsplit(subscriber.webhook.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"
    if delivery.channel is Channel.NOTIFY:
        return f"notify {delivery.target}"
    return "the mail server" if delivery.channel is Channel.EMAIL else "webhook"


class _Recorder:
    """Records a batch's attempts as they happen and keeps its claims alive meanwhile.

    Outcomes are written every `FLUSH` seconds (or at once when `FLUSH_SIZE` are waiting),
    so a slow endpoint in a batch cannot leave the fast deliveries unrecorded until their
    claim runs out and another worker sends them again; the deliveries still in flight
    have their claims extended every third of the lease (a heartbeat).
    """

    FLUSH = 0.25
    FLUSH_SIZE = 500

    def __init__(self, worker: OutboxWorker, claimed: list[Delivery]) -> None:
        self.worker = worker
        self.in_flight = {d.id: d for d in claimed}
        self.done: list[tuple[Delivery, Attempt]] = []
        #: Deliveries not tried, to return to the queue with the next flush.
        self.handed_back: list[str] = []
        self.full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Recording failing (the database away): said once, until a flush works again.
        self._trouble: Trouble[float] = Trouble(log)
        self._stopping = False

    def hand_back(self, delivery: Delivery) -> None:
        """`delivery` was not tried: return it to the queue, its attempts unchanged."""
        self.in_flight.pop(delivery.id, None)
        self.handed_back.append(delivery.id)

    def add(self, delivery: Delivery, attempt: Attempt) -> None:
        """An attempt has ended: record it soon."""
        self.in_flight.pop(delivery.id, None)
        self.done.append((delivery, attempt))
        if len(self.done) >= self.FLUSH_SIZE:
            self.full.set()

    async def __aenter__(self) -> _Recorder:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        # Not cancelled: a flush cut short mid-transaction would lose what it had taken.
        self._stopping = True
        self.full.set()
        await self._task
        for wait in (0.0, 0.5, 1.0, 2.0):  # the last outcomes, through a database hiccup
            await asyncio.sleep(wait)
            if await self._flush():
                return
        log.error(
            "%s: could not record %d attempts; their claims return after the lease",
            self.worker.name,
            len(self.done),
            extra={"action": "record_failed"},
        )

    async def _run(self) -> None:
        lease = self.worker.lease.total_seconds()
        beat = max(lease / 3, 0.05)
        last_beat = time.monotonic()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.FLUSH, beat)):
                    await self.full.wait()
            self.full.clear()
            if self._stopping:
                return
            await self._flush()
            if time.monotonic() - last_beat >= beat and self.in_flight:
                last_beat = time.monotonic()
                await self._extend()

    async def _extend(self) -> None:
        try:
            async with self.worker.store.write() as tx:
                await tx.extend_claims(
                    list(self.in_flight),
                    worker=self.worker.name,
                    lease=self.worker.lease,
                    now=self.worker.clock(),
                )
        except Exception as exc:  # the next beat tries again; the lease covers a missed one
            # An outage is expected news, said in one line; anything else shows its trace.
            log.warning(
                "%s: could not extend claims: %s",
                self.worker.name,
                type(exc).__name__,
                exc_info=not is_outage(exc),
            )

    async def _flush(self) -> bool:
        """Record what has ended; True when nothing is left unrecorded."""
        if not self.done and not self.handed_back:
            return True
        taken, self.done = self.done, []
        back, self.handed_back = self.handed_back, []
        try:
            async with self.worker.store.write() as tx:
                await tx.record_attempts([a for _, a in taken], worker=self.worker.name)
                await tx.release_claims(self.worker.name, back)
                health = [
                    (delivery.subscriber_id, attempt.outcome is Outcome.SENT, attempt.at)
                    for delivery, attempt in taken
                    if delivery.channel is Channel.WEBHOOK
                    and attempt.outcome in (Outcome.SENT, Outcome.TEMPORARY, Outcome.PERMANENT)
                ]
                disabled = await tx.endpoint_health(health, disable_after=self.worker.disable_after)
                for delivery, attempt in taken:
                    if attempt.suppress:
                        await tx.suppress(
                            attempt.suppress, reason=attempt.error or "bounced", now=attempt.at
                        )
                    if attempt.gone:
                        await tx.disable_endpoint(
                            delivery.subscriber_id,
                            delivery.channel,
                            reason=attempt.error or "gone",
                            now=attempt.at,
                        )
        except Exception as exc:
            self.done = taken + self.done
            self.handed_back = back + self.handed_back
            self._trouble.failed(
                "%s: recording attempts failed (%s); will retry",
                self.worker.name,
                type(exc).__name__,
                now=time.monotonic(),
                exc_info=not is_outage(exc),
            )
            return False
        self._trouble.recovered(now=time.monotonic())
        # What just ended may free a reader's next message (held behind it): look again.
        self.worker.wake.set()
        for subscriber_id, since in disabled:
            await self.worker.endpoint_disabled(subscriber_id, since)
        ended: dict[tuple[str, str], int] = {}
        for delivery, attempt in taken:
            key = (delivery.channel.value, attempt.status.value)
            ended[key] = ended.get(key, 0) + 1
        for (channel, status), count in ended.items():
            metrics.DELIVERIES.labels(channel, status).inc(count)
        return not self.done and not self.handed_back


@functools.cache
def _latency(channel: Channel) -> Any:
    return metrics.LATENCY.labels(channel.value)


@functools.cache
def _attempts(channel: Channel, outcome: Outcome) -> Any:
    return metrics.ATTEMPTS.labels(channel.value, outcome.value)


async def drain(tasks: list[asyncio.Task[None]], *, grace: float) -> None:
    """Wait up to `grace` seconds for workers to finish their batch, then cancel them."""
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            log.error("worker ended with an error", exc_info=task.exception())


def describe(delivery: Delivery) -> dict[str, object]:
    """A delivery as JSON-ready data for the CLI and the API."""
    return {
        "id": delivery.id,
        "meeting": delivery.meeting_id,
        "subscriber": delivery.subscriber_id,
        "channel": delivery.channel.value,
        "kind": delivery.kind.value,
        "sequence": delivery.sequence,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at.isoformat(),
        "last_error": delivery.last_error,
    }
