"""bounces: delivery status notifications that came back after a delivery was sent

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(200), nullable=False),
        sa.Column("dsn_id", sa.String(64), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("permanent", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(20), server_default="", nullable=False),
        sa.Column("reporting_mta", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounces")),
        sa.UniqueConstraint(
            "delivery_id", "dsn_id", "address", name=op.f("uq_bounces_delivery_id_dsn_id_address")
        ),
    )
    op.create_index(op.f("ix_bounces_delivery_id"), "bounces", ["delivery_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_bounces_delivery_id"), table_name="bounces")
    op.drop_table("bounces")
