"""Messages from domain objects: Jinja2 templates for email, the contract JSON for webhooks.

Templates are looked up, for locale ``ru`` and kind ``meeting.postponed``, as
``ru/meeting.postponed.subject.txt`` then ``ru/subject.txt`` (likewise ``body.txt`` and
``body.html``), first in the configured templates folder, then in the shipped ones; a
locale with no templates falls back to English. The environment is sandboxed, HTML is
autoescaped and an undefined name is an error, so `check` finds broken templates before
anything is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, overload
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_timedelta
from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from notifier.domain.durations import parse_duration
from notifier.domain.errors import ConfigError
from notifier.domain.models import (
    EventKind,
    HistoryEntry,
    Meeting,
    MeetingStatus,
    kind_of_status,
)
from notifier.domain.outbox import change_payload, reminder_payload
from notifier.domain.text import clean_text
from notifier.words import LOCALES, beyond, kind_name, status_name, zone_abbreviation

PARTS = ("subject.txt", "body.txt", "body.html")
SHIPPED_LOCALES = LOCALES


@dataclass(frozen=True, kw_only=True)
class Change:
    """What a change did, as templates see it (the webhook ``change`` object, parsed)."""

    from_status: str | None
    to_status: str
    reason: str
    previous_starts_at: datetime | None
    starts_at: datetime | None
    #: The conditions a clearance lifted, as the reader may see them.
    cleared: tuple[str, ...] = ()
    #: What a change of the zone's clock rules did (the webhook ``change.clock``), if that
    #: is what this change was.
    clock: ClockWords | None = None


@dataclass(frozen=True, kw_only=True)
class ClockWords:
    """A change of clock rules as templates say it: zone, anchor and the clock times."""

    zone: str
    anchor: str
    #: ``19:00``: the local start before and after the rules changed.
    before: str
    after: str
    #: ``14:00``: the start in UTC now, and before the rules changed.
    utc: str
    utc_before: str
    tzdata: str


@dataclass(frozen=True, kw_only=True)
class Notice:
    """Everything one notification says, before it is addressed to anyone.

    Built from the JSON the outbox stores, which is the webhook body of the contract.
    """

    kind: EventKind
    meeting: Meeting
    change: Change | None
    offset: timedelta | None
    at: datetime
    body: dict[str, Any]
    #: Every change folded into this notice by a coalescing window, oldest first.
    changes: tuple[Change, ...] = ()

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Notice:
        """Read a stored payload (``{"type", "timestamp", "data"}``)."""
        data = payload["data"]
        change = data.get("change")
        return cls(
            changes=tuple(_change(c) for c in data.get("changes") or ()),
            kind=EventKind(payload["type"]),
            meeting=Meeting.from_dict(data["meeting"]),
            change=_change(change) if change else None,
            offset=parse_duration(data["offset"]) if data.get("offset") else None,
            at=datetime.fromisoformat(payload["timestamp"]),
            body=payload,
        )

    def webhook_body(self) -> bytes:
        """The exact bytes POSTed to webhooks: the contract JSON, compact, UTF-8."""
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()


def sample_notices(now: datetime) -> list[Notice]:
    """One notice of every kind about a sample meeting, to check templates with."""
    meeting = Meeting(
        id="sample",
        title="Talks <between> the presidents & delegations",
        description="Trade facilitation, investment, infrastructure, public services.",
        location="Moscow",
        participants=("President A", "President B"),
        timezone="Europe/Moscow",
        starts_at=now + timedelta(days=2),
        status=MeetingStatus.RESCHEDULED,
        reason="moved to the evening",
        conditions=("health clearance",),
        tags=("bilateral",),
        sequence=4,
    )
    notices = []
    for status in MeetingStatus:
        entry = HistoryEntry(
            meeting_id=meeting.id,
            sequence=4,
            at=now,
            kind=kind_of_status(status),
            from_status=MeetingStatus.CLEARED,
            to_status=status,
            reason="sample reason",
            previous_starts_at=now + timedelta(days=1),
            starts_at=meeting.starts_at,
            cleared=meeting.conditions if status is MeetingStatus.CLEARED else (),
        )
        notices.append(Notice.from_payload(change_payload(meeting.replace(status=status), entry)))
    updated = HistoryEntry(
        meeting_id=meeting.id,
        sequence=5,
        at=now,
        kind=EventKind.UPDATED,
        from_status=meeting.status,
        to_status=meeting.status,
        reason="updated location",
    )
    notices.append(Notice.from_payload(change_payload(meeting, updated)))
    folded = change_payload(meeting, updated)
    folded["data"]["changes"] = [notices[2].body["data"]["change"], folded["data"]["change"]]
    notices.append(Notice.from_payload(folded))
    notices.append(Notice.from_payload(reminder_payload(meeting, timedelta(hours=1), at=now)))
    return notices


def preview_notice(
    kind: EventKind,
    meeting: Meeting,
    history: list[Any],
    subscriber: Any,
    *,
    now: datetime,
    audience: str | None = None,
) -> Notice:
    """The notice `kind` would carry about `meeting` now, for `notifier render` (the
    meeting and history already in the view of the reader's `audience`).

    Uses the latest history entry of that kind when there is one, else describes the
    meeting's current state as that kind.
    """
    if kind is EventKind.REMINDER:
        offset = min(subscriber.reminders) if subscriber.reminders else timedelta(hours=1)
        return Notice.from_payload(reminder_payload(meeting, offset, at=now, audience=audience))
    entry = next((e for e in reversed(history) if e.kind is kind), None)
    if entry is None:
        entry = HistoryEntry(
            meeting_id=meeting.id,
            sequence=meeting.sequence,
            at=now,
            kind=kind,
            from_status=meeting.status,
            to_status=meeting.status,
            reason=meeting.reason,
            starts_at=meeting.starts_at,
        )
    return Notice.from_payload(change_payload(meeting, entry, audience=audience))


def _change(data: dict[str, Any]) -> Change:
    return Change(
        from_status=data["from"],
        to_status=data["to"],
        reason=data["reason"],
        previous_starts_at=_parse(data["previous_starts_at"]),
        starts_at=_parse(data["starts_at"]),
        cleared=tuple(str(c) for c in data.get("cleared") or ()),
        clock=_clock(
            data.get("clock"), _parse(data["starts_at"]), _parse(data["previous_starts_at"])
        ),
    )


def _clock(
    data: dict[str, str] | None, starts_at: datetime | None, before: datetime | None
) -> ClockWords | None:
    if not data or starts_at is None:
        return None
    utc = f"{starts_at.astimezone(UTC):%H:%M}"
    return ClockWords(
        zone=data["zone"],
        anchor=data["anchor"],
        before=data["local_before"][11:16],
        after=data["local_after"][11:16],
        utc=utc,
        utc_before=f"{before.astimezone(UTC):%H:%M}" if before is not None else utc,
        tzdata=data["tzdata_after"],
    )


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, kw_only=True)
class RenderedEmail:
    """The three templated parts of an email."""

    subject: str
    text: str
    html: str


def one_line(text: str, *, limit: int = 250) -> str:
    """`text` on one line: control characters, line breaks and runs of white space become
    one space, encoded words are decoded (`notifier.domain.text.clean_text`)."""
    flat = clean_text(text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True, kw_only=True)
class RenderedChat:
    """A chat message: its title line, and the whole message in Markdown."""

    title: str
    markdown: str

    @property
    def text(self) -> str:
        """The message for services that show plain text: Markdown's emphasis removed."""
        return self.markdown.replace("**", "")


class Renderer:
    """Renders the email parts of a `Notice` for one locale and time zone.

    Templates see the meeting and change with their text cleaned (`clean_text`): whatever a
    feed or an old row carries, a one-line field is one line in every part.
    """

    def __init__(self, templates_dir: Path | None = None) -> None:
        loaders: list[Any] = []
        if templates_dir is not None:
            if not templates_dir.is_dir():
                raise ConfigError(f"templates_dir {templates_dir} is not a folder")
            loaders.append(FileSystemLoader(templates_dir))
        loaders.append(PackageLoader("notifier", "templates"))
        self.templates_dir = templates_dir
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=False,
        )
        self.env.filters["when"] = _when
        self.env.filters["relative"] = _relative
        self.env.filters["duration"] = _duration
        self.env.filters["status"] = _status
        self.env.filters["beyond"] = _beyond
        self.env.filters["status_kind"] = _status_kind
        self.env.filters["kind_name"] = _kind_name
        self.env.filters["lang"] = _lang

    def locales(self) -> list[str]:
        """Every locale with templates: the shipped ones and any in the templates folder."""
        found = set(SHIPPED_LOCALES)
        if self.templates_dir is not None:
            found |= {p.name for p in self.templates_dir.iterdir() if p.is_dir()}
        return sorted(found)

    def _template_names(self, locale: str, kind: EventKind, part: str) -> list[str]:
        names = []
        for candidate in dict.fromkeys((locale, locale.split("-")[0], "en")):
            names += [f"{candidate}/{kind.value}.{part}", f"{candidate}/{part}"]
        return names

    def render(
        self,
        notice: Notice,
        *,
        locale: str,
        timezone: str,
        name: str = "",
        unsubscribe_url: str = "",
        calendar_url: str = "",
        manage_url: str = "",
        page_url: str = "",
        now: datetime,
    ) -> RenderedEmail:
        """The subject (one line), text and HTML of `notice` for this reader."""
        context = {
            "kind": notice.kind.value,
            "meeting": _safe_meeting(notice.meeting),
            "change": _safe_change(notice.change),
            "changes": tuple(_safe_change(c) for c in notice.changes),
            "offset": notice.offset,
            "subscriber": {"name": name, "timezone": timezone, "locale": locale},
            "unsubscribe_url": unsubscribe_url,
            "calendar_url": calendar_url,
            "manage_url": manage_url,
            "page_url": page_url,
            "now": now,
            "_zone": ZoneInfo(timezone),
            "_locale": locale.split("-")[0],
            "_languages": notice.body.get("data", {}).get("languages") or {},
        }
        parts = [
            self.env.select_template(self._template_names(locale, notice.kind, part)).render(
                context
            )
            for part in PARTS
        ]
        return RenderedEmail(
            subject=one_line(parts[0]), text=parts[1].strip() + "\n", html=parts[2]
        )

    def render_chat(
        self, notice: Notice, *, locale: str, timezone: str, page_url: str, now: datetime
    ) -> RenderedChat:
        """The short chat message of `notice` (``chat.md``): a title line, the status,
        the time in the reader's zone, the reason in the reader's view, the page link."""
        context = {
            "kind": notice.kind.value,
            "meeting": _safe_meeting(notice.meeting),
            "change": _safe_change(notice.change),
            "changes": tuple(_safe_change(c) for c in notice.changes),
            "offset": notice.offset,
            "subscriber": {"name": "", "timezone": timezone, "locale": locale},
            "page_url": page_url,
            "now": now,
            "_zone": ZoneInfo(timezone),
            "_locale": locale.split("-")[0],
            "_languages": notice.body.get("data", {}).get("languages") or {},
        }
        markdown = self.env.select_template(
            self._template_names(locale, notice.kind, "chat.md")
        ).render(context)
        lines = [line.rstrip() for line in markdown.strip().splitlines()]
        title = lines[0].strip("*").strip() if lines else ""
        return RenderedChat(title=one_line(title), markdown="\n".join(lines) + "\n")

    def check(self, samples: list[Notice], *, now: datetime) -> list[str]:
        """Render every sample in every locale; one line per problem, empty when all pass."""
        problems: list[str] = []
        for locale in self.locales():
            for notice in samples:
                try:
                    self.render(
                        notice,
                        locale=locale,
                        timezone="America/New_York",
                        name="Sample Reader",
                        unsubscribe_url="https://example.org/unsubscribe/sample",
                        calendar_url="https://example.org/calendar/sample.ics",
                        manage_url="https://example.org/manage/sample",
                        page_url="https://example.org/meetings/sample",
                        now=now,
                    )
                    self.render_chat(
                        notice,
                        locale=locale,
                        timezone="America/New_York",
                        page_url="https://example.org/meetings/sample",
                        now=now,
                    )
                except TemplateSyntaxError as exc:
                    problems.append(f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}")
                except TemplateNotFound as exc:
                    problems.append(f"template not found: {exc.name} ({locale})")
                except TemplateError as exc:
                    problems.append(f"{locale}, {notice.kind.value}: {exc}")
        return list(dict.fromkeys(problems))


def _safe_meeting(meeting: Meeting) -> Meeting:
    """`meeting` with its text cleaned for display: one-line fields stay on one line, so
    a title from a feed cannot start a new paragraph or fake a line of the message."""
    return meeting.replace(
        title=clean_text(meeting.title),
        location=clean_text(meeting.location),
        reason=clean_text(meeting.reason),
        description=clean_text(meeting.description, multiline=True),
        participants=tuple(clean_text(p) for p in meeting.participants),
        conditions=tuple(clean_text(c) for c in meeting.conditions),
        tags=tuple(clean_text(t) for t in meeting.tags),
    )


@overload
def _safe_change(change: Change) -> Change: ...
@overload
def _safe_change(change: None) -> None: ...
def _safe_change(change: Change | None) -> Change | None:
    if change is None:
        return None
    return replace(
        change,
        reason=clean_text(change.reason),
        cleared=tuple(clean_text(c) for c in change.cleared),
    )


@pass_context
def _lang(context: Context, field: str) -> Markup:
    """`` lang="en"`` when the field `field` is in another language than the reader's
    (the meeting has no text in theirs: the fallback language's is shown), else nothing:
    ``<h1{{ "title"|lang }}>``."""
    language = context["_languages"].get(field)
    if not language or language == context["_locale"]:
        return Markup("")
    return Markup(' lang="{}"').format(language)


@pass_context
def _when(context: Context, value: datetime | None) -> str:
    """``19:00 MSK, 2 March 2026`` in the reader's zone and language."""
    if value is None:
        return ""
    local = value.astimezone(context["_zone"])
    formatted = format_datetime(
        local, "HH:mm, d MMMM y", tzinfo=context["_zone"], locale=context["_locale"]
    )
    clock, _, day = formatted.partition(", ")
    zone = zone_abbreviation(local, context["_locale"])  # MSK (МСК in Russian), UTC+04
    return f"{clock} {zone}, {day}"


@pass_context
def _relative(context: Context, value: datetime) -> str:
    """``in 3 hours`` / ``через 3 часа``, from the time of rendering; in Russian one of a
    unit drops its "1" (``через час``, not ``через 1 час``), and one day is ``через сутки``
    (``через день`` also means "every other day")."""
    said = str(
        format_timedelta(value - context["now"], add_direction=True, locale=context["_locale"])
    )
    if context["_locale"] == "ru" and said.startswith("через 1 "):
        said = "через " + said.removeprefix("через 1 ")
        if said == "через день":
            said = "через сутки"
    return said


@pass_context
def _duration(context: Context, value: timedelta) -> str:
    """``1 hour`` / ``1 час``."""
    return str(format_timedelta(value, locale=context["_locale"]))


@pass_context
def _status(context: Context, value: MeetingStatus | str) -> str:
    """The status in the reader's language."""
    key = value.value if isinstance(value, MeetingStatus) else value
    try:
        return status_name(key, context["_locale"])
    except ValueError:  # not a status: shown as given
        return key


@pass_context
def _kind_name(context: Context, kind: str) -> str:
    """The name of a kind of news (``meeting.postponed``: "Postponed") in the reader's
    language, from the one catalogue (`notifier.words.KIND`)."""
    return kind_name(kind, context["_locale"])


def _status_kind(status: MeetingStatus | str) -> str:
    """The kind of news a change to `status` is (``postponed`` -> ``meeting.postponed``)."""
    try:
        return kind_of_status(MeetingStatus(status)).value
    except ValueError:
        return ""


def _beyond(reason: str | None, status: MeetingStatus | str) -> str:
    """The reason as far as it adds to the status (`notifier.words.beyond`)."""
    return beyond(reason, status)
