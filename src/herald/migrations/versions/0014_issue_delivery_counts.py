"""Each issue's deliveries by status, kept by triggers: the issue page's and its live
progress's counts at any size.

The issue page and every ``progress`` event of its stream show how many of an issue's
deliveries are queued, sending, sent, failed and suppressed. Counting them grouped by
status read all of an issue's index entries: ~100 ms per event for an issue with a million
recipients, on every page view and every event of every watcher. Like
``subscriber_counts`` (0009), statement-level triggers with transition tables now record
each statement's net change per issue and status, in the same transaction, in
``issue_delivery_counts``; a reader sums the issue's rows.

The rows are changes, appended (``INSERT`` only, no upsert): concurrent workers never wait
on one another's counter rows, so no ordering of their statements can deadlock. A claim
or a batch's result adds two rows per issue (-N from one status, +N to another), so an
issue being sent has a few thousand rows per million recipients; when it is complete its
rows are folded into one per status (``compact_delivery_counts``, under the issue's row
lock). ``TRUNCATE deliveries`` empties the counts.

Backfill: one grouped pass over ``deliveries_issue_status`` (~2 s at 10M rows). The
triggers are created first (``SHARE ROW EXCLUSIVE``: workers' writes wait for the
backfill; reads do not). A one-step expand; nothing to contract later.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE issue_delivery_counts (
            issue_id uuid NOT NULL,
            status text NOT NULL,
            n bigint NOT NULL
        );
        CREATE INDEX issue_delivery_counts_issue ON issue_delivery_counts (issue_id);

        CREATE FUNCTION herald_count_issue_deliveries() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO issue_delivery_counts (issue_id, status, n)
                SELECT issue_id, status, count(*) FROM new_rows
                WHERE issue_id IS NOT NULL GROUP BY 1, 2;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO issue_delivery_counts (issue_id, status, n)
                SELECT issue_id, status, -count(*) FROM old_rows
                WHERE issue_id IS NOT NULL GROUP BY 1, 2;
            ELSE
                INSERT INTO issue_delivery_counts (issue_id, status, n)
                SELECT issue_id, status, sum(d) FROM (
                    SELECT issue_id, status, 1 AS d FROM new_rows WHERE issue_id IS NOT NULL
                    UNION ALL
                    SELECT issue_id, status, -1 AS d FROM old_rows WHERE issue_id IS NOT NULL
                ) AS changes
                GROUP BY 1, 2 HAVING sum(d) <> 0;
            END IF;
            RETURN NULL;
        END
        $$;

        CREATE FUNCTION herald_forget_issue_delivery_counts() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM issue_delivery_counts;
            RETURN NULL;
        END
        $$;

        CREATE TRIGGER deliveries_count_inserts AFTER INSERT ON deliveries
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_count_issue_deliveries();
        CREATE TRIGGER deliveries_count_updates AFTER UPDATE ON deliveries
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_count_issue_deliveries();
        CREATE TRIGGER deliveries_count_deletes AFTER DELETE ON deliveries
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_count_issue_deliveries();
        CREATE TRIGGER deliveries_count_truncates AFTER TRUNCATE ON deliveries
            FOR EACH STATEMENT EXECUTE FUNCTION herald_forget_issue_delivery_counts();

        INSERT INTO issue_delivery_counts (issue_id, status, n)
        SELECT issue_id, status, count(*) FROM deliveries
        WHERE issue_id IS NOT NULL GROUP BY 1, 2;
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        DROP TRIGGER deliveries_count_truncates ON deliveries;
        DROP TRIGGER deliveries_count_deletes ON deliveries;
        DROP TRIGGER deliveries_count_updates ON deliveries;
        DROP TRIGGER deliveries_count_inserts ON deliveries;
        DROP FUNCTION herald_forget_issue_delivery_counts();
        DROP FUNCTION herald_count_issue_deliveries();
        DROP TABLE issue_delivery_counts;
        """
    )
