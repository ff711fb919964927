"""Indexes for segments on engagement, built concurrently: a reader's human opens and
clicks within the last N days.

A segment's ``{"engagement": "opened", "within_days": N}`` compiles to an ``IN`` over the
window's rows of ``engagement_opens`` (``engagement_clicks``), and the fan-out evaluates it
once per chunk; without an index on the time, every chunk read every open ever recorded.
Partial (``WHERE NOT machine``): machine opens and clicks never count for a segment, and
they are most of the rows on lists with many Apple Mail readers. Each index carries the
delivery id, so the window's deliveries come from the index alone.

Built concurrently (``herald.migrations.create_indexes_concurrently``: an autocommit block,
a failed earlier build's invalid leftover rebuilt); tracking hits keep being recorded
during the build. A one-step expand; the previous
release never reads these tables.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-05
"""

from alembic import op

from herald.migrations import create_indexes_concurrently, run_sql

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_indexes_concurrently(
        (
            "engagement_opens_window",
            "ON engagement_opens (opened_at, delivery_id) WHERE NOT machine",
        ),
        (
            "engagement_clicks_window",
            "ON engagement_clicks (last_at, delivery_id) WHERE NOT machine",
        ),
    )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        run_sql("SET lock_timeout = '5s'")
        run_sql("DROP INDEX CONCURRENTLY IF EXISTS engagement_clicks_window")
        run_sql("DROP INDEX CONCURRENTLY IF EXISTS engagement_opens_window")
