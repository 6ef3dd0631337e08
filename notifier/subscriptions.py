"""Self-service subscription: the use cases behind the public subscribe form, the emailed
confirmation link and the manage page (double opt-in).

A request stores an unconfirmed subscriber (the lowest audience, email only, inactive) and
sends one confirmation email; nothing else is sent until the link is followed. The link's
token is stored hashed and works for `public.confirm_within`. Whoever asks, an address gets
at most `public.per_address_per_day` confirmation emails a day, and the answer is the same
whether the address was known, new, or over its limit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from notifier import metrics
from notifier.delivery import Postman
from notifier.domain.errors import DeliveryError, InvalidChange, UnknownMeeting
from notifier.domain.models import EventKind, Source, Subscriber
from notifier.domain.recipients import normal_address
from notifier.domain.views import in_language
from notifier.links import Links
from notifier.service import replan_all, retire_subscriber
from notifier.store.port import StorePort
from notifier.tokens import digest, link_subject, link_token, link_valid, new_secret

log = logging.getLogger(__name__)

#: What a self-service reader may choose to hear (reminders are chosen apart).
KINDS = tuple(k for k in EventKind if k is not EventKind.REMINDER)
#: Reminder offsets offered on the pages.
REMINDER_CHOICES = (timedelta(days=1), timedelta(hours=1), timedelta(minutes=15))


class Outcome(StrEnum):
    """What became of a subscribe request (never told to the requester: metrics only)."""

    SENT = "sent"
    ALREADY = "already_subscribed"
    ADDRESS_LIMIT = "address_limit"
    MAIL_FAILED = "mail_failed"


@dataclass(frozen=True, kw_only=True)
class Request:
    """What the subscribe form asks for."""

    email: str
    meeting_id: str | None
    tag: str | None
    timezone: str
    locale: str
    kinds: tuple[str, ...]
    reminders: tuple[timedelta, ...]


def subscriber_id_for(email: str) -> str:
    """The id of an address's self-service subscription (one per address)."""
    return "pub-" + hashlib.sha256(normal_address(email).encode()).hexdigest()[:20]


def address_hash(email: str) -> str:
    """What the confirmation counts are kept under: never the address itself. One mailbox
    however it is written: case-insensitive, without a ``+tag`` (``bomb+1@example.org``
    counts as ``bomb@example.org``), so sub-addresses share the mailbox's daily limit."""
    local, _, domain = normal_address(email).rpartition("@")
    local = local.split("+", 1)[0] or local
    return digest(f"address:{local}@{domain}")


async def subscribe(
    store: StorePort,
    postman: Postman,
    request: Request,
    *,
    now: datetime,
    base_url: str,
    confirm_within: timedelta,
    per_day: int,
    known: bool,
    key: str,
) -> Outcome:
    """Store an unconfirmed subscription and send its confirmation link (see the module
    docstring); `known` says the meeting or tag names something public, `key` signs the
    links. An address that is already subscribed gets its manage link instead, within the
    same daily limit."""
    if not known:
        raise UnknownMeeting(request.meeting_id or request.tag or "")
    subscriber_id = subscriber_id_for(request.email)
    hashed = address_hash(request.email)
    token, token_hash = new_secret()
    async with store.write() as tx:
        # One request for an address at a time, from the count to the commit: concurrent
        # ones (any replica) wait here, then count what the first recorded, so the daily
        # limit holds and none of them races to create the same subscriber.
        await tx.serialize(f"confirmations:{hashed}")
        if await tx.confirmations_sent(hashed, since=now - timedelta(days=1)) >= per_day:
            outcome = Outcome.ADDRESS_LIMIT
        else:
            await tx.record_confirmation(hashed, now=now)
            current = await tx.subscriber_record(subscriber_id)
            already = (
                current is not None and current.retired_at is None and current.subscriber.confirmed
            )
            # The same store calls either way, so the time an answer takes does not tell
            # whether the address is subscribed: a subscriber already confirmed is saved
            # unchanged, and gets a confirmation link that has run out before it is made
            # (it is never sent; their manage link is).
            if current is not None and already:
                kept = current.subscriber
                outcome, salt = Outcome.ALREADY, current.link_salt
            else:
                kept = Subscriber(
                    id=subscriber_id,
                    email=request.email.strip(),
                    timezone=request.timezone,
                    locale=request.locale,
                    meetings=(request.meeting_id,) if request.meeting_id else (),
                    tags=(request.tag,) if request.tag else (),
                    events=request.kinds or ("*",),
                    reminders=request.reminders,
                    active=False,
                    source=Source.PUBLIC,
                    audience=store.planning.audiences.lowest,
                    confirmed=False,
                )
                outcome, salt = Outcome.SENT, ""
            await tx.save_subscriber(kept, now=now)
            until = now - timedelta(seconds=1) if already else now + confirm_within
            await tx.await_confirmation(subscriber_id, token_hash=token_hash, until=until)
    if outcome is Outcome.ADDRESS_LIMIT:
        metrics.SUBSCRIPTIONS.labels("refused_address_limit").inc()
        log.info(
            "subscribe: confirmation limit reached for an address",
            extra={"action": "subscribe_refused"},
        )
        return outcome
    links = Links(base_url, key)
    about = await _about(store, request)
    if outcome is Outcome.ALREADY:
        subject, text = _already(
            request.locale, links.manage(subscriber_id, salt), about, request.email
        )
    else:
        subject, text = _confirm(
            request.locale, links.confirm(token), confirm_within, about, request.email
        )
    try:
        await postman.send_plain(request.email, subject=subject, text=text, now=now, tag="confirm")
    except DeliveryError as exc:
        metrics.SUBSCRIPTIONS.labels("mail_failed").inc()
        log.warning(
            "subscribe: the confirmation email was not taken: %s",
            exc.message,
            extra={"action": "subscribe_mail_failed"},
        )
        return Outcome.MAIL_FAILED
    metrics.SUBSCRIPTIONS.labels(outcome.value).inc()
    return outcome


async def confirm(store: StorePort, token: str, *, now: datetime) -> str | None:
    """Follow a confirmation link: the subscription becomes active (reminders planned);
    None for an unknown, used or expired link."""
    if not token or len(token) > 100:
        return None
    async with store.write() as tx:
        subscriber_id = await tx.confirm_subscription(digest(token), now=now)
        if subscriber_id is not None:
            await replan_all(tx, store.planning, now=now)
    metrics.SUBSCRIPTIONS.labels("confirmed" if subscriber_id else "confirm_refused").inc()
    return subscriber_id


@dataclass(frozen=True)
class Pending:
    """A subscription waiting for its link to be followed, as its page names it."""

    address: str  # masked: r***@example.org
    subject: str  # the meeting's public title, or the tag
    tag: bool


async def pending(store: StorePort, token: str, *, now: datetime) -> Pending | None:
    """What a confirmation link would confirm, changing nothing (a GET of the link must
    not confirm: mail scanners fetch every link); None for an unknown, used or expired one."""
    if not token or len(token) > 100:
        return None
    async with store.read() as tx:
        subscriber_id = await tx.awaiting_confirmation(digest(token), now=now)
    return await described(store, subscriber_id) if subscriber_id else None


async def described(store: StorePort, subscriber_id: str) -> Pending | None:
    """A self-service subscription as its pages name it: the masked address, and the
    meeting's title or the tag it follows."""
    async with store.read() as tx:
        record = await tx.subscriber_record(subscriber_id)
        if record is None:
            return None
        subscriber = record.subscriber
        meeting = await tx.meeting_record(subscriber.meetings[0]) if subscriber.meetings else None
    address = mask_address(subscriber.email or "")
    if meeting is not None:
        language = store.planning.languages.of(subscriber.locale)
        return Pending(address, in_language(meeting.meeting, language).title, False)
    return Pending(address, ", ".join(subscriber.tags), True)


def mask_address(address: str) -> str:
    """An address as a page may show it to whoever holds the link: ``r***@example.org``."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


async def manage_subject(store: StorePort, key: str, token: str) -> Subscriber | None:
    """The current subscriber a manage link names, or None (tampered, rotated, gone, or a
    subscription the file or the API owns: only what a reader set up is theirs to manage)."""
    found = await _linked(store, key, "manage", token)
    return found if found is not None and found.source is Source.PUBLIC else None


async def calendar_subject(store: StorePort, key: str, token: str) -> Subscriber | None:
    """The current subscriber a private calendar link names, or None: also once they
    have left in any way (retired, inactive, or every endpoint unsubscribed or disabled),
    since the feed is their reader's view and must stop with their subscription."""
    found = await _linked(store, key, "calendar", token)
    if found is None or not found.active:
        return None
    async with store.read() as tx:
        contact = (await tx.contacts([found.id])).get(found.id)
    if contact is None or not (contact.email or contact.webhook or contact.notify):
        return None
    return found


async def _linked(store: StorePort, key: str, purpose: str, token: str) -> Subscriber | None:
    """The subscriber a `purpose` link names, if it is current (signed with their link
    salt) and they are not retired."""
    subscriber_id = link_subject(token)
    if subscriber_id is None:
        return None
    async with store.read() as tx:
        record = await tx.subscriber_record(subscriber_id)
    if record is None or record.retired_at is not None:
        return None
    if not link_valid(key, purpose, token, record.link_salt):
        return None
    return record.subscriber


async def links_of(store: StorePort, key: str, subscriber_id: str) -> tuple[str, str]:
    """The current manage and calendar link tokens of a subscriber."""
    async with store.read() as tx:
        record = await tx.subscriber_record(subscriber_id)
    salt = record.link_salt if record else ""
    return (
        link_token(key, "manage", subscriber_id, salt),
        link_token(key, "calendar", subscriber_id, salt),
    )


async def rotate(store: StorePort, subscriber_id: str) -> None:
    """Retire every manage and calendar link of a subscriber (a reader or an operator)."""
    async with store.write() as tx:
        await tx.rotate_links(subscriber_id, salt=secrets.token_hex(8))


async def update_preferences(
    store: StorePort,
    subscriber: Subscriber,
    *,
    timezone: str,
    locale: str,
    kinds: tuple[str, ...],
    reminders: tuple[timedelta, ...],
    now: datetime,
) -> Subscriber:
    """Change what a self-service reader hears; reminders are planned afresh."""
    if not kinds:
        raise InvalidChange("kinds: choose at least one kind of news, or leave")
    changed = dataclasses.replace(
        subscriber, timezone=timezone, locale=locale, events=kinds, reminders=reminders
    )
    async with store.write() as tx:
        await tx.save_subscriber(changed, now=now)
        await replan_all(tx, store.planning, now=now)
    return changed


async def leave(store: StorePort, subscriber_id: str, *, now: datetime) -> None:
    """Unsubscribe a self-service reader from everything."""
    await retire_subscriber(store, subscriber_id, now=now, by=Source.PUBLIC)


@dataclass(frozen=True)
class _About:
    """What a subscription is for, as its emails name it: a meeting's title, or a tag."""

    title: str = ""
    tag: str = ""


async def _about(store: StorePort, request: Request) -> _About:
    """The meeting (its public title) or the tag the request follows."""
    if request.meeting_id:
        async with store.read() as tx:
            record = await tx.meeting_record(request.meeting_id)
        if record is None:
            return _About(title=request.meeting_id)
        language = store.planning.languages.of(request.locale)
        return _About(title=in_language(record.meeting, language).title)
    return _About(tag=request.tag or "")


def _what(locale: str, about: _About) -> str:
    if locale == "ru":
        return f"о встрече «{about.title}»" if about.title else f"о встречах с меткой «{about.tag}»"
    return f'about "{about.title}"' if about.title else f'about meetings tagged "{about.tag}"'


def _confirm(
    locale: str, link: str, within: timedelta, about: _About, address: str
) -> tuple[str, str]:
    hours = max(1, round(within.total_seconds() / 3600))
    what = _what(locale, about)
    if locale == "ru":
        return (
            "Подтвердите подписку",
            f"Мы получили запрос на рассылку уведомлений {what} на адрес {address}.\n\n"
            f"Чтобы подтвердить подписку, перейдите по ссылке (она действительна {hours} ч):"
            f"\n{link}\n\n"
            "Если вы не отправляли этот запрос, просто проигнорируйте письмо: без подтверждения "
            "уведомления приходить не будут.\n",
        )
    return (
        "Confirm your subscription",
        f"We received a request to send news {what} to {address}.\n\n"
        f"To confirm it, open this link (it works for {hours} h):\n{link}\n\n"
        "If you did not ask for this, ignore this email: without confirmation nothing more "
        "is sent.\n",
    )


def _already(locale: str, manage: str, about: _About, address: str) -> tuple[str, str]:
    what = _what(locale, about)
    if locale == "ru":
        return (
            "Вы уже подписаны",
            f"На адрес {address} уже приходят уведомления. Мы получили повторный запрос на "
            f"уведомления {what}. Изменить подписку или отписаться можно по ссылке:\n{manage}\n",
        )
    return (
        "You are already subscribed",
        f"{address} already receives this news; we received another request for news "
        f"{what}. To change or leave your subscription:\n{manage}\n",
    )
