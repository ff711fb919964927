"""Drop ``deliveries_issue_status (issue_id, status)``: ``deliveries_issue_status_id`` (0013)
begins with the same columns and serves every lookup it served.

Every state change of a delivery is a non-HOT update that writes a new entry into each of
the table's indexes, so the old index only added work to the send path once 0013's index
existed (an insert of 50,000 deliveries, a claim and a ``mark_sent`` of 500 cost about the
same with the new index in place of the old one as before 0013). Its one advantage, its
deduplicated size (62 MB at 10M rows, against 474 MB), served counting an issue's
deliveries, which ``issue_delivery_counts`` (0014) now does. Release N-1's queries use the
new index just as well. ``DROP INDEX CONCURRENTLY`` in a migration of its own, in an
autocommit block; the downgrade builds the index again concurrently.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from alembic import op

from herald.migrations import run_sql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        run_sql("SET lock_timeout = '5s'")  # SET LOCAL means nothing outside a transaction
        run_sql("DROP INDEX CONCURRENTLY IF EXISTS deliveries_issue_status")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        run_sql("SET lock_timeout = '5s'")
        run_sql(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_issue_status"
            " ON deliveries (issue_id, status) WHERE issue_id IS NOT NULL"
        )
