"""Operations: liveness, readiness and Prometheus metrics (open, no token)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from notifier import __version__, metrics
from notifier.api.context import ApiContext, Gate
from notifier.api.docs import problem_response
from notifier.api.problems import problem
from notifier.domain.outbox import DeliveryStatus


def router(context: ApiContext, gate: Gate) -> APIRouter:
    """The routes of this part over `context`."""
    root = APIRouter()
    store = context.store

    @root.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__, **context.health()})

    @root.get(
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

    @root.get(
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

    return root
