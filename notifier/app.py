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
from datetime import UTC, datetime, timedelta

from notifier import __version__, service
from notifier.channels.email import EmailChannel
from notifier.channels.webhook import WebhookChannel
from notifier.delivery import OutboxWorker, Postman, drain
from notifier.domain.retry import RetryPolicy
from notifier.rendering import Renderer
from notifier.settings import Settings
from notifier.store import Store
from notifier.tokens import new_key

log = logging.getLogger("notifier")


def utcnow() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class App:
    """Everything a command or the daemon needs, built from one `Settings`."""

    settings: Settings
    store: Store


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy the settings describe: immediately, then each configured delay."""
    return RetryPolicy(
        schedule=(timedelta(0), *settings.delivery.retry_schedule),
        jitter=settings.delivery.jitter,
    )


async def unsubscribe_key(store: Store) -> str:
    """The installation's unsubscribe signing key, created on first use."""
    async with store.write() as tx:
        return await tx.meta_value("unsubscribe_key", default=new_key())


@asynccontextmanager
async def open_postman(settings: Settings, store: Store) -> AsyncIterator[Postman]:
    """The renderer and both channels, open for the duration of the block."""
    smtp = settings.smtp
    renderer = Renderer(settings.templates_dir)
    async with (
        WebhookChannel(
            timeout=settings.webhooks.timeout.total_seconds(),
            allow=settings.webhooks.allow_cidrs,
            concurrency=settings.delivery.concurrency,
            user_agent=f"notifier/{__version__}",
        ) as webhook,
        EmailChannel(
            host=smtp.host,
            port=smtp.port,
            security=smtp.security,
            username=smtp.username,
            password=smtp.password.get_secret_value() if smtp.password else None,
            timeout=smtp.timeout.total_seconds(),
            pool_size=settings.delivery.smtp_connections,
        ) as email,
    ):
        yield Postman(
            renderer=renderer,
            email=email,
            webhook=webhook,
            sender=smtp.sender,
            public_url=str(settings.public_url),
            unsubscribe_key=await unsubscribe_key(store),
        )


def outbox_worker(settings: Settings, store: Store, postman: Postman) -> OutboxWorker:
    """An outbox worker configured from `settings`."""
    return OutboxWorker(
        store,
        postman,
        policy=retry_policy(settings),
        clock=utcnow,
        batch=settings.delivery.batch,
        concurrency=settings.delivery.concurrency,
        lease=settings.delivery.lease,
        poll=settings.delivery.poll,
        parallel=settings.delivery.parallel,
    )


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

    Opens and migrates the store, reconciles the config file, starts the outbox worker and
    logs one start-up line with the version, database (no credentials), listen address and
    counts. On stop, the worker finishes its batch within ``delivery.drain_timeout``.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with open_app(settings) as app, open_postman(settings, app.store) as postman:
            if app.store.backend == "sqlite":
                # One process owns a SQLite database: claims left behind are a crash's.
                async with app.store.write() as tx:
                    recovered = await tx.recover_claims()
                if recovered:
                    log.warning(
                        "%d deliveries were in flight when the last run stopped; resending",
                        recovered,
                        extra={"action": "recover", "deliveries": recovered},
                    )
            worker = outbox_worker(settings, app.store, postman)
            stop_workers = asyncio.Event()
            tasks = [asyncio.create_task(worker.run(stop_workers), name=worker.name)]
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
            stop_workers.set()
            await drain(tasks, grace=settings.delivery.drain_timeout.total_seconds())
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
