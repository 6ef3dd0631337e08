"""Meetings: list, create, read, change details, retire, push a status change, history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response

from notifier import service
from notifier.api.context import PATH_ID, ApiContext, Gate
from notifier.api.docs import COMMON_RESPONSES, MEETING_OPERATIONS, created, links
from notifier.api.models import (
    MeetingPatch,
    StatusPush,
)
from notifier.api.security import Caller
from notifier.configfile import MeetingConfig
from notifier.domain.errors import (
    InvalidChange,
    UnknownMeeting,
)
from notifier.domain.models import Source, StatusChange
from notifier.domain.text import text_problem


def router(context: ApiContext, gate: Gate) -> APIRouter:
    """The routes of this resource over `context`."""
    v1 = APIRouter(prefix="/v1", responses=COMMON_RESPONSES)
    secured = gate.secured
    pushed = gate.pushed
    store = context.store

    @v1.get(
        "/meetings",
        dependencies=secured,
        tags=["meetings"],
        summary="List meetings, soonest first",
        responses={
            200: {
                "description": "Meetings, soonest first",
                "links": links("first", "meeting_id", "$response.body#/0/id", *MEETING_OPERATIONS),
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
            links("meeting", "meeting_id", "$response.body#/id", *MEETING_OPERATIONS)
            | links("meeting", "meeting_id", "$response.body#/id", "delete_meeting"),
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
                "links": links(
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

    return v1
