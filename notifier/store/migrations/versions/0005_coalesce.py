"""meetings.coalesce_seconds: an optional window that folds changes into one message

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not batch mode: SQLite adds and (3.35+) drops a column in place,
# whereas a batch copy would have to drop `meetings`, which other tables reference.


def upgrade() -> None:
    op.add_column("meetings", sa.Column("coalesce_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("meetings", "coalesce_seconds")
