"""Finished backfills, remembered: ``backfills`` (one row per backfill that has reached
every row it had to).

Migration 0018's default-list backfill is a job a worker enqueues at start when some
subscription from before the lists is not in the default list. Once it has finished,
that can never be true again (those subscriptions are all older than the migration),
but finding that out walks every one of them: 15 s at 1,000,000 on a loaded 2-core
machine, at every worker start once housekeeping has deleted the finished job. The row
the job writes with its last step makes the check one primary-key read.

A new table: nothing for the previous release to notice. Nothing to contract.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE backfills (
            name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
            finished_at timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    run_sql(LOCK_TIMEOUT + "DROP TABLE backfills;")
