-- name: insert
INSERT INTO jobs (kind, params, description, total, created_by)
VALUES ($1, $2::jsonb, $3, $4, $5)
RETURNING *

-- name: get
SELECT * FROM jobs WHERE id = $1

-- name: get_many
SELECT * FROM jobs WHERE id = ANY($1::uuid[])

-- name: recent
-- The open jobs of a kind, and those finished in the last day, newest first.
SELECT * FROM jobs
WHERE kind = $1
  AND (status IN ('queued', 'running') OR finished_at > now() - interval '1 day')
ORDER BY created_at DESC
LIMIT $2

-- name: claim_next
-- The oldest job no live runner holds: queued, or running with its lease run out.
WITH next AS (
    SELECT id FROM jobs
    WHERE status = 'queued' OR (status = 'running' AND leased_until < now())
    ORDER BY created_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs
SET status = 'running', lease_token = $1, attempts = attempts + 1,
    leased_until = now() + make_interval(secs => $2), updated_at = now()
FROM next
WHERE jobs.id = next.id
RETURNING jobs.*

-- name: claim_one
-- That job, when no live runner holds it.
UPDATE jobs
SET status = 'running', lease_token = $2, attempts = attempts + 1,
    leased_until = now() + make_interval(secs => $3), updated_at = now()
WHERE id = $1
  AND (status = 'queued' OR (status = 'running' AND leased_until < now()))
RETURNING *

-- name: advance
-- A step's checkpoint, in the step's transaction; no row: the lease was lost or the job
-- was cancelled, and the step must roll back. ``attempts`` counts the claims since the
-- last step that got done (a job that kills its runner every time is given up).
UPDATE jobs
SET position = $3, done = done + $4, skipped = skipped + $5, attempts = 0,
    leased_until = now() + make_interval(secs => $6), updated_at = now()
WHERE id = $1 AND lease_token = $2 AND status = 'running'
RETURNING *

-- name: finish
UPDATE jobs
SET status = $3, message = $4, finished_at = now(), updated_at = now(),
    lease_token = NULL, leased_until = NULL
WHERE id = $1 AND lease_token = $2 AND status = 'running'
RETURNING *

-- name: release
-- Back to the queue (a drain, or a web request's time budget spent); progress is kept,
-- and this claim, which ended cleanly, does not count as an attempt.
UPDATE jobs
SET status = 'queued', lease_token = NULL, leased_until = NULL, updated_at = now(),
    attempts = greatest(attempts - 1, 0)
WHERE id = $1 AND lease_token = $2 AND status = 'running'
RETURNING *

-- name: cancel
UPDATE jobs
SET status = 'cancelled', message = $2, finished_at = now(), updated_at = now(),
    lease_token = NULL, leased_until = NULL
WHERE id = $1 AND status IN ('queued', 'running')
RETURNING *

-- name: delete_finished
-- Housekeeping: finished jobs older than the given age.
DELETE FROM jobs
WHERE status IN ('done', 'failed', 'cancelled')
  AND finished_at < now() - make_interval(secs => $1)

-- name: set_total
-- The estimate of a job's total once it is known (an import's rows, after its upload).
UPDATE jobs SET total = $2, updated_at = now() WHERE id = $1
