-- Newsletter issues and their fan-out.

-- name: insert_issue
INSERT INTO newsletter_issues (id, title, markdown, html_content, text_content, created_by,
                               preheader)
VALUES ($1::uuid, $2::text, $3::text, $4::text, $5::text, $6::uuid, $7::text)

-- name: update_issue
UPDATE newsletter_issues
SET title = $2::text, markdown = $3::text, html_content = $4::text, text_content = $5::text,
    preheader = $6::text, updated_at = now()
WHERE id = $1::uuid AND status IN ('draft', 'scheduled')
RETURNING id

-- name: get_issue
-- With its target: the same columns as list_issues (change the two together; the lists
-- of an issue without issue_lists rows are the default list, as in fan_out_chunk).
SELECT i.id, i.title, i.markdown, i.html_content, i.text_content, i.status, i.scheduled_at,
       i.published_at, i.completed_at, i.recipients, i.created_at, i.updated_at,
       i.fanout_done_at, i.fanout_error, i.fanout_attempts, i.fanout_retry_at, i.publish_error,
       i.publish_attempts, i.publish_retry_at, i.preheader, i.public, i.archive_slug,
       EXISTS (SELECT 1 FROM issue_tracking AS k WHERE k.issue_id = i.id) AS tracking,
       t.list_slugs, t.list_names, i.segment_id, g.name AS segment_name
FROM newsletter_issues AS i
CROSS JOIN LATERAL (
    -- The chosen lists; none chosen: the default list (an issue of the previous release).
    SELECT array_agg(l.slug ORDER BY l.name, l.slug) AS list_slugs,
           array_agg(l.name ORDER BY l.name, l.slug) AS list_names
    FROM lists AS l
    WHERE l.id IN (SELECT il.list_id FROM issue_lists AS il WHERE il.issue_id = i.id)
       OR (l.slug = 'default'
           AND NOT EXISTS (SELECT 1 FROM issue_lists AS il WHERE il.issue_id = i.id))
) AS t
LEFT JOIN segments AS g ON g.id = i.segment_id
WHERE i.id = $1::uuid

-- name: list_issues
-- A page of the issue list, newest first, after the keyset cursor ($2, $3) when given;
-- the columns of get_issue.
SELECT i.id, i.title, i.markdown, i.html_content, i.text_content, i.status, i.scheduled_at,
       i.published_at, i.completed_at, i.recipients, i.created_at, i.updated_at,
       i.fanout_done_at, i.fanout_error, i.fanout_attempts, i.fanout_retry_at, i.publish_error,
       i.publish_attempts, i.publish_retry_at, i.preheader, i.public, i.archive_slug,
       EXISTS (SELECT 1 FROM issue_tracking AS k WHERE k.issue_id = i.id) AS tracking,
       t.list_slugs, t.list_names, i.segment_id, g.name AS segment_name
FROM newsletter_issues AS i
CROSS JOIN LATERAL (
    SELECT array_agg(l.slug ORDER BY l.name, l.slug) AS list_slugs,
           array_agg(l.name ORDER BY l.name, l.slug) AS list_names
    FROM lists AS l
    WHERE l.id IN (SELECT il.list_id FROM issue_lists AS il WHERE il.issue_id = i.id)
       OR (l.slug = 'default'
           AND NOT EXISTS (SELECT 1 FROM issue_lists AS il WHERE il.issue_id = i.id))
) AS t
LEFT JOIN segments AS g ON g.id = i.segment_id
WHERE $2::timestamptz IS NULL OR (i.created_at, i.id) < ($2::timestamptz, $3::uuid)
ORDER BY i.created_at DESC, i.id DESC
LIMIT $1::integer

-- name: unsent_counts
-- The deliveries of a page of issues that are not 'sent', by issue and status, from the
-- counts the deliveries_count_* triggers keep (migration 0014); sent = recipients minus
-- these.
SELECT issue_id, status, sum(n)::bigint AS n
FROM issue_delivery_counts
WHERE issue_id = ANY($1::uuid[]) AND status <> 'sent'
GROUP BY issue_id, status
HAVING sum(n) <> 0

-- name: failure_reasons
-- The most common reasons among an issue's last queued $3 failed deliveries (highest ids):
-- one backward range of deliveries_issue_status_id (row comparisons, as in
-- recent_deliveries), so a page view reads at most $3 rows however many failed (reading all
-- 20,000 failures of a 1M issue took 40 ms warm, 440 ms cold).
SELECT coalesce(latest.last_error, 'no error recorded') AS reason, count(*)::bigint AS n
FROM (
    SELECT x.last_error
    FROM deliveries AS x
    WHERE x.issue_id IS NOT NULL
      AND (x.issue_id, x.status, x.id) > ($1::uuid, 'failed', 0::bigint)
      AND (x.issue_id, x.status, x.id) < ($1::uuid, 'failed', 9223372036854775807)
    ORDER BY x.issue_id DESC, x.status DESC, x.id DESC
    LIMIT $3::integer
) AS latest
GROUP BY 1
ORDER BY n DESC, reason
LIMIT $2::integer

-- name: start_publishing
-- Only a draft or scheduled issue can start; the row lock makes concurrent
-- publishers of one issue wait, then find it already publishing. The deliveries are
-- queued afterwards by the workers (fan_out_chunk), so this returns at once.
UPDATE newsletter_issues
SET status = 'publishing', published_at = now(), scheduled_at = NULL, updated_at = now(),
    recipients = 0, fanout_cursor = NULL, fanout_done_at = NULL, fanout_error = NULL,
    fanout_attempts = 0, fanout_retry_at = NULL, publish_error = NULL, publish_attempts = 0,
    publish_retry_at = NULL, traceparent = $2::text
WHERE id = $1::uuid AND status IN ('draft', 'scheduled')
RETURNING id

-- name: wake_workers
SELECT pg_notify('herald_deliveries', '')

-- name: claim_fanout
-- The oldest issue whose deliveries are still being queued and not backing off,
-- locked for one chunk (SKIP LOCKED: one worker per issue at a time). traceparent:
-- where the publish was traced (the fan-out span links to it).
SELECT id, fanout_cursor, traceparent
FROM newsletter_issues
WHERE status = 'publishing' AND fanout_done_at IS NULL
  AND (fanout_retry_at IS NULL OR fanout_retry_at <= now())
ORDER BY published_at
LIMIT 1
FOR UPDATE SKIP LOCKED

-- name: fan_out_chunk
-- Queue the next $3 recipients after the cursor $2 and move the cursor, in one statement:
-- the rows and the cursor commit together, so a crash resumes after the last committed
-- chunk and nobody is queued twice (the unique (subscriber_id, issue_id) index would
-- refuse it anyway). Recipients: subscribers whose subscription is confirmed and who are
-- confirmed members of at least one of the issue's lists (issue_lists; none: the default
-- list). Per list, one range of list_memberships_confirmed (list_id, subscriber_id) after
-- the cursor, joined to the confirmed subscription, stopping after $3 rows; the lists'
-- ranges are merged and deduplicated, and the first $3 ids are the chunk (each of them is
-- among its own lists' first $3). Fewer than $3: every list is exhausted, the fan-out is
-- done. Subscriber-id order fills the unique index left to right (BENCHMARKS.md P2).
-- The cursor is compared with a coalesce, not "IS NULL OR", so that a generic plan keeps
-- the range as an index bound; on both sides of the join, since Postgres does not carry an
-- inequality across "s.id = m.subscriber_id": without s.id's own bound the merge join read
-- subscriptions_confirmed from its first row for every chunk (chunk k of a 1M fan-out read
-- k x 50,000 entries it skipped; P2's fan-out median 11.6 -> 9.7 s with the bound). An
-- issue with a segment runs this with the segment's condition over s in place of the
-- slot (segments/compiler.py, parameters from $5).
WITH targets AS (
    SELECT il.list_id FROM issue_lists AS il WHERE il.issue_id = $1::uuid
    UNION ALL
    SELECT l.id FROM lists AS l
    WHERE l.slug = 'default'
      AND NOT EXISTS (SELECT 1 FROM issue_lists AS il WHERE il.issue_id = $1::uuid)
), candidates AS (
    SELECT c.id, c.email
    FROM targets AS t
    CROSS JOIN LATERAL (
        SELECT s.id, s.email
        FROM list_memberships AS m
        JOIN subscriptions AS s ON s.id = m.subscriber_id
        WHERE m.list_id = t.list_id AND m.status = 'confirmed'
          AND m.subscriber_id > coalesce($2::uuid, '00000000-0000-0000-0000-000000000000')
          AND s.id > coalesce($2::uuid, '00000000-0000-0000-0000-000000000000')
          AND s.status = 'confirmed'
          AND /* segment */ TRUE
        ORDER BY m.subscriber_id
        LIMIT $3::integer
    ) AS c
), chunk AS (
    SELECT DISTINCT ON (c.id) c.id, c.email
    FROM candidates AS c
    ORDER BY c.id
    LIMIT $3::integer
), queued AS (
    INSERT INTO deliveries (kind, recipient, subscriber_id, issue_id, max_attempts)
    SELECT 'issue', c.email, c.id, $1::uuid, $4::integer
    FROM chunk AS c
    ORDER BY c.id
), progress AS (
    SELECT count(*)::integer AS n, (SELECT id FROM chunk ORDER BY id DESC LIMIT 1) AS last_id
    FROM chunk
)
UPDATE newsletter_issues AS i
SET fanout_cursor = coalesce(p.last_id, i.fanout_cursor),
    recipients = coalesce(i.recipients, 0) + p.n,
    fanout_done_at = CASE WHEN p.n < $3::integer THEN now() END,
    fanout_error = NULL,
    fanout_attempts = 0,
    fanout_retry_at = NULL,
    updated_at = now()
FROM progress AS p
WHERE i.id = $1::uuid
RETURNING p.n AS queued, i.recipients, i.fanout_done_at IS NOT NULL AS done

-- name: fan_out_chunk_one_list
-- fan_out_chunk for an issue with one list (issue_lists holds one row, or none: the
-- default list), the common case: its range of list_memberships_confirmed merge-joined
-- with subscriptions_confirmed comes out in subscriber order and without duplicates, so
-- the chunk needs no merge, no DISTINCT and no sort (BENCHMARKS.md P2). Same parameters,
-- the segment's from $5.
WITH chunk AS (
    SELECT s.id, s.email
    FROM list_memberships AS m
    JOIN subscriptions AS s ON s.id = m.subscriber_id
    WHERE m.list_id = coalesce(
              (SELECT il.list_id FROM issue_lists AS il WHERE il.issue_id = $1::uuid LIMIT 1),
              (SELECT l.id FROM lists AS l WHERE l.slug = 'default')
          )
      AND m.status = 'confirmed'
      AND m.subscriber_id > coalesce($2::uuid, '00000000-0000-0000-0000-000000000000')
      AND s.id > coalesce($2::uuid, '00000000-0000-0000-0000-000000000000')
      AND s.status = 'confirmed'
      AND /* segment */ TRUE
    ORDER BY m.subscriber_id
    LIMIT $3::integer
), queued AS (
    INSERT INTO deliveries (kind, recipient, subscriber_id, issue_id, max_attempts)
    SELECT 'issue', c.email, c.id, $1::uuid, $4::integer
    FROM chunk AS c
), progress AS (
    SELECT count(*)::integer AS n, (SELECT id FROM chunk ORDER BY id DESC LIMIT 1) AS last_id
    FROM chunk
)
UPDATE newsletter_issues AS i
SET fanout_cursor = coalesce(p.last_id, i.fanout_cursor),
    recipients = coalesce(i.recipients, 0) + p.n,
    fanout_done_at = CASE WHEN p.n < $3::integer THEN now() END,
    fanout_error = NULL,
    fanout_attempts = 0,
    fanout_retry_at = NULL,
    updated_at = now()
FROM progress AS p
WHERE i.id = $1::uuid
RETURNING p.n AS queued, i.recipients, i.fanout_done_at IS NOT NULL AS done

-- name: fanout_failed
-- Backoff: $3 seconds doubled per failure in a row, at most $4.
UPDATE newsletter_issues
SET fanout_error = $2::text,
    fanout_attempts = fanout_attempts + 1,
    fanout_retry_at = now() + make_interval(
        secs => least($4::float8, $3::float8 * power(2, least(fanout_attempts, 30)))),
    updated_at = now()
WHERE id = $1::uuid AND status = 'publishing' AND fanout_done_at IS NULL
RETURNING fanout_attempts

-- name: schedule_issue
UPDATE newsletter_issues
SET status = 'scheduled', scheduled_at = $2::timestamptz, updated_at = now()
WHERE id = $1::uuid AND status IN ('draft', 'scheduled')
RETURNING id

-- name: unschedule_issue
UPDATE newsletter_issues
SET status = 'draft', scheduled_at = NULL, updated_at = now()
WHERE id = $1::uuid AND status = 'scheduled'
RETURNING id

-- name: due_issue
-- One scheduled issue whose time has come (and whose last failed try has backed off),
-- locked for its own publishing transaction.
SELECT id
FROM newsletter_issues
WHERE status = 'scheduled' AND scheduled_at <= now()
  AND (publish_retry_at IS NULL OR publish_retry_at <= now())
ORDER BY scheduled_at
LIMIT 1
FOR UPDATE SKIP LOCKED

-- name: publish_failed
-- A scheduled issue that could not be published: retried with backoff ($3 seconds
-- doubled per failure in a row, at most $4) while the failure may pass; $5 = true
-- returns it to draft (its content cannot be sent as it is), keeping the error.
UPDATE newsletter_issues
SET publish_error = $2::text,
    publish_attempts = publish_attempts + 1,
    publish_retry_at = CASE WHEN $5::boolean THEN NULL ELSE now() + make_interval(
        secs => least($4::float8, $3::float8 * power(2, least(publish_attempts, 30)))) END,
    status = CASE WHEN $5::boolean THEN 'draft' ELSE status END,
    scheduled_at = CASE WHEN $5::boolean THEN NULL ELSE scheduled_at END,
    updated_at = now()
WHERE id = $1::uuid AND status = 'scheduled'
RETURNING publish_attempts

-- name: delivery_counts
-- An issue's deliveries by status: the sum of the changes the deliveries_count_* triggers
-- append (migration 0014), not a count of a million deliveries per progress event.
SELECT status, sum(n)::bigint AS n
FROM issue_delivery_counts
WHERE issue_id = $1::uuid
GROUP BY status
HAVING sum(n) <> 0

-- name: compact_delivery_counts
-- Fold an issue's appended changes into one row per status (called once it is complete,
-- under its row lock). The DELETE removes only the rows its snapshot sees and the INSERT
-- adds their sums, so changes appended meanwhile by other transactions stay counted.
WITH folded AS (
    DELETE FROM issue_delivery_counts
    WHERE issue_id = $1::uuid
    RETURNING status, n
)
INSERT INTO issue_delivery_counts (issue_id, status, n)
SELECT $1::uuid, status, sum(n)
FROM folded
GROUP BY status
HAVING sum(n) <> 0

-- name: lock_publishing_issues
-- Taken before complete_issues, in its own statement: a retry_failed that reopened an
-- issue and queued rows has then committed, and complete_issues' fresh snapshot sees
-- them (one UPDATE would re-check a waiting row with its old snapshot's subquery).
SELECT id
FROM newsletter_issues
WHERE id = ANY($1::uuid[]) AND status = 'publishing' AND fanout_done_at IS NOT NULL
ORDER BY id
FOR UPDATE

-- name: complete_issues
-- An issue is sent when all its deliveries are queued and none is waiting or in flight.
UPDATE newsletter_issues AS i
SET status = 'sent', completed_at = now(), updated_at = now()
WHERE i.id = ANY($1::uuid[])
  AND i.status = 'publishing'
  AND i.fanout_done_at IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM deliveries AS d
      WHERE d.issue_id = i.id AND d.status IN ('queued', 'sending')
  )
RETURNING i.id

-- name: has_pending_deliveries
-- One probe of deliveries_issue_status_id per status. complete_issues runs only
-- for issues without pending rows: its NOT EXISTS was planned as a merge anti-join over
-- the whole index, which at 1M deliveries made it the hottest statement (BENCHMARKS.md P2).
SELECT EXISTS (
    SELECT 1 FROM deliveries
    WHERE issue_id = $1::uuid AND status IN ('queued', 'sending')
) AS pending

-- name: publishing_issues
SELECT id FROM newsletter_issues WHERE status = 'publishing' AND fanout_done_at IS NOT NULL

-- name: reopen_for_retry
-- First step of retry_failed, taking the issue's row lock before any delivery moves,
-- so that a racing complete_issues either finishes first (and the issue is reopened
-- here) or waits and then sees the queued rows.
UPDATE newsletter_issues AS i
SET status = 'publishing', completed_at = NULL, updated_at = now()
WHERE i.id = $1::uuid AND i.status IN ('publishing', 'sent')
  AND EXISTS (SELECT 1 FROM deliveries AS d WHERE d.issue_id = i.id AND d.status = 'failed')
RETURNING i.id

-- name: retry_failed
WITH retried AS (
    UPDATE deliveries
    SET status = 'queued', attempts = 0, available_at = now(), last_error = NULL,
        lease_token = NULL, leased_by = NULL, updated_at = now()
    WHERE issue_id = $1::uuid AND status = 'failed'
    RETURNING id
)
SELECT (SELECT count(*) FROM retried) AS retried, pg_notify('herald_deliveries', '') AS woke

-- name: issues_for_rendering
SELECT id, title, html_content, text_content, preheader
FROM newsletter_issues
WHERE id = ANY($1::uuid[])

-- name: subscribers_for_rendering
SELECT id, email, name, status
FROM subscriptions
WHERE id = ANY($1::uuid[])

-- name: subscribers_with_attributes
-- For an issue whose bodies read subscriber.attributes (only then: issues/delivery.py).
SELECT id, email, name, status, attributes::text AS attributes
FROM subscriptions
WHERE id = ANY($1::uuid[])

-- name: notify_progress
SELECT pg_notify('herald_progress', $1::text)

-- name: subscriber_history
SELECT d.id, d.kind, d.status, d.attempts, d.last_error, d.created_at, d.sent_at,
       d.updated_at, i.id AS issue_id, i.title AS issue_title
FROM deliveries AS d
LEFT JOIN newsletter_issues AS i ON i.id = d.issue_id
WHERE d.subscriber_id = $1::uuid
ORDER BY d.created_at DESC, d.id DESC
LIMIT $2::integer

-- name: recent_deliveries
-- One page of an issue's recipients whose status is one of $2 (one, or all of them), newest
-- delivery first, keyset on id: $4 is the last id of the previous page (no OFFSET). Per
-- status, one backward range of deliveries_issue_status_id (migration 0013) that stops
-- after a page; the pages are merged. The bounds are row comparisons on the index's three
-- columns, with no equality on issue_id or status, so that no other index can give the
-- order: with "issue_id = $1 AND status = …" the planner walked the primary key backwards
-- filtering rows, which reads the whole table for a status with no rows (queued, after a
-- send) and every later issue's rows for an old issue.
SELECT d.id, d.recipient, d.subscriber_id, d.status, d.attempts, d.last_error, d.sent_at,
       d.updated_at
FROM unnest($2::text[]) AS s(status)
CROSS JOIN LATERAL (
    SELECT x.id, x.recipient, x.subscriber_id, x.status, x.attempts, x.last_error, x.sent_at,
           x.updated_at
    FROM deliveries AS x
    WHERE x.issue_id IS NOT NULL
      AND (x.issue_id, x.status, x.id) > ($1::uuid, s.status, 0::bigint)
      AND (x.issue_id, x.status, x.id)
          < ($1::uuid, s.status, coalesce($4::bigint, 9223372036854775807))
    ORDER BY x.issue_id DESC, x.status DESC, x.id DESC
    LIMIT $3::integer
) AS d
ORDER BY d.id DESC
LIMIT $3::integer

-- name: issue_gauges
SELECT status, count(*)::bigint AS issues, COALESCE(sum(recipients), 0)::bigint AS recipients
FROM newsletter_issues
GROUP BY status

-- name: publishing_delivery_counts
-- The deliveries of the issues being sent, by delivery status (the gauge of the send in
-- progress; finished issues' outcomes are counted by the outcome counters), from the
-- counts the deliveries_count_* triggers keep (migration 0014).
SELECT status, sum(n)::bigint AS n
FROM issue_delivery_counts
WHERE issue_id IN (SELECT id FROM newsletter_issues WHERE status = 'publishing')
GROUP BY status
HAVING sum(n) <> 0

-- name: web_copy
-- A "view in browser" link's issue and reader in one round trip: nothing unless the
-- issue went out (publishing or sent) and the subscriber still exists (in any status).
SELECT i.title, i.html_content, i.text_content, i.preheader, s.email, s.name,
       s.attributes::text AS attributes
FROM newsletter_issues AS i
JOIN subscriptions AS s ON s.id = $2::uuid
WHERE i.id = $1::uuid AND i.status IN ('publishing', 'sent')

-- name: feedback_counts
-- Per issue of $1, the recipients each kind of provider event was reported for
-- (email_events, migration 0027): an address that bounced twice counts once. Without $2,
-- 'delivered' and 'deferred' are left out: the list pages need the failures only, which
-- stay few, where an issue of 1M readers has 1M delivered events.
SELECT issue_id, kind, count(DISTINCT coalesce(delivery_id, -id))::bigint AS n
FROM email_events
WHERE issue_id = ANY($1::uuid[])
  AND ($2::boolean OR kind NOT IN ('delivered', 'deferred'))
GROUP BY issue_id, kind
