"""Subscribers saved and retired, and their reminders planned again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from notifier.domain.errors import InvalidChange, NotFound
from notifier.domain.models import Source, Subscriber
from notifier.domain.outbox import Channel
from notifier.endpoints import EndpointPolicy, refusals
from notifier.service.common import check_owner, live_subscriber
from notifier.service.reminders import replan_all
from notifier.store.port import StorePort
from notifier.tokens import read_unsubscribe_token


async def save_subscriber(
    store: StorePort,
    subscriber: Subscriber,
    *,
    now: datetime,
    policy: EndpointPolicy,
    create: bool = False,
) -> Subscriber:
    """Create or replace a subscriber and re-plan reminders.

    Raises `InvalidChange` when `policy` refuses one of its endpoints (names resolved:
    `notifier.endpoints.refusals`), `Conflict` when the id is taken when creating or the
    file defines it."""
    webhook = subscriber.webhook.url if subscriber.webhook is not None else None
    refused = await refusals(webhook, subscriber.notify, policy)
    if refused:
        raise InvalidChange(refused[0].message)
    async with store.write() as tx:
        plan = store.planning
        plan.audiences.check(subscriber.audience)
        if not create:
            current = await tx.subscriber_record(subscriber.id)
            if current is not None:
                check_owner(
                    "subscriber",
                    subscriber.id,
                    current.subscriber.source,
                    subscriber.source,
                    "edit",
                )
        await tx.save_subscriber(subscriber, now=now, create=create)
        await replan_all(tx, plan, now=now)
    return subscriber


async def retire_subscriber(
    store: StorePort, subscriber_id: str, *, now: datetime, by: Source
) -> None:
    """Retire a subscriber (matches nothing; its pending reminders are withdrawn)."""
    async with store.write() as tx:
        record = await live_subscriber(tx, subscriber_id)
        check_owner("subscriber", subscriber_id, record.subscriber.source, by, "remove")
        await tx.retire_subscriber(subscriber_id, now=now)


# -- reads: what every face shows, read the same way ------------------------------------------


async def enable_endpoint(store: StorePort, subscriber_id: str, channel: Channel) -> None:
    """Use a disabled endpoint again (it failed for days, answered 410, or its reader
    unsubscribed and asked to come back); `NotFound` when there is none to enable."""
    async with store.write() as tx:
        enabled = await tx.enable_endpoint(subscriber_id, channel)
    if not enabled:
        raise NotFound(f"subscriber {subscriber_id!r} has no disabled {channel.value} endpoint")


@dataclass(frozen=True)
class Unsubscribing:
    """What an unsubscribe link stops: one channel of one subscriber, at the address that
    link was sent to."""

    subscriber_id: str
    channel: Channel
    address: str

    @property
    def shown(self) -> str:
        """The address as a page may show it to whoever holds the link: an email masked
        (``r***@example.org``), a webhook by its host, a chat service by its name."""
        if self.channel is Channel.EMAIL:
            local, at, domain = self.address.rpartition("@")
            return f"{local[:1]}***@{domain}" if at else "***"
        if self.channel is Channel.WEBHOOK:
            return urlsplit(self.address).hostname or "***"
        return self.address.partition("://")[0] or "***"


async def unsubscribe_target(store: StorePort, link_key: str, token: str) -> Unsubscribing:
    """What an unsubscribe link names, if the link is valid for the address it was sent to
    and that address still receives these notifications; else `NotFound`."""
    read = read_unsubscribe_token(link_key, token)
    if read is None or read.channel not in {c.value for c in Channel}:
        raise NotFound("this unsubscribe link is not valid")
    channel = Channel(read.channel)
    async with store.read() as tx:
        address = await tx.endpoint_address(read.subscriber_id, channel)
    if address is None or not read.sent_to(address):
        raise NotFound(
            "this unsubscribe link was sent to an address that no longer receives "
            "these notifications"
        )
    return Unsubscribing(read.subscriber_id, channel, address)


async def unsubscribe_subject(store: StorePort, link_key: str, token: str) -> tuple[str, Channel]:
    """The subscriber and channel an unsubscribe link names (`unsubscribe_target`)."""
    found = await unsubscribe_target(store, link_key, token)
    return found.subscriber_id, found.channel


async def unsubscribe(
    store: StorePort, link_key: str, token: str, *, now: datetime
) -> tuple[str, Channel]:
    """Stop the channel an unsubscribe link names (RFC 8058 one-click); what it stopped."""
    subscriber_id, channel = await unsubscribe_subject(store, link_key, token)
    async with store.write() as tx:
        await tx.disable_endpoint(subscriber_id, channel, reason="unsubscribed", now=now)
    return subscriber_id, channel
