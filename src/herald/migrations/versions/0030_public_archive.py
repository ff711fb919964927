"""Reserved for the public archive and feeds (the deliverability issue): the change that builds it
fills this migration in. Until then it changes nothing.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(LOCK_TIMEOUT)


def downgrade() -> None:
    run_sql(LOCK_TIMEOUT)
