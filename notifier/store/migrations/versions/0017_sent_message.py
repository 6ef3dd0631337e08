"""delivery_attempts.message: the email as it went on the wire (zlib, base64); and
meetings.coalesce_seconds as a 64-bit integer (999,999 weeks overflowed PostgreSQL's 32)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.add_column(sa.Column("message", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # SQLite's INTEGER is 64-bit already
        op.alter_column("meetings", "coalesce_seconds", type_=sa.BigInteger())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("meetings", "coalesce_seconds", type_=sa.Integer())
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.drop_column("message")
