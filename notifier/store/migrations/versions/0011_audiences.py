"""Audiences: meetings, history entries and subscribers learn who may read what

`meetings.audience` is the lowest audience that may know of a meeting, and
`subscribers.audience` the reader's own (both "public" for every row so far, which is what
every reader was); `meetings.variants` and `meeting_history.variants` hold the variants by
audience of the tiered text fields (NULL: the plain columns say it all, as before).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN on both backends: a batch copy of `meetings` or `subscribers` would
    # trip the foreign keys of the tables that refer to them on SQLite.
    op.add_column(
        "meetings",
        sa.Column("audience", sa.String(length=40), nullable=False, server_default="public"),
    )
    op.add_column("meetings", sa.Column("variants", sa.JSON(), nullable=True))
    op.add_column("meeting_history", sa.Column("variants", sa.JSON(), nullable=True))
    op.add_column(
        "subscribers",
        sa.Column("audience", sa.String(length=40), nullable=False, server_default="public"),
    )


def downgrade() -> None:
    # SQLite (3.35 and newer) and PostgreSQL both drop a column in place.
    for table, column in (
        ("subscribers", "audience"),
        ("meeting_history", "variants"),
        ("meetings", "variants"),
        ("meetings", "audience"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
