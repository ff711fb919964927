"""List member counts kept by triggers: the admin's lists page at any size.

The lists page shows each list's members by status. Counting them per view reads every
membership of the list: measured with EXPLAIN ANALYZE at 1M members of one list on the
2-core test machine, 183 ms (parallel sequential scan) and, with an extra ``(list_id,
status)`` index, vacuumed, still 83 ms (parallel index-only scan), growing with the list.
So, like ``subscriber_counts`` (0009), statement-level triggers with transition tables
add each statement's net change per list and status to ``list_member_counts`` (one
upsert per statement: an import of a million members costs one); the lists page then
reads them in 0.04 ms for 21 lists. Changes of one transaction go to one of 16 ``slot``
rows per list and status, picked from its transaction id (every statement of a transaction uses the same row, so
two transactions never lock two slots in opposite orders); a reader sums at most 48 rows
a list. Upserts lock their rows in (list, status) order.

A list's counts go with it (``ON DELETE CASCADE``); its memberships, deleted by their own
cascade in the same statement, are not counted then (the trigger joins ``lists``).

Locks: the triggers are created first (``SHARE ROW EXCLUSIVE`` on ``list_memberships``:
membership writes wait, reads do not), then the counts are taken from the memberships
that exist (0018's backfill job adds the rest through the triggers). A one-step expand;
nothing to contract later. Release N-1 writes memberships only through 0018's trigger,
which these triggers count as well.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE list_member_counts (
            list_id uuid NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
            status text NOT NULL,
            slot smallint NOT NULL,
            n bigint NOT NULL,
            PRIMARY KEY (list_id, status, slot)
        );

        CREATE FUNCTION herald_count_list_members() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            pick smallint := (txid_current() % 16)::smallint;
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO list_member_counts AS c (list_id, status, slot, n)
                SELECT r.list_id, r.status, pick, count(*)
                FROM new_rows AS r JOIN lists AS l ON l.id = r.list_id
                GROUP BY r.list_id, r.status ORDER BY 1, 2
                ON CONFLICT (list_id, status, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO list_member_counts AS c (list_id, status, slot, n)
                SELECT r.list_id, r.status, pick, -count(*)
                FROM old_rows AS r JOIN lists AS l ON l.id = r.list_id
                GROUP BY r.list_id, r.status ORDER BY 1, 2
                ON CONFLICT (list_id, status, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
            ELSE
                INSERT INTO list_member_counts AS c (list_id, status, slot, n)
                SELECT changes.list_id, changes.status, pick, sum(changes.d)
                FROM (
                    SELECT list_id, status, 1 AS d FROM new_rows
                    UNION ALL
                    SELECT list_id, status, -1 AS d FROM old_rows
                ) AS changes
                JOIN lists AS l ON l.id = changes.list_id
                GROUP BY changes.list_id, changes.status HAVING sum(changes.d) <> 0
                ORDER BY 1, 2
                ON CONFLICT (list_id, status, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
            END IF;
            RETURN NULL;
        END
        $$;

        CREATE TRIGGER list_memberships_count_inserts AFTER INSERT ON list_memberships
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_count_list_members();
        CREATE TRIGGER list_memberships_count_updates AFTER UPDATE ON list_memberships
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_count_list_members();
        CREATE TRIGGER list_memberships_count_deletes AFTER DELETE ON list_memberships
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_count_list_members();

        INSERT INTO list_member_counts (list_id, status, slot, n)
        SELECT list_id, status, 0, count(*) FROM list_memberships GROUP BY list_id, status;
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        DROP TRIGGER list_memberships_count_deletes ON list_memberships;
        DROP TRIGGER list_memberships_count_updates ON list_memberships;
        DROP TRIGGER list_memberships_count_inserts ON list_memberships;
        DROP FUNCTION herald_count_list_members();
        DROP TABLE list_member_counts;
        """
    )
