-- Newsletter issues and their fan-out.

-- name: insert_issue
INSERT INTO newsletter_issues (id, title, markdown, html_content, text_content, created_by)
VALUES ($1::uuid, $2::text, $3::text, $4::text, $5::text, $6::uuid)

-- name: update_issue
UPDATE newsletter_issues
SET title = $2::text, markdown = $3::text, html_content = $4::text, text_content = $5::text,
    updated_at = now()
WHERE id = $1::uuid AND status IN ('draft', 'scheduled')
RETURNING id

-- name: get_issue
SELECT id, title, markdown, html_content, text_content, status, scheduled_at, published_at,
       completed_at, recipients, created_at, updated_at
FROM newsletter_issues
WHERE id = $1::uuid

-- name: list_issues
SELECT id, title, markdown, html_content, text_content, status, scheduled_at, published_at,
       completed_at, recipients, created_at, updated_at
FROM newsletter_issues
ORDER BY created_at DESC
LIMIT $1::integer

-- name: start_publishing
-- Only a draft or scheduled issue can start; the row lock makes concurrent
-- publishers of one issue wait, then find it already publishing.
UPDATE newsletter_issues
SET status = 'publishing', published_at = now(), scheduled_at = NULL, updated_at = now()
WHERE id = $1::uuid AND status IN ('draft', 'scheduled')
RETURNING id

-- name: fan_out
-- One delivery per confirmed subscriber, in one statement (never a Python loop).
-- Runs once per issue: start_publishing lets only one transaction move an issue to
-- 'publishing', and the unique (subscriber_id, issue_id) index would reject a second
-- fan-out rather than skip it (no ON CONFLICT: its speculative inserts cost ~15 %).
-- In subscriber-id order, the unique index is filled left to right instead of at
-- random pages (~20 % faster at 200k; see BENCHMARKS.md P2).
INSERT INTO deliveries (kind, recipient, subscriber_id, issue_id, max_attempts)
SELECT 'issue', s.email, s.id, $1::uuid, $2::integer
FROM subscriptions AS s
WHERE s.status = 'confirmed'
ORDER BY s.id

-- name: set_recipients
UPDATE newsletter_issues SET recipients = $2::integer WHERE id = $1::uuid

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

-- name: due_issues
SELECT id
FROM newsletter_issues
WHERE status = 'scheduled' AND scheduled_at <= now()
ORDER BY scheduled_at
LIMIT $1::integer
FOR UPDATE SKIP LOCKED

-- name: delivery_counts
SELECT status, count(*)::bigint AS n
FROM deliveries
WHERE issue_id = $1::uuid
GROUP BY status

-- name: complete_issues
-- An issue is sent when none of its deliveries is waiting or in flight.
UPDATE newsletter_issues AS i
SET status = 'sent', completed_at = now(), updated_at = now()
WHERE i.id = ANY($1::uuid[])
  AND i.status = 'publishing'
  AND NOT EXISTS (
      SELECT 1 FROM deliveries AS d
      WHERE d.issue_id = i.id AND d.status IN ('queued', 'sending')
  )
RETURNING i.id

-- name: has_pending_deliveries
-- One probe of deliveries_issue_status bound to both columns. complete_issues runs only
-- for issues without pending rows: its NOT EXISTS was planned as a merge anti-join over
-- the whole index, which at 1M deliveries made it the hottest statement (BENCHMARKS.md P2).
SELECT EXISTS (
    SELECT 1 FROM deliveries
    WHERE issue_id = $1::uuid AND status IN ('queued', 'sending')
) AS pending

-- name: publishing_issues
SELECT id FROM newsletter_issues WHERE status = 'publishing'

-- name: retry_failed
WITH retried AS (
    UPDATE deliveries
    SET status = 'queued', attempts = 0, available_at = now(), last_error = NULL,
        lease_token = NULL, leased_by = NULL, updated_at = now()
    WHERE issue_id = $1::uuid AND status = 'failed'
    RETURNING id
), reopened AS (
    UPDATE newsletter_issues
    SET status = 'publishing', completed_at = NULL, updated_at = now()
    WHERE id = $1::uuid AND status = 'sent' AND EXISTS (SELECT 1 FROM retried)
)
SELECT (SELECT count(*) FROM retried) AS retried, pg_notify('herald_deliveries', '') AS woke

-- name: issues_for_rendering
SELECT id, title, html_content, text_content
FROM newsletter_issues
WHERE id = ANY($1::uuid[])

-- name: subscribers_for_rendering
SELECT id, email, name, status
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
SELECT d.id, d.recipient, d.subscriber_id, d.status, d.attempts, d.last_error, d.sent_at,
       d.updated_at
FROM deliveries AS d
WHERE d.issue_id = $1::uuid AND ($2::text IS NULL OR d.status = $2::text)
ORDER BY d.updated_at DESC, d.id DESC
LIMIT $3::integer
