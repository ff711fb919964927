"""Where a trace starts: the W3C ``traceparent`` of the request behind an issue or a delivery.

``newsletter_issues.traceparent`` is the span that published the issue (the POST of
the newsletter form, or the worker that published a scheduled issue);
``deliveries.traceparent`` is the span that enqueued a message rendered at enqueue
(a confirmation email, a test send). Issue deliveries carry none: the worker reads
their issue's. The fan-out, batch and provider-call spans of the workers *link* to
it, so one trace leads from the publish to every send (core/tracing.py). NULL when
tracing is off.

Both columns are nullable without a default: adding them rewrites nothing and takes
the table's lock for an instant; code of the previous release keeps working.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        ALTER TABLE newsletter_issues ADD COLUMN traceparent text;
        ALTER TABLE deliveries ADD COLUMN traceparent text;
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        ALTER TABLE deliveries DROP COLUMN traceparent;
        ALTER TABLE newsletter_issues DROP COLUMN traceparent;
        """
    )
