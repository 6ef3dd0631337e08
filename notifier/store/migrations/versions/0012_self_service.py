"""Self-service subscription: confirmation state, link salts, and confirmations sent

A subscriber who signed up on the public pages waits for their emailed link:
`confirmed_at` is NULL until it is followed, `confirm_hash` (SHA-256 of the token, never
the token) and `confirm_until` say which link works until when. `link_salt` signs the
manage and private calendar links (rotating it retires every earlier link). The
`confirmations` table counts confirmation emails per address digest, so no address gets
more than a few a day whoever asks.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (a batch copy of `subscribers` would trip its foreign keys on SQLite).
    op.add_column("subscribers", sa.Column("confirmed_at", sa.DateTime(timezone=True)))
    op.add_column("subscribers", sa.Column("confirm_hash", sa.String(length=64)))
    op.add_column("subscribers", sa.Column("confirm_until", sa.DateTime(timezone=True)))
    op.add_column(
        "subscribers",
        sa.Column("link_salt", sa.String(length=32), nullable=False, server_default=""),
    )
    op.create_index("ix_subscribers_confirm_hash", "subscribers", ["confirm_hash"], unique=True)
    op.create_table(
        "confirmations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_confirmations"),
    )
    op.create_index("ix_confirmations_address_hash", "confirmations", ["address_hash"])


def downgrade() -> None:
    op.drop_index("ix_confirmations_address_hash", table_name="confirmations")
    op.drop_table("confirmations")
    op.drop_index("ix_subscribers_confirm_hash", table_name="subscribers")
    for column in ("link_salt", "confirm_until", "confirm_hash", "confirmed_at"):
        op.execute(f"ALTER TABLE subscribers DROP COLUMN {column}")
