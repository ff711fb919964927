-- name: backfill_lock
-- One check at a time across every worker that starts (transaction-scoped).
SELECT pg_advisory_xact_lock(hashtext('herald.subscriptions.default_list_backfill'))

-- name: backfill_state
-- Where the backfill stands: finished (its row in ``backfills``, migration 0025), a job
-- of its kind ($1) queued or running, and the estimate of its work (the table's planner
-- count: no scan).
SELECT EXISTS (SELECT 1 FROM backfills WHERE name = 'default_list') AS finished,
       EXISTS (
           SELECT 1 FROM jobs WHERE kind = $1::text AND status IN ('queued', 'running')
       ) AS open,
       (SELECT greatest(reltuples, 0)::bigint FROM pg_class
        WHERE oid = 'subscriptions'::regclass) AS estimate

-- name: backfill_missing
-- Whether some subscription from before migration 0018 (created no later than the
-- default list) is not in the default list. Quick when one is; walks them all when none
-- is, which is why a finished backfill is remembered (backfill_finished).
SELECT EXISTS (
    SELECT 1
    FROM subscriptions AS s
    JOIN lists AS l ON l.slug = 'default'
    WHERE s.created_at <= l.created_at
      AND NOT EXISTS (
          SELECT 1 FROM list_memberships AS m
          WHERE m.list_id = l.id AND m.subscriber_id = s.id
      )
)

-- name: backfill_finished
-- Every subscription from before migration 0018 is in the default list: for good (they
-- are all older than the migration), so no worker looks again.
INSERT INTO backfills (name) VALUES ('default_list')
ON CONFLICT (name) DO NOTHING

-- name: backfill_batch
-- One step: the next $2 subscriptions by primary key after $1, locked FOR SHARE (a
-- concurrent status change by the previous release is waited for, and the row read as
-- it left it; one that comes later waits for this step and then finds the membership,
-- which 0018's trigger updates). Those from before migration 0018 join the default list
-- with their own status and dates — every reader of that time was its reader, also one
-- an import or the API has since added to another list —; one that is in it already
-- (the trigger's doing, a sign-up's, or a reader's own choice, say unsubscribed) is left
-- as it is (ON CONFLICT, which also covers a row the trigger wrote after this
-- statement's snapshot).
WITH batch AS (
    SELECT id, status, created_at, confirmed_at, unsubscribed_at
    FROM subscriptions
    WHERE id > $1::uuid
    ORDER BY id
    LIMIT $2::integer
    FOR SHARE
), added AS (
    INSERT INTO list_memberships (
        list_id, subscriber_id, status, source, created_at, confirmed_at, unsubscribed_at
    )
    SELECT l.id, b.id, b.status, 'backfill', b.created_at, b.confirmed_at, b.unsubscribed_at
    FROM batch AS b
    JOIN lists AS l ON l.slug = 'default'
    WHERE b.created_at <= l.created_at
    ON CONFLICT (list_id, subscriber_id) DO NOTHING
    RETURNING subscriber_id
)
SELECT (SELECT count(*) FROM batch) AS seen,
       (SELECT count(*) FROM added) AS added,
       (SELECT id FROM batch ORDER BY id DESC LIMIT 1) AS last
