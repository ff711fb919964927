-- Read-only subscriber queries for the admin pages.

-- name: search_subscribers
-- Newest first; $1 is an email substring (NULL: everyone). strpos, not LIKE, so
-- '%' and '_' in a search are plain characters.
SELECT id, email, name, status, created_at, confirmed_at
FROM subscriptions
WHERE $1::text IS NULL OR strpos(lower(email), lower($1::text)) > 0
ORDER BY created_at DESC, id DESC
LIMIT $2::integer OFFSET $3::integer

-- name: get_subscriber
SELECT id, email, name, status, created_at, confirmed_at
FROM subscriptions
WHERE id = $1::uuid
