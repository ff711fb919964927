"""User roles and disabled accounts: ``users.role`` and ``users.disabled_at``.

``role`` is ``'admin'`` or ``'editor'`` (editors manage issues and subscribers, not
users, API keys or settings). It is added ``NOT NULL DEFAULT 'admin'``: a constant
default, so no rewrite; every existing user becomes an admin, and a user created by
release N-1 (whose ``INSERT`` does not name the column) is an admin too, as it always
was. ``disabled_at`` is nullable without a default: NULL means active. A disabled
user's sessions and API keys stop working (the session and key look-ups of this
release join on it); release N-1 ignores it, so during a rolling deploy an N-1 process
may still let a disabled user in until it is replaced. The ``CHECK`` scans ``users``
once under the lock: a small table.

One-step expand; nothing to contract later.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        ALTER TABLE users
            ADD COLUMN role text NOT NULL DEFAULT 'admin'
                CONSTRAINT users_role_check CHECK (role IN ('admin', 'editor')),
            ADD COLUMN disabled_at timestamptz;
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        ALTER TABLE users DROP COLUMN disabled_at, DROP COLUMN role;
        """
    )
