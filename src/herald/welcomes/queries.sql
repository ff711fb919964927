-- The lists' welcome emails (migration 0029): list_welcomes holds each list's, and
-- list_welcomes_sent every reader and list already welcomed (once each).

-- name: get_welcome
SELECT list_id, enabled, subject, body, updated_at
FROM list_welcomes
WHERE list_id = $1::uuid

-- name: save_welcome
-- Create or replace the list's welcome; nothing for an unknown list (the caller says 404).
INSERT INTO list_welcomes (list_id, enabled, subject, body, updated_at, updated_by)
SELECT l.id, $2::boolean, $3::text, $4::text, now(), $5::uuid
FROM lists AS l
WHERE l.id = $1::uuid
ON CONFLICT (list_id) DO UPDATE
SET enabled = EXCLUDED.enabled, subject = EXCLUDED.subject, body = EXCLUDED.body,
    updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by
RETURNING list_id, enabled, subject, body, updated_at

-- name: take_due
-- In the transaction that confirmed something for the reader $1: the welcomes it earned,
-- taken (remembered in list_welcomes_sent, so none goes twice). Due: a list with an
-- enabled welcome, whose membership is confirmed, for a confirmed address, where the
-- membership or the address was confirmed by this very transaction (confirmed_at =
-- now(), the transaction's start: every confirming statement writes now()), and the
-- reader was never welcomed to it. A confirmation racing this one waits on the primary
-- key and then inserts nothing. With the list's name and what the email needs of the
-- reader.
WITH due AS (
    SELECT m.list_id
    FROM list_memberships AS m
    JOIN list_welcomes AS w ON w.list_id = m.list_id AND w.enabled
    JOIN subscriptions AS s ON s.id = m.subscriber_id
    WHERE m.subscriber_id = $1::uuid
      AND m.status = 'confirmed'
      AND s.status = 'confirmed'
      AND (m.confirmed_at = now() OR s.confirmed_at = now())
), taken AS (
    INSERT INTO list_welcomes_sent (subscriber_id, list_id)
    SELECT $1::uuid, list_id FROM due
    ON CONFLICT (subscriber_id, list_id) DO NOTHING
    RETURNING list_id
)
SELECT w.list_id, w.enabled, w.subject, w.body, w.updated_at, l.name AS list_name,
       s.email, s.name, s.attributes::text AS attributes
FROM taken AS t
JOIN list_welcomes AS w ON w.list_id = t.list_id
JOIN lists AS l ON l.id = t.list_id
JOIN subscriptions AS s ON s.id = $1::uuid
ORDER BY l.name

-- name: confirmed_readers
-- Of the readers $1, those still confirmed: the worker sends a queued welcome only to them
-- (one who unsubscribed, was suppressed — which unsubscribes — or was erased since gets none).
SELECT id FROM subscriptions WHERE id = ANY($1::uuid[]) AND status = 'confirmed'
