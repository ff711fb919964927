-- name: find_by_email_for_update
SELECT id, email, name, status
FROM subscriptions
WHERE lower(email) = lower($1::text)
FOR UPDATE

-- name: sign_up
-- A sign-up in one round trip. What it may do: the lists among the slugs $4 it may join
-- (public ones, and the default list when $5: the form named no list, contract
-- "Audience"; an unknown or private slug is simply absent) and why the address is
-- suppressed. A new address is inserted only when every slug was found and the address is
-- not suppressed (or, unless $11, only as "unsubscribed", which makes every list double
-- opt-in, as $12 does): pending, or confirmed when all its lists are single opt-in; with its
-- memberships (confirmed at once for single-opt-in lists), each with the consent record
-- ($6 source, $7 IP, $8 user agent); and, unless confirmed, its confirmation token. The
-- memberships are written by the same statement as the row, so migration 0018's trigger
-- adds no default-list row of its own. Returns what was found and what was inserted
-- (nothing when the address exists: the caller then locks the existing row).
WITH chosen AS MATERIALIZED (
    SELECT id, slug, opt_in
    FROM lists
    WHERE slug = ANY($4::text[])
      AND (visibility = 'public' OR ($5::boolean AND slug = 'default'))
), context AS MATERIALIZED (
    SELECT (SELECT reason FROM suppressions
            WHERE address_key = herald_address_key($2::text)) AS suppressed,
           (SELECT count(*) FROM chosen) = cardinality($4::text[]) AS lists_ok
), decided AS MATERIALIZED (
    SELECT lists_ok
           AND (suppressed IS NULL OR (suppressed = 'unsubscribed' AND NOT $11::boolean)) AS go,
           suppressed IS NOT NULL OR $12::boolean AS double_only
    FROM context
), members AS MATERIALIZED (
    SELECT c.id AS list_id, (c.opt_in = 'single' AND NOT d.double_only) AS confirmed
    FROM chosen AS c
    CROSS JOIN decided AS d
), inserted AS (
    INSERT INTO subscriptions (id, email, name, status, confirmed_at)
    SELECT $1::uuid, $2::text, $3::text,
           CASE WHEN m.all_single THEN 'confirmed' ELSE 'pending_confirmation' END,
           CASE WHEN m.all_single THEN now() END
    FROM decided AS d
    CROSS JOIN (SELECT coalesce(bool_and(confirmed), false) AS all_single FROM members) AS m
    WHERE d.go
    ON CONFLICT ((lower(email))) DO NOTHING
    RETURNING id, status
), joined AS (
    INSERT INTO list_memberships (
        list_id, subscriber_id, status, source, consent_ip, consent_user_agent, confirmed_at
    )
    SELECT m.list_id, i.id,
           CASE WHEN m.confirmed THEN 'confirmed' ELSE 'pending_confirmation' END,
           $6::text, $7::inet, $8::text, CASE WHEN m.confirmed THEN now() END
    FROM inserted AS i
    CROSS JOIN members AS m
), token AS (
    INSERT INTO subscription_tokens (token_hash, subscriber_id, expires_at)
    SELECT $9::bytea, id, now() + make_interval(secs => $10::float8)
    FROM inserted
    WHERE status = 'pending_confirmation'
)
SELECT (SELECT id FROM inserted) AS inserted,
       (SELECT status FROM inserted) AS status,
       c.suppressed,
       array(SELECT id FROM chosen ORDER BY slug) AS ids,
       array(SELECT slug FROM chosen ORDER BY slug) AS slugs,
       array(SELECT opt_in FROM chosen ORDER BY slug) AS opt_ins
FROM context AS c

-- name: upsert_memberships
-- An address already known joins the lists $2 again (a sign-up): a membership that is
-- missing, pending or unsubscribed gets the new consent record and is confirmed where
-- $3, else pending; a confirmed one is left as it is. Returns the rows written.
INSERT INTO list_memberships AS m (
    list_id, subscriber_id, status, source, consent_ip, consent_user_agent, confirmed_at
)
SELECT l.list_id, $1::uuid,
       CASE WHEN l.confirmed THEN 'confirmed' ELSE 'pending_confirmation' END,
       $4::text, $5::inet, $6::text, CASE WHEN l.confirmed THEN now() END
FROM unnest($2::uuid[], $3::boolean[]) AS l (list_id, confirmed)
ON CONFLICT (list_id, subscriber_id) DO UPDATE
SET status = EXCLUDED.status, source = EXCLUDED.source, consent_ip = EXCLUDED.consent_ip,
    consent_user_agent = EXCLUDED.consent_user_agent, confirmed_at = EXCLUDED.confirmed_at,
    unsubscribed_at = NULL, updated_at = now()
WHERE m.status <> 'confirmed'
RETURNING list_id, status

-- name: pending_memberships
SELECT count(*)
FROM list_memberships
WHERE subscriber_id = $1::uuid AND status = 'pending_confirmation'

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
-- A confirmation link: the address (when pending) and every pending membership are
-- confirmed — one email confirms all the lists of the sign-up, also for an address that
-- was already confirmed (migration 0018's trigger acts only on a change of the
-- address's status) — and a suppression as "unsubscribed" is lifted: the reader came
-- back through double opt-in. Returns what changed.
WITH address AS (
    UPDATE subscriptions
    SET status = 'confirmed', confirmed_at = now(), updated_at = now()
    WHERE id = $1::uuid AND status = 'pending_confirmation'
    RETURNING id
), joined AS (
    UPDATE list_memberships
    SET status = 'confirmed', confirmed_at = now(), updated_at = now()
    WHERE subscriber_id = $1::uuid AND status = 'pending_confirmation'
    RETURNING list_id
), lifted AS (
    DELETE FROM suppressions
    WHERE reason = 'unsubscribed'
      AND address_key = (SELECT herald_address_key(email) FROM subscriptions WHERE id = $1::uuid)
)
SELECT (SELECT count(*) FROM address) AS address, (SELECT count(*) FROM joined) AS lists

-- name: get_by_email
SELECT id, email, name, status, created_at, confirmed_at
FROM subscriptions
WHERE lower(email) = lower($1::text)

-- name: delete_expired_tokens
-- Tokens are kept a while after expiry so a late click says "expired", not "unknown".
DELETE FROM subscription_tokens
WHERE expires_at < now() - make_interval(secs => $1::float8)

-- name: get_by_id
SELECT id, email, name, status, created_at, confirmed_at
FROM subscriptions
WHERE id = $1::uuid

-- name: rename
UPDATE subscriptions
SET name = $2::text, updated_at = now()
WHERE id = $1::uuid
RETURNING id, email, name, status, created_at, confirmed_at

-- name: custom_plans
-- The list statements below hold optional filters ("$n IS NULL OR …"): with the values
-- planned in (not a generic plan), the planner drops the absent ones and picks the
-- index of the ones present. Transaction-local.
SELECT set_config('plan_cache_mode', 'force_custom_plan', true)

-- name: list_newest
-- One keyset page, newest first, after the cursor ($1 created_at, $2 id). Filters, each
-- NULL for none: $3 status; $4 a LIKE "starts with" pattern (email or name, the
-- text_pattern_ops indexes). Run under custom_plans. ("Contains" searches: contains_*.)
SELECT id, email, name, status, created_at, confirmed_at
FROM subscriptions
WHERE (created_at, id) < ($1::timestamptz, $2::uuid)
  AND ($3::text IS NULL OR status = $3::text)
  AND ($4::text IS NULL OR lower(email) LIKE lower($4::text) OR lower(name) LIKE lower($4::text))
ORDER BY created_at DESC, id DESC
LIMIT $5::integer

-- name: list_oldest
-- list_newest the other way round: oldest first, after the cursor.
SELECT id, email, name, status, created_at, confirmed_at
FROM subscriptions
WHERE (created_at, id) > ($1::timestamptz, $2::uuid)
  AND ($3::text IS NULL OR status = $3::text)
  AND ($4::text IS NULL OR lower(email) LIKE lower($4::text) OR lower(name) LIKE lower($4::text))
ORDER BY created_at, id
LIMIT $5::integer

-- name: status_counts
-- Maintained by the subscriptions_count_* triggers (migration 0009): 3 statuses x 16 slots.
SELECT status, sum(n)::bigint AS n
FROM subscriber_counts
GROUP BY status

-- name: subscriber_deliveries
-- One subscriber's deliveries, newest first, after the cursor ($2 created_at, $3 id).
SELECT d.id, d.kind, d.status, d.attempts, d.last_error, d.created_at, d.sent_at,
       d.issue_id, i.title AS issue_title
FROM deliveries AS d
LEFT JOIN newsletter_issues AS i ON i.id = d.issue_id
WHERE d.subscriber_id = $1::uuid AND (d.created_at, d.id) < ($2::timestamptz, $3::bigint)
ORDER BY d.created_at DESC, d.id DESC
LIMIT $4::integer

-- name: subscriber_reports
-- What the providers reported about one subscriber's emails (email_events, migration
-- 0027) in a timeline page's window: before $2, at or after $3, newest first, at most $4.
SELECT e.occurred_at, e.kind, e.provider, e.detail, e.suppressed, e.issue_id,
       i.title AS issue_title
FROM email_events AS e
LEFT JOIN newsletter_issues AS i ON i.id = e.issue_id
WHERE e.subscriber_id = $1::uuid
  AND e.occurred_at < $2::timestamptz AND e.occurred_at >= $3::timestamptz
ORDER BY e.occurred_at DESC
LIMIT $4::integer

-- name: get_for_timeline
SELECT id, email, name, status, created_at, confirmed_at, updated_at, unsubscribed_at
FROM subscriptions
WHERE id = $1::uuid

-- name: lock_resendable
-- Pending subscribers among $1 with fewer than $3 confirmation emails in the last $2
-- seconds (HERALD_SUBSCRIPTIONS__MAX_CONFIRMATIONS_PER_DAY), locked: a concurrent
-- resend of the same subscriber waits, then counts the email this one queued.
SELECT s.id, s.email, s.name
FROM subscriptions AS s
WHERE s.id = ANY($1::uuid[])
  AND s.status = 'pending_confirmation'
  AND (SELECT count(*) FROM deliveries AS d
       WHERE d.subscriber_id = s.id AND d.kind = 'confirmation'
         AND d.created_at > now() - make_interval(secs => $2::float8)) < $3::integer
ORDER BY s.id
FOR UPDATE OF s

-- name: unsubscribe_many
-- The admin's unsubscribe: like unsubscribe, for many; returns how many changed.
WITH gone AS (
    UPDATE subscriptions
    SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
    WHERE id = ANY($1::uuid[]) AND status <> 'unsubscribed'
    RETURNING id
), tokens AS (
    DELETE FROM subscription_tokens WHERE subscriber_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone

-- name: delete_many
-- Erasure (the admin's delete, the preference centre's "erase me"): in one statement the
-- subscribers go, their addresses become "erased" suppressions (herald_address_key: the
-- key blocks a re-import or a sign-up, the address itself is forgotten; a row already
-- there forgets its address and becomes an erasure), and their delivery history forgets
-- them: the address in recipient and the stored message are blanked, and subscriber_id
-- is cleared (what the subscriptions_forget_deliveries trigger does; a row a worker is
-- sending right now is left to it). Their queued emails are suppressed, so none goes
-- out afterwards. Issue counts stay right. $2: who erased them (admin, preferences, api).
WITH gone AS (
    DELETE FROM subscriptions WHERE id = ANY($1::uuid[])
    RETURNING id, email
), suppressed AS (
    INSERT INTO suppressions AS s (address_key, email, reason, source)
    SELECT DISTINCT herald_address_key(email), NULL::text, 'erased', $2::text FROM gone
    ON CONFLICT (address_key) DO UPDATE
    SET email = NULL, reason = 'erased', source = EXCLUDED.source
), history AS (
    UPDATE deliveries
    SET status = CASE WHEN status = 'queued' THEN 'suppressed' ELSE status END,
        last_error = CASE WHEN status = 'queued' THEN 'subscriber deleted' ELSE last_error END,
        recipient = '(erased)', message = NULL, subscriber_id = NULL, updated_at = now()
    WHERE subscriber_id = ANY($1::uuid[]) AND subscriber_id IN (SELECT id FROM gone)
      AND status <> 'sending'
)
SELECT count(*) FROM gone

-- name: contains_newest_recent
-- A "contains" search, first try: walk the newest $6 rows after the cursor (the list's
-- index) and keep the matches. A common text (a domain) fills its page within a few
-- hundred rows, where the trigram index would fetch every one of its 100,000 matches
-- to sort them. Fewer than $5 back: the caller asks contains_newest.
SELECT id, email, name, status, created_at, confirmed_at
FROM (
    SELECT id, email, name, status, created_at, confirmed_at
    FROM subscriptions
    WHERE (created_at, id) < ($1::timestamptz, $2::uuid)
      AND ($3::text IS NULL OR status = $3::text)
    ORDER BY created_at DESC, id DESC
    LIMIT $6::integer
) AS recent
WHERE strpos(lower(email), lower($4::text)) > 0 OR strpos(lower(name), lower($4::text)) > 0
ORDER BY created_at DESC, id DESC
LIMIT $5::integer

-- name: contains_oldest_recent
-- contains_newest_recent, oldest first.
SELECT id, email, name, status, created_at, confirmed_at
FROM (
    SELECT id, email, name, status, created_at, confirmed_at
    FROM subscriptions
    WHERE (created_at, id) > ($1::timestamptz, $2::uuid)
      AND ($3::text IS NULL OR status = $3::text)
    ORDER BY created_at, id
    LIMIT $6::integer
) AS recent
WHERE strpos(lower(email), lower($4::text)) > 0 OR strpos(lower(name), lower($4::text)) > 0
ORDER BY created_at, id
LIMIT $5::integer

-- name: contains_newest
-- A "contains" search through the trigram index: every row holding all the text's
-- trigrams (MATERIALIZED: found by the index, never by walking the list), checked with
-- strpos, then sorted. Fast when the text is rare, which it is when the first try
-- came back short.
WITH candidates AS MATERIALIZED (
    SELECT id, email, name, status, created_at, confirmed_at
    FROM subscriptions
    WHERE herald_subscriber_trigrams(email, name) @> herald_trigrams(lower($4::text))
      AND (strpos(lower(email), lower($4::text)) > 0 OR strpos(lower(name), lower($4::text)) > 0)
)
SELECT id, email, name, status, created_at, confirmed_at
FROM candidates
WHERE (created_at, id) < ($1::timestamptz, $2::uuid)
  AND ($3::text IS NULL OR status = $3::text)
ORDER BY created_at DESC, id DESC
LIMIT $5::integer

-- name: contains_oldest
-- contains_newest, oldest first.
WITH candidates AS MATERIALIZED (
    SELECT id, email, name, status, created_at, confirmed_at
    FROM subscriptions
    WHERE herald_subscriber_trigrams(email, name) @> herald_trigrams(lower($4::text))
      AND (strpos(lower(email), lower($4::text)) > 0 OR strpos(lower(name), lower($4::text)) > 0)
)
SELECT id, email, name, status, created_at, confirmed_at
FROM candidates
WHERE (created_at, id) > ($1::timestamptz, $2::uuid)
  AND ($3::text IS NULL OR status = $3::text)
ORDER BY created_at, id
LIMIT $5::integer

-- name: daily_figures
-- Maintained by the subscriptions_daily_* triggers (migration 0011): UTC days after $1,
-- up to 16 slot rows a day (a year is at most ~6,000 rows, read by primary key).
SELECT day,
       sum(subscribed)::bigint AS subscribed,
       sum(confirmed)::bigint AS confirmed,
       sum(unsubscribed)::bigint AS unsubscribed,
       sum(deleted)::bigint AS deleted,
       sum(confirmed_net)::bigint AS confirmed_net,
       sum(pending_net)::bigint AS pending_net
FROM subscriber_daily
WHERE day > $1::date
GROUP BY day
ORDER BY day

-- name: backfill_subscriber
-- One subscription from before migration 0018 that the backfill job has not reached yet
-- joins the default list with its own status, before a sign-up acts on it: its
-- memberships are then what the previous release meant. Nothing for a newer
-- subscription or one in the default list already. Call with the row locked.
INSERT INTO list_memberships (
    list_id, subscriber_id, status, source, created_at, confirmed_at, unsubscribed_at
)
SELECT l.id, s.id, s.status, 'backfill', s.created_at, s.confirmed_at, s.unsubscribed_at
FROM subscriptions AS s
JOIN lists AS l ON l.slug = 'default'
WHERE s.id = $1::uuid
  AND s.created_at <= l.created_at
ON CONFLICT (list_id, subscriber_id) DO NOTHING
