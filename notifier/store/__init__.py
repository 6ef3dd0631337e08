"""Durable state: SQLAlchemy (async) on SQLite or PostgreSQL.

`Store` opens the database and hands out transactions (`Store.write`, `Store.read`);
`Transaction` gathers the queries of every aggregate, one module each (meetings.py,
subscribers.py, outbox.py, reminders.py, sources.py, leases.py, meta.py), behind the
port the application is written against (`notifier.store.port`).
"""

from __future__ import annotations

from notifier.store.queries import FencedStore, Store, Transaction
from notifier.store.records import Lease, MeetingRecord

__all__ = ["FencedStore", "Lease", "MeetingRecord", "Store", "Transaction"]
