"""The substring search's trigram functions as PL/pgSQL loops: 5x cheaper per row.

``herald_subscriber_trigrams`` (the expression of the ``subscriptions_search`` GIN
index, 0009/0010) and ``herald_trigrams`` (the query side, and 0024's index on
suppressions) were SQL functions running a ``generate_series`` subquery with
``array_agg(DISTINCT …)`` per call. Every inserted subscriber pays for them: an import
of 5,000 rows spent 70 % of its Postgres time there (``bench/import.py``, I1). A
PL/pgSQL loop over the characters gives the same substrings for 38 µs a row instead of
200 µs (20,000 rows, busy machine).

Same trigrams, same index: the loops keep duplicates, which GIN removes when it
extracts an array's keys, and ``@>`` ignores — the set of keys of every row is
unchanged, so the indexes stay valid without a rebuild
(``tests/integration/test_trigram_functions.py`` compares both versions as sets, on
ASCII, non-ASCII and short strings). Only built-in functions are called, so no
``search_path`` setting is needed for index builds and ``VACUUM``.

``CREATE OR REPLACE`` with the same signatures: the previous release calls them the
same way and gets the same answers. Nothing to contract.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE OR REPLACE FUNCTION herald_trigrams(t text) RETURNS text[]
        LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
        DECLARE
            grams text[] := '{}';
        BEGIN
            FOR i IN 1 .. length(t) - 2 LOOP
                grams := grams || substr(t, i, 3);
            END LOOP;
            RETURN grams;
        END
        $$;

        CREATE OR REPLACE FUNCTION herald_subscriber_trigrams(email text, name text)
        RETURNS text[]
        LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
        DECLARE
            e text := lower(email);
            n text := lower(name);
            grams text[] := '{}';
        BEGIN
            FOR i IN 1 .. length(e) - 2 LOOP
                grams := grams || substr(e, i, 3);
            END LOOP;
            FOR i IN 1 .. length(n) - 2 LOOP
                grams := grams || substr(n, i, 3);
            END LOOP;
            RETURN grams;
        END
        $$;
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE OR REPLACE FUNCTION herald_trigrams(t text) RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
            SELECT coalesce(array_agg(DISTINCT substr(t, i, 3)), '{}')
            FROM generate_series(1, length(t) - 2) AS i
        $$;

        CREATE OR REPLACE FUNCTION herald_subscriber_trigrams(email text, name text)
        RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        SET search_path FROM CURRENT AS $$
            SELECT herald_trigrams(lower(email)) || herald_trigrams(lower(name))
        $$;
        """
    )
