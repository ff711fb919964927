-- name: record_events
-- Store a batch of provider events (one element per event in each array, sorted by the
-- caller by (provider, event id) so that concurrent batches take the unique index's locks
-- in one order) in one statement, set-based:
--   $1 provider, $2 provider event id, $3 kind, $4 occurred_at, $5 the recipient
--   normalised ('' when the provider gave none or no valid address), $6 Herald's delivery
--   id (NULL when the message did not carry it), $7 the provider's message id ('' when
--   none), $8 detail, $9 whether the policy suppresses this kind at once; $10 the
--   soft-bounce window.
-- Each event finds its delivery by Herald's id (when such a delivery exists), else by the
-- provider's message id (index 0028; the second branch runs only when the first found
-- nothing); its address is the event's recipient, else the delivery's (none once the
-- reader was erased: the delivery's recipient is then the placeholder '(erased)'); its reader the
-- delivery's subscriber, else the subscription of the address. ON CONFLICT DO NOTHING: a
-- replay returns no row and changes nothing. A row per event stored: its position (1-based)
-- in the arrays, its id, what it was matched to, the address, whether the address was
-- already suppressed for a reason other than the reader's own unsubscribe ("listed"),
-- whether it is marked suppressed (an at-once kind on an address not listed yet), and for
-- a soft bounce the number of the address's soft bounces in the window ending at its
-- time, itself included: those stored before (this statement's snapshot does not see its
-- own inserts) plus those of this batch.
WITH input AS (
    SELECT *
    FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],
        $6::bigint[], $7::text[], $8::text[], $9::boolean[]
    ) WITH ORDINALITY AS i (
        provider, event_id, kind, occurred_at, recipient,
        delivery_id, message_id, detail, at_once, position
    )
), matched AS (
    SELECT i.*, d.id AS found_delivery, d.issue_id, d.subscriber_id AS delivery_subscriber,
           coalesce(nullif(i.recipient, ''), nullif(d.recipient, '(erased)')) AS address
    FROM input AS i
    LEFT JOIN LATERAL (
        SELECT id, issue_id, subscriber_id, recipient
        FROM deliveries
        WHERE id = i.delivery_id
        UNION ALL
        SELECT id, issue_id, subscriber_id, recipient
        FROM deliveries
        WHERE provider_message_id = nullif(i.message_id, '')
        LIMIT 1
    ) AS d ON true
), keyed AS (
    SELECT m.*, k.address_key,
           coalesce(
               m.delivery_subscriber,
               (SELECT s.id FROM subscriptions AS s WHERE lower(s.email) = lower(m.address))
           ) AS subscriber_id,
           EXISTS (
               SELECT 1 FROM suppressions AS p
               WHERE p.address_key = k.address_key AND p.reason <> 'unsubscribed'
           ) AS listed
    FROM matched AS m
    CROSS JOIN LATERAL (SELECT herald_address_key(m.address) AS address_key) AS k
), inserted AS (
    INSERT INTO email_events (
        provider, provider_event_id, kind, delivery_id, issue_id, subscriber_id,
        address_key, occurred_at, detail, suppressed
    )
    SELECT provider, event_id, kind, found_delivery, issue_id, subscriber_id,
           address_key, occurred_at, detail,
           at_once AND address_key IS NOT NULL AND NOT listed
    FROM keyed
    ORDER BY position
    ON CONFLICT (provider, provider_event_id) DO NOTHING
    RETURNING id, provider, provider_event_id, kind, delivery_id, subscriber_id,
              address_key, occurred_at, suppressed
)
SELECT k.position, e.id, e.delivery_id, e.subscriber_id, k.address, k.listed, e.suppressed,
       CASE WHEN e.kind = 'soft_bounce' AND e.address_key IS NOT NULL THEN
           (SELECT count(*)
            FROM email_events AS b
            WHERE b.address_key = e.address_key AND b.kind = 'soft_bounce'
              AND b.occurred_at BETWEEN e.occurred_at - $10::interval AND e.occurred_at)
           + count(*) OVER (
               PARTITION BY e.address_key, e.kind ORDER BY e.occurred_at
               RANGE BETWEEN $10::interval PRECEDING AND CURRENT ROW
           )
       END AS soft_bounces
FROM inserted AS e
JOIN keyed AS k ON k.provider = e.provider AND k.event_id = e.provider_event_id
ORDER BY k.position

-- name: mark_suppressed
-- The events $1 put their address on the suppression list (soft bounces past the limit,
-- decided after record_events counted them).
UPDATE email_events SET suppressed = true WHERE id = ANY($1::bigint[])

-- name: notify_many
-- NOTIFY channel $1 with each payload of $2 (core.live's events for the subscribers a batch
-- unsubscribed), in one statement; delivered when the transaction commits.
SELECT count(pg_notify($1::text, payload)) FROM unnest($2::text[]) AS payload
