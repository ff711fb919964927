-- name: list_endpoints
-- Every endpoint, newest first, with its pending and failed message counts (a handful
-- of endpoints; the counts read webhook_messages_endpoint).
SELECT e.id, e.url, e.description, e.event_types, e.enabled, e.created_at, e.updated_at,
       e.failing_since, e.consecutive_failures, e.disabled_at, e.disabled_reason,
       (SELECT count(*) FROM webhook_messages m
        WHERE m.endpoint_id = e.id AND m.status = 'pending') AS pending,
       (SELECT count(*) FROM webhook_messages m
        WHERE m.endpoint_id = e.id AND m.status = 'failed') AS failed
FROM webhook_endpoints e
ORDER BY e.created_at DESC, e.id
LIMIT $1

-- name: get_endpoint
SELECT e.id, e.url, e.description, e.event_types, e.enabled, e.created_at, e.updated_at,
       e.failing_since, e.consecutive_failures, e.disabled_at, e.disabled_reason,
       (SELECT count(*) FROM webhook_messages m
        WHERE m.endpoint_id = e.id AND m.status = 'pending') AS pending,
       (SELECT count(*) FROM webhook_messages m
        WHERE m.endpoint_id = e.id AND m.status = 'failed') AS failed
FROM webhook_endpoints e
WHERE e.id = $1

-- name: lock_endpoint
-- An endpoint's editable fields, its row locked until the change made of them commits.
SELECT url, description, event_types, enabled FROM webhook_endpoints WHERE id = $1 FOR UPDATE

-- name: count_endpoints
SELECT count(*) FROM webhook_endpoints

-- name: insert_endpoint
INSERT INTO webhook_endpoints (url, description, event_types, enabled, secret, disabled_at)
VALUES ($1, $2, $3::text[], $4, $5, CASE WHEN $4 THEN NULL ELSE now() END)
RETURNING id

-- name: update_endpoint
-- A person's change. Enabling starts a fresh run (no failures counted, no notice);
-- disabling by hand leaves no automatic notice either.
UPDATE webhook_endpoints
SET url = $2, description = $3, event_types = $4::text[], enabled = $5,
    updated_at = now(),
    disabled_at = CASE WHEN $5 THEN NULL
                       WHEN enabled THEN now() ELSE disabled_at END,
    disabled_reason = CASE WHEN $5 OR enabled THEN NULL ELSE disabled_reason END,
    failing_since = CASE WHEN $5 AND NOT enabled THEN NULL ELSE failing_since END,
    consecutive_failures = CASE WHEN $5 AND NOT enabled THEN 0
                                ELSE consecutive_failures END
WHERE id = $1
RETURNING enabled

-- name: set_secret
UPDATE webhook_endpoints SET secret = $2, updated_at = now() WHERE id = $1 RETURNING id

-- name: delete_endpoint
DELETE FROM webhook_endpoints WHERE id = $1 RETURNING id

-- name: fail_pending
-- A disabled endpoint's waiting messages fail (replayable once it is enabled again), so
-- no claim scans past them. Only messages no sender holds right now.
UPDATE webhook_messages
SET status = 'failed', finished_at = now(), updated_at = now(), last_error = $2,
    lease_token = NULL
WHERE endpoint_id = $1 AND status = 'pending'
  AND (lease_token IS NULL OR available_at <= now())

-- name: recent_messages
-- An endpoint's messages, newest first, before a message id (keyset).
SELECT id, endpoint_id, event_type, webhook_id, payload::text AS payload, status, attempts,
       available_at, created_at, finished_at, last_status, last_error
FROM webhook_messages
WHERE endpoint_id = $1 AND id < $2
ORDER BY id DESC
LIMIT $3

-- name: recent_messages_by_status
-- The same, of one status (webhook_messages_endpoint_status).
SELECT id, endpoint_id, event_type, webhook_id, payload::text AS payload, status, attempts,
       available_at, created_at, finished_at, last_status, last_error
FROM webhook_messages
WHERE endpoint_id = $1 AND status = $3 AND id < $2
ORDER BY id DESC
LIMIT $4

-- name: get_message
SELECT id, endpoint_id, event_type, webhook_id, payload::text AS payload, status, attempts,
       available_at, created_at, finished_at, last_status, last_error
FROM webhook_messages
WHERE id = $1 AND endpoint_id = $2

-- name: recent_attempts
-- An endpoint's attempts, newest first, optionally those of one message.
SELECT a.id, a.message_id, m.event_type, a.attempted_at, a.duration_ms, a.status_code,
       a.error, a.response_excerpt
FROM webhook_attempts a
JOIN webhook_messages m ON m.id = a.message_id
WHERE a.endpoint_id = $1 AND ($2::bigint IS NULL OR a.message_id = $2)
ORDER BY a.id DESC
LIMIT $3

-- name: replay_message
-- A failed message back in the queue, its attempts counted afresh (its webhook-id kept, so
-- a receiver that did process it after all recognises it). Only for an enabled endpoint.
UPDATE webhook_messages m
SET status = 'pending', attempts = 0, available_at = now(), finished_at = NULL,
    lease_token = NULL, updated_at = now()
FROM webhook_endpoints e
WHERE m.id = $1 AND m.endpoint_id = $2 AND e.id = m.endpoint_id AND e.enabled
  AND m.status = 'failed'
RETURNING m.id

-- name: replay_failed
-- Up to $2 of an enabled endpoint's failed messages, oldest first, queued again at once
-- (webhook_messages_endpoint_status); how many.
WITH chosen AS (
    SELECT m.id
    FROM webhook_messages m
    JOIN webhook_endpoints e ON e.id = m.endpoint_id AND e.enabled
    WHERE m.endpoint_id = $1 AND m.status = 'failed'
    ORDER BY m.id
    LIMIT $2
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE webhook_messages m
SET status = 'pending', attempts = 0, available_at = now(), finished_at = NULL,
    lease_token = NULL, updated_at = now()
FROM chosen
WHERE m.id = chosen.id

-- name: claim_due
-- Up to $1 messages due, oldest first, under a lease of $2 seconds fenced by $3: for a
-- held message available_at is the lease's end, so a dead sender's come back by themselves.
WITH due AS (
    SELECT m.id
    FROM webhook_messages m
    JOIN webhook_endpoints e ON e.id = m.endpoint_id AND e.enabled
    WHERE m.status = 'pending' AND m.available_at <= now()
    ORDER BY m.available_at
    LIMIT $1
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE webhook_messages m
SET attempts = m.attempts + 1, lease_token = $3,
    available_at = now() + make_interval(secs => $2), updated_at = now()
FROM due, webhook_endpoints e
WHERE m.id = due.id AND e.id = m.endpoint_id AND e.enabled
RETURNING m.id, m.endpoint_id, m.webhook_id, m.payload::text AS payload, m.attempts,
          e.url, e.secret

-- name: record_attempt
-- One attempt's outcome, fenced by the lease: $4 = 'delivered', 'failed' or 'pending'
-- (retried after $5 seconds). The attempt row is written only if the fence held.
WITH done AS (
    UPDATE webhook_messages
    SET status = $4, lease_token = NULL, updated_at = now(),
        available_at = CASE WHEN $4 = 'pending' THEN now() + make_interval(secs => $5)
                            ELSE available_at END,
        finished_at = CASE WHEN $4 = 'pending' THEN NULL ELSE now() END,
        last_status = $6, last_error = nullif($7, '')
    WHERE id = $1 AND lease_token = $2
    RETURNING id
)
INSERT INTO webhook_attempts (message_id, endpoint_id, duration_ms, status_code, error,
                              response_excerpt)
SELECT done.id, $3, $8, $6, $7, $9 FROM done
RETURNING id

-- name: endpoint_succeeded
UPDATE webhook_endpoints
SET consecutive_failures = 0, failing_since = NULL
WHERE id = $1 AND (consecutive_failures <> 0 OR failing_since IS NOT NULL)

-- name: endpoint_failed
-- One more failed attempt; disabled (just_disabled) when every attempt has failed for $2
-- seconds and at least $3 in a row did, judged once on the locked row. Clock time, not the
-- transaction's: a sender whose transaction began before another's first failure must
-- still see that failure as past.
WITH failing AS (
    SELECT id, enabled, consecutive_failures + 1 AS failures,
           coalesce(failing_since, clock_timestamp()) AS since
    FROM webhook_endpoints
    WHERE id = $1
    FOR UPDATE
), judged AS (
    SELECT id, failures, since,
           enabled AND failures >= $3
           AND since <= clock_timestamp() - make_interval(secs => $2) AS disable
    FROM failing
)
UPDATE webhook_endpoints e
SET consecutive_failures = j.failures,
    failing_since = j.since,
    enabled = e.enabled AND NOT j.disable,
    disabled_at = CASE WHEN j.disable THEN statement_timestamp() ELSE e.disabled_at END,
    disabled_reason = CASE WHEN j.disable THEN $4 ELSE e.disabled_reason END
FROM judged j
WHERE e.id = j.id
RETURNING e.enabled, j.disable AS just_disabled, e.consecutive_failures

-- name: delete_finished_messages
-- Housekeeping: finished messages (and their attempts) older than $1 days, a batch.
DELETE FROM webhook_messages
WHERE id IN (
    SELECT id FROM webhook_messages
    WHERE status <> 'pending' AND finished_at < now() - make_interval(days => $1)
    LIMIT $2
)
