"""RFC 9457 problem details: every error the API returns is `application/problem+json`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

from notifier.domain.errors import (
    ConfigError,
    Conflict,
    InvalidChange,
    NotFound,
    NotifierError,
    TransitionError,
    Withdrawn,
)
from notifier.service import is_outage, outage_reason

PROBLEM = "application/problem+json"
#: Answers an error with a page instead, or None to leave it a problem response.
FormPage = Callable[[Request, int], Response | None]
log = logging.getLogger(__name__)

_STATUS = [
    (Withdrawn, 410),
    (NotFound, 404),
    (TransitionError, 409),
    (Conflict, 409),
    (InvalidChange, 422),
    (ConfigError, 422),
]


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem response with `extra` members."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def status_of(error: NotifierError) -> int:
    """The HTTP status for one of notifier's own errors."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 400


def install(api: FastAPI, *, page: FormPage | None = None) -> None:
    """Make every error a problem response, except where `page` answers with a page of its
    own (the public forms: people, not programs, read those answers)."""

    def as_page(request: Request, status: int) -> Response | None:
        return page(request, status) if page is not None else None

    @api.exception_handler(NotifierError)
    async def notifier_error(request: Request, exc: NotifierError) -> Response:
        status = status_of(exc)
        return as_page(request, status) or problem(status, _title(status), exc.message)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if (shown := as_page(request, 422)) is not None:
            return shown
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"] if p != "body"),
                "message": str(e["msg"]).removeprefix("Value error, "),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return problem(422, "Invalid request", detail, errors=errors)

    async def database_trouble(request: Request, exc: Exception) -> Response:
        # The database away (restarting, disk full, read-only) is an outage, not our bug:
        # 503 with Retry-After, so clients and load balancers back off and come back.
        # Registered for these exception classes (not for Exception), so Starlette answers
        # here and does not re-raise: no traceback per request in the server's log.
        if is_outage(exc):
            reason = outage_reason(exc)
            log.warning(
                "%s %s: %s: %s",
                request.method,
                request.url.path,
                reason,
                type(exc).__name__,
                extra={"action": "api_unavailable", "reason": reason},
            )
            if (shown := as_page(request, 503)) is not None:
                return shown
            return problem(
                503,
                "Service Unavailable",
                "disk full: the database cannot write until space is freed on its disk"
                if reason == "disk full"
                else "the database is not answering; try again shortly",
                headers={"Retry-After": "5"},
            )
        log.error(
            "%s %s failed",
            request.method,
            request.url.path,
            exc_info=exc,
            extra={"action": "api_error"},
        )
        return as_page(request, 500) or problem(
            500, "Internal Server Error", "an internal error; it has been logged"
        )

    for kind in (SQLAlchemyError, OSError, TimeoutError):
        api.add_exception_handler(kind, database_trouble)

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception(
            "%s %s failed", request.method, request.url.path, extra={"action": "api_error"}
        )
        return as_page(request, 500) or problem(
            500, "Internal Server Error", "an internal error; it has been logged"
        )

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path only; a path
            # served by several routes (GET and POST /v1/meetings) allows all of theirs.
            headers["Allow"] = ", ".join(allowed_methods(request))
        if (shown := as_page(request, exc.status_code)) is not None:
            shown.headers.update(headers)
            return shown
        return problem(
            exc.status_code,
            _title(exc.status_code),
            str(exc.detail) if exc.detail else None,
            headers=headers or None,
        )


#: The methods a route may serve, for `allowed_methods` to try.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path, sorted."""
    routes = [r for r in request.app.router.routes if isinstance(r, BaseRoute)]
    return sorted(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
