"""Indexes for segments on engagement, built concurrently: a reader's human opens and
clicks within the last N days.

A segment's ``{"engagement": "opened", "within_days": N}`` compiles to an ``IN`` over the
window's rows of ``engagement_opens`` (``engagement_clicks``), and the fan-out evaluates it
once per chunk; without an index on the time, every chunk read every open ever recorded.
Partial (``WHERE NOT machine``): machine opens and clicks never count for a segment, and
they are most of the rows on lists with many Apple Mail readers. Each index carries the
delivery id, so the window's deliveries come from the index alone.

``CREATE INDEX CONCURRENTLY`` cannot run in a transaction, hence a migration of its own in
an autocommit block, ``IF NOT EXISTS`` (a second ``herald migrate`` may run it meanwhile);
tracking hits keep being recorded during the build. A one-step expand; the previous
release never reads these tables.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-05
"""

from alembic import op

from herald.migrations import run_sql

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        run_sql("SET lock_timeout = '5s'")  # SET LOCAL means nothing outside a transaction
        run_sql(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS engagement_opens_window"
            " ON engagement_opens (opened_at, delivery_id) WHERE NOT machine"
        )
        run_sql(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS engagement_clicks_window"
            " ON engagement_clicks (last_at, delivery_id) WHERE NOT machine"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        run_sql("SET lock_timeout = '5s'")
        run_sql("DROP INDEX CONCURRENTLY IF EXISTS engagement_clicks_window")
        run_sql("DROP INDEX CONCURRENTLY IF EXISTS engagement_opens_window")
