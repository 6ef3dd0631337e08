"""Subscribers: list, add, read, change, remove."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from notifier import service
from notifier.api.context import PATH_ID, ApiContext, Gate
from notifier.api.docs import COMMON_RESPONSES, created, links
from notifier.configfile import SubscriberConfig
from notifier.domain.errors import (
    InvalidChange,
    UnknownSubscriber,
)
from notifier.domain.models import Source, Subscriber
from notifier.egress import check_url


def router(context: ApiContext, gate: Gate) -> APIRouter:
    """The routes of this resource over `context`."""
    v1 = APIRouter(prefix="/v1", responses=COMMON_RESPONSES)
    secured = gate.secured
    store = context.store

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

    return v1
