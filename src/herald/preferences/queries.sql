-- name: subscriber
SELECT id, email, name, status, attributes::text AS attributes, created_at, confirmed_at,
       unsubscribed_at
FROM subscriptions
WHERE id = $1::uuid

-- name: lock_subscriber
SELECT id, email, name, status, attributes::text AS attributes, created_at, confirmed_at,
       unsubscribed_at
FROM subscriptions
WHERE id = $1::uuid
FOR UPDATE

-- name: lists
-- What the page shows: every public list, and every list the reader is a member of (a
-- private one too), with their membership (NULL columns where they have none). The
-- default list first, then by name.
SELECT l.id, l.slug, l.name, l.description, l.visibility,
       m.status, m.source, m.consent_ip::text AS consent_ip, m.consent_user_agent,
       m.created_at AS joined_at, m.confirmed_at, m.unsubscribed_at
FROM lists AS l
LEFT JOIN list_memberships AS m ON m.list_id = l.id AND m.subscriber_id = $1::uuid
WHERE l.visibility = 'public' OR m.subscriber_id IS NOT NULL
ORDER BY l.slug <> 'default', l.name, l.slug

-- name: suppression
SELECT reason, created_at
FROM suppressions
WHERE address_key = herald_address_key($1::text)

-- name: save
-- The reader's choice, in one statement: the lists $2 joined (confirmed at once, consent
-- source 'preferences', IP $4, user agent $5), the lists $3 left (a membership missing, as
-- for a subscriber from before lists, is written unsubscribed). When $6, the address
-- itself is confirmed (it had been unsubscribed from everything, or never confirmed: the
-- signed link proves it) and a suppression as "unsubscribed" is lifted; the caller has
-- checked that no other kind of suppression holds the address.
WITH joined AS (
    INSERT INTO list_memberships AS m (
        list_id, subscriber_id, status, source, consent_ip, consent_user_agent, confirmed_at
    )
    SELECT j.id, $1::uuid, 'confirmed', 'preferences', $4::inet, $5::text, now()
    FROM unnest($2::uuid[]) AS j (id)
    ON CONFLICT (list_id, subscriber_id) DO UPDATE
    SET status = 'confirmed', source = 'preferences', consent_ip = EXCLUDED.consent_ip,
        consent_user_agent = EXCLUDED.consent_user_agent, confirmed_at = now(),
        unsubscribed_at = NULL, updated_at = now()
    WHERE m.status <> 'confirmed'
    RETURNING m.list_id
), left_lists AS (
    INSERT INTO list_memberships AS m (list_id, subscriber_id, status, source, unsubscribed_at)
    SELECT x.id, $1::uuid, 'unsubscribed', 'preferences', now()
    FROM unnest($3::uuid[]) AS x (id)
    ON CONFLICT (list_id, subscriber_id) DO UPDATE
    SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
    WHERE m.status <> 'unsubscribed'
    RETURNING m.list_id
), address AS (
    UPDATE subscriptions
    SET status = 'confirmed', confirmed_at = coalesce(confirmed_at, now()), updated_at = now()
    WHERE id = $1::uuid AND $6::boolean AND status <> 'confirmed'
    RETURNING email
), lifted AS (
    DELETE FROM suppressions
    WHERE reason = 'unsubscribed'
      AND address_key = (SELECT herald_address_key(email) FROM address)
)
SELECT (SELECT count(*) FROM joined) AS joined, (SELECT count(*) FROM left_lists) AS left_lists,
       (SELECT count(*) FROM address) AS confirmed

-- name: delivery_counts
SELECT kind, status, count(*)::bigint AS n
FROM deliveries
WHERE subscriber_id = $1::uuid
GROUP BY kind, status
ORDER BY kind, status

-- name: recent_deliveries
-- The reader's latest $2 emails, newest first (the data download's history).
SELECT d.kind, d.status, d.created_at, d.sent_at, i.title AS issue_title
FROM deliveries AS d
LEFT JOIN newsletter_issues AS i ON i.id = d.issue_id
WHERE d.subscriber_id = $1::uuid
ORDER BY d.created_at DESC, d.id DESC
LIMIT $2::integer
