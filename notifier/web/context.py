"""What the routes get from the composition root, as module-level FastAPI dependencies.

`create_app` puts one `ApiContext` and one `Gates` on ``app.state``; each route asks for
what it needs (`Ctx`, `SECURED`, `Pushed`), so the routers are plain module-level
`APIRouter`s that any app can include.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import Depends, Header, Request

from notifier.api.security import BearerAuth, Caller, SignedPush
from notifier.delivery import Postman
from notifier.fields import SLUG
from notifier.links import Links
from notifier.settings import Settings

if TYPE_CHECKING:  # the store is the service's to use; the face only carries it
    from notifier.store import Store

Clock = Callable[[], datetime]


@dataclass(kw_only=True)
class ApiContext:
    """What the routes need, built by the composition root."""

    store: Store
    settings: Settings
    clock: Clock
    link_key: str
    health: Callable[[], dict[str, Any]]
    ready: Callable[[], Awaitable[dict[str, Any]]]
    on_change: Callable[[], None] = lambda: None
    #: Sends confirmation emails for self-service subscription (None: no mail server).
    postman: Postman | None = None

    @property
    def links(self) -> Links:
        """Every link a page or an answer carries, under ``public_url``."""
        return Links(str(self.settings.public_url), self.link_key)


@dataclass(frozen=True, kw_only=True)
class Gates:
    """Who may call: bearer tokens for every ``/v1`` route, and signed upstreams for
    status pushes (each a small class of `notifier.api.security`)."""

    bearer: BearerAuth
    signed: SignedPush


#: Record ids in paths: anything else names no record (404), and never reaches a query
#: (PostgreSQL refuses a NUL in text outright).
PATH_ID = re.compile(SLUG)
DELIVERY_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


def context(request: Request) -> ApiContext:
    """The app's context (set by `create_app`)."""
    return cast(ApiContext, request.app.state.context)


def gates(request: Request) -> Gates:
    """The app's gates (set by `create_app`)."""
    return cast(Gates, request.app.state.gates)


Ctx = Annotated[ApiContext, Depends(context)]


async def authorized(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> str:
    """A configured bearer token, or 401/429; the caller's name (a hash of the token)."""
    return gates(request).bearer.check(authorization)


async def pushed(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    webhook_id: Annotated[str | None, Header()] = None,
    webhook_timestamp: Annotated[str | None, Header()] = None,
    webhook_signature: Annotated[str | None, Header()] = None,
) -> Caller:
    """Bearer token, or a Standard Webhooks signature from a configured upstream."""
    gate = gates(request)
    if authorization or not (webhook_id or webhook_signature or webhook_timestamp):
        return Caller(name=gate.bearer.check(authorization))
    body = await request.body()
    return gate.signed.check(body, webhook_id, webhook_timestamp, webhook_signature)


#: The dependencies of every bearer-token route.
SECURED = [Depends(authorized)]
Pushed = Annotated[Caller, Depends(pushed)]
