"""A GIN index on subscribers' attributes, built concurrently: segments' equality filters.

A segment's equality on an attribute (``{"attribute": "city", "op": "eq", …}``) compiles
to ``s.attributes @> '{"city": "Paris"}'`` besides its typed comparison
(``segments/compiler.py``), which ``subscriptions_attributes`` (``jsonb_path_ops``: only
``@>``, a third of the size of the default operator class) answers. Measured with
``bench/segments.py`` at 1M subscribers on the 2-core test machine (EXPLAIN ANALYZE of a
segment's count): a city held by 0.2 % of them 497 → 19 ms, that city among the confirmed
members of the default list 433 → 23 ms, a city of 17 % 543 → 291 ms, a boolean of 5 %
482 → 209 ms; comparisons other than equality are unchanged (a sequential scan). The
index is 7.7 MB at 1M (most attributes are small); inserting 100,000 subscribers with
attributes took 31 s with it and 36 s without (within the noise of that busy machine).

``CREATE INDEX CONCURRENTLY`` cannot run in a transaction, hence a migration of its
own in an autocommit block, ``IF NOT EXISTS`` (a second ``herald migrate`` may run it
meanwhile). Sign-ups keep going during the build. A one-step expand; nothing to
contract later.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""

from alembic import op

from herald.migrations import create_indexes_concurrently, run_sql

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_indexes_concurrently(
        ("subscriptions_attributes", "ON subscriptions USING gin (attributes jsonb_path_ops)")
    )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        run_sql("SET lock_timeout = '5s'")
        run_sql("DROP INDEX CONCURRENTLY IF EXISTS subscriptions_attributes")
