-- What an issue goes to (migration 0018): its lists (issue_lists; none: the default list)
-- and optionally one saved segment (newsletter_issues.segment_id). The fan-out itself is
-- fan_out_chunk in queries.sql.

-- name: lists_by_slug
SELECT id, slug, name FROM lists WHERE slug = ANY($1::text[])

-- name: segment_by_id
SELECT id, name FROM segments WHERE id = $1::uuid

-- name: segment_filter
SELECT filter::text FROM segments WHERE id = $1::uuid

-- name: all_lists
-- The editor's "Send to" checkboxes: the default list first, then by name.
SELECT slug, name FROM lists ORDER BY slug <> 'default', name, slug LIMIT $1::integer

-- name: all_segments
SELECT id, name FROM segments ORDER BY name LIMIT $1::integer

-- name: set_issue_target
-- Replace an editable issue's lists ($2; NULL: keep them) and segment ($3) in one
-- statement; nothing when the issue is no longer a draft or scheduled (a published issue's
-- target is frozen).
WITH issue AS (
    UPDATE newsletter_issues
    SET segment_id = $3::uuid, updated_at = now()
    WHERE id = $1::uuid AND status IN ('draft', 'scheduled')
    RETURNING id
), dropped AS (
    DELETE FROM issue_lists AS il
    USING issue AS i
    WHERE il.issue_id = i.id AND $2::uuid[] IS NOT NULL AND il.list_id <> ALL($2::uuid[])
), added AS (
    INSERT INTO issue_lists (issue_id, list_id)
    SELECT i.id, l.id FROM issue AS i CROSS JOIN unnest(coalesce($2::uuid[], '{}')) AS l(id)
    ON CONFLICT (issue_id, list_id) DO NOTHING
)
SELECT id FROM issue

-- name: count_members
-- How many readers an issue would go to if published now (the publish confirmation):
-- confirmed subscriptions with a confirmed membership in one of its lists, in its segment
-- when it has one (the slot). A semi-join over the confirmed subscriptions: 0.6 s at 1M,
-- half a count(DISTINCT). Plus count_unlisted.
WITH targets AS (
    SELECT il.list_id FROM issue_lists AS il WHERE il.issue_id = $1::uuid
    UNION ALL
    SELECT l.id FROM lists AS l
    WHERE l.slug = 'default'
      AND NOT EXISTS (SELECT 1 FROM issue_lists AS il WHERE il.issue_id = $1::uuid)
)
SELECT count(*)
FROM subscriptions AS s
WHERE s.status = 'confirmed'
  AND EXISTS (
      SELECT 1 FROM list_memberships AS m
      WHERE m.subscriber_id = s.id AND m.status = 'confirmed'
        AND m.list_id IN (SELECT list_id FROM targets)
  )
  AND /* segment */ TRUE

-- name: count_unlisted
-- The readers fan_out_unlisted would add for this issue (none once the backfill is done).
SELECT count(*)
FROM subscriptions AS s
JOIN lists AS d ON d.slug = 'default'
WHERE NOT EXISTS (SELECT 1 FROM backfills WHERE name = 'default_list')
  AND s.created_at < d.created_at AND s.status = 'confirmed'
  AND NOT EXISTS (SELECT 1 FROM list_memberships AS m WHERE m.subscriber_id = s.id)
  AND (
      NOT EXISTS (SELECT 1 FROM issue_lists AS il WHERE il.issue_id = $1::uuid)
      OR EXISTS (SELECT 1 FROM issue_lists AS il WHERE il.issue_id = $1::uuid AND il.list_id = d.id)
  )
  AND /* segment */ TRUE

-- name: fan_out_unlisted
-- The last step of an issue's fan-out when it goes to the default list: confirmed
-- subscriptions from before migration 0018 (created before the default list) that have no
-- membership at all yet, because the default-list backfill (a background job) has not
-- reached them. They are members of the default list in waiting, so they get the issue.
-- Until the backfill is done: a range of subscriptions_created up to the migration, each
-- probed in list_memberships_subscriber, once per issue (160 ms at 300,000, finding
-- nobody once they all have a membership). Once its row is in backfills (the name of
-- subscriptions/backfill.sql, backfill_finished) nobody can be found, and the one-time
-- filter skips the scan. Run in the transaction of the chunk that finished the fan-out.
-- The segment's condition goes in the slot (parameters from $3).
WITH chunk AS (
    SELECT s.id, s.email
    FROM subscriptions AS s
    JOIN lists AS d ON d.slug = 'default'
    WHERE NOT EXISTS (SELECT 1 FROM backfills WHERE name = 'default_list')
      AND s.created_at < d.created_at AND s.status = 'confirmed'
      AND NOT EXISTS (SELECT 1 FROM list_memberships AS m WHERE m.subscriber_id = s.id)
      AND (
          NOT EXISTS (SELECT 1 FROM issue_lists AS il WHERE il.issue_id = $1::uuid)
          OR EXISTS (
              SELECT 1 FROM issue_lists AS il WHERE il.issue_id = $1::uuid AND il.list_id = d.id
          )
      )
      AND /* segment */ TRUE
), queued AS (
    INSERT INTO deliveries (kind, recipient, subscriber_id, issue_id, max_attempts)
    SELECT 'issue', c.email, c.id, $1::uuid, $2::integer
    FROM chunk AS c
    ORDER BY c.id
    ON CONFLICT (subscriber_id, issue_id) DO NOTHING
    RETURNING 1
)
UPDATE newsletter_issues AS i
SET recipients = coalesce(i.recipients, 0) + (SELECT count(*) FROM queued)::integer
WHERE i.id = $1::uuid
RETURNING (SELECT count(*) FROM queued)::integer AS queued, i.recipients
