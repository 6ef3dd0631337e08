"""The exact message a reader would get, rendered as the outbox would render it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from notifier.delivery import Postman
from notifier.domain.errors import (
    InvalidChange,
    UnknownMeeting,
    UnknownSubscriber,
)
from notifier.domain.models import EventKind, HistoryEntry
from notifier.domain.outbox import Channel, change_notice_id, change_payload
from notifier.domain.views import view_entry, view_history, view_meeting
from notifier.rendering import Notice, preview_notice
from notifier.store.port import StorePort


@dataclass(frozen=True, kw_only=True)
class Preview:
    """A rendered message, and how true to what readers got it is."""

    text: str
    #: ``sent``: what this audience's readers were sent for that change (its stored
    #: notice); ``rebuilt``: that change, told from its history entry (nothing stored: no
    #: reader of this audience then, or pruned); ``hypothetical``: no such change yet, the
    #: meeting as it is now told as that kind (and every reminder: the reader's first one).
    source: str
    #: One line saying so, for the reader of the preview (None when it is what was sent).
    note: str | None = None


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
    entry: int | None = None,
) -> Preview:
    """The message a subscriber got for `kind` about a meeting (`notifier render`): for
    the history entry `entry` (its sequence) or the latest of that kind, what readers of
    the subscriber's audience (or `audience`) were sent, from its stored notice; on
    `channel` (default: email if the subscriber has an address, else the webhook).
    `InvalidChange` when that audience may not know of the meeting at all, or `entry` is
    not a change of that kind."""
    async with store.read() as tx:
        audiences = store.planning.audiences
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
        chosen_entry = _entry(history, kind, entry, meeting_id)
        languages = store.planning.languages
        lang = languages.of(subscriber.locale)
        multilingual = bool(
            record.meeting.texts or (chosen_entry is not None and chosen_entry.texts)
        )
        lang = lang if multilingual else languages.base
        stored = (
            await tx.notices(
                [
                    change_notice_id(
                        meeting_id,
                        chosen_entry,
                        reader,
                        language=None if lang == languages.base else lang,
                    )
                ]
            )
            if chosen_entry is not None
            else {}
        )
    meeting = view_meeting(record.meeting, reader, audiences, lang)
    if stored:
        notice = Notice.from_payload(next(iter(stored.values())))
        source, note = "sent", None
    elif chosen_entry is not None:
        seen = view_entry(chosen_entry, reader, audiences, lang)
        then = dataclasses.replace(
            meeting,
            status=seen.to_status,
            reason=seen.reason,
            starts_at=seen.starts_at or meeting.starts_at,
            sequence=seen.sequence,
        )
        notice = Notice.from_payload(change_payload(then, seen, audience=reader))
        source = "rebuilt"
        note = (
            f"nothing was stored for readers of {reader!r} at change {seen.sequence} (none "
            "followed it then, or it was pruned): rebuilt from the history entry"
        )
    else:
        notice = preview_notice(
            kind,
            meeting,
            view_history(history, reader, audiences, lang),
            subscriber,
            now=now,
            audience=reader,
        )
        source = "hypothetical"
        note = (
            f"meeting {meeting_id!r} has no {kind.value} change: this shows one as it would "
            "read now, from the meeting as it is"
            if kind is not EventKind.REMINDER
            else "a reminder as it would be sent now, for the reader's first reminder offset"
        )
    chosen = channel or (
        Channel.EMAIL
        if subscriber.email
        else Channel.WEBHOOK
        if subscriber.webhook
        else Channel.NOTIFY
    )
    text = postman.preview(notice, subscriber, channel=chosen, part=part, now=now)
    return Preview(text=text, source=source, note=note)


def _entry(
    history: list[HistoryEntry], kind: EventKind, sequence: int | None, meeting_id: str
) -> HistoryEntry | None:
    """The history entry a preview is of: `sequence`, or the latest of `kind`."""
    if kind is EventKind.REMINDER:
        if sequence is not None:
            raise InvalidChange("--entry picks a change; a reminder is not one")
        return None
    if sequence is None:
        return next((e for e in reversed(history) if e.kind is kind), None)
    found = next((e for e in history if e.sequence == sequence), None)
    if found is None:
        raise InvalidChange(
            f"meeting {meeting_id!r} has no change {sequence} "
            f"(its history runs from 0 to {history[-1].sequence if history else 0})"
        )
    if found.kind is not kind:
        raise InvalidChange(
            f"change {sequence} of {meeting_id!r} is {found.kind.value}, not {kind.value}"
        )
    return found


# -- bounces that arrive later ----------------------------------------------------------------
