"""The exact message a reader would get, rendered as the outbox would render it."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from notifier.delivery import Postman
from notifier.domain.errors import (
    InvalidChange,
    UnknownMeeting,
    UnknownSubscriber,
)
from notifier.domain.models import (
    EventKind,
)
from notifier.domain.outbox import (
    Channel,
)
from notifier.domain.views import view_history, view_meeting
from notifier.rendering import preview_notice
from notifier.store.port import StorePort


async def preview(
    store: StorePort,
    postman: Postman,
    kind: EventKind,
    meeting_id: str,
    subscriber_id: str,
    *,
    channel: Channel | None,
    part: str | None,
    now: datetime,
    audience: str | None = None,
) -> str:
    """The exact message a subscriber would get for `kind` about a meeting now (`notifier
    render`): the latest change of that kind, or the meeting's state told as that kind, on
    `channel` (default: email if the subscriber has an address, else the webhook), in the
    view of the subscriber's audience (or `audience`, to see what another would read).
    `InvalidChange` when that audience may not know of the meeting at all."""
    async with store.read() as tx:
        audiences = tx.audiences
        record = await tx.meeting_record(meeting_id)
        if record is None:
            raise UnknownMeeting(meeting_id)
        subscriber_record = await tx.subscriber_record(subscriber_id)
        if subscriber_record is None:
            raise UnknownSubscriber(subscriber_id)
        history = await tx.history(meeting_id, zone=record.meeting.timezone)
    subscriber = subscriber_record.subscriber
    if audience is not None:
        audiences.check(audience)
        subscriber = dataclasses.replace(subscriber, audience=audience)
    reader = subscriber.audience
    if not audiences.may_know(reader, record.meeting.audience):
        raise InvalidChange(
            f"a reader of audience {reader!r} hears nothing of meeting {meeting_id!r} "
            f"(known to {record.meeting.audience!r} and above)"
        )
    notice = preview_notice(
        kind,
        view_meeting(record.meeting, reader, audiences),
        view_history(history, reader, audiences),
        subscriber,
        now=now,
        audience=reader,
    )
    chosen = channel or (
        Channel.EMAIL
        if subscriber.email
        else Channel.WEBHOOK
        if subscriber.webhook
        else Channel.NOTIFY
    )
    return postman.preview(notice, subscriber, channel=chosen, part=part, now=now)


# -- bounces that arrive later ----------------------------------------------------------------
