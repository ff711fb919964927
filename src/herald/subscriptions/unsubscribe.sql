-- name: unsubscribe_all
-- Unsubscribe $1 from everything (one-click without an issue, the preference centre):
-- the address goes to "unsubscribed" (the 0018 trigger unsubscribes every membership),
-- its pending confirmation links die, and the address is suppressed as "unsubscribed"
-- (kept: the reader's own double opt-in sign-up lifts it) — also when it was already
-- unsubscribed by a release that kept no suppressions. A row already there (an erasure,
-- an operator's) stays as it is. The row is locked first: a concurrent erasure either
-- waits for this one or has already removed the row, and then nothing is written.
-- Idempotent; whether the subscriber exists, and whether this call unsubscribed them.
WITH target AS (
    SELECT id, email, status FROM subscriptions WHERE id = $1::uuid FOR UPDATE
), gone AS (
    UPDATE subscriptions AS s
    SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
    FROM target AS t
    WHERE s.id = t.id AND t.status <> 'unsubscribed'
    RETURNING s.id
), tokens AS (
    DELETE FROM subscription_tokens WHERE subscriber_id IN (SELECT id FROM gone)
), suppressed AS (
    INSERT INTO suppressions (address_key, email, reason, source)
    SELECT herald_address_key(email), email, 'unsubscribed', $2::text FROM target
    ON CONFLICT (address_key) DO NOTHING
)
SELECT EXISTS (SELECT 1 FROM target) AS known, (SELECT count(*) FROM gone) AS changed

-- name: unsubscribe_lists
-- Unsubscribe $1 from the lists the issue $2 went to (RFC 8058 one-click of that issue's
-- email): its issue_lists, or the default list for an issue without any (one from before
-- lists). A membership missing (a subscriber not backfilled yet) is written unsubscribed,
-- source $3, so that list never mails them. The subscriber row is locked against a
-- concurrent erasure (which then waits, or has already happened: nothing is written).
-- Nothing at all for an unknown issue (the caller then unsubscribes from everything).
WITH issue AS (
    SELECT id FROM newsletter_issues WHERE id = $2::uuid
), targets AS (
    SELECT il.list_id FROM issue_lists AS il JOIN issue AS i ON i.id = il.issue_id
    UNION
    SELECT l.id FROM lists AS l, issue AS i
    WHERE l.slug = 'default'
      AND NOT EXISTS (SELECT 1 FROM issue_lists AS x WHERE x.issue_id = i.id)
), target AS (
    SELECT id FROM subscriptions WHERE id = $1::uuid FOR KEY SHARE
), left_lists AS (
    INSERT INTO list_memberships AS m (list_id, subscriber_id, status, source, unsubscribed_at)
    SELECT t.list_id, s.id, 'unsubscribed', $3::text, now()
    FROM targets AS t CROSS JOIN target AS s
    ON CONFLICT (list_id, subscriber_id) DO UPDATE
    SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
    WHERE m.status <> 'unsubscribed'
    RETURNING m.list_id
)
SELECT EXISTS (SELECT 1 FROM target) AS known,
       EXISTS (SELECT 1 FROM issue) AS issue_known,
       (SELECT count(*) FROM left_lists) AS changed

-- name: issue_list_names
-- The names of the lists the issue $1 went to (for the unsubscribe page), by name; the
-- default list's for an issue without any. No rows for an unknown issue.
SELECT l.name
FROM lists AS l
JOIN newsletter_issues AS i ON i.id = $1::uuid
WHERE l.id IN (SELECT list_id FROM issue_lists WHERE issue_id = i.id)
   OR (l.slug = 'default' AND NOT EXISTS (SELECT 1 FROM issue_lists WHERE issue_id = i.id))
ORDER BY l.name

-- name: unsubscribe_list
-- Unsubscribe $1 from the list $2 alone (RFC 8058 one-click of a list's welcome email,
-- whose link names the list): its membership is unsubscribed, or written unsubscribed
-- (source $3) when missing, so that list never mails them. The subscriber row is locked
-- against a concurrent erasure, as in unsubscribe_lists. Nothing at all for an unknown
-- list (the caller then unsubscribes from everything).
WITH chosen AS (
    SELECT id FROM lists WHERE id = $2::uuid
), target AS (
    SELECT id FROM subscriptions WHERE id = $1::uuid FOR KEY SHARE
), left_lists AS (
    INSERT INTO list_memberships AS m (list_id, subscriber_id, status, source, unsubscribed_at)
    SELECT c.id, s.id, 'unsubscribed', $3::text, now()
    FROM chosen AS c CROSS JOIN target AS s
    ON CONFLICT (list_id, subscriber_id) DO UPDATE
    SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
    WHERE m.status <> 'unsubscribed'
    RETURNING m.list_id
)
SELECT EXISTS (SELECT 1 FROM target) AS known,
       EXISTS (SELECT 1 FROM chosen) AS list_known,
       (SELECT count(*) FROM left_lists) AS changed

-- name: list_name
-- The name of the list $1 (for the unsubscribe page); no row for an unknown list.
SELECT name FROM lists WHERE id = $1::uuid
