"""The FastAPI application served by `notifier run`: routes only, the service decides.

Everything under ``/v1`` needs ``Authorization: Bearer TOKEN`` (one of ``api_tokens``);
``/unsubscribe/{token}`` is signed instead, and the operations endpoints are open. Errors
are RFC 9457 problem responses; bodies are limited in size and tokens in rate.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifier import __version__, metrics, service
from notifier.api.problems import install, problem
from notifier.api.security import BearerAuth, Caller, RateLimiter, SignedPush
from notifier.delivery import describe
from notifier.domain.errors import (
    InvalidChange,
    NotFound,
    UnknownMeeting,
    UnknownSubscriber,
)
from notifier.domain.models import MeetingStatus, Source, StatusChange, Subscriber
from notifier.domain.outbox import Channel, DeliveryFilter, DeliveryStatus, Replay
from notifier.domain.text import text_problem
from notifier.egress import check_url
from notifier.settings import (
    SLUG,
    EventId,
    MeetingConfig,
    MultiLine,
    OneLine,
    Settings,
    Slug,
    SubscriberConfig,
    Title,
)
from notifier.store import Store
from notifier.tokens import read_unsubscribe_token

Clock = Callable[[], datetime]


@dataclass(kw_only=True)
class ApiContext:
    """What the routes need, built by the composition root."""

    store: Store
    settings: Settings
    clock: Clock
    unsubscribe_key: str
    health: Callable[[], dict[str, Any]]
    ready: Callable[[], Awaitable[dict[str, Any]]]
    on_change: Callable[[], None] = lambda: None


#: Record ids in paths: anything else names no record (404), and never reaches a query
#: (PostgreSQL refuses a NUL in text outright).
PATH_ID = re.compile(SLUG)
DELIVERY_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}


def problem_response(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for a problem+json answer."""
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
    }


#: Answers every /v1 operation may give, documented in the OpenAPI schema.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_response("A body that cannot be parsed at all (not UTF-8 JSON)"),
    401: problem_response("No or unknown bearer token"),
    404: problem_response("No such meeting, subscriber or delivery"),
    409: problem_response("Impossible transition, taken id, or a config-file record"),
    413: problem_response("Body too large"),
    422: problem_response("Invalid request"),
    429: problem_response("Too many requests; see Retry-After"),
}


def _links(target: str, parameter: str, expression: str, *operations: str) -> dict[str, Any]:
    """OpenAPI links from a response to the operations that take its id (stateful tests and
    clients follow them: a created meeting -> read, patch, retire, status, history)."""
    return {
        f"{operation}_{target}": {
            "operationId": operation,
            "parameters": {parameter: expression},
        }
        for operation in operations
    }


MEETING_OPERATIONS = ("read_meeting", "patch_meeting", "push_status", "meeting_history")


def created(description: str, links: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The documented success response of a create, with its links."""
    return {201: {"description": description, "links": links}}


class StatusPush(BaseModel):
    """A status change pushed over HTTP."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "status": "rescheduled",
                    "reason": "talks moved to the evening",
                    "starts_at": "2026-03-02T21:00:00+03:00",
                    "event_id": "upstream-4711",
                }
            ]
        },
    )

    #: The meeting this change is for. Required in a signed push (the body is what the
    #: signature covers, so it binds the change to one meeting); when given, it must be
    #: the meeting of the URL.
    meeting: Slug | None = None
    status: MeetingStatus
    reason: OneLine = ""
    starts_at: AwareDatetime | None = None
    conditions: list[OneLine] | None = None
    event_id: EventId | None = None
    force: bool = False


class MeetingPatch(BaseModel):
    """Descriptive fields of a meeting; status and time change through the status push."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: MultiLine | None = None
    location: OneLine | None = None
    participants: list[OneLine] | None = None
    tags: list[OneLine] | None = None
    conditions: list[OneLine] | None = None
    ends_at: AwareDatetime | None = None
    reason: OneLine = ""


class ReplayRequest(BaseModel):
    """Which deliveries to replay."""

    model_config = ConfigDict(extra="forbid")

    status: DeliveryFilter = DeliveryFilter.DEAD
    #: Only deliveries created at or after this instant.
    since: AwareDatetime | None = None
    subscriber: Slug | None = None
    #: Count what would be replayed; change nothing.
    dry_run: bool = False


class ReplayAnswer(BaseModel):
    """How many deliveries were (or would be) replayed, and the first hundred ids."""

    count: int
    dry_run: bool
    ids: list[str]


class SourceProblem(BaseModel):
    """One event a feed's last read skipped or refused, and why."""

    event: str
    reason: str


class SourceReport(BaseModel):
    """A watched feed: its health and what its last read followed, skipped and refused."""

    url: str
    kind: str
    every_seconds: float
    last_polled_at: str | None
    last_ok_at: str | None
    next_poll_at: str | None
    failures: int
    followed: int
    skipped: int
    refused: int
    #: Changes (meetings created, moved, updated, cancelled) the last read applied.
    applied: int
    #: ``done/total`` while a large read is applied in chunks; null when finished.
    applying: str | None
    last_error: str | None
    problems: list[SourceProblem]


class BodyLimit:
    """Refuses request bodies larger than `limit` bytes with 413, streamed or not."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await problem(413, "Content Too Large", f"bodies are limited to {self.limit} bytes")(
                scope, receive, send
            )
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, f"bodies are limited to {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


def create_api(context: ApiContext) -> FastAPI:
    """The HTTP app over `context`."""
    api = FastAPI(
        title="notifier",
        version=__version__,
        description="Keeps subscribers informed about meetings whose status changes.",
        # operationId = the route function's name: short, stable, and what links name.
        generate_unique_id_function=lambda route: route.name,
    )
    install(api)
    api.add_middleware(BodyLimit, limit=context.settings.api.max_body)
    limiter = RateLimiter(context.settings.api.rate_per_minute)
    bearer = BearerAuth([t.get_secret_value() for t in context.settings.api_tokens], limiter)
    signed = SignedPush(
        [
            (u.name, [secret.get_secret_value() for secret in u.secrets])
            for u in context.settings.upstreams
        ],
        limiter,
    )

    async def authorized(authorization: Annotated[str | None, Header()] = None) -> str:
        return bearer.check(authorization)

    async def pushed(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        webhook_id: Annotated[str | None, Header()] = None,
        webhook_timestamp: Annotated[str | None, Header()] = None,
        webhook_signature: Annotated[str | None, Header()] = None,
    ) -> Caller:
        """Bearer token, or a Standard Webhooks signature from a configured upstream."""
        if authorization or not (webhook_id or webhook_signature or webhook_timestamp):
            return Caller(name=bearer.check(authorization))
        body = await request.body()
        return signed.check(body, webhook_id, webhook_timestamp, webhook_signature)

    v1 = APIRouter(prefix="/v1", responses=COMMON_RESPONSES)
    secured = [Depends(authorized)]
    store = context.store

    # -- meetings ---------------------------------------------------------------------------

    @v1.get(
        "/meetings",
        dependencies=secured,
        tags=["meetings"],
        summary="List meetings, soonest first",
        responses={
            200: {
                "description": "Meetings, soonest first",
                "links": _links("first", "meeting_id", "$response.body#/0/id", *MEETING_OPERATIONS),
            }
        },
    )
    async def list_meetings() -> list[dict[str, Any]]:
        async with store.read() as tx:
            return [r.meeting.to_dict() for r in await tx.meeting_records()]

    @v1.post(
        "/meetings",
        dependencies=secured,
        status_code=201,
        tags=["meetings"],
        summary="Create a meeting",
        responses=created(
            "The meeting as stored",
            _links("meeting", "meeting_id", "$response.body#/id", *MEETING_OPERATIONS)
            | _links("meeting", "meeting_id", "$response.body#/id", "delete_meeting"),
        ),
    )
    async def create_meeting(body: MeetingConfig) -> dict[str, Any]:
        if body.history:
            raise InvalidChange("history: only the config file imports history")
        result = await service.create_meeting(
            store, body.to_domain(source=Source.API), now=context.clock()
        )
        context.on_change()
        return result.meeting.to_dict()

    async def meeting_or_404(meeting_id: str) -> Any:
        if not PATH_ID.fullmatch(meeting_id):
            raise UnknownMeeting(meeting_id)
        async with store.read() as tx:
            meeting = await tx.meeting(meeting_id)
        if meeting is None:
            raise UnknownMeeting(meeting_id)
        return meeting

    @v1.get(
        "/meetings/{meeting_id}", dependencies=secured, tags=["meetings"], summary="Read a meeting"
    )
    async def read_meeting(meeting_id: str) -> dict[str, Any]:
        return dict((await meeting_or_404(meeting_id)).to_dict())

    @v1.patch(
        "/meetings/{meeting_id}",
        dependencies=secured,
        tags=["meetings"],
        summary="Change a meeting's details",
    )
    async def patch_meeting(meeting_id: str, body: MeetingPatch) -> dict[str, Any]:
        meeting = await meeting_or_404(meeting_id)
        service.check_owner("meeting", meeting_id, meeting.source, Source.API, "edit")
        fields: dict[str, object] = {
            k: (tuple(v) if isinstance(v, list) else v)
            for k, v in body.model_dump(exclude_unset=True, exclude={"reason"}).items()
        }
        result = await service.update_meeting_details(
            store, meeting_id, fields, now=context.clock(), source=Source.API
        )
        context.on_change()
        return dict((result.meeting if result else meeting).to_dict())

    @v1.delete(
        "/meetings/{meeting_id}",
        dependencies=secured,
        status_code=204,
        tags=["meetings"],
        summary="Retire a meeting (its history is kept)",
    )
    async def delete_meeting(meeting_id: str) -> Response:
        await meeting_or_404(meeting_id)
        await service.retire_meeting(store, meeting_id, now=context.clock(), by=Source.API)
        context.on_change()
        return Response(status_code=204)

    @v1.post(
        "/meetings/{meeting_id}/status",
        status_code=202,
        tags=["meetings"],
        summary="Change a meeting's status",
        responses={
            202: {
                "description": "The change was applied (or was a duplicate)",
                "links": _links(
                    "meeting", "meeting_id", "$response.body#/meeting/id", *MEETING_OPERATIONS
                ),
            }
        },
    )
    async def push_status(
        meeting_id: str,
        body: StatusPush,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
        # Annotated[...] would name a local function, which postponed annotations cannot
        # resolve; the default-value form of Depends is FastAPI's other spelling (and
        # FastAPI calls it per request, which is what B008 guards against).
        caller: Caller = Depends(pushed),  # noqa: B008
    ) -> dict[str, Any]:
        if not PATH_ID.fullmatch(meeting_id):
            raise UnknownMeeting(meeting_id)
        if caller.upstream is not None and body.meeting is None:
            raise InvalidChange(
                "meeting: a signed push must name its meeting in the body, which the "
                "signature covers (see README, Signed pushes)"
            )
        if body.meeting is not None and body.meeting != meeting_id:
            raise InvalidChange(
                f"meeting: the body is for {body.meeting!r}, the URL for {meeting_id!r}"
            )
        if idempotency_key is not None and (
            not idempotency_key or text_problem(idempotency_key) is not None
        ):
            raise InvalidChange("Idempotency-Key: 1-200 printable characters")
        result = await service.apply_status_change(
            store,
            StatusChange(
                meeting_id=meeting_id,
                status=body.status,
                reason=body.reason,
                starts_at=body.starts_at,
                conditions=tuple(body.conditions) if body.conditions is not None else None,
                # A signed push is idempotent on its upstream and webhook-id alone: nothing
                # unsigned (a header, the query) may make a captured push new again.
                event_id=caller.event_id or body.event_id or idempotency_key,
                force=body.force,
                source=Source.API,
            ),
            now=context.clock(),
        )
        context.on_change()
        return {
            "meeting": result.meeting.to_dict(),
            "change": result.entry.to_dict(),
            "duplicate": result.duplicate,
            "deliveries": result.deliveries,
        }

    @v1.get(
        "/meetings/{meeting_id}/history",
        dependencies=secured,
        tags=["meetings"],
        summary="A meeting's history",
    )
    async def meeting_history(meeting_id: str) -> list[dict[str, Any]]:
        if not PATH_ID.fullmatch(meeting_id):
            raise UnknownMeeting(meeting_id)
        async with store.read() as tx:
            record = await tx.meeting_record(meeting_id)
            if record is None:
                raise UnknownMeeting(meeting_id)
            return [e.to_dict() for e in await tx.history(meeting_id, zone=record.meeting.timezone)]

    # -- subscribers ------------------------------------------------------------------------

    async def subscriber_or_404(subscriber_id: str) -> Subscriber:
        if not PATH_ID.fullmatch(subscriber_id):
            raise UnknownSubscriber(subscriber_id)
        async with store.read() as tx:
            record = await tx.subscriber_record(subscriber_id)
        if record is None or record.retired_at is not None:
            raise UnknownSubscriber(subscriber_id)
        return record.subscriber

    async def check_target(config: SubscriberConfig) -> None:
        if config.webhook is not None:
            problem = await check_url(
                str(config.webhook.url), context.settings.webhooks.allow_cidrs, what="webhook.url"
            )
            if problem is not None:
                raise InvalidChange(problem)

    async def save(config: SubscriberConfig, *, create: bool = False) -> dict[str, Any]:
        await check_target(config)
        subscriber = await service.save_subscriber(
            store, config.to_domain(source=Source.API), now=context.clock(), create=create
        )
        context.on_change()
        return subscriber.to_dict()

    @v1.get(
        "/subscribers",
        dependencies=secured,
        tags=["subscribers"],
        summary="List subscribers",
        responses={
            200: {
                "description": "Subscribers",
                "links": _links(
                    "first",
                    "subscriber_id",
                    "$response.body#/0/id",
                    "read_subscriber",
                    "patch_subscriber",
                ),
            }
        },
    )
    async def list_subscribers() -> list[dict[str, Any]]:
        async with store.read() as tx:
            return [s.to_dict() for s in await tx.subscribers()]

    @v1.post(
        "/subscribers",
        dependencies=secured,
        status_code=201,
        tags=["subscribers"],
        summary="Add a subscriber",
        responses=created(
            "The subscriber as stored",
            _links(
                "subscriber",
                "subscriber_id",
                "$response.body#/id",
                "read_subscriber",
                "patch_subscriber",
                "delete_subscriber",
            ),
        ),
    )
    async def create_subscriber(body: SubscriberConfig) -> dict[str, Any]:
        return await save(body, create=True)

    @v1.get(
        "/subscribers/{subscriber_id}",
        dependencies=secured,
        tags=["subscribers"],
        summary="Read a subscriber",
    )
    async def read_subscriber(subscriber_id: str) -> dict[str, Any]:
        return (await subscriber_or_404(subscriber_id)).to_dict()

    @v1.patch(
        "/subscribers/{subscriber_id}",
        dependencies=secured,
        tags=["subscribers"],
        summary="Change a subscriber",
    )
    async def patch_subscriber(subscriber_id: str, body: dict[str, Any]) -> dict[str, Any]:
        current = await subscriber_or_404(subscriber_id)
        service.check_owner("subscriber", subscriber_id, current.source, Source.API, "edit")
        if "id" in body and body["id"] != subscriber_id:
            raise InvalidChange("id: cannot be changed")
        view = current.to_dict()
        merged = {k: v for k, v in view.items() if k not in ("active", "source", "webhook")}
        merged["reminders"] = view["reminders"]
        if current.webhook is not None and "webhook" not in body:
            merged["webhook"] = {
                "url": current.webhook.url,
                "secrets": list(current.webhook.secrets),
            }
        merged = {k: v for k, v in merged.items() if v is not None} | body
        try:
            config = SubscriberConfig.model_validate(merged)
        except ValidationError as exc:  # a field of the PATCH body: 422 naming it
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            ) from None
        return await save(config)

    @v1.delete(
        "/subscribers/{subscriber_id}",
        dependencies=secured,
        status_code=204,
        tags=["subscribers"],
        summary="Remove a subscriber",
    )
    async def delete_subscriber(subscriber_id: str) -> Response:
        await subscriber_or_404(subscriber_id)
        await service.retire_subscriber(store, subscriber_id, now=context.clock(), by=Source.API)
        context.on_change()
        return Response(status_code=204)

    # -- deliveries -------------------------------------------------------------------------

    @v1.get(
        "/deliveries",
        dependencies=secured,
        tags=["deliveries"],
        summary="The outbox, newest first",
        responses={
            200: {
                "description": "Deliveries, newest first",
                "links": _links("first", "delivery_id", "$response.body#/0/id", "retry_delivery"),
            }
        },
    )
    async def list_deliveries(
        status: DeliveryFilter | None = None, limit: Annotated[int, Field(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        async with store.read() as tx:
            return [describe(d) for d in await tx.deliveries(status=status, limit=limit)]

    @v1.get(
        "/suppressions",
        dependencies=secured,
        tags=["deliveries"],
        summary="Addresses that bounced for good (nothing is sent to them)",
    )
    async def list_suppressions() -> list[dict[str, Any]]:
        async with store.read() as tx:
            return await tx.suppressions()

    @v1.get(
        "/sources",
        dependencies=secured,
        tags=["sources"],
        summary="Watched feeds: health, events followed, skipped and refused, and why",
    )
    async def list_sources(
        problems: Annotated[int, Field(ge=0, le=2000)] = 100,
    ) -> list[SourceReport]:
        report = await service.source_report(
            store, list(context.settings.sources), problems=problems
        )
        return [SourceReport.model_validate(row) for row in report]

    @v1.delete(
        "/suppressions/{address}",
        dependencies=secured,
        status_code=204,
        tags=["deliveries"],
        summary="Send to an address again",
    )
    async def clear_suppression(address: str) -> Response:
        if len(address) > 320:
            raise NotFound("that address is not suppressed")
        async with store.write() as tx:
            cleared = await tx.unsuppress(address)
        if not cleared:
            raise NotFound(f"{address[:100]!r} is not suppressed")
        return Response(status_code=204)

    @v1.post(
        "/deliveries/retry",
        dependencies=secured,
        tags=["deliveries"],
        summary="Replay deliveries in bulk (dead by default), each with fresh attempts",
    )
    async def replay_deliveries(body: ReplayRequest) -> ReplayAnswer:
        ids = await service.replay(
            store,
            Replay(status=body.status, since=body.since, subscriber_id=body.subscriber),
            now=context.clock(),
            dry_run=body.dry_run,
        )
        if not body.dry_run:
            context.on_change()
        return ReplayAnswer(count=len(ids), dry_run=body.dry_run, ids=ids[:100])

    @v1.post(
        "/deliveries/{delivery_id}/retry",
        dependencies=secured,
        status_code=202,
        tags=["deliveries"],
        summary="Send a dead or waiting delivery again, now, with fresh attempts",
    )
    async def retry_delivery(delivery_id: str) -> dict[str, Any]:
        if not DELIVERY_ID.fullmatch(delivery_id):
            raise NotFound(f"unknown delivery {delivery_id[:100]!r}")
        retried = await service.retry_delivery(store, delivery_id, now=context.clock())
        context.on_change()
        return describe(retried)

    api.include_router(v1)

    # -- unsubscribe (signed, no bearer) ----------------------------------------------------

    async def unsubscribe_subject(token: str) -> tuple[str, Channel]:
        """The subscriber and channel a link names, if it is valid for their current
        address; else 404 (tampered, or sent to an address since changed)."""
        read = read_unsubscribe_token(context.unsubscribe_key, token)
        if read is None or read.channel not in {c.value for c in Channel}:
            raise HTTPException(404, "this unsubscribe link is not valid")
        channel = Channel(read.channel)
        async with store.read() as tx:
            address = await tx.endpoint_address(read.subscriber_id, channel)
        if not read.sent_to(address):
            raise HTTPException(
                404,
                "this unsubscribe link was sent to an address that no longer receives "
                "these notifications",
            )
        return read.subscriber_id, channel

    @api.get(
        "/unsubscribe/{token}",
        responses={404: problem_response("Not a valid link")},
        response_class=HTMLResponse,
        tags=["unsubscribe"],
        summary="Confirm unsubscribing (never unsubscribes by itself)",
    )
    async def unsubscribe_page(token: str) -> HTMLResponse:
        # A GET only shows the form: mail scanners and link previews fetch every link, and
        # must not unsubscribe anyone (RFC 8058 one-click is the POST).
        subscriber_id, channel = await unsubscribe_subject(token)
        action = f"{str(context.settings.public_url).rstrip('/')}/unsubscribe/{token}"
        return HTMLResponse(
            "<!doctype html><html><body style='font-family:sans-serif'>"
            f"<p>Stop {channel.value} notifications to <b>{html.escape(subscriber_id)}</b>?</p>"
            f"<form method='post' action='{html.escape(action, quote=True)}'>"
            "<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
            "<button type='submit'>Unsubscribe</button></form></body></html>"
        )

    @api.post(
        "/unsubscribe/{token}",
        responses={404: problem_response("Not a valid link")},
        tags=["unsubscribe"],
        summary="Unsubscribe at once (RFC 8058 one-click)",
    )
    async def unsubscribe(token: str) -> JSONResponse:
        subscriber_id, channel = await unsubscribe_subject(token)
        async with store.write() as tx:
            await tx.disable_endpoint(
                subscriber_id, channel, reason="unsubscribed", now=context.clock()
            )
        return JSONResponse({"unsubscribed": subscriber_id, "channel": channel.value})

    # -- operations -------------------------------------------------------------------------

    @api.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__, **context.health()})

    @api.get(
        "/readyz",
        responses={503: problem_response("Not ready: which check failed")},
        tags=["operations"],
        summary="Database reachable, scheduler and workers alive",
    )
    async def readyz() -> JSONResponse:
        state = await context.ready()
        ok = all(v is True for v in state.values())
        if ok:
            return JSONResponse({"status": "ready", **state})
        return problem(503, "Service Unavailable", "not ready", checks=state)

    @api.get(
        "/metrics",
        response_class=PlainTextResponse,
        tags=["operations"],
        summary="Prometheus metrics",
    )
    async def prometheus() -> PlainTextResponse:
        try:
            async with store.read() as tx:
                stats = await tx.queue_stats(now=context.clock())
            for status in DeliveryStatus:
                metrics.QUEUE_DEPTH.labels(status.value).set(stats.get(status.value, 0))
            metrics.OLDEST_PENDING.set(stats["oldest_pending_seconds"])
        except Exception:  # metrics must answer even when the database does not
            metrics.QUEUE_DEPTH.clear()
        return PlainTextResponse(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return api
