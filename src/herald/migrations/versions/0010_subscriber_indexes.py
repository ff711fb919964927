"""The admin subscriber list's indexes, built concurrently.

* ``subscriptions_created (created_at, id)``: the list of everyone, newest or oldest
  first, paged by keyset (``(created_at, id) < (last seen)``) instead of ``OFFSET``.
* ``subscriptions_status_created (status, created_at, id)``: the same for one status tab.
* ``subscriptions_email_prefix`` / ``subscriptions_name_prefix`` (``lower(…)
  text_pattern_ops``): "starts with" searches (``LIKE 'abc%'`` whatever the collation).
* ``subscriptions_search``: a GIN index over ``herald_subscriber_trigrams(email, name)``
  (0009): "contains" searches of three characters or more look up the rows holding
  every trigram of the text, then check the substring on those rows only.

``CREATE INDEX CONCURRENTLY`` cannot run in a transaction, hence a migration of its
own in an autocommit block, each statement ``IF NOT EXISTS`` (a second ``herald
migrate`` may run it meanwhile). Subscribes keep going during the builds. A one-step
expand; nothing to contract later.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from alembic import op

from herald.migrations import create_indexes_concurrently, run_sql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEXES = (
    ("subscriptions_created", "subscriptions (created_at, id)"),
    ("subscriptions_status_created", "subscriptions (status, created_at, id)"),
    ("subscriptions_email_prefix", "subscriptions (lower(email) text_pattern_ops)"),
    ("subscriptions_name_prefix", "subscriptions (lower(name) text_pattern_ops)"),
    ("subscriptions_search", "subscriptions USING gin (herald_subscriber_trigrams(email, name))"),
)


def upgrade() -> None:
    create_indexes_concurrently(*((name, f"ON {definition}") for name, definition in INDEXES))


def downgrade() -> None:
    with op.get_context().autocommit_block():
        run_sql("SET lock_timeout = '5s'")
        for name, _ in reversed(INDEXES):
            run_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
