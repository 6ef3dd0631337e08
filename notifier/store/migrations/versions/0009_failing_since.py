"""subscriber_endpoints.failing_since: when an endpoint's run of failures began

A webhook endpoint that fails every attempt for `webhooks.disable_after` is disabled.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriber_endpoints") as batch:
        batch.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriber_endpoints") as batch:
        batch.drop_column("failing_since")
