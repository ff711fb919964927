-- name: add
-- Suppress the address $1 (normalised by the caller) for reason $2, recorded as added by
-- $3, and unsubscribe its subscription in the same statement: the package's invariant
-- (the 0018 trigger then unsubscribes every membership). A row already there keeps its
-- reason, except that a reader's own "unsubscribed" gives way to an operator's or a
-- provider's stronger one; an erased row keeps its address forgotten. (The conflict
-- branch always updates, so RETURNING gives the row as it stands also when a concurrent
-- statement inserted it after this one's snapshot.) One row: the suppression, whether
-- this call created it, and the subscriber it unsubscribed (NULL when none changed).
WITH upserted AS (
    INSERT INTO suppressions AS s (address_key, email, reason, source)
    VALUES (herald_address_key($1::text), $1::text, $2::text, $3::text)
    ON CONFLICT (address_key) DO UPDATE
    SET reason = CASE WHEN s.reason = 'unsubscribed' THEN EXCLUDED.reason ELSE s.reason END,
        source = CASE WHEN s.reason = 'unsubscribed' AND EXCLUDED.reason <> 'unsubscribed'
                      THEN EXCLUDED.source ELSE s.source END
    RETURNING s.address_key, s.email, s.reason, s.source, s.created_at, (s.xmax = 0) AS created
), gone AS (
    UPDATE subscriptions
    SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
    WHERE lower(email) = lower(btrim($1::text)) AND status <> 'unsubscribed'
    RETURNING id
), tokens AS (
    DELETE FROM subscription_tokens WHERE subscriber_id IN (SELECT id FROM gone)
)
SELECT u.address_key, u.email, u.reason, u.source, u.created_at, u.created,
       (SELECT id FROM gone LIMIT 1) AS unsubscribed
FROM upserted AS u

-- name: remove
-- Lift the suppression of the address $1, unless it is an erasure (whose address is
-- forgotten). The row as it was (NULL columns when there was none) and whether it went.
WITH target AS (
    SELECT address_key, email, reason, source, created_at
    FROM suppressions
    WHERE address_key = herald_address_key($1::text)
    FOR UPDATE
), gone AS (
    DELETE FROM suppressions AS s
    USING target AS t
    WHERE s.address_key = t.address_key AND t.reason <> 'erased'
    RETURNING s.address_key
)
SELECT t.address_key, t.email, t.reason, t.source, t.created_at,
       EXISTS (SELECT 1 FROM gone) AS removed
FROM (SELECT 1) AS one
LEFT JOIN target AS t ON true

-- name: page
-- One keyset page, newest first, after the cursor ($1 created_at, $2 address_key), on the
-- suppressions_created index; $3 a reason or NULL for all; $4 NULL (the searches, the
-- same parameters: contains_recent, contains, by_address).
SELECT address_key, email, reason, source, created_at
FROM suppressions
WHERE (created_at, address_key) < ($1::timestamptz, $2::bytea)
  AND ($3::text IS NULL OR reason = $3::text)
  AND ($4::text IS NULL OR strpos(lower(email), lower($4::text)) > 0)
ORDER BY created_at DESC, address_key DESC
LIMIT $5::integer

-- name: contains_recent
-- A search's first try: walk the newest $6 rows after the cursor and keep those whose
-- address contains $4. A common text fills its page within a few rows (0.2 ms at 1M
-- suppressions). At least one row: the matches (none: one row of NULLs) and whether the
-- walk reached the end of the list (fewer than $6 rows), which makes them the answer;
-- otherwise, fewer than $5 back, the caller asks contains (the trigram index).
WITH recent AS MATERIALIZED (
    SELECT address_key, email, reason, source, created_at
    FROM suppressions
    WHERE (created_at, address_key) < ($1::timestamptz, $2::bytea)
      AND ($3::text IS NULL OR reason = $3::text)
    ORDER BY created_at DESC, address_key DESC
    LIMIT $6::integer
), found AS (
    SELECT address_key, email, reason, source, created_at
    FROM recent
    WHERE strpos(lower(email), lower($4::text)) > 0
    ORDER BY created_at DESC, address_key DESC
    LIMIT $5::integer
)
SELECT f.address_key, f.email, f.reason, f.source, f.created_at,
       (SELECT count(*) FROM recent) < $6::integer AS walked_all
FROM (SELECT 1) AS one
LEFT JOIN found AS f ON true
ORDER BY f.created_at DESC, f.address_key DESC

-- name: contains
-- A search through suppressions_email_trigrams (migration 0024): every kept address
-- holding all of the text's trigrams (MATERIALIZED: found by the index, never by walking
-- the list), checked with strpos, then sorted. Fast when the text is rare, which it is
-- when the first try came back short. (A text under three characters has no trigram:
-- every kept row is a candidate, as a scan would have read anyway.)
WITH candidates AS MATERIALIZED (
    SELECT address_key, email, reason, source, created_at
    FROM suppressions
    WHERE herald_trigrams(lower(email)) @> herald_trigrams(lower($4::text))
      AND email IS NOT NULL
      AND strpos(lower(email), lower($4::text)) > 0
)
SELECT address_key, email, reason, source, created_at
FROM candidates
WHERE (created_at, address_key) < ($1::timestamptz, $2::bytea)
  AND ($3::text IS NULL OR reason = $3::text)
ORDER BY created_at DESC, address_key DESC
LIMIT $5::integer

-- name: by_address
-- The row of the whole address $4 (kept or erased) by its key: the primary key, not a walk.
-- The same parameters as page, so that a page of it is a page like any other.
SELECT address_key, email, reason, source, created_at
FROM suppressions
WHERE address_key = herald_address_key($4::text)
  AND (created_at, address_key) < ($1::timestamptz, $2::bytea)
  AND ($3::text IS NULL OR reason = $3::text)
LIMIT $5::integer

-- name: counts
-- Maintained by the suppressions_count_* triggers (migration 0022): 16 slots per reason.
SELECT reason, sum(n)::bigint AS n
FROM suppression_counts
GROUP BY reason

-- name: add_many
-- add for several addresses in one statement (a batch of provider events): $1 the
-- addresses (normalised by the caller, distinct by key), $2 their reasons, $3 their
-- sources; the same rules as add, and the same invariant: every subscription of these
-- addresses is unsubscribed in this statement. The suppression list's triggers then run
-- once (one counter row each), which also keeps two such batches from deadlocking on
-- the counters. A row per address: whether this call created its suppression, and the
-- subscriber it unsubscribed (NULL when none changed).
WITH input AS (
    SELECT i.email, i.reason, i.source, herald_address_key(i.email) AS address_key
    FROM unnest($1::text[], $2::text[], $3::text[]) AS i (email, reason, source)
), upserted AS (
    INSERT INTO suppressions AS s (address_key, email, reason, source)
    SELECT address_key, email, reason, source FROM input ORDER BY address_key
    ON CONFLICT (address_key) DO UPDATE
    SET reason = CASE WHEN s.reason = 'unsubscribed' THEN EXCLUDED.reason ELSE s.reason END,
        source = CASE WHEN s.reason = 'unsubscribed' AND EXCLUDED.reason <> 'unsubscribed'
                      THEN EXCLUDED.source ELSE s.source END
    RETURNING s.address_key, (s.xmax = 0) AS created
), gone AS (
    UPDATE subscriptions
    SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
    WHERE lower(email) IN (SELECT lower(btrim(email)) FROM input) AND status <> 'unsubscribed'
    RETURNING id, lower(email) AS email
), tokens AS (
    DELETE FROM subscription_tokens WHERE subscriber_id IN (SELECT id FROM gone)
)
SELECT i.email, u.created, g.id AS unsubscribed
FROM input AS i
JOIN upserted AS u ON u.address_key = i.address_key
LEFT JOIN gone AS g ON g.email = lower(btrim(i.email))
