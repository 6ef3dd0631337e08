"""Subscribers: list, add, read, change, remove."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from notifier import service, subscriptions
from notifier.api.docs import COMMON_RESPONSES, created, links
from notifier.api.models import SubscriberOut, SubscriberPatch
from notifier.configfile import SubscriberConfig
from notifier.domain.errors import InvalidChange, UnknownSubscriber
from notifier.domain.models import Source, Subscriber
from notifier.web.context import PATH_ID, SECURED, ApiContext, Ctx

router = APIRouter(
    prefix="/v1", responses=COMMON_RESPONSES, tags=["subscribers"], dependencies=SECURED
)


def _out(subscriber: Subscriber) -> SubscriberOut:
    return SubscriberOut.model_validate(subscriber.to_dict())


async def _subscriber_or_404(ctx: ApiContext, subscriber_id: str) -> Subscriber:
    if not PATH_ID.fullmatch(subscriber_id):
        raise UnknownSubscriber(subscriber_id)
    return await service.subscriber_detail(ctx.store, subscriber_id)


async def _save(
    ctx: ApiContext, config: SubscriberConfig, *, create: bool = False
) -> SubscriberOut:
    subscriber = await service.save_subscriber(
        ctx.store,
        config.to_domain(source=Source.API),
        now=ctx.clock(),
        policy=ctx.settings.endpoint_policy,
        create=create,
    )
    ctx.on_change()
    return _out(subscriber)


@router.get(
    "/subscribers",
    summary="List subscribers",
    responses={
        200: {
            "description": "Subscribers",
            "links": links(
                "first",
                "subscriber_id",
                "$response.body#/0/id",
                "read_subscriber",
                "patch_subscriber",
            ),
        }
    },
)
async def list_subscribers(ctx: Ctx) -> list[SubscriberOut]:
    return [_out(r.subscriber) for r in await service.list_subscribers(ctx.store)]


@router.post(
    "/subscribers",
    status_code=201,
    summary="Add a subscriber",
    responses=created(
        "The subscriber as stored",
        links(
            "subscriber",
            "subscriber_id",
            "$response.body#/id",
            "read_subscriber",
            "patch_subscriber",
            "delete_subscriber",
        ),
    ),
)
async def create_subscriber(body: SubscriberConfig, ctx: Ctx) -> SubscriberOut:
    return await _save(ctx, body, create=True)


@router.get("/subscribers/{subscriber_id}", summary="Read a subscriber")
async def read_subscriber(subscriber_id: str, ctx: Ctx) -> SubscriberOut:
    return _out(await _subscriber_or_404(ctx, subscriber_id))


@router.patch("/subscribers/{subscriber_id}", summary="Change a subscriber")
async def patch_subscriber(
    subscriber_id: str,
    checked: SubscriberPatch,  # type: ignore[valid-type]  # built from SubscriberConfig
    request: Request,
    ctx: Ctx,
) -> SubscriberOut:
    # Each field was checked (and documented) by SubscriberPatch; the merge takes the
    # fields as sent, since a checked secret no longer shows its value.
    body: dict[str, Any] = await request.json()
    current = await _subscriber_or_404(ctx, subscriber_id)
    service.check_owner("subscriber", subscriber_id, current.source, Source.API, "edit")
    if "id" in body and body["id"] != subscriber_id:
        raise InvalidChange("id: cannot be changed")
    view = current.to_dict()
    merged = {
        k: v
        for k, v in view.items()
        if k not in ("active", "source", "webhook", "confirmed", "notify")
    }
    merged["reminders"] = view["reminders"]
    if current.webhook is not None and "webhook" not in body:
        merged["webhook"] = {
            "url": current.webhook.url,
            "secrets": list(current.webhook.secrets),
        }
    if current.notify and "notify" not in body:
        merged["notify"] = list(current.notify)
    merged = {k: v for k, v in merged.items() if v is not None} | body
    try:
        config = SubscriberConfig.model_validate(merged)
    except ValidationError as exc:  # a field of the PATCH body: 422 naming it
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None
    return await _save(ctx, config)


@router.delete("/subscribers/{subscriber_id}", status_code=204, summary="Remove a subscriber")
async def delete_subscriber(subscriber_id: str, ctx: Ctx) -> Response:
    await _subscriber_or_404(ctx, subscriber_id)
    await service.retire_subscriber(ctx.store, subscriber_id, now=ctx.clock(), by=Source.API)
    ctx.on_change()
    return Response(status_code=204)


@router.post(
    "/subscribers/{subscriber_id}/rotate-links",
    status_code=204,
    summary="Retire a subscriber's manage and calendar links (the next emails carry new ones)",
)
async def rotate_links(subscriber_id: str, ctx: Ctx) -> Response:
    await _subscriber_or_404(ctx, subscriber_id)
    await subscriptions.rotate(ctx.store, subscriber_id)
    return Response(status_code=204)
