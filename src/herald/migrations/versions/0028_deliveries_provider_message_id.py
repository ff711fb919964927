"""An index on ``deliveries.provider_message_id``, built concurrently: a provider's event
finds its delivery by the message id the provider gave it at send time (Postmark's
``MessageID``, SES's ``mail.messageId``) when the message's metadata does not name it.

Partial (``WHERE provider_message_id IS NOT NULL``): the development outbox and rows not
sent yet have none. ``CREATE INDEX CONCURRENTLY`` cannot run in a transaction, hence a
migration of its own in an autocommit block, ``IF NOT EXISTS`` (a second ``herald
migrate`` may run it meanwhile); sends keep going during the build. A one-step expand.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05
"""

from alembic import op

from herald.migrations import create_indexes_concurrently, run_sql

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_indexes_concurrently(
        (
            "deliveries_provider_message_id",
            "ON deliveries (provider_message_id) WHERE provider_message_id IS NOT NULL",
        )
    )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        run_sql("SET lock_timeout = '5s'")
        run_sql("DROP INDEX CONCURRENTLY IF EXISTS deliveries_provider_message_id")
