"""Fan-out in the workers, in resumable chunks; scheduled publishing with its own errors.

Publishing used to insert every delivery in the publishing request's transaction:
7.8 s at 1M subscribers, and past ~1.8M the 15 s statement timeout cancelled it every
time (a scheduled issue then retried forever). Now publishing only marks the issue;
workers insert its deliveries in chunks in subscriber-id order, each chunk committing
its rows together with ``fanout_cursor`` (the last subscriber id queued), so a crash
resumes after the last committed chunk and never queues anyone twice.

* ``fanout_cursor``, ``fanout_done_at``: progress of the fan-out; an issue is only
  ``sent`` once ``fanout_done_at`` is set.
* ``fanout_error``, ``fanout_attempts``, ``fanout_retry_at``: a chunk that failed, and
  when to try again (exponential backoff), shown on the issue page.
* ``publish_error``, ``publish_attempts``, ``publish_retry_at``: the same for the
  scheduler publishing a scheduled issue, so one failing issue neither blocks other
  due issues nor hides what went wrong.

Issues published before this migration had all their deliveries already: they are
marked as fanned out.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        ALTER TABLE newsletter_issues
            ADD COLUMN fanout_cursor uuid,
            ADD COLUMN fanout_done_at timestamptz,
            ADD COLUMN fanout_error text,
            ADD COLUMN fanout_attempts integer NOT NULL DEFAULT 0,
            ADD COLUMN fanout_retry_at timestamptz,
            ADD COLUMN publish_error text,
            ADD COLUMN publish_attempts integer NOT NULL DEFAULT 0,
            ADD COLUMN publish_retry_at timestamptz;
        UPDATE newsletter_issues
        SET fanout_done_at = coalesce(published_at, now())
        WHERE status IN ('publishing', 'sent');
        CREATE INDEX newsletter_issues_fanning_out ON newsletter_issues (published_at)
            WHERE status = 'publishing' AND fanout_done_at IS NULL;
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        DROP INDEX newsletter_issues_fanning_out;
        ALTER TABLE newsletter_issues
            DROP COLUMN fanout_cursor,
            DROP COLUMN fanout_done_at,
            DROP COLUMN fanout_error,
            DROP COLUMN fanout_attempts,
            DROP COLUMN fanout_retry_at,
            DROP COLUMN publish_error,
            DROP COLUMN publish_attempts,
            DROP COLUMN publish_retry_at;
        """
    )
