"""Newsletter issues, their fan-out through the delivery queue, idempotency keys and the
global send-rate bucket.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE newsletter_issues (
            id             uuid PRIMARY KEY,
            title          text NOT NULL,
            markdown       text,
            html_content   text NOT NULL,
            text_content   text NOT NULL,
            status         text NOT NULL DEFAULT 'draft'
                           CHECK (status IN ('draft', 'scheduled', 'publishing', 'sent')),
            scheduled_at   timestamptz,
            published_at   timestamptz,
            completed_at   timestamptz,
            recipients     integer,
            created_by     uuid REFERENCES users (id) ON DELETE SET NULL,
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now(),
            CHECK (status <> 'scheduled' OR scheduled_at IS NOT NULL)
        );
        CREATE INDEX newsletter_issues_due ON newsletter_issues (scheduled_at)
            WHERE status = 'scheduled';
        CREATE INDEX newsletter_issues_created ON newsletter_issues (created_at DESC);

        -- Issue deliveries are rendered at send time from the issue and the subscriber,
        -- so they store no message; one per subscriber per issue, whatever happens.
        ALTER TABLE deliveries ADD COLUMN issue_id uuid REFERENCES newsletter_issues (id);
        CREATE UNIQUE INDEX deliveries_issue_subscriber ON deliveries (issue_id, subscriber_id)
            WHERE issue_id IS NOT NULL;
        CREATE INDEX deliveries_issue_status ON deliveries (issue_id, status)
            WHERE issue_id IS NOT NULL;

        -- Idempotency keys of form submissions, per user; the first response is kept
        -- and replayed for 24 hours.
        CREATE TABLE idempotency_keys (
            user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            key              text NOT NULL,
            request_hash     bytea NOT NULL,
            response_status  integer,
            response_headers jsonb,
            response_body    bytea,
            created_at       timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, key)
        );
        CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

        -- One token bucket per limited resource, shared by every worker process.
        CREATE TABLE rate_buckets (
            name          text PRIMARY KEY,
            tokens        double precision NOT NULL,
            refreshed_at  timestamptz NOT NULL
        );
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        DROP TABLE rate_buckets;
        DROP TABLE idempotency_keys;
        DELETE FROM deliveries WHERE issue_id IS NOT NULL;
        ALTER TABLE deliveries DROP COLUMN issue_id;
        DROP TABLE newsletter_issues;
        """
    )
