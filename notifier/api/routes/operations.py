"""Operations: liveness, readiness and Prometheus metrics (open, no token)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from notifier import __version__, metrics, service
from notifier.api.docs import problem_response
from notifier.api.models import Health, Ready
from notifier.api.problems import problem
from notifier.web.context import Ctx

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up", responses={200: {"model": Health}})
async def healthz(ctx: Ctx) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__, **ctx.health()})


@router.get(
    "/readyz",
    responses={200: {"model": Ready}, 503: problem_response("Not ready: which check failed")},
    summary="Database reachable, scheduler and workers alive",
)
async def readyz(ctx: Ctx) -> JSONResponse:
    state = await ctx.ready()
    reason = state.pop("reason", None)  # what failed, in words ("disk nearly full: ...")
    ok = all(v is True for v in state.values())
    if ok:
        return JSONResponse({"status": "ready", **state})
    detail = f"not ready: {reason}" if reason else "not ready"
    return problem(503, "Service Unavailable", detail, checks=state)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
)
async def prometheus(ctx: Ctx) -> PlainTextResponse:
    try:
        stats = await service.queue_stats(ctx.store, now=ctx.clock())
        for status, count in stats.per_status.items():
            metrics.QUEUE_DEPTH.labels(status.value).set(count)
        metrics.OLDEST_PENDING.set(stats.oldest_pending_seconds)
    except Exception:  # metrics must answer even when the database does not
        metrics.QUEUE_DEPTH.clear()
    return PlainTextResponse(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
