"""Per-day subscriber figures kept by triggers: the dashboard's charts at any size.

The dashboard shows sign-ups, confirmations and unsubscribes per day and the growth of
the confirmed and pending audiences over up to a year. Grouping a million
``subscriptions`` rows by day per page view is far over the 100 ms budget, so, like
``subscriber_counts`` (0009), statement-level triggers with transition tables add each
statement's changes to ``subscriber_daily``, in the same transaction. Days are UTC
dates. Per day:

* ``subscribed``: new rows (on their ``created_at`` day) and unsubscribed addresses
  that subscribed again (back to pending);
* ``confirmed`` / ``unsubscribed``: rows that moved into that status;
* ``deleted``: rows deleted;
* ``confirmed_net`` / ``pending_net``: the net change of the number of confirmed and
  of pending rows (whatever the cause), so that the audience on any past day is
  today's count (``subscriber_counts``) minus the net changes since.

Changes of one transaction go to one of 16 ``slot`` rows per day picked from its
transaction id (every statement of a transaction uses the same row, so two
transactions never wait on each other's rows in opposite orders); concurrent
subscribes rarely share one. A reader sums at most 16 rows a day.

Backfill: one grouped pass over ``subscriptions`` (created, confirmed and unsubscribed
days; ``updated_at`` for unsubscribes before 0009 set ``unsubscribed_at``; the net
columns as if each current confirmed row was confirmed on its ``confirmed_at`` day and
each pending row appeared on its ``created_at`` day — past confirmations of people who
since left are counted in ``confirmed`` but not in the growth curve). The triggers are
created first (``SHARE ROW EXCLUSIVE``: subscribes wait for the backfill, ~1 s at 1M
rows; reads do not). A one-step expand; nothing to contract later.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE subscriber_daily (
            day date NOT NULL,
            slot smallint NOT NULL,
            subscribed bigint NOT NULL DEFAULT 0,
            confirmed bigint NOT NULL DEFAULT 0,
            unsubscribed bigint NOT NULL DEFAULT 0,
            deleted bigint NOT NULL DEFAULT 0,
            confirmed_net bigint NOT NULL DEFAULT 0,
            pending_net bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (day, slot)
        );

        CREATE FUNCTION herald_count_subscriber_days() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            pick smallint := (txid_current() % 16)::smallint;
            today date := (now() AT TIME ZONE 'UTC')::date;
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO subscriber_daily AS d
                    (day, slot, subscribed, confirmed, unsubscribed, confirmed_net, pending_net)
                SELECT (created_at AT TIME ZONE 'UTC')::date, pick, count(*),
                       count(*) FILTER (WHERE status = 'confirmed'),
                       count(*) FILTER (WHERE status = 'unsubscribed'),
                       count(*) FILTER (WHERE status = 'confirmed'),
                       count(*) FILTER (WHERE status = 'pending_confirmation')
                FROM new_rows GROUP BY 1 ORDER BY 1
                ON CONFLICT (day, slot) DO UPDATE SET
                    subscribed = d.subscribed + EXCLUDED.subscribed,
                    confirmed = d.confirmed + EXCLUDED.confirmed,
                    unsubscribed = d.unsubscribed + EXCLUDED.unsubscribed,
                    confirmed_net = d.confirmed_net + EXCLUDED.confirmed_net,
                    pending_net = d.pending_net + EXCLUDED.pending_net;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO subscriber_daily AS d (day, slot, deleted, confirmed_net, pending_net)
                SELECT today, pick, count(*),
                       -count(*) FILTER (WHERE status = 'confirmed'),
                       -count(*) FILTER (WHERE status = 'pending_confirmation')
                FROM old_rows HAVING count(*) > 0
                ON CONFLICT (day, slot) DO UPDATE SET
                    deleted = d.deleted + EXCLUDED.deleted,
                    confirmed_net = d.confirmed_net + EXCLUDED.confirmed_net,
                    pending_net = d.pending_net + EXCLUDED.pending_net;
            ELSE
                INSERT INTO subscriber_daily AS d
                    (day, slot, subscribed, confirmed, unsubscribed, confirmed_net, pending_net)
                SELECT today, pick, f.subscribed, f.confirmed, f.unsubscribed,
                       f.confirmed_net, f.pending_net
                FROM (
                    SELECT
                        count(*) FILTER (WHERE n.status = 'pending_confirmation'
                                         AND o.status = 'unsubscribed') AS subscribed,
                        count(*) FILTER (WHERE n.status = 'confirmed'
                                         AND o.status <> 'confirmed') AS confirmed,
                        count(*) FILTER (WHERE n.status = 'unsubscribed'
                                         AND o.status <> 'unsubscribed') AS unsubscribed,
                        count(*) FILTER (WHERE n.status = 'confirmed')
                          - count(*) FILTER (WHERE o.status = 'confirmed') AS confirmed_net,
                        count(*) FILTER (WHERE n.status = 'pending_confirmation')
                          - count(*) FILTER (WHERE o.status = 'pending_confirmation')
                          AS pending_net
                    FROM old_rows AS o JOIN new_rows AS n USING (id)
                    WHERE o.status <> n.status
                ) AS f
                WHERE (f.subscribed, f.confirmed, f.unsubscribed, f.confirmed_net, f.pending_net)
                      <> (0, 0, 0, 0, 0)
                ON CONFLICT (day, slot) DO UPDATE SET
                    subscribed = d.subscribed + EXCLUDED.subscribed,
                    confirmed = d.confirmed + EXCLUDED.confirmed,
                    unsubscribed = d.unsubscribed + EXCLUDED.unsubscribed,
                    confirmed_net = d.confirmed_net + EXCLUDED.confirmed_net,
                    pending_net = d.pending_net + EXCLUDED.pending_net;
            END IF;
            RETURN NULL;
        END
        $$;

        CREATE TRIGGER subscriptions_daily_inserts AFTER INSERT ON subscriptions
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_count_subscriber_days();
        CREATE TRIGGER subscriptions_daily_updates AFTER UPDATE ON subscriptions
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_count_subscriber_days();
        CREATE TRIGGER subscriptions_daily_deletes AFTER DELETE ON subscriptions
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_count_subscriber_days();

        INSERT INTO subscriber_daily
            (day, slot, subscribed, confirmed, unsubscribed, confirmed_net, pending_net)
        SELECT day, 0, sum(subscribed), sum(confirmed), sum(unsubscribed),
               sum(confirmed_net), sum(pending_net)
        FROM (
            SELECT (created_at AT TIME ZONE 'UTC')::date AS day, 1 AS subscribed,
                   0 AS confirmed, 0 AS unsubscribed, 0 AS confirmed_net,
                   (status = 'pending_confirmation')::int AS pending_net
            FROM subscriptions
            UNION ALL
            SELECT (coalesce(confirmed_at, created_at) AT TIME ZONE 'UTC')::date, 0,
                   (confirmed_at IS NOT NULL)::int, 0, (status = 'confirmed')::int, 0
            FROM subscriptions
            WHERE confirmed_at IS NOT NULL OR status = 'confirmed'
            UNION ALL
            SELECT (coalesce(unsubscribed_at, updated_at) AT TIME ZONE 'UTC')::date, 0, 0, 1,
                   0, 0
            FROM subscriptions
            WHERE status = 'unsubscribed'
        ) AS changes
        GROUP BY day;
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        DROP TRIGGER subscriptions_daily_deletes ON subscriptions;
        DROP TRIGGER subscriptions_daily_updates ON subscriptions;
        DROP TRIGGER subscriptions_daily_inserts ON subscriptions;
        DROP FUNCTION herald_count_subscriber_days();
        DROP TABLE subscriber_daily;
        """
    )
