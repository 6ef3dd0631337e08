"""Schemathesis against the app's own /openapi.json, over ASGI, on both backends: every
operation, documented status codes and content types only, no 5xx."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.pool import NullPool

from notifier import service
from notifier.api.app import ApiContext, create_api
from notifier.app import utcnow
from notifier.settings import load_settings
from notifier.store import Store
from notifier.store.engine import create_engine

ROOT = Path(__file__).resolve().parents[2]
#: What the API promises: no 5xx, and status codes, content types, headers and bodies as
#: documented. (Schemathesis's "schema-valid data is accepted" check is left out on purpose:
#: a well-formed but unknown time zone is rightly a 422.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
AUTH = {"Authorization": "Bearer dev-token"}


async def _prepare(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        await service.reconcile(store, _settings(database_url), now=utcnow())
    finally:
        await store.close()


def _settings(database_url: str) -> Any:
    return load_settings(
        ROOT / "config" / "notifier.toml",
        database_url=database_url,
        api={"rate_per_minute": 1_000_000},
    )


@pytest.fixture
def api_schema(database_url: str) -> Iterator[Any]:
    asyncio.run(_prepare(database_url))
    # No pooled connections: the test client may run each call in a loop of its own.
    store = Store(create_engine(database_url, poolclass=NullPool))

    async def ready() -> dict[str, Any]:
        return {"database": True, "scheduler": True, "worker": True}

    app = create_api(
        ApiContext(
            store=store,
            settings=_settings(database_url),
            clock=utcnow,
            unsubscribe_key="k",
            health=dict,
            ready=ready,
        )
    )
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    asyncio.run(store.close())


def test_every_operation_conforms_to_its_schema(api_schema: Any) -> None:
    # Schemathesis's pytest plugin does not load under this pytest, so each operation's
    # strategy is driven with hypothesis directly; the checks are the same.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 17
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=AUTH, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
