-- name: version
-- What a process's cached design is checked against (one row, one column).
SELECT version FROM email_design

-- name: design
-- The design row with its logo's type and size and its active layout.
SELECT d.name, d.accent, d.footer_address, d.logo_set, d.logo_sha256, d.layout_id,
       d.version, d.updated_at, u.username AS updated_by,
       g.content_type AS logo_content_type, g.width AS logo_width, g.height AS logo_height,
       l.name AS layout_name, l.source AS layout_source
FROM email_design d
LEFT JOIN email_logos g ON g.sha256 = d.logo_sha256
LEFT JOIN email_layouts l ON l.id = d.layout_id
LEFT JOIN users u ON u.id = d.updated_by

-- name: lock_design
-- Changes to the design take turns on its one row.
SELECT version FROM email_design FOR UPDATE

-- name: set_branding
UPDATE email_design
SET name = $1, accent = $2, footer_address = $3,
    version = version + 1, updated_at = now(), updated_by = $4
RETURNING version

-- name: set_logo
UPDATE email_design
SET logo_set = $1, logo_sha256 = $2,
    version = version + 1, updated_at = now(), updated_by = $3
RETURNING version

-- name: set_layout
UPDATE email_design
SET layout_id = $1, version = version + 1, updated_at = now(), updated_by = $2
RETURNING version

-- name: bump
-- A stored layout changed: caches of the design re-read it.
UPDATE email_design
SET version = version + 1, updated_at = now(), updated_by = $1
RETURNING version

-- name: insert_logo
-- Never overwritten: the same bytes are the same logo.
INSERT INTO email_logos (sha256, content_type, data, width, height, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (sha256) DO NOTHING

-- name: logo
SELECT content_type, data FROM email_logos WHERE sha256 = $1

-- name: layouts
SELECT l.id, l.name, l.updated_at, u.username AS updated_by
FROM email_layouts l
LEFT JOIN users u ON u.id = l.updated_by
ORDER BY lower(l.name), l.created_at

-- name: layout
SELECT id, name, source FROM email_layouts WHERE id = $1

-- name: insert_layout
INSERT INTO email_layouts (name, source, created_by, updated_by)
VALUES ($1, $2, $3, $3)
RETURNING id

-- name: update_layout
UPDATE email_layouts
SET name = $2, source = $3, updated_at = now(), updated_by = $4
WHERE id = $1
RETURNING id

-- name: delete_layout
-- Not the active one (the foreign key would refuse it too).
DELETE FROM email_layouts
WHERE id = $1 AND id IS DISTINCT FROM (SELECT layout_id FROM email_design)
RETURNING id
