"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        """
    )
