-- Opt-in engagement tracking (migration 0031): an issue's setting and stored links, opens,
-- clicks, readers' opt-outs.

-- name: track_issue
-- Tracking on, for an issue that can still change (a published issue's setting is frozen).
INSERT INTO issue_tracking (issue_id)
SELECT id FROM newsletter_issues WHERE id = $1::uuid AND status IN ('draft', 'scheduled')
ON CONFLICT (issue_id) DO NOTHING

-- name: untrack_issue
DELETE FROM issue_tracking AS t
USING newsletter_issues AS i
WHERE t.issue_id = $1::uuid AND i.id = t.issue_id AND i.status IN ('draft', 'scheduled')

-- name: tracking_of
-- Whether an issue is tracked (a row), and its links once published (NULL before).
SELECT links FROM issue_tracking WHERE issue_id = $1::uuid

-- name: freeze_links
-- At publishing (in its transaction): the issue's link targets, never changed afterwards.
UPDATE issue_tracking
SET links = $2::text[], frozen_at = now()
WHERE issue_id = $1::uuid AND links IS NULL
RETURNING issue_id

-- name: links_for_rendering
-- The worker's compile: the published, tracked issues of $1 and their stored links.
SELECT issue_id, links
FROM issue_tracking
WHERE issue_id = ANY($1::uuid[]) AND links IS NOT NULL

-- name: opted_out
-- Of the readers $1, those who turned tracking off.
SELECT subscriber_id FROM tracking_opt_outs WHERE subscriber_id = ANY($1::uuid[])

-- name: opt_out
INSERT INTO tracking_opt_outs (subscriber_id)
SELECT id FROM subscriptions WHERE id = $1::uuid
ON CONFLICT (subscriber_id) DO NOTHING

-- name: opt_in
DELETE FROM tracking_opt_outs WHERE subscriber_id = $1::uuid

-- name: record_open
-- One pixel fetch: a row per delivery and kind (ON CONFLICT: unique opens), only for a
-- delivery of a published, tracked issue, and not once its reader turned tracking off (the
-- copy they already have still carries the pixel). $3: the request showed a machine; a
-- fetch within $4 seconds of the send (or before it was recorded) is a machine's too.
INSERT INTO engagement_opens (issue_id, delivery_id, machine)
SELECT d.issue_id, d.id,
       $3::boolean OR d.sent_at IS NULL OR d.sent_at > now() - make_interval(secs => $4::float8)
FROM deliveries AS d
WHERE d.id = $2::bigint AND d.issue_id = $1::uuid
  AND EXISTS (
      SELECT 1 FROM issue_tracking AS t WHERE t.issue_id = $1::uuid AND t.links IS NOT NULL
  )
  AND NOT EXISTS (SELECT 1 FROM tracking_opt_outs AS o WHERE o.subscriber_id = d.subscriber_id)
ON CONFLICT (issue_id, delivery_id, machine) DO NOTHING

-- name: record_click
-- One click: the stored target of link $3 (0-based) of a published, tracked issue — NULL
-- when it has none, and then nothing is recorded — and a row per delivery, link and kind
-- counting every click, unless the reader turned tracking off (the link still leads to its
-- target). $4 and $5 as in record_open.
WITH link AS (
    SELECT t.links[$3::integer + 1] AS url
    FROM issue_tracking AS t
    WHERE t.issue_id = $1::uuid AND t.links IS NOT NULL
), hit AS (
    INSERT INTO engagement_clicks AS c (issue_id, link, delivery_id, machine)
    SELECT d.issue_id, $3::integer, d.id,
           $4::boolean OR d.sent_at IS NULL
           OR d.sent_at > now() - make_interval(secs => $5::float8)
    FROM deliveries AS d, link
    WHERE d.id = $2::bigint AND d.issue_id = $1::uuid AND link.url IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM tracking_opt_outs AS o WHERE o.subscriber_id = d.subscriber_id
      )
    ON CONFLICT (issue_id, link, delivery_id, machine)
    DO UPDATE SET clicks = c.clicks + 1, last_at = now()
)
SELECT url FROM link WHERE url IS NOT NULL

-- name: issue_results
-- An issue's counts: opens by kind (rows are unique opens), clicks per link and kind
-- (rows: unique, the sum: total), and the readers who clicked anything (people).
SELECT 'open' AS kind, NULL::integer AS link, machine, count(*)::bigint AS uniques,
       count(*)::bigint AS total
FROM engagement_opens
WHERE issue_id = $1::uuid
GROUP BY machine
UNION ALL
SELECT 'click', link::integer, machine, count(*)::bigint, sum(clicks)::bigint
FROM engagement_clicks
WHERE issue_id = $1::uuid
GROUP BY link, machine
UNION ALL
SELECT 'clickers', NULL, false, count(DISTINCT delivery_id)::bigint, 0::bigint
FROM engagement_clicks
WHERE issue_id = $1::uuid AND NOT machine

-- name: reader_engagement
-- What tracking recorded about one reader (the preference centre's data download): per
-- tracked issue they were sent, newest first, whether it was opened and how often its links
-- were clicked (machines' included: this is what is stored about them).
SELECT i.title, d.sent_at,
       EXISTS (
           SELECT 1 FROM engagement_opens AS o
           WHERE o.issue_id = d.issue_id AND o.delivery_id = d.id
       ) AS opened,
       (SELECT coalesce(sum(c.clicks), 0) FROM engagement_clicks AS c
        WHERE c.issue_id = d.issue_id AND c.delivery_id = d.id)::bigint AS clicks
FROM deliveries AS d
JOIN issue_tracking AS t ON t.issue_id = d.issue_id AND t.links IS NOT NULL
JOIN newsletter_issues AS i ON i.id = d.issue_id
WHERE d.subscriber_id = $1::uuid
ORDER BY d.id DESC
LIMIT $2::integer
