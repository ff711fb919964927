-- The public archive: a public list's public sent issues (migration 0030). An issue is in a
-- list's archive when it went to that list (issue_lists), or, without issue_lists rows, to
-- the default list ($2: the list is the default one), as in issues/queries.sql.

-- name: archive_list
SELECT id, slug, name, description, updated_at
FROM lists
WHERE slug = $1::text AND visibility = 'public'

-- name: archive_entries
-- A page, newest first, after the keyset position ($3, $4) when given.
SELECT i.id, i.archive_slug, i.title, i.preheader, i.published_at, i.updated_at
FROM newsletter_issues AS i
WHERE i.public AND i.status = 'sent' AND i.archive_slug IS NOT NULL
  AND (EXISTS (SELECT 1 FROM issue_lists AS il WHERE il.issue_id = i.id AND il.list_id = $1::uuid)
       OR ($2::boolean
           AND NOT EXISTS (SELECT 1 FROM issue_lists AS il WHERE il.issue_id = i.id)))
  AND ($3::timestamptz IS NULL OR (i.published_at, i.id) < ($3::timestamptz, $4::uuid))
ORDER BY i.published_at DESC, i.id DESC
LIMIT $5::integer

-- name: archive_position
-- One issue of the list's archive by its slug ($3), without its bodies: where the index's
-- next page starts, and an issue page's validators (its bodies read only for a 200).
SELECT i.id, i.archive_slug, i.title, i.preheader, i.published_at, i.updated_at
FROM newsletter_issues AS i
WHERE i.archive_slug = $3::text AND i.public AND i.status = 'sent'
  AND (EXISTS (SELECT 1 FROM issue_lists AS il WHERE il.issue_id = i.id AND il.list_id = $1::uuid)
       OR ($2::boolean
           AND NOT EXISTS (SELECT 1 FROM issue_lists AS il WHERE il.issue_id = i.id)))

-- name: archive_bodies
-- The bodies of a feed's or a page's issues (read only when it is not answered by a 304).
SELECT id, html_content, text_content
FROM newsletter_issues
WHERE id = ANY($1::uuid[])
