"""An index on the deliveries still to go, by reader, channel and meeting

The claim takes a delivery only when no earlier message of the same meeting to the same
reader and channel is still to go, and no delivery to that endpoint is in flight; this
partial index (unfinished rows only) answers both questions without reading the rest.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

UNFINISHED = sa.text("status IN ('pending', 'sending', 'retrying')")


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_lane",
        "deliveries",
        ["subscriber_id", "channel", "meeting_id"],
        sqlite_where=UNFINISHED,
        postgresql_where=UNFINISHED,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_lane", table_name="deliveries")
