"""Background jobs: long actions run in checkpointed steps by the workers.

A bulk action over everyone matching a filter (a million subscribers) outlives a web
request; later, imports and exports will too. ``jobs`` holds each job's kind, its
parameters, the checkpoint its next step starts from (``position``), its counts and its
lease (``lease_token``, ``leased_until``: a runner that died is taken over when the lease
runs out). Each step writes its checkpoint in its own transaction, fenced by the lease
token (``herald.jobs.runner``). A new table: nothing to contract later.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE jobs (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            kind text NOT NULL,
            params jsonb NOT NULL DEFAULT '{}',
            description text NOT NULL,
            status text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            position text,
            done bigint NOT NULL DEFAULT 0,
            skipped bigint NOT NULL DEFAULT 0,
            total bigint,
            message text,
            lease_token uuid,
            leased_until timestamptz,
            attempts integer NOT NULL DEFAULT 0,
            created_by uuid REFERENCES users (id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            CHECK ((status = 'running') = (lease_token IS NOT NULL))
        );
        CREATE INDEX jobs_open ON jobs (created_at) WHERE status IN ('queued', 'running');
        CREATE INDEX jobs_by_kind ON jobs (kind, created_at DESC);
        """
    )


def downgrade() -> None:
    run_sql(LOCK_TIMEOUT + "DROP TABLE jobs;")
