"""The outbox and what feeds it: deliveries (list, retry, replay in bulk), the
suppression list, watched sources."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import Field

from notifier import service
from notifier.api.docs import COMMON_RESPONSES, links
from notifier.api.models import (
    DeliveryOut,
    ReplayAnswer,
    ReplayRequest,
    SourceReport,
    SuppressionOut,
)
from notifier.delivery import describe
from notifier.domain.errors import UnknownDelivery
from notifier.domain.outbox import DeliveryFilter, Replay
from notifier.web.context import DELIVERY_ID, SECURED, Ctx

router = APIRouter(prefix="/v1", responses=COMMON_RESPONSES, dependencies=SECURED)


@router.get(
    "/deliveries",
    tags=["deliveries"],
    summary="The outbox, newest first",
    responses={
        200: {
            "description": "Deliveries, newest first",
            "links": links("first", "delivery_id", "$response.body#/0/id", "retry_delivery"),
        }
    },
)
async def list_deliveries(
    ctx: Ctx,
    status: DeliveryFilter | None = None,
    limit: Annotated[int, Field(ge=1, le=1000)] = 100,
) -> list[DeliveryOut]:
    found = await service.list_deliveries(ctx.store, status=status, limit=limit)
    return [DeliveryOut.model_validate(describe(d)) for d in found]


@router.get(
    "/suppressions",
    tags=["deliveries"],
    summary="Addresses that bounced for good (nothing is sent to them)",
)
async def list_suppressions(ctx: Ctx) -> list[SuppressionOut]:
    found = await service.list_suppressions(ctx.store)
    return [SuppressionOut.model_validate(s.to_dict()) for s in found]


@router.get(
    "/sources",
    tags=["sources"],
    summary="Watched feeds: health, events followed, skipped and refused, and why",
)
async def list_sources(
    ctx: Ctx, problems: Annotated[int, Field(ge=0, le=2000)] = 100
) -> list[SourceReport]:
    return await service.source_report(ctx.store, list(ctx.settings.sources), problems=problems)


@router.delete(
    "/suppressions/{address}",
    status_code=204,
    tags=["deliveries"],
    summary="Send to an address again",
)
async def clear_suppression(address: str, ctx: Ctx) -> Response:
    await service.clear_suppression(ctx.store, address)
    return Response(status_code=204)


@router.post(
    "/deliveries/retry",
    tags=["deliveries"],
    summary="Replay deliveries in bulk (dead by default), each with fresh attempts",
)
async def replay_deliveries(body: ReplayRequest, ctx: Ctx) -> ReplayAnswer:
    ids = await service.replay(
        ctx.store,
        Replay(
            status=DeliveryFilter(body.status.value),
            since=body.since,
            subscriber_id=body.subscriber,
        ),
        now=ctx.clock(),
        dry_run=body.dry_run,
    )
    if not body.dry_run:
        ctx.on_change()
    return ReplayAnswer(count=len(ids), dry_run=body.dry_run, ids=ids[:100])


@router.post(
    "/deliveries/{delivery_id}/retry",
    status_code=202,
    tags=["deliveries"],
    summary="Send a dead or waiting delivery again, now, with fresh attempts",
)
async def retry_delivery(delivery_id: str, ctx: Ctx) -> DeliveryOut:
    if not DELIVERY_ID.fullmatch(delivery_id):
        raise UnknownDelivery(delivery_id)
    retried = await service.retry_delivery(ctx.store, delivery_id, now=ctx.clock())
    ctx.on_change()
    return DeliveryOut.model_validate(describe(retried))
