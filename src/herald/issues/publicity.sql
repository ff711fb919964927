-- An issue's place in the public archive (migration 0030): newsletter_issues.public, the
-- editor's choice, and archive_slug, given by the database when a public issue starts
-- publishing.

-- name: set_public
-- Only while the issue is editable (the caller's transaction holds its row).
UPDATE newsletter_issues
SET public = $2::boolean
WHERE id = $1::uuid AND status IN ('draft', 'scheduled')
