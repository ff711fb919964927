-- Queries that belong to no single feature.

-- name: ping
SELECT 1

-- name: database_exists
SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)

-- name: schema_versioned
SELECT to_regclass('alembic_version') IS NOT NULL

-- name: schema_revisions
SELECT version_num FROM alembic_version

-- name: try_advisory_lock
-- Session-level: held until released or the connection closes (a process that dies
-- gives it up with its connection).
SELECT pg_try_advisory_lock($1::bigint)

-- name: statement_timeout
SELECT current_setting('statement_timeout')

-- name: notify_live
-- A live event for signed-in browsers (core/live.py); delivered at commit.
SELECT pg_notify('herald_live', $1::text)
