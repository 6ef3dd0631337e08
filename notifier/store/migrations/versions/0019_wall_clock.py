"""meetings keep their wall-clock time: anchor, local start and end, fold, UTC offset and
tzdata version; meeting_history.clock says what a change of clock rules did.

Existing rows get the local time their instant reads as under the rules in force now (the
rules this migration runs with), and are anchored to it.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from notifier.clockrules import tzdata_version

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_meetings = sa.table(
    "meetings",
    sa.column("id", sa.String),
    sa.column("timezone", sa.String),
    sa.column("starts_at", sa.DateTime(timezone=True)),
    sa.column("ends_at", sa.DateTime(timezone=True)),
    sa.column("local_starts_at", sa.String),
    sa.column("local_ends_at", sa.String),
    sa.column("fold", sa.Integer),
    sa.column("utc_offset", sa.Integer),
    sa.column("tzdata", sa.String),
)


def upgrade() -> None:
    # Plain ADD COLUMN on both backends: a batch copy of `meetings` would trip the
    # foreign keys of the tables that refer to it on SQLite.
    for column in (
        sa.Column("anchor", sa.String(10), server_default="wall", nullable=False),
        sa.Column("local_starts_at", sa.String(32), nullable=True),
        sa.Column("local_ends_at", sa.String(32), nullable=True),
        sa.Column("fold", sa.Integer(), server_default="0", nullable=False),
        sa.Column("utc_offset", sa.Integer(), nullable=True),
        sa.Column("tzdata", sa.String(32), nullable=True),
    ):
        op.add_column("meetings", column)
    with op.batch_alter_table("meeting_history") as batch:
        batch.add_column(sa.Column("clock", sa.JSON(), nullable=True))
    bind = op.get_bind()
    version = tzdata_version()
    rows = bind.execute(
        sa.select(_meetings.c.id, _meetings.c.timezone, _meetings.c.starts_at, _meetings.c.ends_at)
    ).all()
    for row in rows:
        zone = ZoneInfo(row.timezone)
        starts = _aware(row.starts_at).astimezone(zone)
        ends = _aware(row.ends_at).astimezone(zone) if row.ends_at else None
        offset = starts.utcoffset()
        bind.execute(
            sa.update(_meetings)
            .where(_meetings.c.id == row.id)
            .values(
                local_starts_at=starts.replace(tzinfo=None, fold=0).isoformat(),
                local_ends_at=ends.replace(tzinfo=None, fold=0).isoformat() if ends else None,
                fold=starts.fold,
                utc_offset=int(offset.total_seconds()) if offset is not None else 0,
                tzdata=version,
            )
        )


def _aware(value: datetime | str) -> datetime:
    """SQLite hands DateTime columns back naive (stored in UTC), or as text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def downgrade() -> None:
    with op.batch_alter_table("meeting_history") as batch:
        batch.drop_column("clock")
    # SQLite (3.35 and newer) and PostgreSQL both drop a column in place.
    for name in ("tzdata", "utc_offset", "fold", "local_ends_at", "local_starts_at", "anchor"):
        op.execute(f"ALTER TABLE meetings DROP COLUMN {name}")
