"""The FastAPI application served by `notifier run`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from notifier import __version__


def create_api(*, health: Callable[[], dict[str, Any]]) -> FastAPI:
    """The HTTP app; `health` reports the daemon's parts for ``/healthz``."""
    api = FastAPI(
        title="notifier",
        version=__version__,
        description="Keeps subscribers informed about meetings whose status changes.",
    )

    @api.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz() -> JSONResponse:
        """200 while the daemon runs: its version, uptime and the state of its parts."""
        return JSONResponse({"status": "ok", "version": __version__, **health()})

    return api
