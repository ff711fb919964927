-- The development outbox: messages "sent" by the outbox provider.

-- name: store
INSERT INTO outbox_messages (message_id, sender, recipient, subject, html_body, text_body, headers)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])

-- name: list_messages
SELECT id, message_id, sender, recipient, subject, html_body, text_body, headers::text AS headers,
       created_at
FROM outbox_messages
WHERE ($1::text IS NULL OR lower(recipient) = lower($1::text))
ORDER BY id
LIMIT $2::integer
