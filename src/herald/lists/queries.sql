-- The lists (migration 0018) and their member counts (list_member_counts, 0019: kept by
-- triggers, so a list of a million members costs a page view at most 48 small rows).

-- name: all_lists
SELECT l.id, l.slug, l.name, l.description, l.visibility, l.opt_in, l.created_at, l.updated_at,
       coalesce(sum(c.n) FILTER (WHERE c.status = 'pending_confirmation'), 0)::bigint AS pending,
       coalesce(sum(c.n) FILTER (WHERE c.status = 'confirmed'), 0)::bigint AS confirmed,
       coalesce(sum(c.n) FILTER (WHERE c.status = 'unsubscribed'), 0)::bigint AS unsubscribed
FROM lists AS l
LEFT JOIN list_member_counts AS c ON c.list_id = l.id
GROUP BY l.id
ORDER BY l.slug <> 'default', lower(l.name), l.slug
LIMIT $1::int

-- name: list_page
-- The API's pages: oldest first (the default list leads), keyset on (created_at, id).
SELECT l.id, l.slug, l.name, l.description, l.visibility, l.opt_in, l.created_at, l.updated_at,
       coalesce(sum(c.n) FILTER (WHERE c.status = 'pending_confirmation'), 0)::bigint AS pending,
       coalesce(sum(c.n) FILTER (WHERE c.status = 'confirmed'), 0)::bigint AS confirmed,
       coalesce(sum(c.n) FILTER (WHERE c.status = 'unsubscribed'), 0)::bigint AS unsubscribed
FROM lists AS l
LEFT JOIN list_member_counts AS c ON c.list_id = l.id
WHERE (l.created_at, l.id) > ($1::timestamptz, $2::uuid)
GROUP BY l.id
ORDER BY l.created_at, l.id
LIMIT $3::int

-- name: list_by_id
SELECT l.id, l.slug, l.name, l.description, l.visibility, l.opt_in, l.created_at, l.updated_at,
       coalesce(sum(c.n) FILTER (WHERE c.status = 'pending_confirmation'), 0)::bigint AS pending,
       coalesce(sum(c.n) FILTER (WHERE c.status = 'confirmed'), 0)::bigint AS confirmed,
       coalesce(sum(c.n) FILTER (WHERE c.status = 'unsubscribed'), 0)::bigint AS unsubscribed
FROM lists AS l
LEFT JOIN list_member_counts AS c ON c.list_id = l.id
WHERE l.id = $1::uuid
GROUP BY l.id

-- name: public_list
SELECT id, slug, name, description, visibility, opt_in, created_at, updated_at,
       0::bigint AS pending, 0::bigint AS confirmed, 0::bigint AS unsubscribed
FROM lists
WHERE slug = $1::text AND visibility = 'public'

-- name: lock_list
SELECT id, slug, name, description, visibility, opt_in, created_at, updated_at,
       0::bigint AS pending, 0::bigint AS confirmed, 0::bigint AS unsubscribed
FROM lists
WHERE id = $1::uuid
FOR UPDATE

-- name: insert_list
INSERT INTO lists (slug, name, description, visibility, opt_in)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::text)
ON CONFLICT (slug) DO NOTHING
RETURNING id

-- name: update_list
UPDATE lists
SET slug = $2::text, name = $3::text, description = $4::text, visibility = $5::text,
    opt_in = $6::text, updated_at = now()
WHERE id = $1::uuid
RETURNING id

-- name: issues_targeting
-- The issues that target a list (issue_lists, ON DELETE RESTRICT): a few titles to name.
SELECT i.title
FROM issue_lists AS t
JOIN newsletter_issues AS i ON i.id = t.issue_id
WHERE t.list_id = $1::uuid
ORDER BY i.created_at DESC
LIMIT $2::int

-- name: delete_list
DELETE FROM lists WHERE id = $1::uuid AND slug <> 'default' RETURNING id

-- name: members
-- One page of a list's members, in subscriber id order (the primary key's order). The
-- bound on s.id too (the same value, as m.subscriber_id = s.id): without it the planner
-- may merge-join from the start of subscriptions' key (780 ms half-way into 1M members).
SELECT m.subscriber_id, s.email, s.name, m.status, s.status AS subscriber_status, m.source,
       host(m.consent_ip) AS consent_ip, m.consent_user_agent, m.created_at, m.confirmed_at,
       m.unsubscribed_at
FROM list_memberships AS m
JOIN subscriptions AS s ON s.id = m.subscriber_id
WHERE m.list_id = $1::uuid AND m.subscriber_id > $2::uuid AND s.id > $2::uuid
ORDER BY m.subscriber_id
LIMIT $3::int

-- name: members_by_status
SELECT m.subscriber_id, s.email, s.name, m.status, s.status AS subscriber_status, m.source,
       host(m.consent_ip) AS consent_ip, m.consent_user_agent, m.created_at, m.confirmed_at,
       m.unsubscribed_at
FROM list_memberships AS m
JOIN subscriptions AS s ON s.id = m.subscriber_id
WHERE m.list_id = $1::uuid AND m.status = $2::text AND m.subscriber_id > $3::uuid
  AND s.id > $3::uuid
ORDER BY m.subscriber_id
LIMIT $4::int

-- name: member
SELECT m.subscriber_id, s.email, s.name, m.status, s.status AS subscriber_status, m.source,
       host(m.consent_ip) AS consent_ip, m.consent_user_agent, m.created_at, m.confirmed_at,
       m.unsubscribed_at
FROM list_memberships AS m
JOIN subscriptions AS s ON s.id = m.subscriber_id
WHERE m.list_id = $1::uuid AND m.subscriber_id = $2::uuid

-- name: lock_subscriber
-- The address's state, held against a concurrent unsubscribe or erasure until the
-- membership is written; and whether the address is on the suppression list.
SELECT s.status,
       EXISTS (
           SELECT 1 FROM suppressions AS x WHERE x.address_key = herald_address_key(s.email)
       ) AS suppressed
FROM subscriptions AS s
WHERE s.id = $1::uuid
FOR SHARE OF s

-- name: membership_status
SELECT status FROM list_memberships WHERE list_id = $1::uuid AND subscriber_id = $2::uuid
FOR UPDATE

-- name: add_member
-- A new membership, or a pending one confirmed; a confirmed one stays as it is.
INSERT INTO list_memberships AS m (list_id, subscriber_id, status, source, confirmed_at)
VALUES ($1::uuid, $2::uuid, $3::text, $4::text,
        CASE WHEN $3::text = 'confirmed' THEN now() END)
ON CONFLICT (list_id, subscriber_id) DO UPDATE
SET status = 'confirmed', source = EXCLUDED.source, confirmed_at = now(), updated_at = now()
WHERE m.status = 'pending_confirmation' AND EXCLUDED.status = 'confirmed'

-- name: remove_member
UPDATE list_memberships
SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
WHERE list_id = $1::uuid AND subscriber_id = $2::uuid AND status <> 'unsubscribed'
