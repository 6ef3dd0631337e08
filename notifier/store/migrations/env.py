"""Alembic environment: runs on the connection `notifier.store.migrate` hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from notifier.store.tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations with `notifier db upgrade`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
