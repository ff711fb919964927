"""Imports: what a CSV import job is about, beside its ``jobs`` row (one-step expand).

An import is a job (``jobs``, kind ``subscribers.import``) whose file lies in
``job_files`` (0018). ``imports`` holds what the job's parameters cannot, because it is
known only after the upload or changes as the job runs:

* the upload: file name, bytes and chunks received, ``uploaded_at`` once complete; the
  header row and the delimiter found in it;
* the choices made after the upload (the admin's mapping step): one role per column
  (``columns``), the target lists, the mode (``confirmed``: the operator attests consent;
  ``opt_in``: each new member gets a confirmation email); NULL ``columns`` until chosen;
* ``hold_token``: until the import is started, its job is held (``running`` under this
  lease token, with a lease long enough for the mapping step), so no worker runs a file
  still uploading or not yet mapped; starting it releases the job to the queue;
* the counts, written by each step in the step's transaction: new subscribers, existing
  ones updated, addresses skipped (suppressed or unsubscribed from everything), rows
  rejected (each in ``job_errors``).

A new table: release N-1 never sees it. Nothing to contract.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE imports (
            job_id uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
            filename text NOT NULL CHECK (length(filename) <= 255),
            size bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
            chunks integer NOT NULL DEFAULT 0 CHECK (chunks >= 0),
            uploaded_at timestamptz,
            delimiter text NOT NULL DEFAULT ',' CHECK (length(delimiter) = 1),
            header text[],
            columns jsonb,
            list_ids uuid[] NOT NULL DEFAULT '{}',
            mode text NOT NULL DEFAULT 'opt_in' CHECK (mode IN ('confirmed', 'opt_in')),
            hold_token uuid,
            imported bigint NOT NULL DEFAULT 0,
            updated bigint NOT NULL DEFAULT 0,
            skipped bigint NOT NULL DEFAULT 0,
            rejected bigint NOT NULL DEFAULT 0,
            created_by uuid REFERENCES users (id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX imports_created ON imports (created_at DESC, job_id);
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        DROP TABLE imports;
        """
    )
