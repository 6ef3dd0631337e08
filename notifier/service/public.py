"""What the public may see: meetings the lowest audience may know of, in that audience's
view, for the public pages, their Atom feeds and calendars, and one reader's private
calendar. Each read is one short transaction; the pages only render what it returns."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime

from notifier.domain.errors import NotFound, Withdrawn
from notifier.domain.languages import field_languages
from notifier.domain.matching import subscriber_matches
from notifier.domain.models import EventKind, HistoryEntry, Meeting, Subscriber
from notifier.domain.views import view_history, view_meeting
from notifier.fields import SLUG
from notifier.store.port import StorePort
from notifier.store.records import Stamp

Dated = tuple[Meeting, datetime]


async def public_meetings(store: StorePort, *, language: str | None = None) -> list[Dated]:
    """Every meeting the lowest audience may know of, in its view, with when it last
    changed."""
    async with store.read() as tx:
        records = await tx.meeting_records()
        audiences = store.planning.audiences
    return [
        (view_meeting(r.meeting, audiences.lowest, audiences, language), r.updated_at)
        for r in records
        if audiences.may_know(audiences.lowest, r.meeting.audience)
    ]


async def public_meeting(
    store: StorePort, meeting_id: str, *, language: str | None = None
) -> tuple[Meeting, datetime, list[HistoryEntry], dict[str, str]]:
    """One meeting the public may see, with its history, in the lowest audience's view and
    in `language` where it has text in it, and the language each field is in; `NotFound`
    alike for a malformed id, an unknown or a non-public meeting, `Withdrawn` for a public
    one that was retired."""
    if not re.fullmatch(SLUG, meeting_id):
        raise NotFound("no such meeting")
    async with store.read() as tx:
        record = await tx.meeting_record(meeting_id)
        audiences = store.planning.audiences
        if record is None or not audiences.may_know(audiences.lowest, record.meeting.audience):
            raise NotFound("no such meeting")
        if record.retired_at is not None:
            # It was public: saying it has gone tells no one anything new, and tells
            # readers and crawlers to stop asking.
            raise Withdrawn("this meeting has been withdrawn")
        history = await tx.history(meeting_id, zone=record.meeting.timezone)
    lowest = audiences.lowest
    languages = store.planning.languages
    lang = languages.of(language or languages.base)
    shown = view_meeting(record.meeting, lowest, audiences, lang)
    marks = field_languages(shown, record.meeting.texts.get(lang, {}), lang, languages.base)
    return (shown, record.updated_at, view_history(history, lowest, audiences, lang), marks)


async def publicly_known(store: StorePort, meeting_id: str) -> bool:
    """Whether the public may know of the current meeting `meeting_id` (one row read)."""
    if not re.fullmatch(SLUG, meeting_id):
        return False
    async with store.read() as tx:
        record = await tx.meeting_record(meeting_id)
        audiences = store.planning.audiences
    return (
        record is not None
        and record.retired_at is None
        and audiences.may_know(audiences.lowest, record.meeting.audience)
    )


async def public_stamp(store: StorePort) -> Stamp:
    """The validator of everything the public may see (one small query)."""
    async with store.read() as tx:
        return await tx.visible_stamp(store.planning.audiences.lowest)


async def public_index(
    store: StorePort, *, now: datetime, size: int, language: str | None = None
) -> tuple[list[Meeting], list[Meeting]]:
    """The front page: up to `size` meetings still to take place from `now` on, soonest
    first, and up to `size` others (before `now`, or cancelled or concluded), latest first,
    in the public's view."""
    async with store.read() as tx:
        audiences = store.planning.audiences
        upcoming = await tx.visible_meetings(audiences.lowest, limit=size, starting_from=now)
        recent = await tx.visible_meetings(
            audiences.lowest, limit=size, starting_before=now, latest_first=True
        )
    # A meeting called off before its date is news of the past: it goes under recent,
    # latest first like the rest, and upcoming keeps only what will still take place.
    ahead = [r.meeting for r in upcoming if not r.meeting.status.is_terminal]
    over = [r.meeting for r in upcoming if r.meeting.status.is_terminal]
    behind = sorted([*over, *(r.meeting for r in recent)], key=lambda m: m.starts_at, reverse=True)
    return (
        [view_meeting(m, audiences.lowest, audiences, language) for m in ahead],
        [view_meeting(m, audiences.lowest, audiences, language) for m in behind[:size]],
    )


async def public_changes(
    store: StorePort, *, limit: int, language: str | None = None
) -> list[tuple[Meeting, HistoryEntry, str]]:
    """The newest `limit` changes the public may see, each with its meeting, both in the
    public's view and in `language` where the meeting has text in it, and the language
    its title is in (the site's Atom feed)."""
    async with store.read() as tx:
        audiences = store.planning.audiences
        changes = await tx.visible_changes(audiences.lowest, limit=limit)
    lowest = audiences.lowest
    languages = store.planning.languages
    lang = languages.of(language or languages.base)
    return [
        (
            view_meeting(record.meeting, lowest, audiences, lang),
            view_history([entry], lowest, audiences, lang)[0],
            lang if "title" in record.meeting.texts.get(lang, {}) else languages.base,
        )
        for record, entry in changes
    ]


async def public_calendar(
    store: StorePort, *, since: datetime, limit: int, language: str | None = None
) -> list[Dated]:
    """Up to `limit` public meetings starting from `since` (the site's calendar)."""
    async with store.read() as tx:
        audiences = store.planning.audiences
        records = await tx.visible_meetings(audiences.lowest, limit=limit, starting_from=since)
    return [
        (view_meeting(r.meeting, audiences.lowest, audiences, language), r.updated_at)
        for r in records
    ]


async def private_calendar(store: StorePort, subscriber: Subscriber) -> list[Dated]:
    """The meetings one reader follows, whatever kinds of news they take, in their own
    audience's view (their private calendar)."""
    async with store.read() as tx:
        records = await tx.meeting_records()
        audiences = store.planning.audiences
    language = store.planning.languages.of(subscriber.locale)
    every_kind = dataclasses.replace(subscriber, events=("*",))
    return [
        (view_meeting(r.meeting, subscriber.audience, audiences, language), r.updated_at)
        for r in records
        if subscriber_matches(every_kind, r.meeting, EventKind.UPDATED, audiences)
    ]
