"""Schemathesis against the app's own /openapi.json, over ASGI, on both backends: every
operation, documented status codes and content types only, no 5xx."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
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
from standardwebhooks.webhooks import Webhook

from notifier import service
from notifier.compose import utcnow
from notifier.settings import load_settings
from notifier.store import Store
from notifier.store.engine import create_engine
from notifier.store.tables import metadata
from notifier.web.app import ApiContext, create_app

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
UPSTREAM_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
#: Examples per operation and pass with a token: at least 100 on PostgreSQL, whose types
#: are the stricter (the 32-bit overflow was found there); the same (derandomized) inputs
#: on SQLite would add time, not cases, so it takes half.
TOKEN_EXAMPLES = {"postgresql": 100, "sqlite": 50}
#: Examples per operation for the other passes.
EXAMPLES = 100


async def _prepare(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        await service.reconcile(store, _settings(database_url), now=utcnow())
    finally:
        await store.close()


async def _reset(database_url: str) -> None:
    """The store as `_prepare` leaves it: the config file's records and nothing else."""
    store = await Store.open(database_url)
    try:
        async with store.engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                if table.name != "meta":  # the installation id stays
                    await connection.execute(table.delete())
        await service.reconcile(store, _settings(database_url), now=utcnow())
    finally:
        await store.close()


def _settings(database_url: str) -> Any:
    return load_settings(
        ROOT / "config" / "notifier.toml",
        database_url=database_url,
        api={"rate_per_minute": 1_000_000},
        upstreams=[{"name": "protocol-office", "secrets": [UPSTREAM_SECRET]}],
    )


@pytest.fixture
def api_schema(database_url: str) -> Iterator[Any]:
    asyncio.run(_prepare(database_url))
    # No pooled connections: the test client may run each call in a loop of its own.
    store = Store(create_engine(database_url, poolclass=NullPool))

    async def ready() -> dict[str, Any]:
        return {"database": True, "scheduler": True, "worker": True}

    app = create_app(
        ApiContext(
            store=store,
            settings=_settings(database_url),
            clock=utcnow,
            link_key="k",
            health=dict,
            ready=ready,
        )
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.app = app
    yield schema
    asyncio.run(store.close())


def _run(operation: Any, examples: int, check: Callable[[Any], None]) -> str | None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def each(case: Any) -> None:
        check(case)

    try:
        each()
    except Exception as exc:  # collect every operation's failure, then report them all
        return f"{operation.label}: {exc}"
    return None


def _operations(api_schema: Any) -> list[Any]:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 17
    return operations


@pytest.mark.slow
def test_every_operation_conforms_to_its_schema_with_a_token(
    api_schema: Any, database_url: str
) -> None:
    examples = TOKEN_EXAMPLES[database_url.split(":", 1)[0].split("+", 1)[0]]
    # Schemathesis's pytest plugin does not load under this pytest, so each operation's
    # strategy is driven with hypothesis directly; the checks are the same.
    failures = [
        _run(op, examples, lambda case: case.call_and_validate(headers=AUTH, checks=CHECKS))
        for op in _operations(api_schema)
    ]
    problems = [f for f in failures if f]
    assert not problems, "\n\n".join(problems)


#: The auth layers in front of the store: one backend is enough (the token pass runs on both).
ONE_BACKEND = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.mark.slow
@ONE_BACKEND
def test_every_operation_conforms_to_its_schema_without_credentials(api_schema: Any) -> None:
    statuses: list[int] = []

    def anonymous(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS)
        statuses.append(response.status_code)
        if case.path.startswith("/v1/"):
            assert response.status_code in (401, 404, 422), response.status_code

    failures = [_run(op, EXAMPLES // 4, anonymous) for op in _operations(api_schema)]
    problems = [f for f in failures if f]
    assert not problems, "\n\n".join(problems)
    assert statuses.count(401) > 100


@pytest.mark.slow
@ONE_BACKEND
def test_the_signed_push_conforms_to_its_schema(api_schema: Any) -> None:
    (operation,) = [op for op in _operations(api_schema) if op.path.endswith("/status")]
    statuses: list[int] = []
    counter = iter(range(10**9))

    def signed(case: Any) -> None:
        body = json.dumps(case.body).encode() if case.body is not None else b""
        msg_id = f"msg_fuzz_{next(counter)}"
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(UPSTREAM_SECRET).sign(msg_id, now, body.decode()),
        }
        path = case.formatted_path
        response = asyncio.run(_post(api_schema.app, path, body, headers))
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    problem = _run(operation, EXAMPLES, signed)
    assert problem is None, problem
    # The signature verified: the logic behind it answered, not only the 401 in front.
    assert any(status in (202, 404, 409, 422) for status in statuses), statuses


async def _post(app: Any, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post(path, content=body, headers=headers)
        await response.aread()
        return response


@pytest.mark.slow
def test_stateful_sequences_reach_the_logic_behind_the_ids(
    api_schema: Any, database_url: str
) -> None:
    calls: list[tuple[str, int]] = []

    class Machine(api_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each sequence starts from the same store: what the last one created would
            # otherwise change what this one's links find, and hypothesis, replaying a
            # sequence, would see its data generation change under it.
            asyncio.run(_reset(database_url))

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": AUTH}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            calls.append((case.operation.label, response.status_code))
            case.validate_response(response, checks=CHECKS)

    Machine.run(
        settings=settings(
            max_examples=50,
            stateful_step_count=8,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )
    linked = {label for label, status in calls if status < 400 and "{" in label}
    # Links took the ids of listed and created records to the operations behind them.
    assert len(linked) >= 3, sorted(set(calls))


@ONE_BACKEND
def test_every_operation_documents_the_shape_of_its_answer(api_schema: Any) -> None:
    # Clients generate their types from these: an answer documented as "anything" is a
    # route whose shape can drift unnoticed (schemathesis checks each against the schema).
    document = api_schema.app.openapi()
    untyped = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if not status.startswith("2") or status == "204":
                    continue
                content = response.get("content", {})
                schema = (content.get("application/json") or {}).get("schema")
                if "text/html" in content or "text/plain" in content:
                    continue
                # A named model, or a list of one: `dict[str, Any]` would document an
                # object with any properties, which says nothing.
                named = (schema or {}).get("items", schema or {})
                if "$ref" not in named:
                    untyped.append(f"{method.upper()} {path} {status}")
    assert not untyped, untyped
    status_answer = document["components"]["schemas"]["StatusAnswer"]
    assert set(status_answer["required"]) == {"meeting", "change", "duplicate", "deliveries"}
    history = document["components"]["schemas"]["HistoryEntryOut"]
    assert "from" in history["properties"]


#: Methods a route may be asked with; HEAD and OPTIONS are served only where a route
#: declares them (none does), so they are 405 like the rest.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def _request(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, path, headers=AUTH, **kwargs)


@ONE_BACKEND
def test_every_405_allows_exactly_the_methods_of_its_path(api_schema: Any) -> None:
    wrong = []
    answered = 0
    for path, operations in api_schema.raw_schema["paths"].items():
        allowed = sorted(method.upper() for method in operations)
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in METHODS:
            if method in allowed:
                continue
            response = asyncio.run(_request(api_schema.app, method, concrete))
            answered += 1
            if response.status_code != 405 or response.headers.get("allow") != ", ".join(allowed):
                wrong.append(
                    f"{method} {path}: {response.status_code} {response.headers.get('allow')}"
                )
    assert answered > 80
    assert not wrong, "\n".join(wrong)


#: What the server refuses that a JSON Schema cannot say (one field against another, the
#: network, a third party's parser), by the words of the refusal. Anything else the server
#: refuses, the schema must not have permitted.
BEYOND_A_SCHEMA = (
    "ends_at must be after starts_at",
    "history",  # its first entry has a status, it ends in the meeting's, in time order
    "a subscriber needs an email, a webhook, or a notify URL",
    "cannot resolve host",  # the webhook's host, looked up when it is saved
    "private, loopback or link-local",
    "Apprise",  # notify URLs are read by Apprise's own parser, per service
    "scheme",
    "the body is for",  # the body's meeting against the URL's
    "id: cannot be changed",
    "special-use or reserved name",  # email-validator's list of reserved domains
    # A written time against the meeting's own clocks (its zone's gaps, folds, offsets).
    "does not exist in",
    "happens twice in",
    "disagrees with",
)


@pytest.mark.slow
@ONE_BACKEND
def test_what_the_schema_permits_the_server_accepts(api_schema: Any) -> None:
    refused: list[str] = []

    def positive(case: Any) -> None:
        response = case.call(headers=AUTH)
        if response.status_code in (400, 422):
            text = response.text
            if not any(words in text for words in BEYOND_A_SCHEMA):
                refused.append(f"{case.operation.label}: {text[:300]}")

    failures = [_run(op, EXAMPLES // 2, positive) for op in _operations(api_schema)]
    assert not [f for f in failures if f]
    assert not refused, "\n".join(refused[:20])


@ONE_BACKEND
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/deliveries/retry", {"dry_run": 0}, "dry_run"),
        ("/v1/deliveries/retry", {"dry_run": "true"}, "dry_run"),
        ("/v1/meetings/moscow-tskhinvali-talks/status", {"status": "cleared", "force": 1}, "force"),
    ],
)
def test_booleans_in_bodies_are_true_or_false(
    api_schema: Any, path: str, body: dict[str, Any], field: str
) -> None:
    response = asyncio.run(_request(api_schema.app, "POST", path, json=body))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


@ONE_BACKEND
def test_every_replay_status_the_schema_lists_is_accepted(api_schema: Any) -> None:
    schema = api_schema.raw_schema["components"]["schemas"]
    listed = schema["ReplayFilter"]["enum"]
    assert set(listed) == {"dead", "failed", "retrying", "pending", "suppressed"}
    for status in listed:
        response = asyncio.run(
            _request(
                api_schema.app,
                "POST",
                "/v1/deliveries/retry",
                json={"status": status, "dry_run": True},
            )
        )
        assert response.status_code == 200, (status, response.text)
    refused = asyncio.run(
        _request(api_schema.app, "POST", "/v1/deliveries/retry", json={"status": "sent"})
    )
    assert refused.status_code == 422
