"""Shared fixtures: factories for domain records and a store on every backend.

PostgreSQL tests use the server named by ``NOTIFIER_TEST_POSTGRES_URL`` (for example
``postgresql+asyncpg://root@127.0.0.1:5432/test``): each test run creates its own database
there and drops it at the end. Without the variable those tests skip, saying why; under CI
(``CI=true``) they fail instead, so a missing PostgreSQL can never pass unnoticed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from notifier.domain.models import Meeting, MeetingStatus, Source, Subscriber
from notifier.store import Store
from notifier.store.tables import metadata

#: Fixtures that live beside the helpers they need (the public site on a test store).
pytest_plugins = ["tests.helpers.public"]

POSTGRES_ENV = "NOTIFIER_TEST_POSTGRES_URL"
#: A fixed instant for tests that need "now"; meetings built by the factory lie after it.
NOW = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """The root logger as it was before the test: a command run in-process (CliRunner)
    sets up logging to its own stderr, which is closed when the command returns; a handler
    left on it would make every later log line a "Logging error" in some other test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def now() -> datetime:
    """The fixed test instant (25 February 2026, 09:00 UTC)."""
    return NOW


@pytest.fixture
def meeting_factory() -> Callable[..., Meeting]:
    """Build a `Meeting`; keyword arguments override the defaults."""
    counter = iter(range(1, 1_000_000))

    def make(**overrides: Any) -> Meeting:
        values: dict[str, Any] = {
            "id": f"meeting-{next(counter)}",
            "title": "Talks",
            "timezone": "Europe/Moscow",
            "starts_at": datetime(2026, 3, 2, 19, 0, tzinfo=UTC) + timedelta(hours=-3),
            "status": MeetingStatus.SCHEDULED,
            "tags": ("bilateral",),
            "source": Source.API,
        }
        values.update(overrides)
        return Meeting(**values)

    return make


@pytest.fixture
def subscriber_factory() -> Callable[..., Subscriber]:
    """Build a `Subscriber`; keyword arguments override the defaults."""
    counter = iter(range(1, 1_000_000))

    def make(**overrides: Any) -> Subscriber:
        number = next(counter)
        values: dict[str, Any] = {
            "id": f"subscriber-{number}",
            "email": f"person{number}@example.org",
            "timezone": "UTC",
            "source": Source.API,
        }
        values.update(overrides)
        return Subscriber(**values)

    return make


def _postgres_server_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{POSTGRES_ENV} is not set under CI: the PostgreSQL suite must run")
    return None


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    parsed = make_url(url)
    connection = await asyncpg.connect(
        user=parsed.username,
        password=parsed.password,
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        database=parsed.database,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    server = _postgres_server_url()
    if server is None:
        pytest.skip(f"PostgreSQL tests skipped: set {POSTGRES_ENV} (as .ci/run does)")
    name = f"notifier_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        pytest.fail(f"PostgreSQL at {make_url(server).render_as_string()} is unreachable: {exc}")
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    yield url
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def backend_params() -> list[Any]:
    """``sqlite`` and ``postgresql``, the latter marked as needing the server."""
    return ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=backend_params())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL on each backend; the PostgreSQL one is emptied before each test."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}"
        return
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(_truncate(url))
    yield url


async def _truncate(url: str) -> None:
    store = await Store.open(url)
    try:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        async with store.engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await store.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the head revision once per test process: a test's store
    starts as a copy of it (a file copy, not 16 migrations: ~0.13 s a test)."""
    path = tmp_path_factory.mktemp("template") / "notifier.db"

    async def migrate() -> None:
        await (await Store.open(f"sqlite+aiosqlite:///{path}")).close()

    asyncio.run(migrate())
    return path


@pytest.fixture
def migrated_url(database_url: str, request: pytest.FixtureRequest) -> str:
    """`database_url`, migrated: a SQLite file not made yet starts as the template."""
    target = make_url(database_url)
    if target.get_backend_name() == "sqlite" and target.database:
        path = Path(target.database)
        if not path.exists():
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return database_url


@pytest.fixture
async def store(migrated_url: str) -> AsyncIterator[Store]:
    """A migrated, empty store on each backend."""
    opened = await Store.open(migrated_url)
    try:
        yield opened
    finally:
        await opened.close()


# -- The port's contract, across test processes ------------------------------------------
#
# The storage suites together are the port's contract suite: when the whole integration
# suite runs, every method of `notifier.store.port.TransactionPort` has run on SQLite, and
# on PostgreSQL when it is configured (tests/integration/conftest.py records the calls).
# Under pytest-xdist each process sees only its share, so each writes what it ran to a
# folder the controlling process names, and the controller checks the union at the end.

_PORT_DIR = "notifier_port_calls"


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        import tempfile

        config.stash[_port_dir_key] = Path(tempfile.mkdtemp(prefix="notifier-port-"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # an xdist hook, on the controller
    node.workerinput[_PORT_DIR] = str(node.config.stash[_port_dir_key])


def _whole_integration_suite(session: pytest.Session) -> bool:
    ran = {item.module.__name__ for item in session.items if getattr(item, "module", None)}
    folder = Path(__file__).parent / "integration"
    here = {f"tests.integration.{p.stem}" for p in folder.glob("test_*.py")}
    return here <= ran and not session.config.getoption("keyword")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import json

    config = session.config
    worker = getattr(config, "workerinput", None)
    folder = Path(worker[_PORT_DIR]) if worker else config.stash[_port_dir_key]
    calls_module = sys.modules.get("tests.integration.conftest")
    calls = getattr(calls_module, "PORT_CALLS", {})
    name = worker["workerid"] if worker else "main"
    (folder / f"{name}.json").write_text(
        json.dumps(
            {
                "whole": _whole_integration_suite(session),
                "calls": {backend: sorted(ran) for backend, ran in calls.items()},
            }
        )
    )
    if worker:
        return
    reports = [json.loads(path.read_text()) for path in folder.glob("*.json")]
    shutil.rmtree(folder, ignore_errors=True)
    if not any(report["whole"] for report in reports):
        return  # a partial run: the contract is checked when the whole suite runs
    from tests.integration.conftest import port_methods

    backends = ["sqlite"] + (["postgresql"] if os.environ.get(POSTGRES_ENV) else [])
    problems = []
    for backend in backends:
        ran = set().union(*(set(r["calls"].get(backend, ())) for r in reports))
        missing = sorted(port_methods() - ran)
        if missing:
            problems.append(f"never run on {backend}: {', '.join(missing)}")
    if problems:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        for problem in problems:
            line = f"storage port contract: {problem}"
            if reporter is not None:
                reporter.write_line(line, red=True)
            else:
                print(line, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_port_dir_key = pytest.StashKey[Path]()
