"""Durable state: SQLAlchemy (async) on SQLite or PostgreSQL.

`Store` opens the database and hands out transactions (`Store.write`, `Store.read`);
every query lives on `Transaction`, so the SQL of the whole product is in one module.
"""

from __future__ import annotations

from notifier.store.queries import FencedStore, Lease, MeetingRecord, Store, Transaction

__all__ = ["FencedStore", "Lease", "MeetingRecord", "Store", "Transaction"]
