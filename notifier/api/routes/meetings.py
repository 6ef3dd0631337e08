"""Meetings: list, create, read, change details, retire, push a status change, history."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Header, Response

from notifier import service
from notifier.api.docs import COMMON_RESPONSES, MEETING_OPERATIONS, created, links
from notifier.api.models import (
    HistoryEntryOut,
    MeetingOut,
    MeetingPatch,
    StatusAnswer,
    StatusPush,
)
from notifier.configfile import MeetingConfig, texts_of
from notifier.domain.audiences import change_texts
from notifier.domain.errors import InvalidChange, UnknownMeeting
from notifier.domain.models import Meeting, Source, StatusChange
from notifier.domain.text import text_problem
from notifier.fields import ONE_LINE_PATTERN
from notifier.web.context import PATH_ID, SECURED, Ctx, Pushed

if TYPE_CHECKING:
    from notifier.store.port import StorePort

router = APIRouter(prefix="/v1", responses=COMMON_RESPONSES, tags=["meetings"])


def _out(meeting: Meeting) -> MeetingOut:
    return MeetingOut.model_validate(meeting.to_dict())


async def _meeting_or_404(store: StorePort, meeting_id: str) -> Meeting:
    if not PATH_ID.fullmatch(meeting_id):
        raise UnknownMeeting(meeting_id)
    return await service.current_meeting(store, meeting_id)


@router.get(
    "/meetings",
    dependencies=SECURED,
    summary="List meetings, soonest first",
    responses={
        200: {
            "description": "Meetings, soonest first",
            "links": links("first", "meeting_id", "$response.body#/0/id", *MEETING_OPERATIONS),
        }
    },
)
async def list_meetings(ctx: Ctx) -> list[MeetingOut]:
    return [_out(r.meeting) for r in await service.list_meetings(ctx.store)]


@router.post(
    "/meetings",
    dependencies=SECURED,
    status_code=201,
    summary="Create a meeting",
    responses=created(
        "The meeting as stored",
        links("meeting", "meeting_id", "$response.body#/id", *MEETING_OPERATIONS)
        | links("meeting", "meeting_id", "$response.body#/id", "delete_meeting"),
    ),
)
async def create_meeting(body: MeetingConfig, ctx: Ctx) -> MeetingOut:
    if body.history:
        raise InvalidChange("history: only the config file imports history")
    result = await service.create_meeting(
        ctx.store, body.to_domain(source=Source.API), now=ctx.clock()
    )
    ctx.on_change()
    return _out(result.meeting)


@router.get("/meetings/{meeting_id}", dependencies=SECURED, summary="Read a meeting")
async def read_meeting(meeting_id: str, ctx: Ctx) -> MeetingOut:
    return _out(await _meeting_or_404(ctx.store, meeting_id))


@router.patch("/meetings/{meeting_id}", dependencies=SECURED, summary="Change a meeting's details")
async def patch_meeting(meeting_id: str, body: MeetingPatch, ctx: Ctx) -> MeetingOut:
    meeting = await _meeting_or_404(ctx.store, meeting_id)
    fields: dict[str, object] = {
        k: (tuple(v) if isinstance(v, list) else v)
        for k, v in body.model_dump(exclude_unset=True, exclude={"reason", "texts"}).items()
    }
    if body.texts is not None:
        fields["texts"] = texts_of(body.texts)
    result = await service.update_meeting_details(
        ctx.store, meeting_id, fields, now=ctx.clock(), source=Source.API
    )
    ctx.on_change()
    return _out(result.meeting if result else meeting)


@router.delete(
    "/meetings/{meeting_id}",
    dependencies=SECURED,
    status_code=204,
    summary="Retire a meeting (its history is kept)",
)
async def delete_meeting(meeting_id: str, ctx: Ctx) -> Response:
    await _meeting_or_404(ctx.store, meeting_id)
    await service.retire_meeting(ctx.store, meeting_id, now=ctx.clock(), by=Source.API)
    ctx.on_change()
    return Response(status_code=204)


@router.post(
    "/meetings/{meeting_id}/status",
    status_code=202,
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
    ctx: Ctx,
    caller: Pushed,
    idempotency_key: Annotated[
        str | None,
        # The pattern is the schema's word for the check below (pydantic's regex engine
        # has no look-ahead, so the server checks it in code).
        Header(min_length=1, max_length=200, json_schema_extra={"pattern": ONE_LINE_PATTERN}),
    ] = None,
) -> StatusAnswer:
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
    reason, conditions, variants = change_texts(body.reason, body.conditions)
    result = await service.apply_status_change(
        ctx.store,
        StatusChange(
            meeting_id=meeting_id,
            status=body.status,
            reason=reason,
            texts=texts_of(body.texts),
            starts_local=dataclasses.replace(body.starts_at, fold=body.fold)
            if body.starts_at is not None
            else None,
            conditions=conditions,
            variants=variants,
            # A signed push is idempotent on its upstream and webhook-id alone: nothing
            # unsigned (a header, the query) may make a captured push new again.
            event_id=caller.event_id or body.event_id or idempotency_key,
            force=body.force,
            source=Source.API,
        ),
        now=ctx.clock(),
    )
    ctx.on_change()
    return StatusAnswer(
        meeting=_out(result.meeting),
        change=HistoryEntryOut.model_validate(result.entry.to_dict()),
        duplicate=result.duplicate,
        deliveries=result.deliveries,
    )


@router.get("/meetings/{meeting_id}/history", dependencies=SECURED, summary="A meeting's history")
async def meeting_history(meeting_id: str, ctx: Ctx) -> list[HistoryEntryOut]:
    if not PATH_ID.fullmatch(meeting_id):
        raise UnknownMeeting(meeting_id)
    detail = await service.meeting_detail(ctx.store, meeting_id)
    return [HistoryEntryOut.model_validate(e.to_dict()) for e in detail.history]
