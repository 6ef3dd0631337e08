"""Chat and push channels: which of a subscriber's Apprise URLs a delivery goes to

A subscriber's Apprise URLs are kept in one `notify` endpoint row, in its `secrets` column
(they hold the services' tokens); each URL is a delivery of its own, and
`deliveries.target` says which (a digest of the URL, never the URL).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("target", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM subscriber_endpoints WHERE channel = 'notify'")
    op.execute("ALTER TABLE deliveries DROP COLUMN target")
