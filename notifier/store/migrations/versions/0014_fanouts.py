"""Fan-outs planned in chunks: a change to many readers queues its first chunk in its own
transaction and leaves a `fanouts` row saying where planning stands; expanders (in any
replica) queue the rest, a chunk per transaction, moving `after` on with each.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fanouts",
        sa.Column("meeting_id", sa.String(length=100), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("meeting", sa.JSON(), nullable=False),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("after", sa.String(length=100), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("meeting_id", "sequence", name="pk_fanouts"),
    )


def downgrade() -> None:
    op.drop_table("fanouts")
