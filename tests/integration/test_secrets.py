"""Secrets never reach a log line, an error message or a traceback: a write of a subscriber
with a webhook secret is forced to fail in the database, and everything said is searched."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text

from notifier.logs import RedactingFormatter, quiet_libraries, redact_text
from notifier.store import Store
from tests.helpers.api import AUTH

SECRET = "whsec_QmVzdC1rZXB0LXNlY3JldC1vZi1hbGwtMTIzNA=="


@pytest.fixture
async def failing_writes(store: Store) -> AsyncIterator[None]:
    """Every insert into subscriber_endpoints fails inside the database."""
    postgres = store.engine.dialect.name == "postgresql"
    async with store.engine.begin() as conn:
        if postgres:
            await conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION refuse_endpoints() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'the disk says no'; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_endpoints BEFORE INSERT ON subscriber_endpoints "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_endpoints()"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_endpoints BEFORE INSERT ON subscriber_endpoints "
                    "BEGIN SELECT RAISE(ABORT, 'the disk says no'); END"
                )
            )
    try:
        yield
    finally:
        async with store.engine.begin() as conn:
            if postgres:
                await conn.execute(text("DROP TRIGGER refuse_endpoints ON subscriber_endpoints"))
                await conn.execute(text("DROP FUNCTION refuse_endpoints()"))
            else:
                await conn.execute(text("DROP TRIGGER refuse_endpoints"))


async def test_a_failing_write_of_a_secret_leaks_it_nowhere(
    api: httpx.AsyncClient,
    failing_writes: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_libraries(logging.DEBUG)  # as the daemon does, even at log_level = "debug"
    reader = {
        "id": "wire-2",
        "webhook": {"url": "http://127.0.0.1:9000/hook", "secrets": [SECRET]},
    }
    transport = api._transport
    assert isinstance(transport, httpx.ASGITransport)
    transport.raise_app_exceptions = False
    response = await api.post("/v1/subscribers", json=reader, headers=AUTH)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert SECRET not in response.text
    assert "the disk says no" not in response.text  # nothing of the database's own words
    failures = [r for r in caplog.records if r.exc_info]
    assert failures, "the failure was not logged"
    # Formatted plainly, without the redacting formatter: the engine itself hides them.
    plain = logging.Formatter("%(message)s")
    said = "\n".join(plain.format(r) for r in caplog.records)
    for record in failures:
        assert record.exc_info is not None
        said += "".join(traceback.format_exception(record.exc_info[1]))
    assert "the disk says no" in said  # the real error is there to read
    assert SECRET not in said
    assert SECRET.removeprefix("whsec_") not in said
    assert "SQL parameters hidden" in said


def test_the_log_formatter_hides_secrets_that_reach_a_message_another_way() -> None:
    formatter = RedactingFormatter(logging.Formatter("%(message)s"), ["dev-token-123"])
    record = logging.makeLogRecord(
        {"msg": "token %s and hook %s", "args": ("dev-token-123", SECRET), "levelno": 30}
    )
    line = formatter.format(record)
    assert "dev-token-123" not in line
    assert SECRET not in line
    assert line == "token [redacted] and hook [redacted]"
    assert redact_text("x\n[parameters: ('a', 'whsec_x')]\ny") == "x\n[parameters: [redacted]]\ny"
