"""The fan-out reads subscribers' addresses from the index alone.

Each fan-out chunk walks confirmed subscribers in id order through the partial
index ``subscriptions_confirmed (id) WHERE status = 'confirmed'`` and then fetched
every row's ``email`` from the table: ids are random, so that was one random heap
page per subscriber, ~60 % of a chunk's time at 10M subscribers (BENCHMARKS.md P2:
0.2 s of a 0.37 s chunk of 50,000; 0.01 s with the address in the index). The
index now carries ``email`` (``INCLUDE``), so a chunk is an index-only scan of
pages the visibility map marks all-visible. It replaces the old index rather than
adding one: a subscribe or confirmation still writes the same number of index
entries, each a few dozen bytes longer.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE INDEX subscriptions_confirmed_with_email ON subscriptions (id) INCLUDE (email)
            WHERE status = 'confirmed';
        DROP INDEX subscriptions_confirmed;
        ALTER INDEX subscriptions_confirmed_with_email RENAME TO subscriptions_confirmed;
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE INDEX subscriptions_confirmed_without_email ON subscriptions (id)
            WHERE status = 'confirmed';
        DROP INDEX subscriptions_confirmed;
        ALTER INDEX subscriptions_confirmed_without_email RENAME TO subscriptions_confirmed;
        """
    )
