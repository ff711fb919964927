-- Queries that belong to no single feature.

-- name: ping
SELECT 1

-- name: database_exists
SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)
