"""The issue page's recipient list: ``deliveries (issue_id, status, id)``, built concurrently.

The issue page lists an issue's recipients newest first (all, or those of one status),
50 a page, keyset on ``id``. With only ``deliveries_issue_status (issue_id, status)`` the
planner walked the primary key backwards and filtered on the issue and status: quick for
the newest issue, but an old issue's rows lie under every later issue's, and a status
with few or no rows (``queued`` after a send) meant reading the whole table (11.5 s at 10M
rows). With this index a status is one backward range scan that stops after a page, and
"all" merges the five statuses' pages (``recent_deliveries`` in ``issues/queries.sql``).

Partial, like ``deliveries_issue_status``: confirmation emails (no issue) are not in it.
The new index covers every lookup the old one served (same leading columns); 0015 drops
``deliveries_issue_status``. ``CREATE INDEX CONCURRENTLY`` cannot run in a transaction,
hence a migration of its own in an autocommit block, ``IF NOT EXISTS`` (a second ``herald
migrate`` may run it meanwhile); deliveries keep going during the build (474 MB at 10M
rows; 0013-0015 took 25 s together there, BENCHMARKS.md A1). A one-step expand.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from alembic import op

from herald.migrations import create_indexes_concurrently, run_sql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_indexes_concurrently(
        (
            "deliveries_issue_status_id",
            "ON deliveries (issue_id, status, id) WHERE issue_id IS NOT NULL",
        )
    )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        run_sql("SET lock_timeout = '5s'")
        run_sql("DROP INDEX CONCURRENTLY IF EXISTS deliveries_issue_status_id")
