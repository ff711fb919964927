-- Idempotency keys of admin form submissions.

-- name: claim_key
-- Returns a row when this request owns the key: newly inserted, or taken over
-- after expiry. A concurrent holder's uncommitted insert makes this wait until
-- it commits (then no row: replay) or rolls back (then the insert succeeds).
INSERT INTO idempotency_keys AS k (user_id, key, request_hash)
VALUES ($1::uuid, $2::text, $3::bytea)
ON CONFLICT (user_id, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, created_at = now(),
    response_status = NULL, response_headers = NULL, response_body = NULL
WHERE k.created_at < now() - make_interval(secs => $4::float8)
RETURNING true AS owned

-- name: saved_response
SELECT request_hash, response_status, response_headers::text AS response_headers, response_body
FROM idempotency_keys
WHERE user_id = $1::uuid AND key = $2::text

-- name: save_response
UPDATE idempotency_keys
SET response_status = $3::integer, response_headers = $4::jsonb, response_body = $5::bytea
WHERE user_id = $1::uuid AND key = $2::text

-- name: delete_expired_keys
DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1::float8)
