"""What a feed item means for a stored meeting: pure, with deterministic event ids."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from notifier.domain.audiences import PUBLIC
from notifier.domain.languages import Languages, freeze_texts
from notifier.domain.machine import TRANSITIONS
from notifier.domain.models import Meeting, MeetingStatus, Source, StatusChange
from notifier.domain.text import clean_text


@dataclass(frozen=True, kw_only=True)
class FeedItem:
    """One meeting as a feed describes it now."""

    uid: str
    title: str
    starts_at: datetime
    status: MeetingStatus
    timezone: str
    ends_at: datetime | None = None
    location: str = ""
    description: str = ""
    reason: str = ""
    #: The feed's own revision number (iCalendar SEQUENCE), when it has one.
    sequence: int | None = None
    #: What the item is known by across reads: the uid, or for one occurrence of a series
    #: the uid and its original start (``uid/20300302T160000Z``). Empty means the uid.
    key: str = ""
    #: For an occurrence: the uid of its series, and its original start (RECURRENCE-ID).
    series: str | None = None
    original: datetime | None = None
    #: Its text by language, where the feed says which (an ICS ``LANGUAGE`` parameter, a
    #: JSON feed's ``{"en": ..., "ru": ...}``): language -> field -> text. The plain fields
    #: above are the feed's first text; `localized` picks the fallback's.
    texts: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def ident(self) -> str:
        """The key this item is followed by (and its meeting id is made from)."""
        return self.key or self.uid


#: The longest text kept from a feed, per field (characters); longer text is cut, with a note.
LIMITS = {"title": 500, "location": 500, "reason": 2000, "description": 20000}


def clean_item(item: FeedItem) -> tuple[FeedItem, str | None]:
    """`item` with its text made safe (`clean_text`), and a warning naming what changed.

    A feed is a third party's text: a title carrying CR LF, NUL, U+2028 or an RFC 2047
    encoded word is not refused (the meeting is still real) but cleaned, and the caller
    logs the warning.
    """
    cut: list[str] = []
    changed: list[str] = []
    kept: dict[str, str] = {}
    for name, limit in LIMITS.items():
        raw: str = getattr(item, name)
        kept[name] = clean_text(raw[: limit * 2], multiline=name == "description")[:limit]
        if len(raw) > limit:
            cut.append(f"{name} cut to {limit:,} characters")
        elif kept[name] != raw:
            changed.append(name)
    texts = {
        lang: {
            name: clean_text(text[: LIMITS[name] * 2], multiline=name == "description")[
                : LIMITS[name]
            ]
            for name, text in layer.items()
            if name in LIMITS
        }
        for lang, layer in item.texts.items()
    }
    if not cut and not changed and texts == item.texts:
        return item, None
    safe = replace(
        item,
        title=kept["title"] or clean_text(item.uid)[:200] or "untitled",
        location=kept["location"],
        reason=kept["reason"],
        description=kept["description"],
        texts=texts,
    )
    notes = cut + (
        [f"cleaned control characters or encoded words from {', '.join(changed)}"]
        if changed
        else []
    )
    return safe, "; ".join(notes)


@dataclass(frozen=True, kw_only=True)
class Create:
    """A meeting the store does not have yet."""

    meeting: Meeting
    event_id: str


@dataclass(frozen=True, kw_only=True)
class Change:
    """A status change to apply through the state machine."""

    change: StatusChange


@dataclass(frozen=True, kw_only=True)
class Details:
    """Descriptive fields that differ."""

    meeting_id: str
    fields: dict[str, object]
    event_id: str


Action = Create | Change | Details


def meeting_id_for(uid: str) -> str:
    """A meeting id (slug) for a feed uid: readable where it can be, unique always."""
    base = re.sub(r"[^a-z0-9._-]+", "-", uid.lower()).strip("-._")[:80] or "feed"
    if base == uid:
        return base
    return f"{base}-{hashlib.sha256(uid.encode()).hexdigest()[:8]}"


def _event_id(source: str, item: FeedItem, what: str) -> str:
    parts = [source, item.ident, str(item.sequence), what, item.status.value]
    key = "\x1f".join([*parts, item.starts_at.isoformat()])
    return "feed_" + hashlib.sha256(key.encode()).hexdigest()[:40]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def snapshot(item: FeedItem) -> dict[str, object]:
    """What the feed said about an item, kept to tell next time what the feed changed.

    Text is kept as a digest: the meeting holds the text, the snapshot only tells change.
    """
    said: dict[str, object] = {
        "sequence": item.sequence,
        "status": item.status.value,
        "starts_at": item.starts_at.isoformat(),
        "title": _digest(item.title),
        "location": _digest(item.location),
        "description": _digest(item.description),
    }
    if item.series is not None and item.original is not None:
        said["series"] = item.series
        said["original"] = item.original.isoformat()
    if item.texts:  # only when given: snapshots of feeds without languages stay as they were
        said["texts"] = _digest(json.dumps(item.texts, sort_keys=True, ensure_ascii=False))
    return said


def localized(item: FeedItem, languages: Languages) -> tuple[FeedItem, dict[str, dict[str, str]]]:
    """`item` with its plain text in the fallback language where the feed gives one, and
    its text in the installation's other languages (a language it does not list is not
    kept: readers of it get the fallback)."""
    if not item.texts:
        return item, {}
    base = item.texts.get(languages.base, {})
    main = replace(item, **{k: v for k, v in base.items() if k in LIMITS and v})  # type: ignore[arg-type]
    layers = {
        lang: dict(layer)
        for lang, layer in item.texts.items()
        if lang != languages.base and lang in languages.order and layer
    }
    return main, layers


@dataclass(frozen=True)
class _Voice:
    """How a feed that speaks for `audience` writes text: plain for the public, else as
    that audience's variant (the title is never tiered)."""

    audience: str

    @property
    def public(self) -> bool:
        return self.audience == PUBLIC

    def text(self, name: str, value: str) -> dict[str, object]:
        """A detail field as this feed says it."""
        if self.public or name == "title":
            return {name: value}
        return {name: {self.audience: value}} if value else {}

    def reason(self, value: str) -> dict[str, object]:
        """A status change's reason fields as this feed says it."""
        if self.public:
            return {"reason": value}
        return {"reason": "", "variants": {"reason": {self.audience: value}} if value else {}}

    def stored(self, meeting: Meeting, name: str) -> object:
        """What this feed said last of a stored meeting's field."""
        if self.public or name == "title":
            return getattr(meeting, name)
        return (meeting.variants.get(name) or {}).get(self.audience)

    def layers(self, texts: dict[str, dict[str, str]]) -> dict[str, dict[str, object]]:
        """The feed's text in other languages as this feed says it (the title plain, the
        rest as this audience's variant unless the feed speaks for the public)."""
        said: dict[str, dict[str, object]] = {}
        for lang, layer in texts.items():
            for name, value in layer.items():
                if name in ("title", "description", "location", "reason"):
                    said.setdefault(lang, {}).update(self.text(name, value))
        return said

    def new_meeting(self, item: FeedItem, texts: dict[str, dict[str, str]]) -> Meeting:
        """The meeting a new item makes: known to this audience and above."""
        plain: dict[str, object] = {}
        variants: dict[str, dict[str, str]] = {}
        for name in ("description", "location", "reason"):
            for key, value in self.text(name, getattr(item, name)).items():
                if isinstance(value, dict):
                    variants[key] = value
                else:
                    plain[key] = value
        return Meeting(
            id=meeting_id_for(item.ident),
            title=item.title,
            timezone=item.timezone,
            starts_at=item.starts_at,
            ends_at=item.ends_at,
            status=item.status,
            source=Source.FEED,
            audience=self.audience,
            variants=variants,
            texts=freeze_texts(self.layers(texts)),
            **plain,  # type: ignore[arg-type]
        )


def actions_for(
    item: FeedItem,
    stored: Meeting | None,
    *,
    source: str,
    last: dict[str, object] | None,
    audience: str = PUBLIC,
    languages: Languages | None = None,
) -> list[Action]:
    """What to do so the store follows what the feed changed; empty when nothing did.

    A feed speaks for one `audience` (``[[sources]] audience``): its meetings are known to
    that audience and above, and its text (reason, description, location) is that
    audience's variant, never plain text every reader would get.

    `last` is the feed's previous `snapshot` of the item: only what the feed changed since
    is applied, so a change made meanwhile by the CLI or API is not undone by a feed that
    still says the old thing. A feed revision older than one already read (iCalendar
    SEQUENCE) is ignored. A new start time is a reschedule; a new status goes through the
    state machine, which may refuse it. Event ids depend only on the source, the item and
    what changed, so the same feed read twice changes nothing twice.
    """
    previous = last or {}
    last_sequence = previous.get("sequence")
    if (
        item.sequence is not None
        and isinstance(last_sequence, int)
        and item.sequence < last_sequence
    ):
        return []
    voice = _Voice(audience)
    now_said = snapshot(item)  # of the item as the feed wrote it, every language in it
    item, texts = localized(item, languages or Languages())
    if stored is None:
        meeting = voice.new_meeting(item, texts)
        return [Create(meeting=meeting, event_id=_event_id(source, item, "create"))]

    def feed_changed(name: str) -> bool:
        return not previous or previous.get(name) != now_said[name]

    # Snapshots written before text was kept as a digest hold the text itself.
    for name in ("title", "location", "description"):
        if previous.get(name) == getattr(item, name):
            previous = {**previous, name: now_said[name]}

    actions: list[Action] = []
    details: dict[str, object] = {}
    for name, value in (
        ("title", item.title),
        ("location", item.location),
        ("description", item.description),
    ):
        if value and feed_changed(name) and voice.stored(stored, name) != value:
            details.update(voice.text(name, value))
    if "texts" in now_said and feed_changed("texts"):
        said = {
            lang: {k: v for k, v in layer.items() if k != "reason"}
            for lang, layer in voice.layers(texts).items()
        }
        details["texts"] = {lang: layer for lang, layer in said.items() if layer}
    if details:
        actions.append(
            Details(
                meeting_id=stored.id, fields=details, event_id=_event_id(source, item, "details")
            )
        )
    moved = feed_changed("starts_at") and item.starts_at != stored.starts_at
    if feed_changed("status") and item.status is not stored.status:
        status = item.status
        if moved and status in (MeetingStatus.SCHEDULED, MeetingStatus.CONFIRMED):
            # A feed that moves a meeting and re-confirms it at once: announce the move.
            status = MeetingStatus.RESCHEDULED
        actions.append(
            Change(
                change=StatusChange(
                    meeting_id=stored.id,
                    status=status,
                    **voice.reason(item.reason),  # type: ignore[arg-type]
                    starts_at=item.starts_at if moved else None,
                    event_id=_event_id(source, item, "status"),
                    source=Source.FEED,
                )
            )
        )
    elif moved and MeetingStatus.RESCHEDULED in TRANSITIONS[stored.status]:
        actions.append(
            Change(
                change=StatusChange(
                    meeting_id=stored.id,
                    status=MeetingStatus.RESCHEDULED,
                    **voice.reason(item.reason),  # type: ignore[arg-type]
                    starts_at=item.starts_at,
                    event_id=_event_id(source, item, "moved"),
                    source=Source.FEED,
                )
            )
        )
    return actions
