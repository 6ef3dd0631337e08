"""meeting_history.cleared: the conditions a clearance lifted, so a clearance's message
(and its entry in the history, the feeds and the API) can say what was pending

Entries written before this revision keep NULL: what they lifted was not recorded.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meeting_history") as batch:
        batch.add_column(sa.Column("cleared", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("meeting_history") as batch:
        batch.drop_column("cleared")
