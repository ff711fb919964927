"""An issue's own preheader: the hidden line inboxes show after the subject.

``newsletter_issues.preheader`` holds the text the editor set for the issue (at most 150
characters, whitespace collapsed: checked by the issue domain). Empty means "none set":
each copy of the issue derives its preheader from its plain-text body, as before.

``NOT NULL DEFAULT ''``: since PostgreSQL 11 a constant default is stored in the
catalog, so adding the column rewrites nothing and takes the table's lock for an
instant. The previous release's code never names the column; its inserts get the
default, which means what its renders already did. A one-step expand.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        ALTER TABLE newsletter_issues ADD COLUMN preheader text NOT NULL DEFAULT '';
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        ALTER TABLE newsletter_issues DROP COLUMN preheader;
        """
    )
