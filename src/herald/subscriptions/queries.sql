-- name: find_by_email_for_update
SELECT id, email, name, status
FROM subscriptions
WHERE lower(email) = lower($1::text)
FOR UPDATE

-- name: insert_pending_with_token
-- The common case, a new address, in one round trip: its pending row and its token.
-- Nothing at all when the address exists (the caller then locks the existing row).
WITH inserted AS (
    INSERT INTO subscriptions (id, email, name, status)
    VALUES ($1::uuid, $2::text, $3::text, 'pending_confirmation')
    ON CONFLICT ((lower(email))) DO NOTHING
    RETURNING id
), token AS (
    INSERT INTO subscription_tokens (token_hash, subscriber_id, expires_at)
    SELECT $4::bytea, id, now() + make_interval(secs => $5::float8)
    FROM inserted
)
SELECT id FROM inserted

-- name: set_pending
UPDATE subscriptions
SET name = $2::text, status = 'pending_confirmation', updated_at = now()
WHERE id = $1::uuid

-- name: insert_token
INSERT INTO subscription_tokens (token_hash, subscriber_id, expires_at)
VALUES ($1::bytea, $2::uuid, now() + make_interval(secs => $3::float8))

-- name: confirmations_since
SELECT count(*)
FROM deliveries
WHERE subscriber_id = $1::uuid
  AND kind = 'confirmation'
  AND created_at > now() - make_interval(secs => $2::float8)

-- name: find_token_for_update
SELECT t.subscriber_id, t.expires_at <= now() AS expired, s.status
FROM subscription_tokens AS t
JOIN subscriptions AS s ON s.id = t.subscriber_id
WHERE t.token_hash = $1::bytea
FOR UPDATE OF s

-- name: confirm
UPDATE subscriptions
SET status = 'confirmed', confirmed_at = now(), updated_at = now()
WHERE id = $1::uuid AND status = 'pending_confirmation'

-- name: get_by_email
SELECT id, email, name, status, created_at, confirmed_at
FROM subscriptions
WHERE lower(email) = lower($1::text)

-- name: delete_expired_tokens
-- Tokens are kept a while after expiry so a late click says "expired", not "unknown".
DELETE FROM subscription_tokens
WHERE expires_at < now() - make_interval(secs => $1::float8)

-- name: unsubscribe
-- Idempotent: an unsubscribed address stays unsubscribed; pending links die with it.
WITH gone AS (
    UPDATE subscriptions
    SET status = 'unsubscribed', updated_at = now()
    WHERE id = $1::uuid AND status <> 'unsubscribed'
    RETURNING id
), tokens AS (
    DELETE FROM subscription_tokens WHERE subscriber_id IN (SELECT id FROM gone)
)
SELECT EXISTS (SELECT 1 FROM subscriptions WHERE id = $1::uuid) AS known,
       (SELECT count(*) FROM gone) AS changed

-- name: get_by_id
SELECT id, email, name, status, created_at, confirmed_at
FROM subscriptions
WHERE id = $1::uuid

-- name: search_subscribers
-- The admin's subscriber list, newest first; $1 is an email substring (NULL: everyone).
-- strpos, not LIKE, so '%' and '_' in a search are plain characters.
SELECT id, email, name, status, created_at, confirmed_at
FROM subscriptions
WHERE $1::text IS NULL OR strpos(lower(email), lower($1::text)) > 0
ORDER BY created_at DESC, id DESC
LIMIT $2::integer OFFSET $3::integer
