"""A trigram index on the suppression list's kept addresses, built concurrently: search.

The suppression list's search ("the rows whose address contains this text") walked the
list newest first and kept the matches: 0.2 ms for a common text, but 0.7 to 1 s for a rare
one at 1M suppressions (measured), every row's address read. ``suppressions_email_trigrams``
holds the distinct three-character substrings of each kept address (``herald_trigrams``,
migration 0009: the embedded Postgres ships no ``pg_trgm``), so a rare text finds its
few rows through the index; the walk stays the first try for a common one (see
``suppressions/queries.sql``). Erased rows keep no address and are left out (partial).

``CREATE INDEX CONCURRENTLY`` cannot run in a transaction, hence a migration of its own
in an autocommit block, ``IF NOT EXISTS`` (a second ``herald migrate`` may run it
meanwhile). A one-step expand; nothing to contract later.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05
"""

from alembic import op

from herald.migrations import create_indexes_concurrently, run_sql

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_indexes_concurrently(
        (
            "suppressions_email_trigrams",
            "ON suppressions USING gin (herald_trigrams(lower(email))) WHERE email IS NOT NULL",
        )
    )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        run_sql("SET lock_timeout = '5s'")
        run_sql("DROP INDEX CONCURRENTLY IF EXISTS suppressions_email_trigrams")
