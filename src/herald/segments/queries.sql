-- name: list_segments
-- Oldest first after the cursor ($1 created_at, $2 id); $3 rows.
SELECT id, name, filter::text AS filter, created_at, updated_at
FROM segments
WHERE (created_at, id) > ($1::timestamptz, $2::uuid)
ORDER BY created_at, id
LIMIT $3

-- name: get_segment
SELECT id, name, filter::text AS filter, created_at, updated_at
FROM segments
WHERE id = $1

-- name: insert_segment
INSERT INTO segments (name, filter, created_by)
VALUES ($1, $2::jsonb, $3)
RETURNING id, name, filter::text AS filter, created_at, updated_at

-- name: update_segment
UPDATE segments
SET name = $2, filter = $3::jsonb, updated_at = now()
WHERE id = $1
RETURNING id, name, filter::text AS filter, created_at, updated_at

-- name: delete_segment
DELETE FROM segments WHERE id = $1

-- name: issues_using
-- The issues that target a segment (newsletter_issues.segment_id, ON DELETE RESTRICT).
SELECT count(*) FILTER (WHERE status IN ('draft', 'scheduled')) AS unsent, count(*) AS total
FROM newsletter_issues
WHERE segment_id = $1

-- name: known_lists
-- Which of the slugs $1 name a list.
SELECT slug FROM lists WHERE slug = ANY($1::text[])

-- name: local_statement_timeout
-- For the rest of the transaction ($1 like '5s'): a count over a million rows that a
-- filter makes slow is cut short and reported, not left running.
SELECT set_config('statement_timeout', $1::text, true)

-- name: count_members
-- Subscribers matching a filter: the condition replaces the slot (segments/compiler.py).
SELECT count(*) FROM subscriptions AS s WHERE /* segment */ TRUE

-- name: members_newest
-- One keyset page of the subscribers matching a filter, newest first, after the cursor
-- ($1 created_at, $2 id); $3 rows; the filter's parameters from $4.
SELECT s.id, s.email, s.name, s.status, s.created_at, s.confirmed_at, s.attributes::text AS attributes
FROM subscriptions AS s
WHERE (s.created_at, s.id) < ($1::timestamptz, $2::uuid)
  AND /* segment */ TRUE
ORDER BY s.created_at DESC, s.id DESC
LIMIT $3

-- name: get_member
SELECT s.id, s.email, s.name, s.status, s.created_at, s.confirmed_at, s.attributes::text AS attributes
FROM subscriptions AS s
WHERE s.id = $1

-- name: lock_attributes
SELECT attributes::text AS attributes FROM subscriptions WHERE id = $1 FOR UPDATE

-- name: set_attributes
UPDATE subscriptions SET attributes = $2::jsonb, updated_at = now()
WHERE id = $1
RETURNING id, email, name, status, created_at, confirmed_at, attributes::text AS attributes

-- name: list_choices
-- The lists a condition can name (the builder's choices), by name.
SELECT slug, name FROM lists ORDER BY name, slug LIMIT 500
