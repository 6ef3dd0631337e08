"""meetings.texts and meeting_history.texts: a meeting's text, and a change's reason, in
languages other than the fallback ({language: {field: value or {audience: value}}});
meetings.require_languages: the languages every change must give its text in

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN on both backends: a batch copy of `meetings` would trip the
    # foreign keys of the tables that refer to it on SQLite.
    op.add_column("meetings", sa.Column("texts", sa.JSON(), nullable=True))
    op.add_column("meetings", sa.Column("require_languages", sa.JSON(), nullable=True))
    op.add_column("meeting_history", sa.Column("texts", sa.JSON(), nullable=True))


def downgrade() -> None:
    # SQLite (3.35 and newer) and PostgreSQL both drop a column in place.
    op.execute("ALTER TABLE meeting_history DROP COLUMN texts")
    op.execute("ALTER TABLE meetings DROP COLUMN require_languages")
    op.execute("ALTER TABLE meetings DROP COLUMN texts")
