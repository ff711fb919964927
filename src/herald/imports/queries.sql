-- name: insert_import
INSERT INTO imports (job_id, filename, created_by, hold_token)
VALUES ($1::uuid, $2::text, $3::uuid, $4::uuid)

-- name: add_chunk
-- One chunk of the upload, and the running size, in one statement.
WITH chunk AS (
    INSERT INTO job_files (job_id, seq, data)
    VALUES ($1::uuid, $2::integer, $3::bytea)
)
UPDATE imports
SET size = size + length($3::bytea), chunks = chunks + 1
WHERE job_id = $1::uuid AND uploaded_at IS NULL

-- name: read_piece
-- Part of one chunk: the chunks are stored uncompressed (STORAGE EXTERNAL), so substring
-- reads only the bytes asked for.
SELECT substring(data FROM $3::integer + 1 FOR $4::integer)
FROM job_files
WHERE job_id = $1::uuid AND seq = $2::integer

-- name: finish_upload
UPDATE imports
SET uploaded_at = now(), header = $2::text[], delimiter = $3::text
WHERE job_id = $1::uuid AND uploaded_at IS NULL
RETURNING job_id

-- name: get_import
SELECT job_id, filename, size, chunks, uploaded_at, delimiter, header, columns, list_ids,
       mode, hold_token, imported, updated, skipped, rejected, created_by, created_at
FROM imports
WHERE job_id = $1::uuid

-- name: recent_imports
SELECT job_id, filename, size, chunks, uploaded_at, delimiter, header, columns, list_ids,
       mode, hold_token, imported, updated, skipped, rejected, created_by, created_at
FROM imports
ORDER BY created_at DESC, job_id DESC
LIMIT $1::integer

-- name: configure
-- The choices of the mapping step; the hold is given up in the same transaction (the
-- caller releases the job with the same token).
UPDATE imports
SET columns = $2::jsonb, list_ids = $3::uuid[], mode = $4::text, hold_token = NULL
WHERE job_id = $1::uuid AND hold_token = $5::uuid AND uploaded_at IS NOT NULL
RETURNING job_id

-- name: add_counts
UPDATE imports
SET imported = imported + $2::bigint, updated = updated + $3::bigint,
    skipped = skipped + $4::bigint, rejected = rejected + $5::bigint
WHERE job_id = $1::uuid
RETURNING imported, updated, skipped, rejected

-- name: lists_by_slug
SELECT id, slug FROM lists WHERE slug = ANY($1::text[])

-- name: list_slugs
SELECT id, slug, name FROM lists WHERE id = ANY($1::uuid[]) ORDER BY name

-- name: all_lists
SELECT id, slug, name FROM lists ORDER BY slug = 'default' DESC, name LIMIT 500

-- name: upsert_batch
-- One batch of rows ($1 emails, $2 names or NULL, $3 attribute objects as JSON text;
-- one address at most once) in one statement: the subscriptions by normalised address
-- (the lower(email) unique index) and their memberships of the lists $4, so 0018's
-- trigger adds no default-list membership. $5: confirmed mode (the operator attests
-- consent: confirmed, no email) or opt-in (new subscribers pending; new memberships
-- pending). Suppressed addresses (herald_address_key) and addresses unsubscribed from
-- everything are left alone (skipped). An existing address keeps its status, except
-- pending → confirmed in confirmed mode; a confirmed one is never made pending; its
-- name is replaced when one is given, its attributes merged. A list membership the
-- reader left (unsubscribed) stays so. Rows are written in address order, so two
-- imports of overlapping files lock in the same order. One row back per address
-- written: whether it is new, and whether a membership was added pending (opt-in:
-- it gets a confirmation email). An existing address whose attributes merged with the
-- row's would pass $7 bytes (measured on jsonb's text, which is a little longer than
-- compact JSON) is not written: it comes back with too_large (a rejected row), so repeated
-- imports cannot grow a subscriber past the limit the API holds them to.
WITH candidates AS (
    SELECT i.email, i.name, i.attributes::jsonb AS attributes
    FROM unnest($1::text[], $2::text[], $3::text[]) AS i (email, name, attributes)
    WHERE NOT EXISTS (
        SELECT 1 FROM suppressions AS x WHERE x.address_key = herald_address_key(i.email)
    )
), oversized AS (
    SELECT c.email
    FROM candidates AS c
    JOIN subscriptions AS e ON lower(e.email) = lower(c.email)
    WHERE c.attributes <> '{}'
      AND octet_length((e.attributes || c.attributes)::text) > $7::integer
), input AS (
    SELECT c.* FROM candidates AS c
    WHERE NOT EXISTS (SELECT 1 FROM oversized AS o WHERE o.email = c.email)
), upserted AS (
    INSERT INTO subscriptions AS s (id, email, name, status, confirmed_at, attributes)
    SELECT gen_random_uuid(), i.email, coalesce(i.name, ''),
           CASE WHEN $5::boolean THEN 'confirmed' ELSE 'pending_confirmation' END,
           CASE WHEN $5::boolean THEN now() END,
           i.attributes
    FROM input AS i
    ORDER BY lower(i.email)
    ON CONFLICT ((lower(email))) DO UPDATE
    SET name = CASE WHEN EXCLUDED.name = '' THEN s.name ELSE EXCLUDED.name END,
        -- Checked above; a concurrent change in between keeps what is there.
        attributes = CASE
            WHEN octet_length((s.attributes || EXCLUDED.attributes)::text) <= $7::integer
            THEN s.attributes || EXCLUDED.attributes ELSE s.attributes END,
        status = CASE WHEN $5::boolean THEN 'confirmed' ELSE s.status END,
        confirmed_at = CASE WHEN $5::boolean THEN coalesce(s.confirmed_at, now())
                            ELSE s.confirmed_at END,
        updated_at = now()
    WHERE s.status <> 'unsubscribed'
    RETURNING s.id, s.email, s.name, (s.xmax = 0) AS inserted
), targets AS (
    SELECT id FROM lists WHERE id = ANY($4::uuid[])
), joined AS (
    INSERT INTO list_memberships AS m (list_id, subscriber_id, status, source, confirmed_at)
    SELECT t.id, u.id,
           CASE WHEN $5::boolean THEN 'confirmed' ELSE 'pending_confirmation' END,
           $6::text,
           CASE WHEN $5::boolean THEN now() END
    FROM upserted AS u CROSS JOIN targets AS t
    ORDER BY t.id, u.id
    ON CONFLICT (list_id, subscriber_id) DO UPDATE
    SET status = 'confirmed', confirmed_at = coalesce(m.confirmed_at, now()), updated_at = now()
    WHERE $5::boolean AND m.status = 'pending_confirmation'
    RETURNING m.subscriber_id, m.status, (m.xmax = 0) AS inserted
)
SELECT u.id, u.email, u.name, u.inserted,
       EXISTS (
           SELECT 1 FROM joined AS j
           WHERE j.subscriber_id = u.id AND j.inserted AND j.status = 'pending_confirmation'
       ) AS to_confirm,
       false AS too_large
FROM upserted AS u
UNION ALL
SELECT NULL, o.email, '', false, false, true FROM oversized AS o

-- name: enqueue_confirmations
-- Opt-in: the confirmation token and email of each new member ($2 subscriber, $1 token
-- hash, $3 recipient, $4 the rendered message), set-based, in the batch's transaction
-- (the transactional outbox of the form's sign-up, for many).
WITH tokens AS (
    INSERT INTO subscription_tokens (token_hash, subscriber_id, expires_at)
    SELECT t.hash, t.subscriber_id, now() + make_interval(secs => $5::float8)
    FROM unnest($1::bytea[], $2::uuid[]) AS t (hash, subscriber_id)
)
INSERT INTO deliveries (kind, recipient, subscriber_id, message, max_attempts)
SELECT 'confirmation', d.recipient, d.subscriber_id, d.message::jsonb, $6::integer
FROM unnest($3::text[], $2::uuid[], $4::text[]) AS d (recipient, subscriber_id, message)

-- name: insert_errors
INSERT INTO job_errors (job_id, line, email, error)
SELECT $1::uuid, e.line, e.email, e.error
FROM unnest($2::bigint[], $3::text[], $4::text[]) AS e (line, email, error)
ON CONFLICT (job_id, line) DO NOTHING

-- name: errors_page
SELECT line, email, error
FROM job_errors
WHERE job_id = $1::uuid AND line > $2::bigint
ORDER BY line
LIMIT $3::integer

-- name: export_all
-- One keyset page of every subscriber, oldest first, after ($1 created_at, $2 id).
-- Filters, each NULL for none (the admin's subscriber page): $4 status, $5 a text the
-- email or name contains, $6 a LIKE "starts with" pattern.
SELECT s.id, s.email, s.name, s.status, s.created_at, s.confirmed_at,
       s.attributes::text AS attributes
FROM subscriptions AS s
WHERE (s.created_at, s.id) > ($1::timestamptz, $2::uuid)
  AND ($4::text IS NULL OR s.status = $4::text)
  AND ($5::text IS NULL OR strpos(lower(s.email), lower($5::text)) > 0
       OR strpos(lower(s.name), lower($5::text)) > 0)
  AND ($6::text IS NULL OR lower(s.email) LIKE lower($6::text)
       OR lower(s.name) LIKE lower($6::text))
  AND /* segment */ TRUE
ORDER BY s.created_at, s.id
LIMIT $3::integer

-- name: export_list
-- export_all for the members of list $7: their membership's status and confirmation
-- ($4 filters on it). A segment's condition (segments/compiler.py) replaces the slot in
-- both, its parameters after the statement's own.
SELECT s.id, s.email, s.name, m.status, s.created_at, m.confirmed_at,
       s.attributes::text AS attributes
FROM subscriptions AS s
JOIN list_memberships AS m ON m.subscriber_id = s.id AND m.list_id = $7::uuid
WHERE (s.created_at, s.id) > ($1::timestamptz, $2::uuid)
  AND ($4::text IS NULL OR m.status = $4::text)
  AND ($5::text IS NULL OR strpos(lower(s.email), lower($5::text)) > 0
       OR strpos(lower(s.name), lower($5::text)) > 0)
  AND ($6::text IS NULL OR lower(s.email) LIKE lower($6::text)
       OR lower(s.name) LIKE lower($6::text))
  AND /* segment */ TRUE
ORDER BY s.created_at, s.id
LIMIT $3::integer
