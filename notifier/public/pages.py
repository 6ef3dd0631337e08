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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime as babel_datetime
from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from feedgen.feed import FeedGenerator
from jinja2 import Environment, FileSystemLoader, select_autoescape
from lxml import etree  # type: ignore[import-untyped]  # feedgen writes with it
from markupsafe import Markup
from starlette.exceptions import HTTPException

from notifier import __version__, metrics, service, subscriptions
from notifier.calendar import feed_calendar
from notifier.domain.durations import format_duration
from notifier.domain.errors import InvalidChange, NotFound
from notifier.domain.models import HistoryEntry, Meeting, MeetingStatus, Subscriber
from notifier.mail import sender_domain
from notifier.public import theme, zones
from notifier.public.i18n import WORDS, language
from notifier.settings import LOGO_LIMIT, LOGO_TYPES
from notifier.web.context import ApiContext, Ctx
from notifier.web.limits import RateLimit
from notifier.words import beyond, kind_name, moment, reminder_words, status_name, zone_abbreviation

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


async def _public_meetings(
    ctx: ApiContext, lang: str | None = None
) -> list[tuple[Meeting, datetime]]:
    return await service.public_meetings(ctx.store, language=lang)


async def _public_meeting(
    ctx: ApiContext, meeting_id: str, lang: str | None = None
) -> tuple[Meeting, datetime, list[HistoryEntry], dict[str, str]]:
    return await service.public_meeting(ctx.store, meeting_id, language=lang)


def _marker(marks: dict[str, str], lang: str) -> Callable[[str], Markup]:
    """`` lang="en"`` for a field shown in another language than the page's (the
    meeting has no text in it: the fallback's is shown), else nothing."""

    def marked(field: str) -> Markup:
        shown = marks.get(field)
        if not shown or shown == lang:
            return Markup("")
        return Markup(' lang="{}"').format(shown)

    return marked


# -- page helpers ----------------------------------------------------------------------------


def _zone(asked: str | None, lang: str = "en") -> str | None:
    """The zone a visitor chose or typed (`zones.find`), or None."""
    return zones.find(asked, lang)


def _when(value: datetime, zone: str, lang: str) -> str:
    """A start time as the status line and the timeline say it: ``19:00 MSK, Monday 2 March
    2026`` (``19:00 МСК, понедельник, 2 марта 2026``)."""
    return moment(value, zone, lang, year=True)


def _status_line(meeting: Meeting, lang: str, zone: str) -> str | None:
    """What the status line says beside the badge, when it adds to it: where a rescheduled
    meeting went (``Rescheduled to 21:00 MSK, Thursday 10 December``)."""
    if meeting.status is MeetingStatus.RESCHEDULED:
        return WORDS[lang]["rescheduled_to"].format(time=moment(meeting.starts_at, zone, lang))
    return None


def _summary(meeting: Meeting, lang: str) -> str:
    """The one line a link preview shows: status and start in the meeting's own zone (from
    the public's view only; no description, no gated text)."""
    status = status_name(meeting.status, lang)
    return f"{status} · {moment(meeting.starts_at, meeting.timezone, lang, year=True)}"


@dataclass(frozen=True)
class _Entry:
    """One change on a meeting's timeline, as it was said then."""

    at: str
    iso: str
    kind: str
    text: str


def _timeline(meeting: Meeting, history: list[HistoryEntry], lang: str, zone: str) -> list[_Entry]:
    """The history, newest first: each entry its own time, kind, reason (where it adds to
    the status) and the start time it announced, never the meeting's state today."""
    words = WORDS[lang]
    shown = []
    for entry in reversed(history):
        parts = []
        reason = beyond(entry.reason, entry.to_status)
        if reason:
            parts.append(reason)
        if entry.cleared:
            parts.append(_cleared(entry, lang))
        if entry.starts_at is not None and entry.kind.value in ANNOUNCES_START:
            starts = moment(entry.starts_at, zone, lang, year=True)
            parts.append(words["starts"].format(time=starts))
        shown.append(
            _Entry(
                at=moment(entry.at, zone, lang, year=True),
                iso=entry.at.astimezone(UTC).isoformat(),
                kind=kind_name(entry.kind.value, lang),
                text="; ".join(parts),
            )
        )
    return shown


def _cleared(entry: HistoryEntry, lang: str) -> str:
    """What a clearance lifted, in words ("condition met: health clearance")."""
    key = "cleared_one" if len(entry.cleared) == 1 else "cleared_many"
    return WORDS[lang][key].format(items=", ".join(entry.cleared))


#: The kinds of change whose entry says the start time they announced.
ANNOUNCES_START = {"meeting.scheduled", "meeting.rescheduled", "meeting.confirmed"}


def _secure(ctx: ApiContext) -> bool:
    """Whether the site is served over https (then cookies are Secure and ``__Host-``)."""
    return ctx.settings.public_url.scheme == "https"


def _csrf_cookie(ctx: ApiContext) -> str:
    # __Host-: Secure, Path=/ and no Domain, so no sibling subdomain can plant the cookie.
    return f"__Host-{CSRF_COOKIE}" if _secure(ctx) else CSRF_COOKIE


def _csrf(request: Request, ctx: ApiContext) -> str:
    return request.cookies.get(_csrf_cookie(ctx)) or secrets.token_urlsafe(24)


@dataclass(frozen=True)
class _Brand:
    organisation: str
    logo: bool
    stamp: str


def _brand(ctx: ApiContext, lang: str) -> _Brand:
    public = ctx.settings.public
    return _Brand(public.organisation_in(lang), public.logo_in(lang) is not None, _brand_stamp(ctx))


def _brand_stamp(ctx: ApiContext) -> str:
    """Changes when the accent or a logo does, so browsers fetch the new one."""
    public = ctx.settings.public
    return hashlib.sha256(f"{public.accent}|{sorted(public.logo.items())}".encode()).hexdigest()[
        :10
    ]


def _render(
    request: Request,
    ctx: ApiContext,
    template: str,
    lang: str,
    *,
    status: int = 200,
    csrf: str | None = None,
    **values: Any,
) -> str:
    return _env.get_template(template).render(
        w=WORDS[lang],
        lang=lang,
        site=ctx.settings.public.title_in(lang),
        brand=_brand(ctx, lang),
        version=__version__,
        path=request.url.path,
        query=dict(request.query_params),
        csrf=csrf,
        zones=zones.choices(lang),
        status=status,
        **values,
    )


def _page(
    request: Request,
    ctx: ApiContext,
    template: str,
    lang: str,
    *,
    status: int = 200,
    csrf: str | None = None,
    conditional: bool = False,
    **values: Any,
) -> Response:
    html = _render(request, ctx, template, lang, status=status, csrf=csrf, **values)
    response: Response
    if conditional:  # pages answer conditional GETs (If-None-Match), as feeds do
        # Revalidated every time (a status page must not be a minute stale) and never kept
        # by a shared cache (the form's CSRF token and cookie are this visitor's).
        response = _conditional(
            request, html.encode(), "text/html; charset=utf-8", None, cache="private, no-cache"
        )
    else:
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
            public.title_in("en"),
            public.organisation_in("en"),
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
    control = cache if "no-cache" in cache else f"{cache}, max-age=60"
    headers = {**SECURITY_HEADERS, "ETag": etag, "Cache-Control": control}
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
FORM_PATHS = re.compile(r"/subscribe(/confirm/[^/]*)?|/manage/[^/]*|/unsubscribe/[^/]*/page")
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
#: The page an error status becomes on any other request for a person's page.
PAGE_ERRORS = {
    400: "bad_form",
    403: "form_expired",
    404: "page_not_found",
    405: "method_not_allowed",
    410: "gone",
    413: "bad_form",
    422: "bad_form",
    429: "too_many",
}
#: Paths that are the API's (programs read their errors: problem documents, not pages).
API_PATHS = re.compile(r"/(v1|docs|openapi\.json|metrics|healthz|readyz|livez)(/.*)?")
#: Paths for people even when the public pages are off (links in every email).
ALWAYS_PAGES = re.compile(r"/unsubscribe/.*|/favicon\.(ico|svg)|/static/.*")


def error_page(request: Request, status: int) -> Response | None:
    """The HTML page an error is answered with on a path people open (in their language):
    the public pages, their forms, feeds and the unsubscribe links. None for the API's
    paths, and for every path when the public pages are off (but for the unsubscribe page),
    which keep their problem documents."""
    path = request.url.path
    if API_PATHS.fullmatch(path):
        return None
    if request.method == "POST" and path.startswith("/unsubscribe/") and "/page" not in path:
        return None  # RFC 8058 one-click from a mail client: its short answer
    ctx: ApiContext = request.app.state.context
    if not ctx.settings.public.enabled and not ALWAYS_PAGES.fullmatch(path):
        return None
    lang = language(request.query_params.get("lang"), request.headers.get("accept-language"))
    if request.method == "POST" and FORM_PATHS.fullmatch(path):
        shown, title = FORM_ERRORS.get(status, (503 if status == 503 else 500, "unavailable"))
    elif status >= 500:
        shown, title = status, "unavailable"
    else:
        shown, title = status, PAGE_ERRORS.get(status, "page_not_found")
    page = _page(request, ctx, "message.html", lang, status=shown, title=title)
    if shown == 503:
        page.headers["Retry-After"] = "5"
    return page


#: The name the app composition knows (web/app.py).
form_error_page = error_page


# -- pages -------------------------------------------------------------------------------------


@router.get("/")
async def index(request: Request, ctx: Ctx, lang: str | None = None) -> Response:
    _enabled(ctx)
    chosen = language(lang, request.headers.get("accept-language"))
    now = ctx.clock()
    size = ctx.settings.public.page_entries
    upcoming, recent = await service.public_index(ctx.store, now=now, size=size, language=chosen)
    return _page(
        request,
        ctx,
        "index.html",
        chosen,
        conditional=True,
        sections=[("upcoming", upcoming), ("recent", recent)],
        status_of=lambda m: status_name(m.status, chosen),
        when=lambda m: moment(m.starts_at, m.timezone, chosen, year=True),
    )


def _kinds(lang: str) -> list[tuple[str, str]]:
    return [(k.value, kind_name(k.value, lang)) for k in subscriptions.KINDS]


def _reminders(lang: str) -> list[tuple[str, str]]:
    return [(format_duration(r), reminder_words(r, lang)) for r in subscriptions.REMINDER_CHOICES]


@router.get("/meetings/{meeting_id}")
async def meeting_page(
    request: Request,
    meeting_id: str,
    ctx: Ctx,
    lang: str | None = None,
    tz: str | None = None,
) -> Response:
    _enabled(ctx)
    chosen = language(lang, request.headers.get("accept-language"))
    meeting, _, history, marks = await _public_meeting(ctx, meeting_id, chosen)
    viewer = _zone(tz, chosen)
    shown_zone = viewer or meeting.timezone
    page_url = ctx.links.meeting(meeting.id)
    return _page(
        request,
        ctx,
        "meeting.html",
        chosen,
        csrf=_csrf(request, ctx),
        conditional=True,
        meeting=meeting,
        status_name=status_name(meeting.status, chosen),
        status_line=_status_line(meeting, chosen, shown_zone),
        reason=beyond(meeting.reason, meeting.status),
        summary=_summary(meeting, chosen),
        page_url=page_url,
        base_url=str(ctx.settings.public_url).rstrip("/"),
        viewer_zone=viewer,
        viewer_time=_when(meeting.starts_at, viewer, chosen) if viewer else None,
        local_time=_when(meeting.starts_at, meeting.timezone, chosen),
        history=_timeline(meeting, history, chosen, shown_zone),
        finished=meeting.status.is_terminal,
        kinds=_kinds(chosen),
        reminders=_reminders(chosen),
        form_zone=viewer or meeting.timezone,
        marked=_marker(marks, chosen),
    )


#: The files under /static/, and their media types.
STATIC_FILES = {"public.css": "text/css; charset=utf-8", "public.js": "text/javascript"}


@router.get("/static/{name}")
async def static(request: Request, name: str, ctx: Ctx) -> Response:
    if name == "brand.css":  # the accent, made readable in both themes
        body = theme.accent(ctx.settings.public.accent).css().encode()
        return _conditional(request, body, "text/css; charset=utf-8", None)
    if name not in STATIC_FILES:
        raise NotFound("no such file")
    return _conditional(request, (STATIC / name).read_bytes(), STATIC_FILES[name], None)


@router.get("/favicon.ico")
async def favicon_ico(request: Request) -> Response:
    return _conditional(request, (STATIC / "favicon.ico").read_bytes(), "image/x-icon", None)


@router.get("/favicon.svg")
async def favicon_svg(request: Request, ctx: Ctx) -> Response:
    colour = theme.accent(ctx.settings.public.accent)
    body = (STATIC / "favicon.svg").read_text(encoding="utf-8").replace("#0b4f9c", colour.light)
    return _conditional(request, body.encode(), "image/svg+xml", None)


@router.get("/brand/logo")
async def brand_logo(request: Request, ctx: Ctx, lang: str | None = None) -> Response:
    """The organisation's logo for a language ([public] logo)."""
    _enabled(ctx)
    path = ctx.settings.public.logo_in(lang or "en")
    if path is None:
        raise NotFound("no logo is set ([public] logo)")
    media = LOGO_TYPES[path.suffix.lower()]
    response = _conditional(request, path.read_bytes()[:LOGO_LIMIT], media, None)
    # An SVG opened on its own must not run anything it carries.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    )
    return response


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
            timezone=_zone(timezone, lang) or "UTC",
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
async def confirm_page(request: Request, token: str, ctx: Ctx, lang: str | None = None) -> Response:
    # A GET only shows the button: mail scanners fetch every link and must confirm nothing.
    _enabled(ctx)
    chosen = language(lang, request.headers.get("accept-language"))
    waiting = await subscriptions.pending(ctx.store, token, now=ctx.clock())
    return _page(
        request,
        ctx,
        "confirm.html",
        chosen,
        status=200 if waiting else 404,
        csrf=_csrf(request, ctx),
        token=token,
        pending=_named(waiting, chosen),
    )


@dataclass(frozen=True)
class _Named:
    address: str
    subject: str


def _named(found: subscriptions.Pending | None, lang: str) -> _Named | None:
    """A subscription as a page names it: a meeting by its title, a tag as a tag."""
    if found is None:
        return None
    # Russian puts the preposition with the words ("уведомления о встрече «…»").
    if found.tag:
        words = {"en": "meetings tagged “{x}”", "ru": "о встречах с меткой «{x}»"}
    else:
        words = {"en": "“{x}”", "ru": "о встрече «{x}»"}
    return _Named(found.address, words.get(lang, words["en"]).format(x=found.subject))


@router.post("/subscribe/confirm/{token}")
async def confirm(
    request: Request,
    token: str,
    ctx: Ctx,
    csrf: Annotated[str, Form(max_length=100)] = "",
    lang: Annotated[str, Form(max_length=5)] = "en",
) -> Response:
    _enabled(ctx)
    chosen = lang if lang in WORDS else "en"
    if not _check_csrf(request, ctx, csrf):
        return _page(request, ctx, "message.html", chosen, status=403, title="form_expired")
    subscriber_id = await subscriptions.confirm(ctx.store, token, now=ctx.clock())
    if subscriber_id is None:
        return _page(request, ctx, "message.html", chosen, status=404, title="bad_link")
    manage, _ = await subscriptions.links_of(ctx.store, ctx.link_key, subscriber_id)
    named = _named(await subscriptions.described(ctx.store, subscriber_id), chosen)
    text = WORDS[chosen]["confirmed_of"].format(**vars(named)) if named else None
    return _page(request, ctx, "message.html", chosen, title="confirmed", manage=manage, text=text)


# -- managing --------------------------------------------------------------------------------


async def _managed(ctx: ApiContext, token: str) -> Subscriber:
    found = await subscriptions.manage_subject(ctx.store, ctx.link_key, token)
    if found is None:
        raise NotFound("this link does not work")
    return found


@router.get("/manage/{token}")
async def manage_page(
    request: Request, token: str, ctx: Ctx, saved: bool = False, lang: str | None = None
) -> Response:
    _enabled(ctx)
    subscriber = await _managed(ctx, token)
    return await _manage(request, ctx, subscriber, token, saved=saved, lang=lang)


async def _manage(
    request: Request,
    ctx: ApiContext,
    subscriber: Subscriber,
    token: str,
    *,
    saved: bool,
    lang: str | None = None,
) -> Response:
    # The page in the language of the switch when used, else the one the reader chose.
    if lang is None or lang not in WORDS:
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
        address=subscriptions.mask_address(subscriber.email or ""),
        kinds=_kinds(lang),
        chosen_kinds=set(subscriber.events),
        reminders=_reminders(lang),
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
            timezone=_zone(timezone, lang) or subscriber.timezone,
            locale=locale if locale in WORDS else subscriber.locale,
            kinds=wanted,
            reminders=tuple(offsets[r] for r in (reminders or []) if r in offsets),
            now=now,
        )
    except InvalidChange:
        return _page(request, ctx, "message.html", lang, status=422, title="no_kinds")
    return RedirectResponse(f"/manage/{token}?saved=true", status_code=303)


# -- unsubscribing (every email's link: served whether or not the public pages are on) -------

#: The unsubscribe page and its button: for people following an email's link.
links_router = APIRouter(tags=["unsubscribe"])


@links_router.get(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    summary="Confirm unsubscribing (never unsubscribes by itself)",
    responses={404: {"description": "Not a valid link (an HTML page)"}},
)
async def unsubscribe_page(
    request: Request, token: str, ctx: Ctx, lang: str | None = None
) -> Response:
    # A GET only shows the button: mail scanners and link previews fetch every link, and
    # must not unsubscribe anyone (RFC 8058 one-click is the POST to the same address).
    found = await service.unsubscribe_target(ctx.store, ctx.link_key, token)
    chosen = language(lang, request.headers.get("accept-language"))
    return _page(
        request,
        ctx,
        "unsubscribe.html",
        chosen,
        channel=found.channel.value,
        address=found.shown,
        action=ctx.links.unsubscribe_button(token),
    )


@links_router.post(
    "/unsubscribe/{token}/page",
    response_class=HTMLResponse,
    summary="Unsubscribe from the page's button (answers with a page)",
    responses={404: {"description": "Not a valid link (an HTML page)"}},
)
async def unsubscribe_from_page(
    request: Request,
    token: str,
    ctx: Ctx,
    lang: Annotated[str, Form(max_length=5)] = "en",
) -> Response:
    found = await service.unsubscribe_target(ctx.store, ctx.link_key, token)
    await service.unsubscribe(ctx.store, ctx.link_key, token, now=ctx.clock())
    chosen = lang if lang in WORDS else "en"
    text = WORDS[chosen]["unsubscribed_text"].format(address=found.shown)
    return _page(request, ctx, "message.html", chosen, title="unsubscribed", text=text)


# -- feeds -----------------------------------------------------------------------------------


def _domain(ctx: ApiContext) -> str:
    return sender_domain(ctx.settings.smtp.sender)


def _atom(
    ctx: ApiContext,
    title: str,
    self_url: str,
    entries: list[tuple[Meeting, HistoryEntry, str]],
    lang: str,
) -> bytes:
    """An RFC 4287 feed of `entries` in `lang` (its xml:lang): one feed id whatever the
    language, and a self link that names the language, so refetching it gets this one. An
    entry about a meeting with no text in `lang` says its own language (``xml:lang``)."""
    base = str(ctx.settings.public_url).rstrip("/")
    feed = FeedGenerator()
    feed.id(f"{base}{self_url}")
    feed.title(title)
    feed.link(href=f"{base}{self_url}?lang={lang}", rel="self")
    feed.link(href=f"{base}/", rel="alternate")
    # RFC 4287 4.1.1: a feed names its author (or every entry does): the site itself.
    public = ctx.settings.public
    feed.author({"name": public.organisation_in(lang) or public.title_in(lang), "uri": f"{base}/"})
    feed.language(lang)
    latest = max((e.at for _, e, _ in entries), default=datetime(2000, 1, 1, tzinfo=UTC))
    feed.updated(latest)
    other: dict[str, str] = {}
    for meeting, entry, said in sorted(entries, key=lambda one: (one[1].at, one[1].sequence)):
        item = feed.add_entry(order="prepend")
        ident = f"tag:{_domain(ctx)},2026:{meeting.id}/{entry.sequence}"
        item.id(ident)
        if said != lang:
            other[ident] = said
        status = status_name(entry.to_status, lang)
        item.title(f"{meeting.title}: {status}")
        item.link(href=ctx.links.meeting(meeting.id))
        item.updated(entry.at)
        item.published(entry.at)
        item.content(_entry_text(meeting, entry, status, lang), type="text")
    body = bytes(feed.atom_str(pretty=True))
    return _entry_languages(body, other) if other else body


_ATOM = "{http://www.w3.org/2005/Atom}"


def _entry_languages(body: bytes, languages: dict[str, str]) -> bytes:
    """The feed with ``xml:lang`` on each entry (by id) in `languages` (feedgen has no
    per-entry language)."""
    tree = etree.fromstring(body)
    for entry in tree.iter(f"{_ATOM}entry"):
        ident = entry.findtext(f"{_ATOM}id")
        if ident in languages:
            entry.set("{http://www.w3.org/XML/1998/namespace}lang", languages[ident])
    return bytes(etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _entry_text(meeting: Meeting, entry: HistoryEntry, status: str, lang: str) -> str:
    """What one change said, as it said it: its status, its reason when that adds
    something (never the status word again), and the start time it announced, in the
    meeting's own zone. Never today's state: a feed entry is history."""
    parts = [f"{status}."]
    reason = entry.reason.strip().rstrip(".")
    if reason and reason.casefold() not in {status.casefold(), entry.to_status.value}:
        parts.append(f"{reason[:1].upper()}{reason[1:]}.")
    if entry.cleared:
        said = _cleared(entry, lang)
        parts.append(f"{said[:1].upper()}{said[1:]}.")
    if entry.starts_at is not None:
        zone = ZoneInfo(meeting.timezone)
        local = entry.starts_at.astimezone(zone)
        day = babel_datetime(local, "d MMMM y, HH:mm", tzinfo=zone, locale=lang)
        starts = WORDS[lang]["starts"].format(
            time=f"{day} {zone_abbreviation(local, lang)} ({meeting.timezone})"
        )
        parts.append(f"{starts[:1].upper()}{starts[1:]}.")
    return " ".join(parts)


@router.get("/feed.atom")
async def atom_all(request: Request, ctx: Ctx, lang: str | None = None) -> Response:
    """The newest `public.feed_entries` changes in the reader's language (``?lang=``,
    else Accept-Language); a conditional GET costs one query."""
    _enabled(ctx)
    chosen = language(lang, request.headers.get("accept-language"))
    public = ctx.settings.public
    limit = public.feed_entries

    async def build() -> bytes:
        entries = await service.public_changes(ctx.store, limit=limit, language=chosen)
        return _atom(ctx, public.title_in(chosen), "/feed.atom", entries, chosen)

    # Each language its own validator (its titles too: they come from the config file).
    words = (chosen, public.title_in(chosen), public.organisation_in(chosen))
    answer = await _stamped(request, ctx, "application/atom+xml", build, "atom", str(limit), *words)
    answer.headers["Vary"] = "Accept-Language"  # a shared cache keeps one copy per language
    return answer


@router.get("/meetings/{meeting_id}/feed.atom")
async def atom_one(
    request: Request, meeting_id: str, ctx: Ctx, lang: str | None = None
) -> Response:
    _enabled(ctx)
    chosen = language(lang, request.headers.get("accept-language"))
    meeting, updated, history, marks = await _public_meeting(ctx, meeting_id, chosen)
    said = marks.get("title", chosen)
    body = _atom(
        ctx,
        meeting.title,
        f"/meetings/{meeting.id}/feed.atom",
        [(meeting, e, said) for e in history],
        chosen,
    )
    answer = _conditional(request, body, "application/atom+xml", updated)
    answer.headers["Vary"] = "Accept-Language"
    return answer


def _ics(
    ctx: ApiContext, name: str, meetings: list[tuple[Meeting, datetime]], lang: str
) -> tuple[bytes, datetime | None]:
    changed = max((u for _, u in meetings), default=None)
    body = feed_calendar(
        [m for m, _ in meetings],
        language=lang,
        name=name,
        domain=_domain(ctx),
        # Stamped with the last change, not the clock: an unchanged feed is byte-identical
        # (its ETag holds, and calendar apps get 304).
        now=changed or datetime(2000, 1, 1, tzinfo=UTC),
        refresh=ctx.settings.public.refresh,
    )
    return body, changed


@router.get("/calendar.ics")
async def calendar_all(request: Request, ctx: Ctx, lang: str | None = None) -> Response:
    """The soonest `public.calendar_entries` meetings from `CALENDAR_PAST` ago on, in the
    reader's language (``?lang=``, else Accept-Language); a conditional GET costs one
    query."""
    _enabled(ctx)
    chosen = language(lang, request.headers.get("accept-language"))
    since = ctx.clock() - CALENDAR_PAST
    limit = ctx.settings.public.calendar_entries

    async def build() -> bytes:
        shown = await service.public_calendar(ctx.store, since=since, limit=limit, language=chosen)
        return _ics(ctx, ctx.settings.public.title_in(chosen), shown, chosen)[0]

    # The window moves daily: so does the validator, or a meeting would never leave it.
    answer = await _stamped(
        request,
        ctx,
        "text/calendar; charset=utf-8",
        build,
        "ics",
        str(limit),
        since.date().isoformat(),
        chosen,
    )
    answer.headers["Vary"] = "Accept-Language"
    return answer


@router.get("/meetings/{meeting_id}/calendar.ics")
async def calendar_one(
    request: Request, meeting_id: str, ctx: Ctx, lang: str | None = None
) -> Response:
    _enabled(ctx)
    chosen = language(lang, request.headers.get("accept-language"))
    meeting, updated, _, _ = await _public_meeting(ctx, meeting_id, chosen)
    body, changed = _ics(ctx, meeting.title, [(meeting, updated)], chosen)
    answer = _conditional(request, body, "text/calendar; charset=utf-8", changed)
    answer.headers["Vary"] = "Accept-Language"
    return answer


@router.get("/calendar/{token}.ics")
async def calendar_private(request: Request, token: str, ctx: Ctx) -> Response:
    """A subscriber's own calendar: their meetings in their audience's view (works
    whether or not the public pages are enabled: the link is the credential)."""
    subscriber = await subscriptions.calendar_subject(ctx.store, ctx.link_key, token)
    if subscriber is None:
        raise NotFound("this calendar link does not work")
    # Their meetings, whatever kinds of news they take.
    mine = await service.private_calendar(ctx.store, subscriber)
    body, changed = _ics(ctx, subscriber.name or "notifier", mine, subscriber.locale[:2])
    # One reader's view: no shared cache may keep it (or hand it to anyone else).
    return _conditional(request, body, "text/calendar; charset=utf-8", changed, cache="private")
