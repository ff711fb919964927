-- The delivery queue. A row is claimable when its status is 'queued' or
-- 'sending' and available_at has passed; for a 'sending' row available_at is
-- the lease expiry, so rows held by a crashed worker come back by themselves.
-- Every write of a worker is fenced by the lease token it got when claiming.

-- name: enqueue
-- traceparent: the span that enqueued the message (NULL when tracing is off).
INSERT INTO deliveries (kind, recipient, subscriber_id, message, max_attempts, traceparent)
VALUES ($1::text, $2::text, $3::uuid, $4::jsonb, $5::integer, $6::text)
RETURNING id

-- name: claim
-- traceparent (only when $5 says tracing is on): where the row's trace starts, its own
-- (the request that enqueued it) or its issue's (fan-out rows carry none): the
-- batch's spans link to it. Off, the issue is not looked up.
WITH due AS (
    SELECT id, status AS was
    FROM deliveries
    WHERE status IN ('queued', 'sending') AND available_at <= now()
    ORDER BY available_at
    LIMIT $1::integer
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries AS d
SET status = 'sending',
    attempts = d.attempts + 1,
    available_at = now() + make_interval(secs => $2::float8),
    lease_token = $3::uuid,
    leased_by = $4::text,
    updated_at = now()
FROM due
WHERE d.id = due.id
RETURNING d.id, d.kind, d.recipient, d.subscriber_id, d.issue_id, d.message::text AS message,
          d.attempts, d.max_attempts, due.was = 'sending' AS rescued,
          CASE WHEN $5::boolean THEN coalesce(
              d.traceparent,
              (SELECT i.traceparent FROM newsletter_issues AS i WHERE i.id = d.issue_id)
          ) END AS traceparent

-- name: renew_lease
-- Heartbeat of a live worker: push the lease of the rows it still holds forward, so a
-- batch that takes longer than the lease (a slow provider) is not claimed again. The
-- ids returned are the rows it still holds; any other was lost (the lease had run out).
UPDATE deliveries
SET available_at = now() + make_interval(secs => $3::float8)
WHERE id = ANY($1::bigint[]) AND lease_token = $2::uuid AND status = 'sending'
RETURNING id

-- name: mark_sent
UPDATE deliveries AS d
SET status = 'sent',
    provider_message_id = r.message_id,
    sent_at = now(),
    updated_at = now(),
    last_error = NULL,
    lease_token = NULL
FROM unnest($1::bigint[], $2::text[]) AS r(id, message_id)
WHERE d.id = r.id AND d.lease_token = $3::uuid AND d.status = 'sending'

-- name: schedule_retry
UPDATE deliveries AS d
SET status = 'queued',
    available_at = now() + make_interval(secs => r.delay),
    last_error = r.error,
    lease_token = NULL,
    leased_by = NULL,
    updated_at = now()
FROM unnest($1::bigint[], $2::float8[], $3::text[]) AS r(id, delay, error)
WHERE d.id = r.id AND d.lease_token = $4::uuid AND d.status = 'sending'

-- name: mark_failed
UPDATE deliveries AS d
SET status = 'failed',
    last_error = r.error,
    lease_token = NULL,
    updated_at = now()
FROM unnest($1::bigint[], $2::text[]) AS r(id, error)
WHERE d.id = r.id AND d.lease_token = $3::uuid AND d.status = 'sending'

-- name: mark_suppressed
-- Not sent on purpose (the subscriber left between enqueue and send).
UPDATE deliveries AS d
SET status = 'suppressed',
    last_error = r.reason,
    lease_token = NULL,
    updated_at = now()
FROM unnest($1::bigint[], $2::text[]) AS r(id, reason)
WHERE d.id = r.id AND d.lease_token = $3::uuid AND d.status = 'sending'

-- name: take_tokens
-- Global token bucket: refill by elapsed time (capped at one second's worth), take
-- $3 tokens. A negative balance is a debt the caller repays by waiting.
INSERT INTO rate_buckets AS b (name, tokens, refreshed_at)
VALUES ($1::text, $2::float8 - $3::float8, clock_timestamp())
ON CONFLICT (name) DO UPDATE
SET tokens = least(
        $2::float8,
        b.tokens + extract(epoch FROM clock_timestamp() - b.refreshed_at) * $2::float8
    ) - $3::float8,
    refreshed_at = clock_timestamp()
RETURNING tokens

-- name: return_tokens
-- Give back tokens reserved for rows that were not there to claim (never above the cap).
UPDATE rate_buckets AS b
SET tokens = least(
        $2::float8,
        least($2::float8, b.tokens + extract(epoch FROM clock_timestamp() - b.refreshed_at) * $2::float8)
            + $3::float8
    ),
    refreshed_at = clock_timestamp()
WHERE b.name = $1::text

-- name: release
-- Give rows back untouched (shutdown): the attempt did not happen.
WITH released AS (
    UPDATE deliveries
    SET status = 'queued',
        attempts = greatest(attempts - 1, 0),
        available_at = now(),
        lease_token = NULL,
        leased_by = NULL,
        updated_at = now()
    WHERE id = ANY($1::bigint[]) AND lease_token = $2::uuid AND status = 'sending'
    RETURNING id
)
SELECT (SELECT count(*) FROM released) AS released, pg_notify('herald_deliveries', '') AS notified

-- name: status_counts
SELECT status, count(*)::bigint AS n FROM deliveries GROUP BY status

-- name: pending_counts
-- The queue gauge: rows still to send (finished rows are counted by the outcome counters).
SELECT status, count(*)::bigint AS n
FROM deliveries
WHERE status IN ('queued', 'sending')
GROUP BY status

-- name: pending_counts_capped
-- The dashboard's queue tile: like pending_counts, reading at most $1 rows (a page view
-- during a million-recipient send must not count them all; the page says "N+").
SELECT status, count(*)::bigint AS n
FROM (
    SELECT status FROM deliveries WHERE status IN ('queued', 'sending') LIMIT $1::integer
) AS pending
GROUP BY status

-- name: oldest_ready_age
-- Seconds since the oldest claimable row became claimable (0 when none is): the first
-- entry of the deliveries_due index.
SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(available_at)), 0)::float8
FROM deliveries
WHERE status IN ('queued', 'sending') AND available_at <= now()
