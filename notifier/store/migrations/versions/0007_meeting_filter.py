"""subscribers.meeting_filter: which meetings a subscriber follows, searchable in SQL

A change to one meeting reads only the subscribers who may follow it (every meeting, or a
list naming it) instead of every subscriber.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("subscribers", sa.Column("meeting_filter", sa.Text(), nullable=True))
    table = sa.table(
        "subscribers",
        sa.column("id", sa.String()),
        sa.column("meetings", sa.JSON()),
        sa.column("meeting_filter", sa.Text()),
    )
    bind = op.get_bind()
    for row in bind.execute(sa.select(table.c.id, table.c.meetings)).all():
        meetings = row.meetings if isinstance(row.meetings, list) else json.loads(row.meetings)
        if meetings:
            bind.execute(
                table.update()
                .where(table.c.id == row.id)
                .values(meeting_filter="," + ",".join(meetings) + ",")
            )


def downgrade() -> None:
    op.drop_column("subscribers", "meeting_filter")
