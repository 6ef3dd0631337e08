"""Watched sources keep one row per followed event, and the counts of their last read

`source_items` replaces the `sources.seen` JSON blob (one document rewritten at every
poll, 3 MB for a 17,000-event feed): each chunk of a large feed now saves only its own
rows. `sources.counts` holds the events followed, skipped and refused and the changes
applied by the last read (and its progress while a large feed is applied in chunks);
`sources.problems` maps each skipped or refused event to its reason, so a reason is
logged once, not at every poll.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _item_id(url: str, key: str) -> str:
    return hashlib.sha256(f"{url}\x1f{key}".encode()).hexdigest()


def upgrade() -> None:
    items = op.create_table(
        "source_items",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("source_url", sa.String(2000), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("said", sa.JSON(), nullable=False),
    )
    op.create_index("ix_source_items_source_url", "source_items", ["source_url"])
    sources = sa.table("sources", sa.column("url", sa.String), sa.column("seen", sa.JSON))
    bind = op.get_bind()
    for url, seen in bind.execute(sa.select(sources.c.url, sources.c.seen)).all():
        rows = [
            {"id": _item_id(url, key), "source_url": url, "key": key, "said": said}
            for key, said in (seen or {}).items()
            if isinstance(said, dict)
        ]
        if rows:
            op.bulk_insert(items, rows)
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("seen")
        batch.add_column(sa.Column("counts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("problems", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("problems")
        batch.drop_column("counts")
        batch.add_column(sa.Column("seen", sa.JSON(), nullable=False, server_default="{}"))
    items = sa.table(
        "source_items",
        sa.column("source_url", sa.String),
        sa.column("key", sa.Text),
        sa.column("said", sa.JSON),
    )
    sources = sa.table("sources", sa.column("url", sa.String), sa.column("seen", sa.JSON))
    bind = op.get_bind()
    seen: dict[str, dict[str, object]] = {}
    for url, key, said in bind.execute(sa.select(items.c.source_url, items.c.key, items.c.said)):
        seen.setdefault(url, {})[key] = said
    for url, said in seen.items():
        bind.execute(sa.update(sources).where(sources.c.url == url).values(seen=said))
    op.drop_index("ix_source_items_source_url", table_name="source_items")
    op.drop_table("source_items")
