"""sources.counts and sources.problems: what the last read of a feed followed and refused

`counts` holds the events followed, skipped and refused and the changes applied by the
last read (and its progress while a large feed is applied in chunks); `problems` maps each
skipped or refused event to its reason, so a reason is logged once, not at every poll.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("counts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("problems", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("problems")
        batch.drop_column("counts")
