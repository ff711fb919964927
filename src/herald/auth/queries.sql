-- Admin users, sessions, login throttling, API keys.

-- name: insert_user
INSERT INTO users (id, username, password_hash, role)
VALUES ($1::uuid, $2::text, $3::text, $4::text)
ON CONFLICT ((lower(username))) DO NOTHING
RETURNING id

-- name: find_user_by_username
SELECT id, username, password_hash, password_changed_at, role, disabled_at
FROM users
WHERE lower(username) = lower($1::text)

-- name: find_user_by_id
SELECT id, username, password_hash, password_changed_at, role, disabled_at
FROM users
WHERE id = $1::uuid

-- name: count_users
SELECT count(*) FROM users

-- name: list_users
SELECT u.id, u.username, u.role, u.disabled_at, u.created_at, u.password_changed_at,
       (SELECT count(*) FROM sessions AS s
        WHERE s.user_id = u.id AND s.expires_at > now())::integer AS sessions
FROM users AS u
ORDER BY lower(u.username)

-- name: lock_active_admins
-- Taken before a change that could leave no active admin: two admins demoting or
-- disabling each other concurrently queue here, and the second sees the first's change.
SELECT id FROM users
WHERE role = 'admin' AND disabled_at IS NULL
ORDER BY id
FOR UPDATE

-- name: set_user_role
UPDATE users SET role = $2::text WHERE id = $1::uuid RETURNING id

-- name: set_user_disabled
UPDATE users
SET disabled_at = CASE WHEN $2::boolean THEN coalesce(disabled_at, now()) END
WHERE id = $1::uuid
RETURNING id

-- name: set_password_hash
-- Rehash on login: same password, new parameters; sessions are not touched.
UPDATE users SET password_hash = $2::text WHERE id = $1::uuid

-- name: change_password
UPDATE users
SET password_hash = $2::text, password_changed_at = clock_timestamp()
WHERE id = $1::uuid

-- name: insert_session
INSERT INTO sessions (token_hash, user_id, expires_at, user_agent, ip)
VALUES ($1::bytea, $2::uuid, now() + make_interval(secs => $3::float8), $4::text, $5::text)

-- name: find_session
-- A session is alive while both its absolute expiry and its idle limit lie ahead,
-- and its user is not disabled.
SELECT s.token_hash, s.user_id, u.username, s.last_seen_at, s.created_at, u.role
FROM sessions AS s
JOIN users AS u ON u.id = s.user_id
WHERE s.token_hash = $1::bytea
  AND u.disabled_at IS NULL
  AND s.expires_at > now()
  AND s.last_seen_at > now() - make_interval(secs => $2::float8)

-- name: touch_session
UPDATE sessions SET last_seen_at = now() WHERE token_hash = $1::bytea

-- name: delete_session
DELETE FROM sessions WHERE token_hash = $1::bytea

-- name: delete_other_sessions
DELETE FROM sessions WHERE user_id = $1::uuid AND token_hash <> $2::bytea

-- name: delete_all_sessions
DELETE FROM sessions WHERE user_id = $1::uuid

-- name: delete_expired_sessions
DELETE FROM sessions
WHERE expires_at <= now() OR last_seen_at <= now() - make_interval(secs => $1::float8)

-- name: recent_failures
-- Failures in the window for the username and for the IP. "pivot" is the $4-th
-- most recent one: once it leaves the window, fewer than $4 remain.
SELECT scope,
       count(*)::integer AS failures,
       (array_agg(failed_at ORDER BY failed_at DESC))[$4::integer] AS pivot
FROM login_failures
WHERE ((scope = 'username' AND key = $1::text) OR (scope = 'ip' AND key = $2::text))
  AND failed_at > now() - make_interval(secs => $3::float8)
GROUP BY scope

-- name: record_attempt
-- Written (and committed) before the password is checked, so concurrent guesses
-- see each other; removed again when the attempt succeeds or is refused.
INSERT INTO login_failures (scope, key)
VALUES ('username', $1::text), ('ip', $2::text)
RETURNING id

-- name: delete_attempts
DELETE FROM login_failures WHERE id = ANY($1::bigint[])

-- name: clear_failures
DELETE FROM login_failures WHERE scope = 'username' AND key = $1::text

-- name: delete_old_failures
DELETE FROM login_failures WHERE failed_at < now() - make_interval(secs => $1::float8)

-- name: insert_api_key
INSERT INTO api_keys (id, user_id, name, prefix, key_hash, scope)
VALUES ($1::uuid, $2::uuid, $3::text, $4::text, $5::bytea, $6::text)

-- name: find_api_key
SELECT k.id, k.user_id, u.username, k.scope, u.password_changed_at, u.role, k.name
FROM api_keys AS k
JOIN users AS u ON u.id = k.user_id
WHERE k.key_hash = $1::bytea AND k.revoked_at IS NULL AND u.disabled_at IS NULL

-- name: touch_api_key
UPDATE api_keys SET last_used_at = now()
WHERE id = $1::uuid AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')

-- name: list_api_keys
SELECT k.id, k.name, k.prefix, k.scope, k.created_at, k.last_used_at, k.revoked_at, u.username
FROM api_keys AS k
JOIN users AS u ON u.id = k.user_id
WHERE ($1::uuid IS NULL OR k.user_id = $1::uuid)
ORDER BY k.created_at DESC

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = now()
WHERE id = $1::uuid AND revoked_at IS NULL AND ($2::uuid IS NULL OR user_id = $2::uuid)
RETURNING id
