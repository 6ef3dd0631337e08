"""The public face: status pages, self-service subscription, Atom and calendar feeds.

Server-rendered (Jinja2), working without JavaScript (a small same-origin script only
fills in the browser's time zone), no third-party assets, a strict Content Security Policy,
CSRF protection on every form. Everything here is made from the lowest audience's view:
no page or feed carries text meant for a higher one, and meetings above it are 404.
Served when ``[public] enabled`` is true.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from babel.dates import format_datetime as babel_datetime
from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from feedgen.feed import FeedGenerator
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException

from notifier import metrics, service, subscriptions
from notifier.calendar import feed_calendar
from notifier.domain.durations import format_duration
from notifier.domain.errors import InvalidChange, NotFound
from notifier.domain.models import HistoryEntry, Meeting, MeetingStatus, Subscriber
from notifier.mail import sender_domain
from notifier.public.i18n import STATUS, WORDS, language
from notifier.web.context import ApiContext, Ctx
from notifier.web.limits import RateLimit

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "public"
STATIC = Path(__file__).resolve().parent / "static"
#: Every page and feed: nothing from elsewhere, no inline script or style, no framing.
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CSRF_COOKIE = "notifier_csrf"
#: How far back /calendar.ics reaches (calendar apps keep what they had before).
CALENDAR_PAST = timedelta(days=30)
ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True))

router = APIRouter(include_in_schema=False)


def _limit(request: Request, ctx: ApiContext) -> RateLimit:
    """`public.per_client_per_hour` subscribe requests an hour per client address."""
    limit: RateLimit | None = getattr(request.app.state, "client_limit", None)
    if limit is None:
        limit = RateLimit(ctx.settings.public.per_client_per_hour, period=3600.0)
        request.app.state.client_limit = limit
    return limit


def _enabled(ctx: ApiContext) -> None:
    if not ctx.settings.public.enabled:
        raise HTTPException(404, "the public pages are not enabled ([public] enabled)")


# -- reading what the public may see -----------------------------------------------------------


async def _public_meetings(ctx: ApiContext) -> list[tuple[Meeting, datetime]]:
    return await service.public_meetings(ctx.store)


async def _public_meeting(
    ctx: ApiContext, meeting_id: str
) -> tuple[Meeting, datetime, list[HistoryEntry]]:
    return await service.public_meeting(ctx.store, meeting_id)


# -- page helpers ----------------------------------------------------------------------------


def _zone(asked: str | None) -> str | None:
    if (asked and asked in ZONES) or asked == "UTC":
        return asked
    return None


def _when(value: datetime, zone: str, lang: str) -> str:
    return babel_datetime(value, "EEEE d MMMM y, HH:mm zzzz", tzinfo=ZoneInfo(zone), locale=lang)


def _status_line(meeting: Meeting, lang: str, zone: str) -> str:
    words = STATUS[lang]
    if meeting.status is MeetingStatus.RESCHEDULED:
        time_text = babel_datetime(
            meeting.starts_at, "HH:mm zzz", tzinfo=ZoneInfo(zone), locale=lang
        )
        return WORDS[lang]["rescheduled_to"].format(time=time_text)
    return words[meeting.status]


def _secure(ctx: ApiContext) -> bool:
    """Whether the site is served over https (then cookies are Secure and ``__Host-``)."""
    return ctx.settings.public_url.scheme == "https"


def _csrf_cookie(ctx: ApiContext) -> str:
    # __Host-: Secure, Path=/ and no Domain, so no sibling subdomain can plant the cookie.
    return f"__Host-{CSRF_COOKIE}" if _secure(ctx) else CSRF_COOKIE


def _csrf(request: Request, ctx: ApiContext) -> str:
    return request.cookies.get(_csrf_cookie(ctx)) or secrets.token_urlsafe(24)


def _page(
    request: Request,
    ctx: ApiContext,
    template: str,
    lang: str,
    *,
    status: int = 200,
    csrf: str | None = None,
    **values: Any,
) -> HTMLResponse:
    words = WORDS[lang]
    html = _env.get_template(template).render(
        w=words,
        lang=lang,
        site=ctx.settings.public.title,
        path=request.url.path,
        query=dict(request.query_params),
        csrf=csrf,
        zones=ZONES,
        **values,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if csrf is not None:
        response.set_cookie(
            _csrf_cookie(ctx),
            csrf,
            httponly=True,
            samesite="strict",
            max_age=86400,
            path="/",
            secure=_secure(ctx),
        )
    return response


def _check_csrf(request: Request, ctx: ApiContext, given: str) -> bool:
    cookie = request.cookies.get(_csrf_cookie(ctx), "")
    ok = bool(cookie) and hmac.compare_digest(cookie.encode(), given.encode())
    if not ok:
        metrics.SUBSCRIPTIONS.labels("refused_csrf").inc()
    return ok


def _conditional(
    request: Request,
    body: bytes,
    media: str,
    changed: datetime | None,
    *,
    cache: str = "public",
) -> Response:
    """A feed or page answer with ETag and Last-Modified; 304 when the reader has it."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = _validators(etag, changed, cache)
    if _fresh(request, etag, changed):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media, headers=headers)


async def _stamped(
    request: Request,
    ctx: ApiContext,
    media: str,
    build: Callable[[], Awaitable[bytes]],
    *parts: str,
) -> Response:
    """A public feed whose validator comes from the store's stamp (and `parts`), so a
    conditional GET is answered from one small query; `build` runs only for a 200."""
    stamp = await service.public_stamp(ctx.store)
    public = ctx.settings.public
    seed = "|".join(
        [
            str(stamp.meetings),
            stamp.updated_at.isoformat() if stamp.updated_at else "",
            str(stamp.latest_change),
            public.title,
            str(ctx.settings.public_url),
            *parts,
        ]
    )
    etag = '"s-' + hashlib.sha256(seed.encode()).hexdigest()[:30] + '"'
    headers = _validators(etag, stamp.updated_at, "public")
    if _fresh(request, etag, stamp.updated_at):
        return Response(status_code=304, headers=headers)
    return Response(await build(), media_type=media, headers=headers)


def _validators(etag: str, changed: datetime | None, cache: str) -> dict[str, str]:
    headers = {**SECURITY_HEADERS, "ETag": etag, "Cache-Control": f"{cache}, max-age=60"}
    if changed is not None:
        headers["Last-Modified"] = format_datetime(changed.astimezone(UTC), usegmt=True)
    return headers


def _fresh(request: Request, etag: str, changed: datetime | None) -> bool:
    """Whether the reader's copy (If-None-Match, else If-Modified-Since) is current."""
    match = request.headers.get("if-none-match")
    if match is not None:
        return etag in [m.strip() for m in match[:2000].split(",")] or match.strip() == "*"
    if changed is not None and (since := request.headers.get("if-modified-since")):
        try:
            return changed.replace(microsecond=0) <= parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
    return False


#: Where the public forms post: every answer there is a page, never a problem document.
FORM_PATHS = re.compile(r"/subscribe(/confirm/[^/]*)?|/manage/[^/]*")
#: The page an error status becomes on a form post (status, title); 409 is a lost race
#: for a new address, answered as neutrally as every other subscribe request.
FORM_ERRORS = {
    400: (400, "bad_form"),
    404: (404, "bad_link"),
    409: (202, "check_mail"),
    413: (413, "bad_form"),
    422: (422, "bad_form"),
    429: (429, "too_many"),
}


def form_error_page(request: Request, status: int) -> Response | None:
    """The HTML page an error on a public form post is answered with (in the visitor's
    language), or None for any other request."""
    if request.method != "POST" or not FORM_PATHS.fullmatch(request.url.path):
        return None
    ctx: ApiContext = request.app.state.context
    lang = language(request.query_params.get("lang"), request.headers.get("accept-language"))
    shown, title = FORM_ERRORS.get(status, (503 if status == 503 else 500, "unavailable"))
    return _page(request, ctx, "message.html", lang, status=shown, title=title)


# -- pages -------------------------------------------------------------------------------------


@router.get("/")
async def index(request: Request, ctx: Ctx, lang: str | None = None) -> HTMLResponse:
    _enabled(ctx)
    chosen = language(lang, request.headers.get("accept-language"))
    now = ctx.clock()
    size = ctx.settings.public.page_entries
    upcoming, recent = await service.public_index(ctx.store, now=now, size=size)
    words = STATUS[chosen]
    return _page(
        request,
        ctx,
        "index.html",
        chosen,
        sections=[("upcoming", upcoming), ("recent", recent)],
        status_of=lambda m: words[m.status],
        when=lambda m: _when(m.starts_at, m.timezone, chosen),
    )


@router.get("/meetings/{meeting_id}")
async def meeting_page(
    request: Request,
    meeting_id: str,
    ctx: Ctx,
    lang: str | None = None,
    tz: str | None = None,
) -> HTMLResponse:
    _enabled(ctx)
    chosen = language(lang, request.headers.get("accept-language"))
    meeting, _, history = await _public_meeting(ctx, meeting_id)
    viewer = _zone(tz)
    shown_zone = viewer or meeting.timezone
    return _page(
        request,
        ctx,
        "meeting.html",
        chosen,
        csrf=_csrf(request, ctx),
        meeting=meeting,
        status_line=_status_line(meeting, chosen, shown_zone),
        viewer_zone=viewer,
        viewer_time=_when(meeting.starts_at, viewer, chosen) if viewer else None,
        local_time=_when(meeting.starts_at, meeting.timezone, chosen),
        history=[
            (
                _when(entry.at, shown_zone, chosen),
                STATUS[chosen][entry.to_status],
                WORDS[chosen].get(f"kind.{entry.kind.value}", entry.kind.value),
                entry.reason,
            )
            for entry in reversed(history)
        ],
        kinds=[(k.value, WORDS[chosen][f"kind.{k.value}"]) for k in subscriptions.KINDS],
        reminders=[format_duration(r) for r in subscriptions.REMINDER_CHOICES],
        form_zone=viewer or meeting.timezone,
    )


@router.get("/static/{name}")
async def static(name: str) -> Response:
    files = {"public.css": "text/css", "public.js": "text/javascript"}
    if name not in files:
        raise NotFound("no such file")
    body = (STATIC / name).read_bytes()
    return Response(
        body,
        media_type=files[name],
        headers={**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"},
    )


# -- subscribing -----------------------------------------------------------------------------


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/subscribe")
async def subscribe(
    request: Request,
    ctx: Ctx,
    email: Annotated[str, Form(max_length=320)],
    csrf: Annotated[str, Form(max_length=100)] = "",
    meeting: Annotated[str | None, Form(max_length=100)] = None,
    tag: Annotated[str | None, Form(max_length=100)] = None,
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    locale: Annotated[str, Form(max_length=5)] = "en",
    kinds: Annotated[list[str] | None, Form()] = None,
    reminders: Annotated[list[str] | None, Form()] = None,
) -> Response:
    _enabled(ctx)
    lang = locale if locale in WORDS else "en"
    if not _check_csrf(request, ctx, csrf):
        return _page(request, ctx, "message.html", lang, status=403, title="form_expired")
    if _limit(request, ctx).take(_client(request)) > 0:
        metrics.SUBSCRIPTIONS.labels("refused_client_limit").inc()
        return _page(request, ctx, "message.html", lang, status=429, title="too_many")
    try:
        address = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError:
        return _page(request, ctx, "message.html", lang, status=422, title="bad_email")
    known = await _known(ctx, meeting, tag)
    chosen_kinds = tuple(k for k in (kinds or []) if k in {x.value for x in subscriptions.KINDS})
    offsets = {format_duration(r): r for r in subscriptions.REMINDER_CHOICES}
    public = ctx.settings.public
    postman = ctx.postman
    if not known:
        return _page(request, ctx, "message.html", lang, status=404, title="not_found")
    if postman is None:
        raise HTTPException(503, "confirmation emails cannot be sent: no mail server")
    await subscriptions.subscribe(
        ctx.store,
        postman,
        subscriptions.Request(
            email=address,
            meeting_id=meeting or None,
            tag=tag or None,
            timezone=_zone(timezone) or "UTC",
            locale=lang,
            kinds=chosen_kinds or ("*",),
            reminders=tuple(offsets[r] for r in (reminders or []) if r in offsets),
        ),
        now=ctx.clock(),
        base_url=str(ctx.settings.public_url),
        confirm_within=public.confirm_within,
        per_day=public.per_address_per_day,
        known=known,
        key=ctx.link_key,
    )
    # The same answer whether the address was new, known, or over its limit.
    return _page(request, ctx, "message.html", lang, status=202, title="check_mail")


async def _known(ctx: ApiContext, meeting: str | None, tag: str | None) -> bool:
    if bool(meeting) == bool(tag):
        return False
    if meeting:  # one row, not every meeting, for the common form (a meeting's own page)
        return await service.publicly_known(ctx.store, meeting)
    return any(tag in m.tags for m, _ in await _public_meetings(ctx))


@router.get("/subscribe/confirm/{token}")
async def confirm_page(
    request: Request, token: str, ctx: Ctx, lang: str | None = None
) -> HTMLResponse:
    # A GET only shows the button: mail scanners fetch every link and must confirm nothing.
    _enabled(ctx)
    chosen = language(lang, request.headers.get("accept-language"))
    return _page(request, ctx, "confirm.html", chosen, csrf=_csrf(request, ctx), token=token)


@router.post("/subscribe/confirm/{token}")
async def confirm(
    request: Request,
    token: str,
    ctx: Ctx,
    csrf: Annotated[str, Form(max_length=100)] = "",
    lang: Annotated[str, Form(max_length=5)] = "en",
) -> HTMLResponse:
    _enabled(ctx)
    chosen = lang if lang in WORDS else "en"
    if not _check_csrf(request, ctx, csrf):
        return _page(request, ctx, "message.html", chosen, status=403, title="form_expired")
    subscriber_id = await subscriptions.confirm(ctx.store, token, now=ctx.clock())
    if subscriber_id is None:
        return _page(request, ctx, "message.html", chosen, status=404, title="bad_link")
    manage, _ = await subscriptions.links_of(ctx.store, ctx.link_key, subscriber_id)
    return _page(request, ctx, "message.html", chosen, title="confirmed", manage=manage)


# -- managing --------------------------------------------------------------------------------


async def _managed(ctx: ApiContext, token: str) -> Subscriber:
    found = await subscriptions.manage_subject(ctx.store, ctx.link_key, token)
    if found is None:
        raise NotFound("this link does not work")
    return found


@router.get("/manage/{token}")
async def manage_page(request: Request, token: str, ctx: Ctx, saved: bool = False) -> HTMLResponse:
    _enabled(ctx)
    subscriber = await _managed(ctx, token)
    return await _manage(request, ctx, subscriber, token, saved=saved)


async def _manage(
    request: Request, ctx: ApiContext, subscriber: Subscriber, token: str, *, saved: bool
) -> HTMLResponse:
    lang = subscriber.locale if subscriber.locale in WORDS else "en"
    _, calendar = await subscriptions.links_of(ctx.store, ctx.link_key, subscriber.id)
    return _page(
        request,
        ctx,
        "manage.html",
        lang,
        csrf=_csrf(request, ctx),
        subscriber=subscriber,
        token=token,
        saved=saved,
        kinds=[(k.value, WORDS[lang][f"kind.{k.value}"]) for k in subscriptions.KINDS],
        chosen_kinds=set(subscriber.events),
        reminders=[format_duration(r) for r in subscriptions.REMINDER_CHOICES],
        chosen_reminders={format_duration(r) for r in subscriber.reminders},
        calendar_url=ctx.links.calendar_feed(calendar),
    )


@router.post("/manage/{token}")
async def manage(
    request: Request,
    token: str,
    ctx: Ctx,
    action: Annotated[str, Form(max_length=20)],
    csrf: Annotated[str, Form(max_length=100)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    locale: Annotated[str, Form(max_length=5)] = "en",
    kinds: Annotated[list[str] | None, Form()] = None,
    reminders: Annotated[list[str] | None, Form()] = None,
) -> Response:
    _enabled(ctx)
    subscriber = await _managed(ctx, token)
    lang = subscriber.locale if subscriber.locale in WORDS else "en"
    if not _check_csrf(request, ctx, csrf):
        return _page(request, ctx, "message.html", lang, status=403, title="form_expired")
    now = ctx.clock()
    if action == "leave":
        await subscriptions.leave(ctx.store, subscriber.id, now=now)
        return _page(request, ctx, "message.html", lang, title="left")
    if action == "rotate":
        await subscriptions.rotate(ctx.store, subscriber.id)
        manage_token, _ = await subscriptions.links_of(ctx.store, ctx.link_key, subscriber.id)
        return RedirectResponse(f"/manage/{manage_token}?saved=true", status_code=303)
    offsets = {format_duration(r): r for r in subscriptions.REMINDER_CHOICES}
    wanted = tuple(k for k in (kinds or []) if k in {x.value for x in subscriptions.KINDS})
    if "*" in subscriber.events and kinds is None:
        wanted = ("*",)
    try:
        await subscriptions.update_preferences(
            ctx.store,
            subscriber,
            timezone=_zone(timezone) or subscriber.timezone,
            locale=locale if locale in WORDS else subscriber.locale,
            kinds=wanted,
            reminders=tuple(offsets[r] for r in (reminders or []) if r in offsets),
            now=now,
        )
    except InvalidChange:
        return _page(request, ctx, "message.html", lang, status=422, title="no_kinds")
    return RedirectResponse(f"/manage/{token}?saved=true", status_code=303)


# -- feeds -----------------------------------------------------------------------------------


def _domain(ctx: ApiContext) -> str:
    return sender_domain(ctx.settings.smtp.sender)


def _atom(
    ctx: ApiContext,
    title: str,
    self_url: str,
    entries: list[tuple[Meeting, HistoryEntry]],
) -> bytes:
    base = str(ctx.settings.public_url).rstrip("/")
    feed = FeedGenerator()
    feed.id(f"{base}{self_url}")
    feed.title(title)
    feed.link(href=f"{base}{self_url}", rel="self")
    feed.link(href=f"{base}/", rel="alternate")
    # RFC 4287 4.1.1: a feed names its author (or every entry does): the site itself.
    feed.author({"name": ctx.settings.public.title, "uri": f"{base}/"})
    feed.language("en")
    latest = max((e.at for _, e in entries), default=datetime(2000, 1, 1, tzinfo=UTC))
    feed.updated(latest)
    for meeting, entry in sorted(entries, key=lambda pair: (pair[1].at, pair[1].sequence)):
        item = feed.add_entry(order="prepend")
        item.id(f"tag:{_domain(ctx)},2026:{meeting.id}/{entry.sequence}")
        status = STATUS["en"][entry.to_status]
        item.title(f"{meeting.title}: {status}")
        item.link(href=ctx.links.meeting(meeting.id))
        item.updated(entry.at)
        item.published(entry.at)
        item.content(_entry_text(meeting, entry, status), type="text")
    return bytes(feed.atom_str(pretty=True))


def _entry_text(meeting: Meeting, entry: HistoryEntry, status: str) -> str:
    """What one change said, as it said it: its status, its reason when that adds
    something (never the status word again), and the start time it announced, in the
    meeting's own zone. Never today's state: a feed entry is history."""
    parts = [f"{status}."]
    reason = entry.reason.strip().rstrip(".")
    if reason and reason.casefold() not in {status.casefold(), entry.to_status.value}:
        parts.append(f"{reason[:1].upper()}{reason[1:]}.")
    if entry.starts_at is not None:
        local = entry.starts_at.astimezone(ZoneInfo(meeting.timezone))
        parts.append(f"Starts {local:%-d %B %Y, %H:%M} {local.tzname()} ({meeting.timezone}).")
    return " ".join(parts)


@router.get("/feed.atom")
async def atom_all(request: Request, ctx: Ctx) -> Response:
    """The newest `public.feed_entries` changes; a conditional GET costs one query."""
    _enabled(ctx)
    limit = ctx.settings.public.feed_entries

    async def build() -> bytes:
        entries = await service.public_changes(ctx.store, limit=limit)
        return _atom(ctx, ctx.settings.public.title, "/feed.atom", entries)

    return await _stamped(request, ctx, "application/atom+xml", build, "atom", str(limit))


@router.get("/meetings/{meeting_id}/feed.atom")
async def atom_one(request: Request, meeting_id: str, ctx: Ctx) -> Response:
    _enabled(ctx)
    meeting, updated, history = await _public_meeting(ctx, meeting_id)
    body = _atom(
        ctx, meeting.title, f"/meetings/{meeting.id}/feed.atom", [(meeting, e) for e in history]
    )
    return _conditional(request, body, "application/atom+xml", updated)


def _ics(
    ctx: ApiContext, name: str, meetings: list[tuple[Meeting, datetime]]
) -> tuple[bytes, datetime | None]:
    changed = max((u for _, u in meetings), default=None)
    body = feed_calendar(
        [m for m, _ in meetings],
        name=name,
        domain=_domain(ctx),
        # Stamped with the last change, not the clock: an unchanged feed is byte-identical
        # (its ETag holds, and calendar apps get 304).
        now=changed or datetime(2000, 1, 1, tzinfo=UTC),
        refresh=ctx.settings.public.refresh,
    )
    return body, changed


@router.get("/calendar.ics")
async def calendar_all(request: Request, ctx: Ctx) -> Response:
    """The soonest `public.calendar_entries` meetings from `CALENDAR_PAST` ago on; a
    conditional GET costs one query."""
    _enabled(ctx)
    since = ctx.clock() - CALENDAR_PAST
    limit = ctx.settings.public.calendar_entries

    async def build() -> bytes:
        shown = await service.public_calendar(ctx.store, since=since, limit=limit)
        return _ics(ctx, ctx.settings.public.title, shown)[0]

    # The window moves daily: so does the validator, or a meeting would never leave it.
    return await _stamped(
        request,
        ctx,
        "text/calendar; charset=utf-8",
        build,
        "ics",
        str(limit),
        since.date().isoformat(),
    )


@router.get("/meetings/{meeting_id}/calendar.ics")
async def calendar_one(request: Request, meeting_id: str, ctx: Ctx) -> Response:
    _enabled(ctx)
    meeting, updated, _ = await _public_meeting(ctx, meeting_id)
    body, changed = _ics(ctx, meeting.title, [(meeting, updated)])
    return _conditional(request, body, "text/calendar; charset=utf-8", changed)


@router.get("/calendar/{token}.ics")
async def calendar_private(request: Request, token: str, ctx: Ctx) -> Response:
    """A subscriber's own calendar: their meetings in their audience's view (works
    whether or not the public pages are enabled: the link is the credential)."""
    subscriber = await subscriptions.calendar_subject(ctx.store, ctx.link_key, token)
    if subscriber is None:
        raise NotFound("this calendar link does not work")
    # Their meetings, whatever kinds of news they take.
    mine = await service.private_calendar(ctx.store, subscriber)
    body, changed = _ics(ctx, subscriber.name or "notifier", mine)
    # One reader's view: no shared cache may keep it (or hand it to anyone else).
    return _conditional(request, body, "text/calendar; charset=utf-8", changed, cache="private")
