"""What the routes get from the composition root, and the gates they sit behind."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from notifier.api.security import Caller
from notifier.fields import SLUG
from notifier.settings import Settings
from notifier.store import Store

Clock = Callable[[], datetime]


@dataclass(kw_only=True)
class ApiContext:
    """What the routes need, built by the composition root."""

    store: Store
    settings: Settings
    clock: Clock
    unsubscribe_key: str
    health: Callable[[], dict[str, Any]]
    ready: Callable[[], Awaitable[dict[str, Any]]]
    on_change: Callable[[], None] = lambda: None


#: Record ids in paths: anything else names no record (404), and never reaches a query
#: (PostgreSQL refuses a NUL in text outright).
PATH_ID = re.compile(SLUG)
DELIVERY_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


@dataclass(frozen=True, kw_only=True)
class Gate:
    """The dependencies that admit a request: `secured` (a bearer token) for every
    ``/v1`` route, `pushed` (a token or a signed upstream) for status pushes."""

    secured: list[Any]
    pushed: Callable[..., Awaitable[Caller]]
