"""The FastAPI application served by `notifier run`: routes only, the service decides.

Everything under ``/v1`` needs ``Authorization: Bearer TOKEN`` (one of ``api_tokens``);
``/unsubscribe/{token}`` is signed instead, and the operations endpoints are open. Errors
are RFC 9457 problem responses; bodies are limited in size and tokens in rate.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifier import __version__
from notifier.api import docs_page
from notifier.api.problems import install, problem
from notifier.api.routes import deliveries, meetings, operations, subscribers, unsubscribe
from notifier.api.security import BearerAuth, RateLimiter, SignedPush
from notifier.fields import AUDIENCE_PATTERN, LANGUAGE_PATTERN
from notifier.public import pages
from notifier.web.context import ApiContext, Gates

__all__ = ["ApiContext", "create_app"]


class BodyLimit:
    """Refuses request bodies larger than `limit` bytes with 413, streamed or not."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await problem(413, "Content Too Large", f"bodies are limited to {self.limit} bytes")(
                scope, receive, send
            )
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, f"bodies are limited to {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


def create_app(context: ApiContext) -> FastAPI:
    """The HTTP app over `context`."""
    api = FastAPI(
        title="notifier",
        version=__version__,
        description="Keeps subscribers informed about meetings whose status changes.",
        # operationId = the route function's name: short, stable, and what links name.
        generate_unique_id_function=lambda route: route.name,
        # Served from this package by docs_page (FastAPI's own pages load from a CDN).
        docs_url=None,
        redoc_url=None,
    )
    install(api, page=pages.form_error_page)
    api.add_middleware(BodyLimit, limit=context.settings.api.max_body)
    limiter = RateLimiter(context.settings.api.rate_per_minute)
    api.state.context = context
    api.state.gates = Gates(
        bearer=BearerAuth([t.get_secret_value() for t in context.settings.api_tokens], limiter),
        signed=SignedPush(
            [
                (u.name, [secret.get_secret_value() for secret in u.secrets])
                for u in context.settings.upstreams
            ],
            limiter,
        ),
    )
    for part in (meetings, subscribers, deliveries, unsubscribe, operations):
        api.include_router(part.router)
    api.include_router(pages.links_router)
    api.include_router(pages.router)
    api.include_router(docs_page.router)
    build = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            name_audiences(build(), context.settings.audiences)
            name_keys(build(), LANGUAGE_PATTERN, context.settings.languages[1:])
        return build()

    api.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    return api


def name_keys(node: Any, pattern: str, names: list[str]) -> None:
    """Make every table keyed by `pattern` in the schema `node` take exactly `names`."""
    if isinstance(node, list):
        for item in node:
            name_keys(item, pattern, names)
        return
    if not isinstance(node, dict):
        return
    if node.get("pattern") == pattern:
        del node["pattern"]
        node["enum"] = list(names)
    keyed = node.get("patternProperties", {}).pop(pattern, None)
    if keyed is not None:
        node["properties"] = {name: keyed for name in names}
        node["additionalProperties"] = False
        node.pop("propertyNames", None)
        if not node["patternProperties"]:
            del node["patternProperties"]
    for value in node.values():
        name_keys(value, pattern, names)


def name_audiences(node: Any, audiences: list[str]) -> None:
    """Make every audience name in the schema `node` one of `audiences`: the server refuses
    any other, so the schema does not permit it either."""
    if isinstance(node, list):
        for item in node:
            name_audiences(item, audiences)
        return
    if not isinstance(node, dict):
        return
    if node.get("pattern") == AUDIENCE_PATTERN:
        del node["pattern"]
        node["enum"] = list(audiences)
    variants = node.get("patternProperties", {}).pop(AUDIENCE_PATTERN, None)
    if variants is not None:
        node["properties"] = {name: variants for name in audiences}
        node["additionalProperties"] = False
        node.pop("propertyNames", None)
        if not node["patternProperties"]:
            del node["patternProperties"]
    for value in node.values():
        name_audiences(value, audiences)
