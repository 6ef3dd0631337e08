"""The outbox and what feeds it: deliveries (list, retry, replay in bulk), the
suppression list, watched sources."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import Field

from notifier import service
from notifier.api.context import DELIVERY_ID, ApiContext, Gate
from notifier.api.docs import COMMON_RESPONSES, links
from notifier.api.models import (
    ReplayAnswer,
    ReplayRequest,
    SourceReport,
)
from notifier.delivery import describe
from notifier.domain.errors import (
    NotFound,
)
from notifier.domain.outbox import DeliveryFilter, Replay


def router(context: ApiContext, gate: Gate) -> APIRouter:
    """The routes of this resource over `context`."""
    v1 = APIRouter(prefix="/v1", responses=COMMON_RESPONSES)
    secured = gate.secured
    store = context.store

    @v1.get(
        "/deliveries",
        dependencies=secured,
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

    return v1
