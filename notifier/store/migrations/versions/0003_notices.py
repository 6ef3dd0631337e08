"""notices: store what a change says once, not once per delivery

A fan-out to thousands of subscribers kept a copy of the same payload in every outbox row.
Payloads move to a `notices` table that deliveries refer to; existing rows each become a
notice of their own.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
    )
    op.execute(
        "INSERT INTO notices (id, payload, created_at) "
        "SELECT id, payload, created_at FROM deliveries"
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("notice_id", sa.String(length=200), nullable=True))
    op.execute("UPDATE deliveries SET notice_id = id")
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("notice_id", existing_type=sa.String(length=200), nullable=False)
        batch.create_foreign_key(
            op.f("fk_deliveries_notice_id_notices"), "notices", ["notice_id"], ["id"]
        )
        batch.drop_column("payload")


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("payload", sa.JSON(), nullable=True))
    op.execute(
        "UPDATE deliveries SET payload = "
        "(SELECT payload FROM notices WHERE notices.id = deliveries.notice_id)"
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("payload", existing_type=sa.JSON(), nullable=False)
        batch.drop_constraint(op.f("fk_deliveries_notice_id_notices"), type_="foreignkey")
        batch.drop_column("notice_id")
    op.drop_table("notices")
