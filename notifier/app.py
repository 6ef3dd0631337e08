"""The composition root: builds the store and services from settings, runs the daemon.

The only module that wires adapters together and the only one that reads the clock for
the rest (`utcnow`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from notifier import __version__, service
from notifier.settings import Settings
from notifier.store import Store

log = logging.getLogger("notifier")


def utcnow() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class App:
    """Everything a command or the daemon needs, built from one `Settings`."""

    settings: Settings
    store: Store


@asynccontextmanager
async def open_app(settings: Settings, *, reconcile: bool = True) -> AsyncIterator[App]:
    """Open the store (migrating it) and, with `reconcile`, sync the config file into it."""
    store = await Store.open(settings.database_url)
    try:
        if reconcile:
            await service.reconcile(store, settings, now=utcnow())
        yield App(settings=settings, store=store)
    finally:
        await store.close()


async def run_daemon(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT (or `stop` is set), then shut down cleanly.

    Opens and migrates the store, reconciles the config file, and logs one start-up line
    with the version, database (no credentials), listen address and counts.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with open_app(settings) as app:
            async with app.store.read() as tx:
                counts = await tx.counts()
            log.info(
                "notifier %s started: database %s, listen %s, meetings=%d subscribers=%d "
                "pending_reminders=%d",
                __version__,
                app.store.url,
                settings.listen,
                counts["meetings"],
                counts["subscribers"],
                counts["pending_reminders"],
                extra={"action": "start", **counts},
            )
            await stop.wait()
            log.info("notifier stopping", extra={"action": "stop"})
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
