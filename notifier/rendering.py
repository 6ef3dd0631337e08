"""Messages from domain objects: Jinja2 templates for email, the contract JSON for webhooks.

Templates are looked up, for locale ``ru`` and kind ``meeting.postponed``, as
``ru/meeting.postponed.subject.txt`` then ``ru/subject.txt`` (likewise ``body.txt`` and
``body.html``), first in the configured templates folder, then in the shipped ones; a
locale with no templates falls back to English. The environment is sandboxed, HTML is
autoescaped and an undefined name is an error, so `check` finds broken templates before
anything is sent.
"""

from __future__ import annotations

import email.policy
import html
import json
import quopri
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime as format_datetime_rfc
from email.utils import formataddr, parseaddr
from pathlib import Path
from typing import Any
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

PARTS = ("subject.txt", "body.txt", "body.html")
SHIPPED_LOCALES = ("en", "ru")

_STATUS_NAMES = {
    "en": {s.value: s.value.replace("_", " ") for s in MeetingStatus},
    "ru": {
        "scheduled": "назначена",
        "confirmed": "подтверждена",
        "postponed": "перенесена",
        "cleared": "препятствие снято",
        "rescheduled": "перенесена на новое время",
        "in_progress": "идёт",
        "concluded": "завершилась",
        "cancelled": "отменена",
    },
}


@dataclass(frozen=True, kw_only=True)
class Change:
    """What a change did, as templates see it (the webhook ``change`` object, parsed)."""

    from_status: str | None
    to_status: str
    reason: str
    previous_starts_at: datetime | None
    starts_at: datetime | None


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
) -> Notice:
    """The notice `kind` would carry about `meeting` now, for `notifier render`.

    Uses the latest history entry of that kind when there is one, else describes the
    meeting's current state as that kind.
    """
    if kind is EventKind.REMINDER:
        offset = min(subscriber.reminders) if subscriber.reminders else timedelta(hours=1)
        return Notice.from_payload(reminder_payload(meeting, offset, at=now))
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
    return Notice.from_payload(change_payload(meeting, entry))


def _change(data: dict[str, Any]) -> Change:
    return Change(
        from_status=data["from"],
        to_status=data["to"],
        reason=data["reason"],
        previous_starts_at=_parse(data["previous_starts_at"]),
        starts_at=_parse(data["starts_at"]),
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
    """`text` on one line: CR, LF and runs of white space become one space."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Renderer:
    """Renders the email parts of a `Notice` for one locale and time zone."""

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
        now: datetime,
    ) -> RenderedEmail:
        """The subject (one line), text and HTML of `notice` for this reader."""
        context = {
            "kind": notice.kind.value,
            "meeting": notice.meeting,
            "change": notice.change,
            "changes": notice.changes,
            "offset": notice.offset,
            "subscriber": {"name": name, "timezone": timezone, "locale": locale},
            "unsubscribe_url": unsubscribe_url,
            "now": now,
            "_zone": ZoneInfo(timezone),
            "_locale": locale.split("-")[0],
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
                        now=now,
                    )
                except TemplateSyntaxError as exc:
                    problems.append(f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}")
                except TemplateNotFound as exc:
                    problems.append(f"template not found: {exc.name} ({locale})")
                except TemplateError as exc:
                    problems.append(f"{locale}, {notice.kind.value}: {exc}")
        return list(dict.fromkeys(problems))


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
    zone = local.tzname() or ""
    if zone[:1] in "+-":  # zones without an abbreviation (Asia/Tbilisi): say UTC+04
        zone = f"UTC{zone}"
    return f"{clock} {zone}, {day}"


@pass_context
def _relative(context: Context, value: datetime) -> str:
    """``in 3 hours`` / ``через 3 часа``, from the time of rendering."""
    return str(
        format_timedelta(value - context["now"], add_direction=True, locale=context["_locale"])
    )


@pass_context
def _duration(context: Context, value: timedelta) -> str:
    """``1 hour`` / ``1 час``."""
    return str(format_timedelta(value, locale=context["_locale"]))


@pass_context
def _status(context: Context, value: MeetingStatus | str) -> str:
    """The status in the reader's language."""
    key = value.value if isinstance(value, MeetingStatus) else value
    return _STATUS_NAMES.get(context["_locale"], _STATUS_NAMES["en"]).get(key, key)


#: Stands in for the reader's unsubscribe link while a shared email body is built.
UNSUBSCRIBE_PLACEHOLDER = "notifier_unsubscribe_link_placeholder"


@dataclass(frozen=True, kw_only=True)
class PreparedEmail:
    """An email built once for everyone who reads it the same way (kind, locale, zone).

    `segments` is every shared header and the whole MIME body, cut where the reader's own
    unsubscribe link goes; `for_recipient` adds the headers that differ per reader and
    fills in the link, so building the MIME tree (the CPU-bound part) happens once per
    group instead of once per recipient.
    """

    segments: tuple[bytes, ...]
    #: For each cut: the decoded line holding the placeholder, and whether it is HTML.
    holes: tuple[tuple[bytes, bool], ...]
    domain: str

    def for_recipient(
        self, *, to: str, name: str = "", delivery_id: str, unsubscribe_url: str
    ) -> bytes:
        """The complete message for one recipient, ready for SMTP DATA."""
        head = EmailMessage(policy=SMTP_POLICY)
        head["To"] = formataddr((one_line(name), to)) if name else to
        head["Message-ID"] = f"<{delivery_id}@{self.domain}>"
        head["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        head["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        parts = [head.as_bytes().split(b"\r\n\r\n", 1)[0], b"\r\n", self.segments[0]]
        for (line, is_html), after in zip(self.holes, self.segments[1:], strict=True):
            link = html.escape(unsubscribe_url) if is_html else unsubscribe_url
            filled = line.replace(UNSUBSCRIBE_PLACEHOLDER.encode(), link.encode())
            parts.append(quopri.encodestring(filled).replace(b"\n", b"\r\n"))
            parts.append(after)
        return b"".join(parts)


def _cut(common: bytes) -> tuple[tuple[bytes, ...], tuple[tuple[bytes, bool], ...]]:
    """Cut built bytes at each quoted-printable line holding the placeholder."""
    marker = UNSUBSCRIBE_PLACEHOLDER.encode()
    segments: list[bytes] = []
    holes: list[tuple[bytes, bool]] = []
    current: list[bytes] = []
    is_html = False
    for line in common.split(b"\r\n"):
        lowered = line.lower()
        if lowered.startswith(b"content-type:"):
            is_html = b"text/html" in lowered
        if marker in line and not line.endswith(b"="):
            segments.append(b"\r\n".join([*current, b""]))
            holes.append((quopri.decodestring(line), is_html))
            current = []
        else:
            current.append(line)
    segments.append(b"\r\n".join(current))
    return tuple(segments), tuple(holes)


SMTP_POLICY = email.policy.SMTP


def sender_domain(sender: str) -> str:
    """The domain of the sender address, for Message-IDs and the iCalendar UID."""
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "localhost"


def thread_id(meeting_id: str, domain: str) -> str:
    """The Message-ID every email about a meeting refers to, so mail clients thread them."""
    return f"<meeting.{meeting_id}@{domain}>"


def prepare_email(
    rendered: RenderedEmail,
    *,
    sender: str,
    meeting: Meeting,
    ics: bytes | None,
    ics_method: str,
    now: datetime,
) -> PreparedEmail:
    """Build the shared part of an email: headers, text, HTML and the calendar part.

    Every header value comes through `one_line` or the email policy, so CR/LF from
    templated data can never start a new header.
    """
    domain = sender_domain(sender)
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = sender
    message["Subject"] = one_line(rendered.subject)
    message["Date"] = format_datetime_rfc(now)
    message["In-Reply-To"] = thread_id(meeting.id, domain)
    message["References"] = thread_id(meeting.id, domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text, cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    if ics is not None:
        message.add_alternative(
            ics,
            maintype="text",
            subtype="calendar",
            params={"method": ics_method, "charset": "utf-8"},
            cte="base64",
            filename="invite.ics",
            disposition="inline",
        )
    common = message.as_bytes()
    segments, holes = _cut(common)
    if UNSUBSCRIBE_PLACEHOLDER.encode() in b"".join(segments):
        # A template split the link across encoded lines: no shared build is possible.
        raise ValueError("the unsubscribe link must stand on a line of its own, under 60 chars")
    return PreparedEmail(segments=segments, holes=holes, domain=domain)
