-- The JSON API's Idempotency-Key store: rows of idempotency_keys (migration 0003) whose
-- key is 'api:' + the header's value. The admin forms' keys are letters, digits, '-' and
-- '_', never a ':', so the two never meet; housekeeping expires both after 24 h.

-- name: claim_api_key
-- Returns a row when this request owns the key: newly inserted, taken over after expiry
-- ($4 s), or taken over from a request that claimed it and never answered for $5 s (its
-- process died). Committed on its own at once, so a second request with the key sees the
-- claim (409 while no response is stored) instead of waiting for the first to finish.
INSERT INTO idempotency_keys AS k (user_id, key, request_hash)
VALUES ($1::uuid, $2::text, $3::bytea)
ON CONFLICT (user_id, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, created_at = now(),
    response_status = NULL, response_headers = NULL, response_body = NULL
WHERE k.created_at < now() - make_interval(secs => $4::float8)
   OR (k.response_status IS NULL AND k.created_at < now() - make_interval(secs => $5::float8))
RETURNING true AS owned

-- name: api_saved_response
SELECT request_hash, response_status, response_headers::text AS response_headers, response_body
FROM idempotency_keys
WHERE user_id = $1::uuid AND key = $2::text

-- name: save_api_response
UPDATE idempotency_keys
SET response_status = $3::integer, response_headers = $4::jsonb, response_body = $5::bytea
WHERE user_id = $1::uuid AND key = $2::text AND request_hash = $6::bytea
  AND response_status IS NULL

-- name: release_api_key
-- The request failed in a way worth retrying (a 5xx, a refused credential): forget the
-- claim so the same key may be sent again.
DELETE FROM idempotency_keys
WHERE user_id = $1::uuid AND key = $2::text AND request_hash = $3::bytea
  AND response_status IS NULL
